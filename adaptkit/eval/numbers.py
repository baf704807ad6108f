"""Numbers in transcripts, written as digits or as words, and runs of consecutive ones (counting).

`numbers` finds every number in a text: digits (after NFKC, so full-width `１２` is 12), and number
words of English, Japanese (kanji and kana readings), Mandarin, Malay and Tamil, the languages
`adaptkit synth` makes, from 0 to 99 (English, kanji and Malay) or 0 to 20 (kana, Tamil).
`counting_runs` joins back-to-back numbers n, n+1, n+2, ... separated only by spaces or list
punctuation into runs. Where words can be read two ways (`twenty one` is 21 or 20, 1; `九十` is 90
or 9, 10), the reading that goes on counting wins, so "nineteen twenty twenty one" counts
19, 20, 21 and "八九十十一" counts 8, 9, 10, 11.

Number words are matched as whole words in spaced scripts; in Japanese and Chinese (no spaces) they
are matched anywhere, so a particle such as `に` reads as 2 too, which only matters when it
continues a run of counting.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

SEPARATORS = re.compile(r"[\s,、.;:。，-]*")
"""What may stand between two numbers of a run: spaces and list punctuation."""

_EN_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
             "fifteen sixteen seventeen eighteen nineteen").split()
_EN_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_MS_UNITS = "kosong satu dua tiga empat lima enam tujuh lapan sembilan".split()
_CJK_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4, "五": 5, "六": 6,
               "七": 7, "八": 8, "九": 9}
_KANA = {"ぜろ": 0, "れい": 0, "いち": 1, "に": 2, "さん": 3, "よん": 4, "し": 4, "ご": 5, "ろく": 6, "なな": 7,
         "しち": 7, "はち": 8, "きゅう": 9, "く": 9, "じゅう": 10}
_TA = ("பூஜ்ஜியம் ஒன்று இரண்டு மூன்று நான்கு ஐந்து ஆறு ஏழு எட்டு ஒன்பது பத்து பதினொன்று பன்னிரண்டு "
       "பதின்மூன்று பதினான்கு பதினைந்து பதினாறு பதினேழு பதினெட்டு பத்தொன்பது இருபது").split()


def _english() -> dict[str, int]:
    words = {w: k for k, w in enumerate(_EN_UNITS)}
    for t, tens in enumerate(_EN_TENS, 2):
        words[tens] = 10 * t
        for u in range(1, 10):
            words[f"{tens} {_EN_UNITS[u]}"] = words[f"{tens}-{_EN_UNITS[u]}"] = 10 * t + u
    return words


def _malay() -> dict[str, int]:
    words = {w: k for k, w in enumerate(_MS_UNITS)}
    words.update({"sepuluh": 10, "sebelas": 11})
    for u in range(2, 10):
        words[f"{_MS_UNITS[u]} belas"] = 10 + u
    for t in range(2, 10):
        words[f"{_MS_UNITS[t]} puluh"] = 10 * t
        for u in range(1, 10):
            words[f"{_MS_UNITS[t]} puluh {_MS_UNITS[u]}"] = 10 * t + u
    return words


def _cjk(kana: bool) -> dict[str, int]:
    words = dict(_CJK_DIGITS)
    digits = {k: v for k, v in _CJK_DIGITS.items() if v > 0}
    words["十"] = 10
    for d, v in digits.items():
        words[f"十{d}"] = 10 + v
        words[f"{d}十"] = 10 * v
        for e, w in digits.items():
            words[f"{d}十{e}"] = 10 * v + w
    if kana:
        words.update(_KANA)
        for reading, v in _KANA.items():
            if 0 < v < 10:
                words[f"じゅう{reading}"] = 10 + v
        words["にじゅう"] = 20
    return words


LEXICONS: dict[str, dict[str, int]] = {
    "en": _english(), "ms": _malay(), "ja": _cjk(kana=True), "zh": _cjk(kana=False),
    "ta": {w: k for k, w in enumerate(_TA)},
}
"""Number words per language code (lower case)."""

_SPACED = {"en", "ms", "ta"}


@dataclass(frozen=True)
class Number:
    """A number found in a text: its character span and value."""

    start: int
    end: int
    value: int


_WORD = re.compile(r"[^\s,、.;:。，!?()\"'-]+")
"""A word of a spaced script: anything up to a space or punctuation (Tamil vowel signs included)."""


@functools.lru_cache(maxsize=None)
def _shape(language: str) -> tuple[int, str]:
    """(most words or characters in one number word, the characters a number word can start with)."""
    lexicon = LEXICONS[language]
    if language in _SPACED:
        return max(len(w.replace("-", " ").split()) for w in lexicon), ""
    return max(map(len, lexicon)), "".join(sorted({w[0] for w in lexicon}))


def _candidates(text: str, language: str) -> dict[int, list[tuple[int, int]]]:
    """start -> [(end, value)] of every digit string and number word that starts there."""
    out: dict[int, list[tuple[int, int]]] = {}
    for m in re.finditer(r"\d+", text):
        out.setdefault(m.start(), []).append((m.end(), int(m.group())))
    lexicon = LEXICONS.get(language)
    if not lexicon:
        return out
    longest, first = _shape(language)
    lower = text.lower()
    if language in _SPACED:  # whole words, and phrases of words joined by one space or hyphen
        words = list(_WORD.finditer(lower))
        for i, w in enumerate(words):
            for k in range(i, min(i + longest, len(words))):
                if k > i and lower[words[k - 1].end():words[k].start()] not in (" ", "-"):
                    break
                phrase = lower[w.start():words[k].end()]
                if phrase in lexicon:
                    out.setdefault(w.start(), []).append((words[k].end(), lexicon[phrase]))
        return out
    for m in re.finditer(f"[{re.escape(first)}]", lower):  # unspaced: anywhere
        s = m.start()
        found = [(s + k, lexicon[lower[s:s + k]]) for k in range(1, longest + 1) if lower[s:s + k] in lexicon]
        if found:
            out.setdefault(s, []).extend(found)
    return out


def numbers(text: str, language: str | None = None) -> list[Number]:
    """Every number of `text` left to right, each reading chosen to go on counting (module docstring).

    `language` is an ISO 639-1 code (`ja`, `en-US`); digits are found whatever the language. Spans
    index the NFKC form of `text`.
    """
    from adaptkit.eval.text import language_code

    text = unicodedata.normalize("NFKC", text)
    cands = _candidates(text, language_code(language))
    out: list[Number] = []
    pos = 0
    for start in sorted(cands):
        if start < pos:
            continue
        options = cands[start]
        prev = out[-1] if out and SEPARATORS.fullmatch(text[out[-1].end:start]) else None
        follows = [o for o in options if prev is not None and o[1] == prev.value + 1]
        end, value = max(follows or options)  # the counting reading, else the longest
        out.append(Number(start, end, value))
        pos = end
    return out


def counting_runs(text: str, language: str | None = None) -> list[list[Number]]:
    """Runs of 2+ consecutive integers n, n+1, ... separated only by `SEPARATORS`, in order.

    Spans index the NFKC form of `text`."""
    text = unicodedata.normalize("NFKC", text)
    runs: list[list[Number]] = []
    current: list[Number] = []
    for n in numbers(text, language):
        if current and n.value == current[-1].value + 1 and SEPARATORS.fullmatch(text[current[-1].end:n.start]):
            current.append(n)
            continue
        if len(current) >= 2:
            runs.append(current)
        current = [n]
    if len(current) >= 2:
        runs.append(current)
    return runs


def digit_string(text: str, language: str | None = None) -> str:
    """The values of every number in `text`, written as digits and joined: "012-345" -> "012345"
    (digit strings keep their leading zeros)."""
    normal = unicodedata.normalize("NFKC", text)
    return "".join(normal[n.start:n.end] if normal[n.start:n.end].isdigit() else str(n.value)
                   for n in numbers(text, language))
