"""Text units for scoring: which languages go by characters, normalisation, control tokens, tokens.

Every metric in `adaptkit.eval` tokenises through `tokens`, so words and characters mean the
same thing for cpWER, WER, WDER, DER with borrowed times and the degeneration checks.

Normalisation is a named choice (`NORMALIZATIONS`), applied to both sides and stated in every
report header:

- `nfkc_lower_punct` (the default): Unicode NFKC (full-width letters and digits become ASCII), lower
  case, apostrophes dropped ("don't" -> "dont"), then every punctuation character (Unicode category
  P*) turned into a space. So "3.5" -> "3 5", "U.S." -> "u s", "e-mail" -> "e mail", "50%" -> "50"
  (`%` is punctuation, Po); symbols (S*: `$`, `¥`, `+`) and marks (Thai vowel signs) stay.
- `none`: the text as it is, split on whitespace (or into characters): what meeteval and jiwer
  score when given raw text. Tags and case differences then count as errors.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from adaptkit.control_tokens import CONTROL_TOKEN
from adaptkit.errors import AdaptkitError

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


Normalization = Literal["nfkc_lower_punct", "none"]
"""The name of a text normalisation (see the module docstring)."""

NORMALIZATIONS: dict[str, str] = {
    "nfkc_lower_punct": "NFKC, lower case, apostrophes dropped, punctuation (Unicode P*, % included) "
                        "made a space (3.5 -> 3 5)",
    "none": "text as it is, split on whitespace (what meeteval scores)",
}
"""Every normalisation by name, with the one-line description that reports print."""

DEFAULT_NORMALIZATION: Normalization = "nfkc_lower_punct"


class _PunctuationToSpace(dict):
    """A `str.translate` table filled as characters appear: punctuation (Unicode P*) to a space,
    anything else to itself (a full table of 1.1 M code points takes a second to build)."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        self[code] = value = " " if unicodedata.category(char).startswith("P") else char
        return value


_PUNCTUATION_TO_SPACE = _PunctuationToSpace()


def check_normalization(name: str, key: str = "normalization") -> Normalization:
    """`name` if it is one of `NORMALIZATIONS`, else a one-line error naming `key`."""
    if name not in NORMALIZATIONS:
        raise AdaptkitError(f"{key}: {name!r} is not a normalisation; choose {' or '.join(NORMALIZATIONS)}")
    return name  # type: ignore[return-value]


def normalize(text: str, name: Normalization = DEFAULT_NORMALIZATION) -> str:
    """`text` under normalisation `name` (module docstring); `none` returns it unchanged."""
    if check_normalization(name) == "none":
        return text
    return _APOSTROPHES.sub("", unicodedata.normalize("NFKC", text).lower()).translate(_PUNCTUATION_TO_SPACE)


def tokens(text: str, unit: Unit, *, normalized: bool | Normalization = True) -> list[str]:
    """Split `text` into scoring tokens: words, or non-space characters for `unit="char"`.

    `normalized` names the normalisation (True: the default, False: `none`). Control tokens
    (`CONTROL_TOKEN`) stay whole and are never normalised, so a leaked `<|im_start|>` costs one
    insertion, not two words.
    """
    normalized = DEFAULT_NORMALIZATION if normalized is True else "none" if normalized is False else normalized
    if "<" not in text:  # no control token can be there
        return _plain_tokens(text, unit, normalized)
    out: list[str] = []
    pos = 0
    for m in CONTROL_TOKEN.finditer(text):
        out.extend(_plain_tokens(text[pos:m.start()], unit, normalized))
        out.append(m.group())
        pos = m.end()
    out.extend(_plain_tokens(text[pos:], unit, normalized))
    return out


def _plain_tokens(text: str, unit: Unit, normalized: Normalization) -> list[str]:
    text = normalize(text, normalized)
    if unit == "char":
        return [c for c in text if not c.isspace()]
    return text.split()
