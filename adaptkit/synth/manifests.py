"""The three JSONL task manifests.

- speaker_asr.jsonl: {"audio", "text": "<|spk_0|> ... <|spk_1|> ...", "language", "id", "duration"},
  one line per conversation (the Qwen3-ASR fine-tuning fields `audio` and `text`).
- turn_tags.jsonl: {"audio", "start", "end", "label", "text", "language", "id", "confidence", "weight"},
  one line per unit: the audio from `start` to the unit's end (seconds in the conversation WAV),
  its label, how clearly the timing after it shows that label (`confidence`, a stand-in for the
  3-tag seed's annotator agreement `tt_conf`), and an inverse label-frequency sampling `weight`.
- turn_end.jsonl: {"messages": [{"role", "content"}], "ended", "language", "id"}: the call as text
  up to a point; the last message (role `user`) is judged: ended at a turn end, not ended when
  cut at a within-turn Pause.
"""

from __future__ import annotations

import io
import json
from typing import Hashable, Sequence

import numpy as np
import soundfile as sf

from adaptkit.synth.conversation import Conversation
from adaptkit.synth.labels import seconds, transcript
from adaptkit.synth.templates import SCRIPTS
from adaptkit.synth.voices import SR


def wav_bytes(x: np.ndarray) -> bytes:
    """16-bit PCM WAV at 16 kHz; `x` is (samples,) or (samples, channels)."""
    buf = io.BytesIO()
    sf.write(buf, x, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def jsonl(rows: list[dict]) -> str:
    """One JSON object a line, UTF-8 kept as is."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def speaker_asr_row(conv: Conversation, file_id: str) -> dict:
    """Speaker-attributed transcription of a whole conversation."""
    return {"audio": f"{file_id}.wav", "text": transcript(conv), "language": conv.lang, "id": file_id, "duration": seconds(conv.length)}


CLEAR_SILENCE_MS = 500
"""A silence this long after a unit makes its label certain from timing alone (confidence 1)."""


def confidence(conv: Conversation, unit) -> float:
    """How clearly the timing after `unit` shows its label: 1 at the end of the call or after a
    silence of CLEAR_SILENCE_MS or more of the kind the label implies (Gap after a complete unit,
    Pause after an incomplete one), proportionally less for a shorter one, 0.5 when the next unit
    overlaps it, 0 when the silence contradicts the label. Backchannels count as clear."""
    if unit.label == "backchannel":
        return 1.0
    after = [s for s in conv.silences if s.start == unit.end and s.label != "Overlap"]
    if not after:
        later = [v for v in conv.units if v.start >= unit.end and v is not unit]
        return 1.0 if not later else 0.5
    expected = "Gap" if unit.label == "complete" else "Pause"
    s = after[0]
    return round(min(1.0, (s.end - s.start) / CLEAR_SILENCE_MS), 3) if s.label == expected else 0.0


def turn_tag_rows(conv: Conversation, file_id: str, context: float) -> list[dict]:
    """One sample per unit: audio up to the unit's end (from `context` seconds before it), its label
    and confidence; `weight` is set per split by `label_weights`."""
    rows = []
    for k, u in enumerate(conv.units):
        start = max(0, u.end - int(1000 * context)) if context > 0 else 0
        rows.append({"audio": f"{file_id}.wav", "start": seconds(start), "end": seconds(u.end), "label": u.label, "text": u.text,
                     "language": conv.lang, "id": f"{file_id}_u{k:03d}", "confidence": confidence(conv, u)})
    return rows


def label_weights(rows: list[dict]) -> list[dict]:
    """Set each row's `weight` to the inverse frequency of its label (mean weight 1 over the rows)."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    for r in rows:
        r["weight"] = round(len(rows) / (len(counts) * counts[r["label"]]), 4)
    return rows


def chat_messages(said: Sequence[tuple[Hashable, str]], sep: str) -> list[dict[str, str]]:
    """The call so far as chat messages: consecutive units of one speaker joined by `sep` into one
    message, role `user` for the last speaker (the one judged) and `assistant` for the other.

    `said` is (speaker, text) of each unit in order, backchannels left out (they never take the
    floor). turn_end.jsonl is written with it, and the cascade's text verifier asks with it."""
    groups: list[tuple[Hashable, list[str]]] = []
    for speaker, text in said:
        if groups and groups[-1][0] == speaker:
            groups[-1][1].append(text)
        else:
            groups.append((speaker, [text]))
    last = groups[-1][0] if groups else None
    return [{"role": "user" if s == last else "assistant", "content": sep.join(t)} for s, t in groups]


def turn_end_rows(conv: Conversation, file_id: str) -> list[dict]:
    """One sample per unit boundary of the floor holder; backchannels are left out of the text."""
    sep = " " if SCRIPTS[conv.lang].spaced else ""
    said = [(u.speaker, u.text, u.label) for u in conv.units if u.label != "backchannel"]
    return [{"messages": chat_messages([(s, t) for s, t, _ in said[: k + 1]], sep), "ended": label == "complete",
             "language": conv.lang, "id": f"{file_id}_e{k:03d}"} for k, (_, _, label) in enumerate(said)]
