"""Labels of one conversation: RTTM, speaker-attributed transcript, 100 ms frames, the JSON record."""

from __future__ import annotations

import numpy as np

from adaptkit.synth.conversation import Conversation
from adaptkit.synth.templates import SCRIPTS

SPEAKERS = ("spk_0", "spk_1")
"""Speaker names in every file; spk_0 speaks first (the agent)."""
FRAME_MS = 100
"""Frame length of the frame labels."""


def seconds(ms: int) -> float:
    """Milliseconds to seconds, exact to three decimals."""
    return round(ms / 1000, 3)


def rttm(conv: Conversation, file_id: str) -> str:
    """One SPEAKER line per unit, from the voiced audio actually placed."""
    return "".join(
        f"SPEAKER {file_id} 1 {u.start / 1000:.3f} {(u.end - u.start) / 1000:.3f} <NA> <NA> {SPEAKERS[u.speaker]} <NA> <NA>\n"
        for u in conv.units
    )


def transcript(conv: Conversation) -> str:
    """`<|spk_0|> ... <|spk_1|> ...`: units by start time, one tag per run of the same speaker.

    Spaced languages put spaces between words and tags; Japanese and Mandarin only a space
    after each tag.
    """
    sep = " " if SCRIPTS[conv.lang].spaced else ""
    runs: list[list] = []
    for u in conv.units:
        if runs and runs[-1][0] == u.speaker:
            runs[-1][1].append(u.text)
        else:
            runs.append([u.speaker, [u.text]])
    return sep.join(f"<|{SPEAKERS[s]}|> " + sep.join(texts) for s, texts in runs)


def frame_labels(conv: Conversation) -> list[str]:
    """One label per 100 ms frame: `SU` when speech covers half of it or more, else the
    label (`Pause` or `Gap`) of the silence that covers most of it."""
    speech = np.zeros(conv.length, bool)
    for u in conv.units:
        speech[u.start : u.end] = True
    quiet = np.full(conv.length, -1)
    for i, s in enumerate(conv.silences):
        if s.label != "Overlap":
            quiet[s.start : s.end] = i
    out = []
    for a in range(0, conv.length, FRAME_MS):
        b = min(a + FRAME_MS, conv.length)
        if 2 * speech[a:b].sum() >= b - a:
            out.append("SU")
        else:
            ids, counts = np.unique(quiet[a:b][quiet[a:b] >= 0], return_counts=True)
            out.append(conv.silences[int(ids[np.argmax(counts)])].label)
    return out


def record(conv: Conversation, file_id: str, channel: str, snr: float | None) -> dict:
    """The JSON written next to the WAV: speakers, transcript, units, silences and frame labels."""
    spk = lambda i: None if i is None else SPEAKERS[i]  # noqa: E731
    return {
        "id": file_id,
        "language": conv.lang,
        "audio": f"{file_id}.wav",
        "duration": seconds(conv.length),
        "sample_rate": 16000,
        "channel": channel,
        "snr_db": snr,
        "speakers": {
            SPEAKERS[i]: {"role": ("agent", "customer")[i], "voice": v.name, "espeak": v.espeak, "pitch": v.pitch, "speed": v.speed}
            for i, v in enumerate(conv.voices)
        },
        "transcript": transcript(conv),
        "units": [
            {"speaker": SPEAKERS[u.speaker], "start": seconds(u.start), "end": seconds(u.end), "label": u.label, "turn": u.turn, "text": u.text, "reading": u.reading}
            for u in conv.units
        ],
        "silences": [
            {"start": seconds(s.start), "end": seconds(s.end), "label": s.label, "before": spk(s.before), "after": spk(s.after)}
            for s in conv.silences
        ],
        "frames": {"hop": FRAME_MS / 1000, "labels": frame_labels(conv)},
    }
