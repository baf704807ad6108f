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
from adaptkit.eval.text import Unit, tokens, unit_for

SPEAKER_TAG = r"<\|spk_(\d+)\|>"
"""The default speaker tag: `<|spk_0|>`, `<|spk_1|>`, ...; the speaker id is the number."""

UNKNOWN_SPEAKER = "?"
"""The speaker of text before the first tag. It is a label like any other (it can be paired)."""


@dataclass(frozen=True)
class SpeakerMetricsConfig:
    """How speaker-attributed transcripts are tokenised and scored."""

    tag_pattern: str = SPEAKER_TAG
    """Regex of a speaker tag; its first group is the speaker id (the whole tag when it has no group)."""
    normalize: bool = True
    """Score normalised text on both sides: NFKC, lower case, punctuation removed (`text.normalize`)."""
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


def parse_tagged(text: str, tag_pattern: str = SPEAKER_TAG) -> list[tuple[str, str]]:
    """(speaker, segment text) in order; text before the first tag belongs to `UNKNOWN_SPEAKER`.

    A tag followed by nothing gives an empty segment (the speaker then has no tokens); blank text
    before the first tag gives no segment.
    """
    pattern = re.compile(tag_pattern)
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
            for tok in tokens(seg, unit, normalized=config.normalize)]


def by_speaker(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """speaker -> its tokens concatenated (speakers without tokens are absent)."""
    out: dict[str, list[str]] = {}
    for spk, tok in pairs:
        out.setdefault(spk, []).append(tok)
    return out


# ----------------------------------------------------------------------------- word metrics


MEETEVAL_MAX_SPEAKERS = 20
"""meeteval refuses inputs with more speakers than this (a looping output can emit dozens of tags)."""


def _cp(ref: Mapping[str, list[str]], hyp: Mapping[str, list[str]]) -> CpError:
    if not ref and not hyp:
        return CpError()
    if max(len(ref), len(hyp)) > MEETEVAL_MAX_SPEAKERS:
        return _cp_hungarian(ref, hyp)
    er = cp_word_error_rate(dict(ref), dict(hyp), reference_sort=False, hypothesis_sort=False)
    return CpError(errors=er.errors, length=er.length, substitutions=er.substitutions,
                   deletions=er.deletions, insertions=er.insertions, missed_speakers=er.missed_speaker,
                   false_alarm_speakers=er.falarm_speaker, assignment=tuple(er.assignment or ()))


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
    """cpWER, or cpCER for unspaced languages (`config.unit` overrides), through meeteval."""
    unit = unit_for(language, config.unit)
    return _cp(by_speaker(tagged_tokens(reference, unit, config)),
               by_speaker(tagged_tokens(hypothesis, unit, config)))


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
    if not pairs:
        return Wder()
    ref_spk = sorted({ref[i][0] for i, _ in pairs})
    hyp_spk = sorted({hyp[j][0] for _, j in pairs})
    counts = np.zeros((len(hyp_spk), len(ref_spk)), dtype=np.int64)
    r_idx = {s: k for k, s in enumerate(ref_spk)}
    h_idx = {s: k for k, s in enumerate(hyp_spk)}
    for i, j in pairs:
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
    tokens of an extra hypothesis speaker left unmapped count as wrong.
    """
    unit = unit_for(language, config.unit)
    ref = tagged_tokens(reference, unit, config)
    hyp = tagged_tokens(hypothesis, unit, config)
    return _wder(ref, hyp, _align([t for _, t in ref], [t for _, t in hyp])[1])


def speaker_count(reference: str, hypothesis: str, language: str | None = None,
                  config: SpeakerMetricsConfig = DEFAULT) -> SpeakerCount:
    """Speakers with at least one token in each transcript, and the absolute difference."""
    unit = unit_for(language, config.unit)
    r = len(by_speaker(tagged_tokens(reference, unit, config)))
    h = len(by_speaker(tagged_tokens(hypothesis, unit, config)))
    return SpeakerCount(reference=r, hypothesis=h, absolute=abs(h - r))


# ----------------------------------------------------------------------------- DER


@dataclass(frozen=True)
class TimedToken:
    """A reference token with the time span it borrows from its unit."""

    speaker: str
    token: str
    start: float
    end: float


def timed_tokens(units: Iterable[Mapping[str, Any]], unit: Unit, normalized: bool = True) -> list[TimedToken]:
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
    span and keeps its hypothesis speaker; inserted tokens get no time. Consecutive same-speaker
    tokens whose spans touch or overlap merge into one segment (a pause or a deleted token between
    them starts a new one).
    """
    unit = unit_for(language, config.unit)
    ref = timed_tokens(units, unit, config.normalize)
    hyp = tagged_tokens(hypothesis, unit, config)
    _, pairs = _align([t.token for t in ref], [t for _, t in hyp])
    segments: list[list[Any]] = []
    for i, j in pairs:
        spk, start, end = hyp[j][0], ref[i].start, ref[i].end
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
    ref_spk, hyp_spk = by_speaker(ref), by_speaker(hyp)
    counts, pairs = _align([t for _, t in ref], [t for _, t in hyp])
    return PairScores(
        unit=unit,
        cp=_cp(ref_spk, hyp_spk),
        agnostic=counts,
        wder=_wder(ref, hyp, pairs),
        speakers=SpeakerCount(len(ref_spk), len(hyp_spk), abs(len(hyp_spk) - len(ref_spk))),
        der=der_from_tagged(units, hypothesis, language, config) if units else None,
    )
