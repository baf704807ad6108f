"""The words an end-of-turn LM reads in the cascade: the reference words (an oracle ASR), punctuated
or normalised like LiveKit, or the words of an ASR in the loop.

A words source gives the text of each unit (an inter-pausal unit of the synth record) that has
ended by the decision time; `EndOfTurnVerifier` joins them into chat messages and, when the source
says `normalised`, passes them through `adaptkit.turn.normalize.normalize_messages`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from adaptkit.errors import AdaptkitError

if TYPE_CHECKING:
    import torch

WORDS = ("oracle", "oracle_normalised", "asr")
"""Words modes of a cascade recipe's end-of-turn LM: the reference words as written (punctuated), the
reference words normalised like LiveKit, an ASR's words normalised like LiveKit."""


class Words(Protocol):
    """The text of each ended unit of one conversation."""

    normalised: bool
    """Whether the verifier normalises the messages like LiveKit."""
    hears: str
    """What the LM reads, for the report."""

    def reset(self, record: dict) -> None: ...

    def text(self, index: int, unit: dict, judged: str) -> str:
        """The words of unit `index` of the record (`unit`), when `judged` is the speaker whose turn is judged."""


class ReferenceWords:
    """The reference words of every unit (an oracle ASR: it isolates the turn decision from recognition)."""

    def __init__(self, normalised: bool = False) -> None:
        self.normalised = normalised
        self.hears = "reference words, normalised like LiveKit" if normalised else "reference words, punctuated"

    def reset(self, record: dict) -> None:
        """Nothing to keep between conversations."""

    def text(self, index: int, unit: dict, judged: str) -> str:
        """The unit's reference text."""
        return unit["text"]


class AsrWords:
    """The ASR's words for the judged speaker's units, the other speaker's reference words (a voice
    agent knows what it said itself), normalised like LiveKit.

    `path` is an adaptkit-loadable Speech-LLM whose task transcribes (`Task.transcribes`): a merged
    checkpoint (a Qwen3-ASR folder), an adapter or a recipe, loaded by `adaptkit.eval.run.load_task_model`.
    Each unit is transcribed on its own once it has ended, as a streaming ASR finalises a segment at
    a pause: the audio is the conversation's mono file (the record's `audio`, absolute) between the
    unit's reference start and end (the segmentation is the reference's), decoded as `adaptkit eval`
    decodes (the task's `decode`: greedy, the language forced, the length limit set from the
    reference text as eval sets it). The text is cached per conversation, so the ASR runs once per
    unit and its time counts in the call that first needs it. Control tokens (speaker tags) are
    dropped from what it writes, and so is an answer prefix (`language X<asr_text>`) when it writes one."""

    normalised = True

    def __init__(self, path: str | Path, device: torch.device | str = "cpu") -> None:
        from adaptkit.devices import place
        from adaptkit.eval.run import load_task_model
        from adaptkit.tasks import task

        self.model = load_task_model(path)
        self.task = task(self.model.task)
        if not self.task.transcribes:
            raise AdaptkitError(f"asr: {path} is a {self.model.task} model, which does not transcribe; "
                                "give a Speech-LLM trained for transcription (a merged Qwen3-ASR folder, or a speaker-tagging transcription adapter)")
        place(self.model.loaded.model, device)
        self.hears = f"ASR words ({path}) of the judged speaker, the other speaker's reference words, normalised like LiveKit"
        self.record: dict = {}
        self.cache: dict[int, str] = {}
        self.heard: dict[tuple[str, int], tuple[str, str]] = {}
        """(conversation id, unit index) -> (reference, ASR words) of every unit transcribed, for `word_errors`."""

    def reset(self, record: dict) -> None:
        """Start a conversation: its record names its mono audio file (absolute)."""
        audio = record.get("audio")
        if not audio or not Path(audio).is_absolute() or not Path(audio).is_file():
            raise AdaptkitError(f"asr: the conversation {record.get('id')!r} needs its audio file as an absolute path in the "
                                f"record's 'audio', got {audio!r}")
        self.record, self.cache = record, {}

    def text(self, index: int, unit: dict, judged: str) -> str:
        """The ASR's words for the judged speaker's unit (transcribed on first use), else the reference text."""
        if unit["speaker"] != judged:
            return unit["text"]
        if index not in self.cache:
            self.cache[index] = self.transcribe(index, unit)
            self.heard[(str(self.record.get("id", self.record["audio"])), index)] = (unit["text"], self.cache[index])
        return self.cache[index]

    def word_errors(self) -> dict[str, float | int] | None:
        """The ASR's word error rate on every unit it transcribed so far, reference and ASR words both
        normalised like LiveKit (as the LM reads them), scored by jiwer; None before any unit."""
        import jiwer

        from adaptkit.turn.normalize import normalize_text

        pairs = [(normalize_text(ref), normalize_text(hyp)) for ref, hyp in self.heard.values()]
        pairs = [(ref, hyp) for ref, hyp in pairs if ref]  # a unit of punctuation alone has no words to score
        if not pairs:
            return None
        out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
        words = out.hits + out.substitutions + out.deletions
        return {"units": len(pairs), "words": words, "wer": round(out.wer, 4), "substitutions": out.substitutions,
                "deletions": out.deletions, "insertions": out.insertions,
                "empty_units": sum(1 for _, h in pairs if not h)}

    def transcribe(self, index: int, unit: dict) -> str:
        """The ASR's words for one unit of the current conversation, control tokens dropped."""
        from adaptkit.control_tokens import CONTROL_TOKEN
        from adaptkit.data.manifest import ANSWER_PREFIX, Sample

        audio = Path(self.record["audio"])
        sample = Sample(id=f"{self.record.get('id', audio.stem)}_u{index:03d}", where=f"{audio}: unit {index}", audio=audio,
                        text=unit["text"], language=self.record.get("language"), start=unit["start"], end=unit["end"])
        (row,) = self.task.decode(self.model, [sample], batch_size=1, progress=False)
        text = ANSWER_PREFIX.sub("", row["hypothesis"])  # written by the model itself when the language is unknown
        return " ".join(CONTROL_TOKEN.sub(" ", text).split())


def words_for(mode: str, asr: str | None = None, device: torch.device | str = "cpu") -> Words:
    """The words source of a recipe's `words` mode (`asr`: the ASR checkpoint of mode `asr`)."""
    if mode == "asr":
        if not asr:
            raise AdaptkitError("asr: words: asr needs the ASR checkpoint")
        return AsrWords(asr, device)
    if mode not in WORDS:
        raise AdaptkitError(f"words: unknown words mode {mode!r}; use one of {', '.join(WORDS)}")
    return ReferenceWords(normalised=mode == "oracle_normalised")
