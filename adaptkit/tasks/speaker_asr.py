"""Speaker-attributed transcription: `language Japanese<asr_text><|spk_0|> ... <|spk_1|> ...`.

The target keeps Qwen3-ASR's output layout, so a fine-tuned checkpoint still answers in the form
its decoding code expects.
"""

from __future__ import annotations

from adaptkit.data.manifest import ANSWER_PREFIX, Sample, language_name  # noqa: F401  (ANSWER_PREFIX: part of the task)

REQUIRE: tuple[str, ...] = ()


def check(sample: Sample) -> None:
    """Every text is usable (control tokens are checked against the recipe when reading)."""


def answer_prefix(language: str | None) -> str:
    """What the model writes before the transcript: `language Japanese<asr_text>` (`<asr_text>` when unknown)."""
    name = language_name(language)
    return f"language {name}<asr_text>" if name else "<asr_text>"


def target(sample: Sample, language: str | None = None) -> str:
    """The assistant text for `sample`: the answer prefix of its language (else `language`), then the transcript."""
    return answer_prefix(sample.language or language) + sample.text
