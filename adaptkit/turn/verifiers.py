"""Turn models a cascade asks "end of turn or not?": a 3-tag Speech-LLM on the audio, an end-of-turn
LM on the words so far, or Smart Turn v3.2 (the off-the-shelf baseline). Each says what it hears
(`hears`), for the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from adaptkit.devices import model_place
from adaptkit.errors import AdaptkitError
from adaptkit.tasks.turn_tags import TAGS
from adaptkit.turn.smart_turn import SMART_TURN_AUDIO

SAMPLE_RATE = 16000
ENDED = 0.05
"""A unit counts as said at a decision time when it ended at most this long after it (the silence
onset the gate finds lies on a 100 ms chunk boundary, which can fall just before the unit's end)."""


def ended_units(units: list[dict], end: float) -> list[tuple[int, dict]]:
    """(index in `units`, unit) of the units that take the floor (backchannels left out, as in
    turn_end.jsonl) and have ended by `end`; the speaker of the last one is the one whose turn is
    judged (role `user` in `chat_messages`)."""
    return [(k, u) for k, u in enumerate(units) if u.get("label") != "backchannel" and u["end"] <= end + ENDED]


class TagVerifier:
    """P(end of turn) from a 3-tag Speech-LLM: 1 - P(<INCOMPLETE>) among the three tags at the answer
    position (after COMPLETE, and after a backchannel, the other speaker talks next: a Gap).

    `task_model` is an `adaptkit.eval.run.TaskModel` (a trained adapter, recipe or merged checkpoint); the
    audio is the last `context` seconds before the silence, as the tags were trained (synth's
    tag_context)."""

    def __init__(self, task_model, context: float = 8.0) -> None:
        self.task_model, self.context = task_model, context
        self.hears = f"the mono mix, last {context:g} s"
        self.arch = task_model.loaded.architecture
        tok = task_model.loaded.tokenizer
        self.tag_ids = tok.convert_tokens_to_ids([TAGS["complete"], TAGS["incomplete"], TAGS["backchannel"]])
        task_model.loaded.model.eval()

    def reset(self, record: dict) -> None:
        """Nothing to keep between conversations."""

    @torch.no_grad()
    def __call__(self, audio: np.ndarray, end: float) -> float:
        if len(audio) < SAMPLE_RATE // 10:  # nothing said yet
            return 0.0
        arch, loaded = self.arch, self.task_model.loaded
        model, tok = loaded.model, loaded.tokenizer
        device, dtype = model_place(model)  # the inputs go where the model is, the features in its dtype
        feats = arch.features(loaded.feature_extractor, audio[-int(self.context * SAMPLE_RATE):])
        ids = arch.prompt_ids(tok, arch.audio_token_count(feats.shape[-1], model), self.task_model.prompt)
        frames = torch.ones(1, feats.shape[-1], dtype=torch.long, device=device)
        states = arch.encode_audio(model, feats[None].to(device=device, dtype=dtype), frames)
        hidden = arch.llm_hidden(model, torch.tensor([ids], device=device), torch.ones(1, len(ids), dtype=torch.long, device=device),
                                 arch.project(model, states))
        probs = torch.softmax(arch.logits(model, hidden[:, -1]).float()[0, self.tag_ids], dim=-1)
        return float(1.0 - probs[1])


class EndOfTurnVerifier:
    """P(<|im_end|>) of a text end-of-turn model on the words spoken before the silence.

    The words are those of the units that ended by then, from `words` (`adaptkit.turn.words`;
    default the reference words as written, an oracle ASR that isolates the turn model from
    recognition errors), normalised like LiveKit when the source says so. The last speaker's
    message is left open, the others are closed, backchannels are left out as in turn_end.jsonl.
    Each call scores the conversation so far through `EndOfTurnScorer.score`, which runs only the
    tokens added since the last call on the KV cache (none when no word ended since: most chunks of
    the every-chunk system), with the probability of a full recomputation."""

    def __init__(self, task_model, words: Any | None = None) -> None:
        from adaptkit.end_of_turn import EndOfTurnScorer
        from adaptkit.turn.words import ReferenceWords

        loaded = task_model.loaded
        self.scorer = EndOfTurnScorer(loaded.architecture.text_model(loaded.model), loaded.tokenizer)
        self.words = words if words is not None else ReferenceWords()
        self.hears = self.words.hears
        self.units: list[dict] = []
        self.sep = " "

    def reset(self, record: dict) -> None:
        """Take the conversation's units (from its synth JSON record)."""
        from adaptkit.synth.templates import SCRIPTS

        self.units = list(record.get("units", []))
        script = SCRIPTS.get(record.get("language"))
        self.sep = " " if script is None or script.spaced else ""
        self.words.reset(record)
        self.scorer.reset()

    def __call__(self, audio: np.ndarray, end: float) -> float:
        from adaptkit.synth.manifests import chat_messages
        from adaptkit.turn.normalize import normalize_messages

        done = ended_units(self.units, end)
        if not done:
            return 0.0
        judged = done[-1][1]["speaker"]
        messages = chat_messages([(u["speaker"], self.words.text(k, u, judged)) for k, u in done], self.sep)
        return self.scorer.score(normalize_messages(messages) if self.words.normalised else messages)


class SmartTurnVerifier:
    """Smart Turn v3.2 on the last 8 s before the silence (its own input window).

    `audio="mono"`: the audio the cascade streams (the mono mix, the other speaker in it).
    `audio="own_channel"`: the channel of the speaker whose turn is judged (the last to take the
    floor before the silence, `ended_units`) from the conversation's `<id>.stereo.wav` (next to the
    record's `audio`, channel 0 spk_0), cut where the streamed audio ends: what a voice agent hears
    from the user's own microphone. Before anyone has spoken it answers 0."""

    def __init__(self, smart_turn=None, audio: str = "mono") -> None:
        from adaptkit.turn.smart_turn import SmartTurn
        from adaptkit.validation import check_choice

        self.audio = check_choice(audio, SMART_TURN_AUDIO, "smart_turn_audio", "audio")
        self.model = smart_turn or SmartTurn()
        self.hears = "the judged speaker's own channel, last 8 s" if audio == "own_channel" else "the mono mix, last 8 s"
        self.units: list[dict] = []
        self.channels: np.ndarray | None = None

    def reset(self, record: dict) -> None:
        """With `own_channel`: read the conversation's stereo file and units."""
        if self.audio == "own_channel":
            from adaptkit.synth.dataset import stereo_path

            if not record.get("audio"):
                raise AdaptkitError(f"smart_turn_audio: own_channel: the record of {record.get('id')!r} names no audio file")
            self.units, self.channels = list(record.get("units", [])), read_channels(stereo_path(record["audio"]))

    def __call__(self, audio: np.ndarray, end: float) -> float:
        if len(audio) < SAMPLE_RATE // 10:
            return 0.0
        if self.audio == "own_channel":
            done = ended_units(self.units, end)
            if not done:
                return 0.0
            audio = self.channels[channel_of(done[-1][1]["speaker"]), : len(audio)]
        return float(self.model(audio.astype(np.float32)))


def channel_of(speaker: str) -> int:
    """The stereo channel of a synth speaker (`spk_0` -> 0)."""
    from adaptkit.synth.labels import SPEAKERS

    if speaker not in SPEAKERS:
        raise AdaptkitError(f"smart_turn_audio: own_channel: speaker {speaker!r} is not one of {', '.join(SPEAKERS)}")
    return SPEAKERS.index(speaker)


def need_stereo(path: str | Path) -> None:
    """A one-line error when the stereo file Smart Turn's own channel comes from is missing."""
    if not Path(path).is_file():
        raise AdaptkitError(f"smart_turn_audio: own_channel needs {path} (adaptkit synth --stereo writes it); "
                            "or set smart_turn_audio: mono")


def read_channels(path: str | Path) -> np.ndarray:
    """(2, samples) float32 of a 16 kHz stereo file; a missing or other file is a one-line error."""
    import soundfile as sf

    need_stereo(path)
    wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE or wave.shape[1] != 2:
        raise AdaptkitError(f"{path}: expected 16 kHz audio with 2 channels (one per speaker), got {rate} Hz, {wave.shape[1]} channels")
    return np.ascontiguousarray(wave.T)
