"""Metrics for speaker-attributed transcripts `<|spk_0|> words <|spk_1|> words ...`.

- cpWER / cpCER: meeteval's `cp_word_error_rate` (CHiME-6: concatenate each speaker's tokens, take
  the best speaker pairing by the Hungarian algorithm; extra or missing speakers cost insertions or
  deletions). Characters for unspaced languages (ja, zh, th, ...), words otherwise. Above meeteval's
  limit of 20 speakers (a looping output) the same computation runs here instead of failing.
- WER / CER: speaker tags removed, scored by jiwer.
- WDER (Shafey et al. 2019): align hypothesis tokens to reference tokens ignoring speakers (jiwer's
  alignment), map hypothesis speakers to reference speakers one to one so that most aligned tokens
  agree (Hungarian), WDER = aligned tokens (correct or substituted) whose speaker is wrong / aligned.
- Speaker count error: speakers with at least one token, hypothesis minus reference.
- DER: `adaptkit.eval.der` (same-speaker segments merged; md-eval's speaker mapping by default),
  from RTTM files, or from a tagged transcript that borrows its times from the reference units
  (see `der_from_tagged`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping, Sequence

import jiwer
import numpy as np
from meeteval.wer import cp_word_error_rate
from pyannote.core import Annotation, Segment, Timeline
from scipy.optimize import linear_sum_assignment

from adaptkit.errors import AdaptkitError
from adaptkit.eval.der import DerCounts, DerMode, der, der_from_rttm  # noqa: F401 (re-exported)
from adaptkit.eval.rttm import load_rttm  # noqa: F401 (re-exported)
from adaptkit.eval.text import DEFAULT_NORMALIZATION, Normalization, Unit, tokens, unit_for

SPEAKER_TAG = r"<\|spk_(\d+)\|>"
"""The default speaker tag: `<|spk_0|>`, `<|spk_1|>`, ...; the speaker id is the number."""

UNKNOWN_SPEAKER = "?"
"""The speaker of text before the first tag. In a hypothesis scored against a tagged reference it
is an error, never a speaker: its tokens are cpWER insertions, WDER-wrong, no speaker in the count
and no time in borrowed-time DER (a missing first tag costs what it should). In an untagged
reference it is the one speaker, and untagged hypothesis text can match it."""


@dataclass(frozen=True)
class SpeakerMetricsConfig:
    """How speaker-attributed transcripts are tokenised and scored."""

    tag_pattern: str = SPEAKER_TAG
    """Regex of a speaker tag; its first group is the speaker id (the whole tag when it has no group)."""
    normalization: Normalization = DEFAULT_NORMALIZATION
    """How both sides are normalised before scoring, by name (`text.NORMALIZATIONS`)."""
    unit: Literal["auto", "word", "char"] = "auto"
    """Token of every metric: `auto` takes characters for unspaced languages (ja, zh, th, ...), else words."""
    collar: float = 0.0
    """DER collar in seconds on each side of every reference boundary (md-eval's `-c`)."""
    skip_overlap: bool = False
    """DER: leave regions where reference speakers overlap out of the evaluation."""
    der_mode: DerMode = "md-eval"
    """DER's speaker mapping: `md-eval` (chosen on the whole region) or `pyannote` (on the scored
    region); see `adaptkit.eval.der`."""


DEFAULT = SpeakerMetricsConfig()


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class _Summable:
    def __add__(self, other: Any) -> Any:
        if not isinstance(other, type(self)):
            return NotImplemented
        return type(self)(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                             for f in dataclasses.fields(self) if f.init and f.metadata.get("sum", True)})

    def to_dict(self) -> dict[str, Any]:
        """Plain fields plus `rate`."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("sum", True)}
        d["rate"] = self.rate  # type: ignore[attr-defined]
        return d


@dataclass(frozen=True)
class ErrorCounts(_Summable):
    """Edit-distance counts of one or many pairs; sum with `+`, `rate` = errors / length."""

    errors: int = 0
    length: int = 0
    """Reference tokens."""
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @property
    def rate(self) -> float | None:
        """errors / length; None when the reference is empty."""
        return self.errors / self.length if self.length else None


@dataclass(frozen=True)
class CpError(ErrorCounts):
    """cpWER / cpCER counts with meeteval's speaker bookkeeping."""

    missed_speakers: int = 0
    false_alarm_speakers: int = 0
    assignment: tuple[tuple[str | None, str | None], ...] = field(default=(), metadata={"sum": False})
    """(reference speaker, hypothesis speaker) pairs chosen by meeteval; None pads a missing side."""


