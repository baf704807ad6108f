"""Text units for scoring: which languages go by characters, normalisation, control tokens, tokens.

Every metric in `adaptkit.eval` tokenises through `tokens`, so words and characters mean the
same thing for cpWER, WER, WDER, DER with borrowed times and the degeneration checks.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Unit = Literal["word", "char"]
"""The token of a metric: whitespace-separated words, or characters with spaces removed."""

UNSPACED_LANGUAGES = frozenset({
    "ja", "jpn", "zh", "zho", "cmn", "yue", "wuu", "nan", "hak", "th", "tha", "lo", "lao",
    "km", "khm", "my", "mya", "bo", "bod", "dz",
})
"""ISO 639 codes of scripts written without spaces between words: scored by character."""

_LANGUAGE_NAMES = {
    "japanese": "ja", "chinese": "zh", "mandarin": "zh", "cantonese": "yue", "thai": "th",
    "lao": "lo", "khmer": "km", "burmese": "my", "tibetan": "bo",
}

CONTROL_TOKEN = re.compile(r"<\|[^<>|\s]{1,64}\|>|</?[A-Za-z_][A-Za-z0-9_]{0,63}>")
"""Anything shaped like a control token: `<|...|>` (`<|spk_0|>`, `<|im_start|>`) or a tag of one
word (`<COMPLETE>`, `<think>`, `</think>`, `</s>`, `<asr_text>`)."""

_APOSTROPHES = re.compile(r"['\u2019]")


def language_code(language: str | None) -> str:
    """`ja-JP`, `JA`, `Japanese` -> `ja`; None -> "" (unknown)."""
    if not language:
        return ""
    code = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    return _LANGUAGE_NAMES.get(code, code)


def is_unspaced(language: str | None) -> bool:
    """Whether `language` is written without spaces between words (scored by character)."""
    return language_code(language) in UNSPACED_LANGUAGES


def unit_for(language: str | None, unit: Unit | Literal["auto"] | None = None) -> Unit:
    """The token of `language`: characters for unspaced scripts, else words; `unit` overrides."""
    if unit in ("word", "char"):
        return unit
    return "char" if is_unspaced(language) else "word"


def normalize(text: str) -> str:
    """NFKC, lower case, apostrophes dropped, other punctuation turned into spaces.

    Marks and symbols stay (Thai vowel signs, `%`, `¥`); full-width digits and letters become ASCII.
    """
    text = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", text).lower())
    return "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)


def tokens(text: str, unit: Unit, *, normalized: bool = True) -> list[str]:
    """Split `text` into scoring tokens: words, or non-space characters for `unit="char"`.

    Control tokens (`CONTROL_TOKEN`) stay whole and are never normalised, so a leaked
    `<|im_start|>` costs one insertion, not two words.
    """
    out: list[str] = []
    pos = 0
    for m in CONTROL_TOKEN.finditer(text):
        out.extend(_plain_tokens(text[pos:m.start()], unit, normalized))
        out.append(m.group())
        pos = m.end()
    out.extend(_plain_tokens(text[pos:], unit, normalized))
    return out


def _plain_tokens(text: str, unit: Unit, normalized: bool) -> list[str]:
    if normalized:
        text = normalize(text)
    if unit == "char":
        return [c for c in text if not c.isspace()]
    return text.split()
