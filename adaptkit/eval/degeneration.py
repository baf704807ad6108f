"""Degenerate outputs: loops, counting, blow-ups, missing eos and leaked control tokens.

One `check` per output gives `Flags` (one bool per check plus what was measured); `rates` turns a
set of them into the share of outputs flagged per check. Tokens are words, or for unspaced
languages (ja, zh, th, ...) characters with runs of ASCII letters and digits kept whole, after NFKC,
lower case and punctuation removal; control tokens (the tokenizer's special and added tokens when
given, and anything shaped `<|...|>` or `<word>` / `</word>`) are single tokens.

Judged against the reference when there is one: counting it has itself (as a run, in words or
digits, or as the same digits grouped otherwise) is not counting; a unit it repeats r times back to
back needs r - 1 more repeats than the threshold before it is a loop (the reference's "no no no"
excuses a "no" x5 of the output, not a "no" x7); the length is measured against it. The task's
answer prefix (`language X<asr_text>`) is removed from the start of both texts before any check.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from adaptkit.control_tokens import CONTROL_TOKEN
from adaptkit.eval.numbers import counting_runs, digit_string
from adaptkit.eval.text import is_unspaced, normalize
from adaptkit.tasks.speaker_asr import ANSWER_PREFIX

FLAG_NAMES = ("high_compression", "repeated_unit", "seq_rep", "counting", "too_long", "no_eos", "leaked_token")
"""The checks, in report order."""


@dataclass(frozen=True)
class DegenerationConfig:
    """Thresholds of the degeneration checks."""

    compression_ratio: float = 2.4
    """Flag text (control tokens removed) whose UTF-8 bytes / zlib-compressed bytes exceed this (Whisper: 2.4)."""
    compression_min_bytes: int = 200
    """Only judge the compression ratio on outputs of at least this many bytes."""
    compression_window: int = 512
    """Longer outputs are judged by their most compressible window of this many bytes (half-window
    steps): Whisper's 2.4 was set on 30-s segments, and whole long transcripts compress better."""
    repeat_max_unit: int = 8
    """Longest unit (in tokens) looked for when checking back-to-back repetition."""
    repeat_one_token: int = 5
    """A one-token unit repeated back to back this many times is flagged ("はいはい" is fine)."""
    repeat_longer: int = 4
    """A unit of 2..`repeat_max_unit` tokens repeated back to back this many times is flagged."""
    seq_rep_n: int = 4
    """n of seq-rep-n = 1 - unique n-grams / all n-grams."""
    seq_rep: float = 0.3
    """Flag seq-rep-n above this."""
    seq_rep_min_tokens: int = 20
    """Only judge seq-rep on outputs of at least this many tokens (short answers repeat by nature)."""
    counting_run: int = 10
    """Flag a run of this many consecutive integers (n, n+1, ..., in digits or number words) absent
    from the reference."""
    length_ratio: float = 2.0
    """Flag an output longer than this many times the reference (tokens, control tokens excluded) ..."""
    length_min_extra: int = 5
    """... and longer than the reference by at least this many tokens (so "はい" -> "はい、はい" passes)."""
    control_token_pattern: str = CONTROL_TOKEN.pattern
    """What counts as a control token besides the tokenizer's own; any match outside the allowed set is a leak."""
    answer_prefix: str | None = ANSWER_PREFIX.pattern
    """The task's answer prefix (Qwen3-ASR's `language X<asr_text>`), removed from the start of both
    texts before any check: it is never a leak nor part of the length. None: keep it."""


DEFAULT = DegenerationConfig()


@dataclass(frozen=True)
class Flags:
    """One output's checks: a bool per check (`FLAG_NAMES`) and the numbers measured."""

    high_compression: bool
    repeated_unit: bool
    seq_rep: bool
    counting: bool
    too_long: bool
    no_eos: bool
    leaked_token: bool
    compression_ratio: float
    """UTF-8 bytes / zlib bytes of the text without control tokens (its worst window when long)."""
    repeats: int
    """Most back-to-back repetitions of one unit found (1 = none)."""
    repeat_unit: str
    """That unit, tokens joined by spaces."""
    seq_rep_value: float | None
    """seq-rep-n; None below `seq_rep_min_tokens`."""
    longest_count: int
    """Longest run of consecutive integers in the output (whether or not the reference has it)."""
    length_ratio: float | None
    """Output tokens / reference tokens; None without a reference (or with an empty one)."""
    leaked: tuple[str, ...]
    """Control tokens found outside the allowed set, in order of first appearance."""

    @property
    def degenerate(self) -> bool:
        """Whether any check fired."""
        return any(getattr(self, n) for n in FLAG_NAMES)

    def fired(self) -> list[str]:
        """The names of the checks that fired."""
        return [n for n in FLAG_NAMES if getattr(self, n)]

    def to_dict(self) -> dict[str, Any]:
        """Every field, plus `degenerate`."""
        d = asdict(self)
        d["leaked"] = list(self.leaked)
        d["degenerate"] = self.degenerate
        return d