@dataclass(frozen=True)
class Wder(_Summable):
    """Word diarization error counts: `wrong` of `aligned` tokens carry the wrong speaker."""

    wrong: int = 0
    aligned: int = 0
    """Correct or substituted tokens of the speaker-agnostic alignment."""
    mapping: tuple[tuple[str, str], ...] = field(default=(), metadata={"sum": False})
    """(hypothesis speaker, reference speaker) pairs of the best one-to-one mapping."""

    @property
    def rate(self) -> float | None:
        """wrong / aligned; None when nothing aligned."""
        return self.wrong / self.aligned if self.aligned else None


@dataclass(frozen=True)
class SpeakerCount(_Summable):
    """Speakers with at least one token on each side."""

    reference: int = 0
    hypothesis: int = 0
    absolute: int = 0
    """|hypothesis - reference| (summed over pairs it stays a total of absolute errors)."""

    @property
    def signed(self) -> int:
        """hypothesis - reference (summed: net over- or under-counting)."""
        return self.hypothesis - self.reference

    def to_dict(self) -> dict[str, Any]:
        """reference, hypothesis, absolute, signed."""
        return {"reference": self.reference, "hypothesis": self.hypothesis,
                "absolute": self.absolute, "signed": self.signed}


# ----------------------------------------------------------------------------- parsing


@functools.lru_cache(maxsize=16)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def parse_tagged(text: str, tag_pattern: str = SPEAKER_TAG) -> list[tuple[str, str]]:
    """(speaker, segment text) in order; text before the first tag belongs to `UNKNOWN_SPEAKER`.

    A tag followed by nothing gives an empty segment (the speaker then has no tokens); blank text
    before the first tag gives no segment.
    """
    pattern = _compiled(tag_pattern)
    matches = list(pattern.finditer(text))
    head = text[: matches[0].start()] if matches else text
    segments = [(UNKNOWN_SPEAKER, head.strip())] if head.strip() else []
    for m, nxt in zip(matches, matches[1:] + [None]):
        speaker = m.group(1) if pattern.groups else m.group()
        segments.append((speaker, text[m.end(): nxt.start() if nxt else len(text)].strip()))
    return segments


def tagged_tokens(text: str, unit: Unit, config: SpeakerMetricsConfig = DEFAULT) -> list[tuple[str, str]]:
    """(speaker, token) for every token of a tagged transcript, in order."""
    return [(spk, tok) for spk, seg in parse_tagged(text, config.tag_pattern)
            for tok in tokens(seg, unit, normalized=config.normalization)]


def speaker_streams(text: str, unit: Unit, config: SpeakerMetricsConfig = DEFAULT) -> dict[str, list[str]]:
    """speaker -> its tokens concatenated: `by_speaker(tagged_tokens(...))` without a pair per token."""
    out: dict[str, list[str]] = {}
    for spk, seg in parse_tagged(text, config.tag_pattern):
        toks = tokens(seg, unit, normalized=config.normalization)
        if toks:
            out.setdefault(spk, []).extend(toks)
    return out


def split_untagged(ref: Sequence[tuple[str, str]],
                   hyp: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], int]:
    """The hypothesis tokens that have a speaker, and how many stand before its first tag.

    Nothing is split off when the reference has untagged text itself (`UNKNOWN_SPEAKER`)."""
    if any(spk == UNKNOWN_SPEAKER for spk, _ in ref):
        return list(hyp), 0
    tagged = [p for p in hyp if p[0] != UNKNOWN_SPEAKER]
    return tagged, len(hyp) - len(tagged)


