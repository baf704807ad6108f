"""Speaker-attributed transcription: `language Japanese<asr_text><|spk_0|> ... <|spk_1|> ...`.

The target keeps Qwen3-ASR's output layout, so a fine-tuned checkpoint still answers in the form
its decoding code expects.
"""

from __future__ import annotations

from adaptkit.data.manifest import Sample

REQUIRE: tuple[str, ...] = ()
LANGUAGE_NAMES = {
    "ja": "Japanese", "en": "English", "zh": "Chinese", "ms": "Malay", "ta": "Tamil", "ko": "Korean",
    "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese", "ru": "Russian",
}


def check(sample: Sample) -> None:
    """Every text is usable (control tokens are checked against the recipe when reading)."""


def target(sample: Sample, language: str | None = None) -> str:
    """The assistant text for `sample`."""
    code = sample.language or language
    name = LANGUAGE_NAMES.get(code, code) if code else None
    return (f"language {name}<asr_text>" if name else "<asr_text>") + sample.text