def content_tokens(text: str, language: str | None = None, control: re.Pattern[str] = CONTROL_TOKEN) -> list[str]:
    """The tokens the checks count, control tokens kept whole (see the module docstring)."""
    out: list[str] = []
    pos = 0
    for m in control.finditer(text):
        out.extend(_plain(text[pos:m.start()], language))
        out.append(m.group())
        pos = m.end()
    out.extend(_plain(text[pos:], language))
    return out


def _plain(text: str, language: str | None) -> list[str]:
    text = normalize(text)
    return re.findall(r"[0-9a-z]+|\S", text) if is_unspaced(language) else text.split()


def compression_ratio(text: str, window: int | None = None) -> float:
    """Whisper's compression ratio: UTF-8 bytes / zlib-compressed bytes (0 for empty text).

    With `window`, text longer than that many bytes gets the highest ratio of its windows
    (`window` bytes each, every `window // 2` bytes, the last one ending at the end).
    """
    data = text.encode("utf-8")
    if not data:
        return 0.0
    if window is None or len(data) <= window:
        return len(data) / len(zlib.compress(data))
    starts = list(range(0, len(data) - window, max(window // 2, 1))) + [len(data) - window]
    return max(window / len(zlib.compress(data[s:s + window])) for s in starts)


def repetition_runs(toks: Sequence[str], max_unit: int = 8) -> list[tuple[int, int, int]]:
    """(start, unit length, repeats >= 2) of every maximal back-to-back run of a unit of 1..max_unit tokens."""
    if not toks:
        return []
    index: dict[str, int] = {}
    ids = np.array([index.setdefault(t, len(index)) for t in toks], dtype=np.int64)
    out = []
    for size in range(1, min(max_unit, len(ids) // 2) + 1):
        eq = np.concatenate(([False], ids[size:] == ids[:-size], [False]))
        edges = np.flatnonzero(np.diff(eq.astype(np.int8)))
        out += [(int(a), size, int(b - a) // size + 1) for a, b in zip(edges[::2], edges[1::2]) if b - a >= size]
    return out


def longest_repetition(toks: Sequence[str], max_unit: int = 8) -> list[tuple[int, int, int]]:
    """(start, unit length, repeats >= 2) of the longest back-to-back run of each unit length 1..max_unit."""
    best: dict[int, tuple[int, int, int]] = {}
    for start, size, reps in repetition_runs(toks, max_unit):
        if size not in best or reps > best[size][2]:
            best[size] = (start, size, reps)
    return [best[k] for k in sorted(best)]


def repeats_of(unit: Sequence[str], toks: Sequence[str]) -> int:
    """Most back-to-back repetitions of `unit` (or a rotation of it) in `toks`; 0 when absent."""
    size, best = len(unit), 0
    rotations = {tuple(unit[k:]) + tuple(unit[:k]) for k in range(size)}
    for i in range(len(toks) - size + 1):
        if tuple(toks[i:i + size]) in rotations:
            rot, reps = tuple(toks[i:i + size]), 1
            while tuple(toks[i + reps * size:i + (reps + 1) * size]) == rot:
                reps += 1
            best = max(best, reps)
    return best


def integer_runs(text: str, language: str | None = None) -> list[tuple[int, int]]:
    """(first, last) of every run of 2+ consecutive integers (n, n+1, ...), in digits or number words.

    Numbers may be separated by spaces and list punctuation only: "1, 2, 3", "1. 2. 3.",
    "１、２、３" and "one two three" are runs; "1 apple 2" is not (`adaptkit.eval.numbers`).
    """
    return [(run[0].value, run[-1].value) for run in counting_runs(text, language)]


def control_pattern(pattern: str = CONTROL_TOKEN.pattern, known_tokens: Iterable[str] = ()) -> re.Pattern[str]:
    """`known_tokens` (literally, longest first) or anything `pattern` matches: what a control token is."""
    known = sorted({t for t in known_tokens if t}, key=len, reverse=True)
    return re.compile("|".join([re.escape(t) for t in known] + [f"(?:{pattern})"]))


def tokenizer_control_tokens(tokenizer: Any) -> set[str]:
    """Every special and added token of a transformers tokenizer (`<think>`, `<|im_end|>`, `<asr_text>` ...)."""
    tokens = set(getattr(tokenizer, "all_special_tokens", ()) or ())
    get_added = getattr(tokenizer, "get_added_vocab", None)
    return tokens | (set(get_added()) if callable(get_added) else set())


def _repetition(toks: list[str], ref_toks: list[str] | None, config: DegenerationConfig) -> tuple[bool, int, str]:
    """(fires, repeats, unit) of the worst back-to-back repetition, judged against the reference's own."""
    found = []  # (fires, repeats, unit): the firing repetition with most repeats wins, else the longest
    for start, size, reps in repetition_runs(toks, config.repeat_max_unit):
        unit = toks[start:start + size]
        need = config.repeat_one_token if size == 1 else config.repeat_longer
        if ref_toks is not None:  # what the reference says r times needs r - 1 more repeats than usual
            need += max(repeats_of(unit, ref_toks) - 1, 0)
        found.append((reps >= need, reps, " ".join(unit)))
    return max(found, default=(False, 1, ""))


def _counting(output: str, reference: str | None, language: str | None, config: DegenerationConfig) -> tuple[bool, int]:
    """(fires, longest run): a long run of counting that the reference does not have (as a run, or as
    the same digits grouped otherwise, such as a phone number)."""
    runs = integer_runs(output, language)
    ref_runs = integer_runs(reference, language) if reference is not None else []
    ref_digits = digit_string(reference, language) if reference is not None else ""

    def excused(a: int, b: int) -> bool:
        return any(c <= a and b <= d for c, d in ref_runs) or "".join(map(str, range(a, b + 1))) in ref_digits

    longest = max((b - a + 1 for a, b in runs), default=0)
    return any(b - a + 1 >= config.counting_run and not excused(a, b) for a, b in runs), longest


def check(output: str, reference: str | None = None, allowed_tokens: Iterable[str] = (),
          ended_with_eos: bool | None = None, language: str | None = None,
          config: DegenerationConfig = DEFAULT, known_tokens: Iterable[str] = ()) -> Flags:
    """Run every check on one output.

    `reference` (optional) excuses counting and repetitions it has itself and enables the length
    check; `allowed_tokens` are the control tokens the task may emit (e.g. `<|spk_0|>`,
    `<|spk_1|>`); `known_tokens` are the tokenizer's special and added tokens
    (`tokenizer_control_tokens`): any of them outside `allowed_tokens` is a leak, whatever its shape;
    `ended_with_eos=False` means decoding hit the length limit. A leading answer prefix of the task
    (`config.answer_prefix`: `language Japanese<asr_text>`) is removed from both texts first.
    """
    if config.answer_prefix:
        prefix = re.compile(config.answer_prefix)
        output = prefix.sub("", output, count=1)
        reference = prefix.sub("", reference, count=1) if reference is not None else None
    control = control_pattern(config.control_token_pattern, known_tokens)
    toks = content_tokens(output, language, control)
    ref_toks = content_tokens(reference, language, control) if reference is not None else None

    plain = control.sub(" ", output)
    ratio = compression_ratio(plain, config.compression_window)
    high_compression = len(plain.encode("utf-8")) >= config.compression_min_bytes and ratio > config.compression_ratio
    repeated, repeats, unit = _repetition(toks, ref_toks, config)

    n = config.seq_rep_n
    seq_rep_value = None
    if len(toks) >= max(config.seq_rep_min_tokens, n):
        grams = list(zip(*(toks[i:] for i in range(n))))
        seq_rep_value = 1.0 - len(set(grams)) / len(grams)
    counting, longest = _counting(output, reference, language, config)

    length_ratio = too_long = None
    if ref_toks is not None:
        out_len = sum(1 for t in toks if not control.fullmatch(t))
        ref_len = sum(1 for t in ref_toks if not control.fullmatch(t))
        length_ratio = out_len / ref_len if ref_len else None
        too_long = out_len > max(config.length_ratio * ref_len, ref_len + config.length_min_extra)

    allowed = set(allowed_tokens)
    leaked = tuple(dict.fromkeys(t for t in control.findall(output) if t not in allowed))
    return Flags(
        high_compression=high_compression, repeated_unit=repeated,
        seq_rep=seq_rep_value is not None and seq_rep_value > config.seq_rep, counting=counting,
        too_long=bool(too_long), no_eos=ended_with_eos is False, leaked_token=bool(leaked),
        compression_ratio=ratio, repeats=repeats, repeat_unit=unit, seq_rep_value=seq_rep_value,
        longest_count=longest, length_ratio=length_ratio, leaked=leaked,
    )


def rates(flags: Sequence[Flags]) -> dict[str, float | int]:
    """Share of outputs flagged per check, `any` (degenerate at all) and `n` (outputs)."""
    n = len(flags)
    out: dict[str, float | int] = {"n": n}
    for name in FLAG_NAMES:
        out[name] = sum(getattr(f, name) for f in flags) / n if n else 0.0
    out["any"] = sum(f.degenerate for f in flags) / n if n else 0.0
    return out


__all__ = ["FLAG_NAMES", "DegenerationConfig", "Flags", "check", "rates", "content_tokens", "compression_ratio",
           "longest_repetition", "repetition_runs", "repeats_of", "integer_runs", "control_pattern",
           "tokenizer_control_tokens"]