def by_speaker(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """speaker -> its tokens concatenated (speakers without tokens are absent)."""
    out: dict[str, list[str]] = {}
    for spk, tok in pairs:
        out.setdefault(spk, []).append(tok)
    return out


# ----------------------------------------------------------------------------- word metrics


MEETEVAL_MAX_SPEAKERS = 20
"""meeteval refuses inputs with more speakers than this (a looping output can emit dozens of tags)."""


def _cp(ref: Mapping[str, list[str]], hyp: Mapping[str, list[str]], untagged: int = 0) -> CpError:
    """meeteval's cpWER of speaker -> tokens, plus `untagged` insertions (hypothesis text before its first tag).

    Each speaker goes to meeteval as one string of its tokens joined by spaces (tokens hold no
    whitespace), which meeteval splits back into the same tokens: the counts are those of a list of
    tokens, at a fraction of the cost of one segment per token."""
    if not ref and not hyp:
        cp = CpError()
    elif max(len(ref), len(hyp)) > MEETEVAL_MAX_SPEAKERS:
        cp = _cp_hungarian(ref, hyp)
    else:
        er = cp_word_error_rate({k: " ".join(v) for k, v in ref.items()}, {k: " ".join(v) for k, v in hyp.items()},
                                reference_sort=False, hypothesis_sort=False)
        cp = CpError(errors=er.errors, length=er.length, substitutions=er.substitutions,
                     deletions=er.deletions, insertions=er.insertions, missed_speakers=er.missed_speaker,
                     false_alarm_speakers=er.falarm_speaker, assignment=tuple(er.assignment or ()))
    return dataclasses.replace(cp, errors=cp.errors + untagged, insertions=cp.insertions + untagged) if untagged else cp


def _cp_hungarian(ref: Mapping[str, list[str]], hyp: Mapping[str, list[str]]) -> CpError:
    """meeteval's cpWER computation (pad with empty speakers, Hungarian on edit distances), for
    inputs with more speakers than meeteval accepts."""
    if not ref and not hyp:
        return CpError()
    r_keys: list[str | None] = list(ref) + [None] * max(0, len(hyp) - len(ref))
    h_keys: list[str | None] = list(hyp) + [None] * max(0, len(ref) - len(hyp))
    counts = [[_align(ref.get(r, []) if r else [], hyp.get(h, []) if h else [])[0] for h in h_keys] for r in r_keys]
    rows, cols = linear_sum_assignment(np.array([[c.errors for c in row] for row in counts]))
    total = sum((counts[r][c] for r, c in zip(rows, cols)), ErrorCounts())
    return CpError(errors=total.errors, length=total.length, substitutions=total.substitutions,
                   deletions=total.deletions, insertions=total.insertions,
                   missed_speakers=max(0, len(ref) - len(hyp)), false_alarm_speakers=max(0, len(hyp) - len(ref)),
                   assignment=tuple((r_keys[r], h_keys[c]) for r, c in zip(rows, cols)))


def cp_error(reference: str, hypothesis: str, language: str | None = None,
             config: SpeakerMetricsConfig = DEFAULT) -> CpError:
    """cpWER, or cpCER for unspaced languages (`config.unit` overrides), through meeteval.

    Hypothesis text before the first tag is inserted text (`UNKNOWN_SPEAKER`)."""
    unit = unit_for(language, config.unit)
    ref, hyp = speaker_streams(reference, unit, config), speaker_streams(hypothesis, unit, config)
    untagged = len(hyp.pop(UNKNOWN_SPEAKER, [])) if UNKNOWN_SPEAKER not in ref else 0  # as split_untagged
    return _cp(ref, hyp, untagged)


def cpwer(reference: str, hypothesis: str, config: SpeakerMetricsConfig = DEFAULT) -> CpError:
    """cpWER: words, whatever the language."""
    return cp_error(reference, hypothesis, config=dataclasses.replace(config, unit="word"))


def cpcer(reference: str, hypothesis: str, config: SpeakerMetricsConfig = DEFAULT) -> CpError:
    """cpCER: characters with spaces removed, whatever the language."""
    return cp_error(reference, hypothesis, config=dataclasses.replace(config, unit="char"))


def _align(ref: Sequence[str], hyp: Sequence[str]) -> tuple[ErrorCounts, list[tuple[int, int]]]:
    """jiwer's alignment: counts and the (reference index, hypothesis index) of aligned tokens."""
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    counts = ErrorCounts(errors=out.substitutions + out.deletions + out.insertions,
                         length=out.substitutions + out.deletions + out.hits,
                         substitutions=out.substitutions, deletions=out.deletions, insertions=out.insertions)
    pairs = [(i, j) for chunk in out.alignments[0] if chunk.type in ("equal", "substitute")
             for i, j in zip(range(chunk.ref_start_idx, chunk.ref_end_idx),
                             range(chunk.hyp_start_idx, chunk.hyp_end_idx))]
    return counts, pairs


def error_rate(reference: str, hypothesis: str, language: str | None = None,
               config: SpeakerMetricsConfig = DEFAULT) -> ErrorCounts:
    """Speaker-agnostic WER, or CER for unspaced languages: tags removed, scored by jiwer."""
    unit = unit_for(language, config.unit)
    ref = [t for _, t in tagged_tokens(reference, unit, config)]
    hyp = [t for _, t in tagged_tokens(hypothesis, unit, config)]
    return _align(ref, hyp)[0]


def _wder(ref: Sequence[tuple[str, str]], hyp: Sequence[tuple[str, str]],
          pairs: Sequence[tuple[int, int]]) -> Wder:
    """WDER counts; hypothesis tokens before the first tag are never mapped (always wrong)."""
    if not pairs:
        return Wder()
    unmapped = {UNKNOWN_SPEAKER} if split_untagged(ref, hyp)[1] else set()
    ref_spk = sorted({ref[i][0] for i, _ in pairs})
    hyp_spk = sorted({hyp[j][0] for _, j in pairs} - unmapped)
    counts = np.zeros((len(hyp_spk), len(ref_spk)), dtype=np.int64)
    r_idx = {s: k for k, s in enumerate(ref_spk)}
    h_idx = {s: k for k, s in enumerate(hyp_spk)}
    for i, j in pairs:
        if hyp[j][0] in h_idx:
            counts[h_idx[hyp[j][0]], r_idx[ref[i][0]]] += 1
    rows, cols = linear_sum_assignment(counts, maximize=True)
    right = int(counts[rows, cols].sum())
    return Wder(wrong=len(pairs) - right, aligned=len(pairs),
                mapping=tuple((hyp_spk[r], ref_spk[c]) for r, c in zip(rows, cols)))


def wder(reference: str, hypothesis: str, language: str | None = None,
         config: SpeakerMetricsConfig = DEFAULT) -> Wder:
    """Word diarization error rate (Shafey et al. 2019) of two tagged transcripts.

    Tokens are aligned speaker-agnostically by jiwer (ties broken as its alignment does); the
    hypothesis -> reference speaker mapping is one to one and maximises agreeing aligned tokens, so
    tokens of an extra hypothesis speaker left unmapped count as wrong, and so do tokens before the
    hypothesis's first tag.
    """
    unit = unit_for(language, config.unit)
    ref = tagged_tokens(reference, unit, config)
    hyp = tagged_tokens(hypothesis, unit, config)
    return _wder(ref, hyp, _align([t for _, t in ref], [t for _, t in hyp])[1])


def speaker_count(reference: str, hypothesis: str, language: str | None = None,
                  config: SpeakerMetricsConfig = DEFAULT) -> SpeakerCount:
    """Speakers with at least one token in each transcript, and the absolute difference (text before
    the hypothesis's first tag is no speaker)."""
    unit = unit_for(language, config.unit)
    ref = tagged_tokens(reference, unit, config)
    r, h = len(by_speaker(ref)), len(by_speaker(split_untagged(ref, tagged_tokens(hypothesis, unit, config))[0]))
    return SpeakerCount(reference=r, hypothesis=h, absolute=abs(h - r))


# ----------------------------------------------------------------------------- DER


@dataclass(frozen=True)
class TimedToken:
    """A reference token with the time span it borrows from its unit."""

    speaker: str
    token: str
    start: float
    end: float


def timed_tokens(units: Iterable[Mapping[str, Any]], unit: Unit,
                 normalized: bool | Normalization = True) -> list[TimedToken]:
    """Reference tokens in transcript order, each unit's time spread evenly over its tokens.

    `units` are the synth JSON's units (`speaker`, `start`, `end`, `text`), in transcript order.
    """
    out: list[TimedToken] = []
    for u in units:
        toks = tokens(str(u["text"]), unit, normalized=normalized)
        start, end = float(u["start"]), float(u["end"])
        step = (end - start) / max(len(toks), 1)
        out.extend(TimedToken(str(u["speaker"]), t, start + k * step, start + (k + 1) * step)
                   for k, t in enumerate(toks))
    return out


def reference_annotation(units: Iterable[Mapping[str, Any]], uri: str = "ref") -> Annotation:
    """The reference units as a pyannote Annotation (one segment per unit)."""
    ann = Annotation(uri=uri)
    for k, u in enumerate(units):
        ann[Segment(float(u["start"]), float(u["end"])), k] = str(u["speaker"])
    return ann


def borrowed_time_annotation(units: Sequence[Mapping[str, Any]], hypothesis: str, language: str | None = None,
                             config: SpeakerMetricsConfig = DEFAULT, uri: str = "ref") -> Annotation:
    """The tagged hypothesis as an Annotation with times borrowed from the reference alignment.

    Each hypothesis token aligned (correct or substituted) to a reference token takes that token's
    span and keeps its hypothesis speaker; inserted tokens, and tokens before the first tag (no
    speaker: their reference time is missed), get no time. Consecutive same-speaker
    tokens whose spans touch or overlap merge into one segment (a pause or a deleted token between
    them starts a new one).
    """
    unit = unit_for(language, config.unit)
    ref = timed_tokens(units, unit, config.normalization)
    hyp = tagged_tokens(hypothesis, unit, config)
    _, pairs = _align([t.token for t in ref], [t for _, t in hyp])
    segments: list[list[Any]] = []
    for i, j in pairs:
        spk, start, end = hyp[j][0], ref[i].start, ref[i].end
        if spk == UNKNOWN_SPEAKER:
            continue
        if segments and segments[-1][0] == spk and start <= segments[-1][2] + 1e-9:
            segments[-1][2] = max(segments[-1][2], end)
        else:
            segments.append([spk, start, end])
    ann = Annotation(uri=uri)
    for k, (spk, start, end) in enumerate(segments):
        if end > start:
            ann[Segment(start, end), k] = spk
    return ann


def der_from_tagged(units: Sequence[Mapping[str, Any]], hypothesis: str, language: str | None = None,
                    config: SpeakerMetricsConfig = DEFAULT) -> DerCounts:
    """DER of a tagged transcript whose times are borrowed from the reference units.

    The reference is the units themselves; the scored region is their extent. Since every hypothesis
    span is a reference token's span, there is no false alarm; missed speech is the time of deleted
    (and empty-text) reference tokens, confusion the time of aligned tokens with the wrong speaker
    under the duration-optimal mapping of `config.der_mode`. The result is therefore close to a duration-weighted
    WDER plus the deletion share of the speech.
    """
    if not units:
        return DerCounts()
    ref = reference_annotation(units)
    hyp = borrowed_time_annotation(units, hypothesis, language, config)
    uem = Timeline([Segment(min(float(u["start"]) for u in units), max(float(u["end"]) for u in units))], uri="ref")
    return der(ref, hyp, config.collar, config.skip_overlap, uem=uem, mode=config.der_mode)


# ----------------------------------------------------------------------------- one pair, every metric


@dataclass(frozen=True)
class PairScores:
    """Every speaker metric of one reference/hypothesis pair, sharing one tokenisation and alignment."""

    unit: Unit
    cp: CpError
    """cpWER (words) or cpCER (characters) counts."""
    agnostic: ErrorCounts
    """Speaker-agnostic WER or CER counts."""
    wder: Wder
    speakers: SpeakerCount
    der: DerCounts | None = None
    """Only when reference units with times were given."""


def score_pair(reference: str, hypothesis: str, language: str | None = None,
               units: Sequence[Mapping[str, Any]] | None = None,
               config: SpeakerMetricsConfig = DEFAULT) -> PairScores:
    """cp error, WER/CER, WDER, speaker count and (with `units`) borrowed-time DER of one pair."""
    unit = unit_for(language, config.unit)
    ref = tagged_tokens(reference, unit, config)
    hyp = tagged_tokens(hypothesis, unit, config)
    tagged, untagged = split_untagged(ref, hyp)
    ref_spk, hyp_spk = by_speaker(ref), by_speaker(tagged)
    counts, pairs = _align([t for _, t in ref], [t for _, t in hyp])
    return PairScores(
        unit=unit,
        cp=_cp(ref_spk, hyp_spk, untagged),
        agnostic=counts,
        wder=_wder(ref, hyp, pairs),
        speakers=SpeakerCount(len(ref_spk), len(hyp_spk), abs(len(hyp_spk) - len(ref_spk))),
        der=der_from_tagged(units, hypothesis, language, config) if units else None,
    )
