"""Speaker-attributed transcription: `language Japanese<asr_text><|spk_0|> ... <|spk_1|> ...`.

The target keeps Qwen3-ASR's output layout, so a fine-tuned checkpoint still answers in the form
its decoding code expects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from adaptkit.data.manifest import ANSWER_PREFIX, Sample, language_name  # noqa: F401  (ANSWER_PREFIX: part of the task)
from adaptkit.tasks.base import GeneratingTask
from adaptkit.tasks.registry import register

if TYPE_CHECKING:
    from adaptkit.eval.decode import Decoded
    from adaptkit.eval.report import EvalReport
    from adaptkit.eval.score import Scores


def reference_units(sample: Sample) -> list | None:
    """Timed reference units from the synth JSON beside the audio, when there is one (DER borrows their times)."""
    meta = Path(sample.audio).with_suffix(".json")
    if sample.start is not None or not meta.is_file():
        return None
    return json.loads(meta.read_text(encoding="utf-8")).get("units")


@register
class SpeakerAsr(GeneratingTask):
    """Speaker-tagged transcripts, scored by cpCER / cpWER, WDER, DER and degeneration."""

    name = "speaker_asr"
    title = "Speaker-attributed ASR"
    metrics = ("cp_error_rate", "error_rate", "wder", "der", "speaker_count_abs", "degenerate")
    headline_metric = "cp_error_rate"
    """cpCER or cpWER after the scores' `unit`."""
    transcribes = True

    def answer_prefix(self, language: str | None) -> str:
        """What the model writes before the transcript: `language Japanese<asr_text>` (`<asr_text>` when unknown)."""
        name = language_name(language)
        return f"language {name}<asr_text>" if name else "<asr_text>"

    def target(self, sample: Sample, language: str | None = None) -> str:
        """The answer prefix of the sample's language (else `language`), then the transcript."""
        return self.answer_prefix(sample.language or language) + sample.text

    def reference(self, sample: Sample, decoded: Decoded) -> dict[str, Any]:
        """The transcript, and the timed units beside the audio."""
        return {"reference": sample.text, "units": reference_units(sample)}

    def score(self, rows: list[dict[str, Any]], source: str, known_tokens: Iterable[str] = ()) -> Scores:
        """`score.score_speaker_asr`."""
        from adaptkit.eval.score import score_speaker_asr

        return score_speaker_asr(rows, source=source, known_tokens=known_tokens)

    def report(self, scores: Scores, title: str, meta: dict[str, Any]) -> EvalReport:
        """Headline, breakdowns, degeneration and the worst samples."""
        from adaptkit.eval.score import speaker_report

        return speaker_report(scores, title, meta)
