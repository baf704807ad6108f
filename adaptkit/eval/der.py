"""Diarization error rate in two named modes, on pyannote Annotations or RTTM files.

Both modes first merge each speaker's overlapping (or touching) segments into one
(`Annotation.support()`): a speaker talks or does not, so a duplicated RTTM line or two overlapping
turns of one speaker are scored once. md-eval-22.pl (NIST) and spy-der do the same; pyannote,
given separate tracks, counts such overlaps twice (a duplicated hypothesis line gives DER 0.5
instead of 0).

- `md-eval` (the default, what a report calls "DER"): the one-to-one speaker mapping is chosen on
  the whole scored file (its UEM), before the collar and overlap regions are removed, as
  md-eval-22.pl and spy-der choose it; the errors are then counted on the scored region with that
  mapping (pyannote's `IdentificationErrorRate` on the mapped hypothesis).
- `pyannote`: pyannote.metrics' `DiarizationErrorRate` as it is, which chooses the mapping on the
  scored region (after collar and overlap removal). Both modes agree at collar 0 without overlap
  skipping; with a collar or overlap skipping a file can get a different mapping.

`collar` is md-eval's `-c`: seconds removed on each side of every reference boundary (0.25 is the
usual choice). pyannote's own `collar` is the total width, so pyannote receives `2 * collar`.
`skip_overlap` leaves out the regions where reference speakers overlap (md-eval's `-1`, spy-der's
`regions="nonoverlap"`, pyannote's `skip_overlap`). Without a UEM, the union of both extents is
scored (pyannote's and spy-der's default).

Sources: md-eval-22.pl and spy-der (https://github.com/desh2608/spyder) documentation; the
agreement with spy-der is tested in tests/eval/test_der.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping

from pyannote.core import Annotation, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate
from pyannote.metrics.identification import IdentificationErrorRate

from adaptkit.errors import AdaptkitError
from adaptkit.eval.rttm import load_rttm

DerMode = Literal["md-eval", "pyannote"]
"""How the speaker mapping is chosen (see the module docstring)."""

DER_MODES: tuple[str, ...] = ("md-eval", "pyannote")


@dataclass(frozen=True)
class DerCounts:
    """DER components in seconds; sum with `+`."""

    missed: float = 0.0
    false_alarm: float = 0.0
    confusion: float = 0.0
    total: float = 0.0
    """Scored reference speech (after collar and skip_overlap)."""

    def __add__(self, other: "DerCounts") -> "DerCounts":
        if not isinstance(other, DerCounts):
            return NotImplemented
        return DerCounts(self.missed + other.missed, self.false_alarm + other.false_alarm,
                         self.confusion + other.confusion, self.total + other.total)

    @property
    def rate(self) -> float | None:
        """(missed + false alarm + confusion) / total; None when nothing was scored."""
        return (self.missed + self.false_alarm + self.confusion) / self.total if self.total else None

    def to_dict(self) -> dict[str, float | None]:
        """The components and `rate`."""
        return {"missed": self.missed, "false_alarm": self.false_alarm, "confusion": self.confusion,
                "total": self.total, "rate": self.rate}


def check_mode(mode: str, key: str = "der_mode") -> DerMode:
    """`mode` if it is one of `DER_MODES`, else a one-line error naming `key`."""
    if mode not in DER_MODES:
        raise AdaptkitError(f"{key}: {mode!r} is not a DER mode; choose {' or '.join(DER_MODES)}")
    return mode  # type: ignore[return-value]


def merged(annotation: Annotation) -> Annotation:
    """Each speaker's overlapping or touching segments merged into one (`annotation` itself when
    none touch: `support()` rebuilds the annotation, which costs more than checking)."""
    ends: dict[str, float] = {}
    for segment, _, label in annotation.itertracks(yield_label=True):  # in time order
        if label in ends and segment.start <= ends[label]:
            return annotation.support()
        ends[label] = max(ends.get(label, segment.end), segment.end)
    return annotation


def _whole_extent(reference: Annotation, hypothesis: Annotation) -> Timeline:
    extent = reference.get_timeline().extent() | hypothesis.get_timeline().extent()
    return Timeline(segments=[extent] if extent else [], uri=reference.uri)


def der(reference: Annotation, hypothesis: Annotation, collar: float = 0.0, skip_overlap: bool = False,
        uem: Timeline | None = None, mode: DerMode = "md-eval") -> DerCounts:
    """DER components of one pair of annotations, speakers merged first (see the module docstring).

    `collar` is per side of each reference boundary (md-eval's `-c`).
    """
    check_mode(mode, "mode")
    if collar < 0:
        raise AdaptkitError(f"collar: {collar} must not be negative")
    ref, hyp = merged(reference), merged(hypothesis)
    uem = _whole_extent(ref, hyp) if uem is None else uem
    if mode == "pyannote" or (collar == 0 and not skip_overlap):  # the scored region is the whole: same mapping
        d = DiarizationErrorRate(collar=2 * collar, skip_overlap=skip_overlap)(ref, hyp, uem=uem, detailed=True)
    else:
        mapping = DiarizationErrorRate().optimal_mapping(ref, hyp, uem=uem)
        # unmapped hypothesis speakers get names no reference speaker can have
        mapped = hyp.rename_labels(mapping={h: mapping.get(h, f"\x00hyp:{h}") for h in hyp.labels()})
        d = IdentificationErrorRate(collar=2 * collar, skip_overlap=skip_overlap)(ref, mapped, uem=uem, detailed=True)
    return DerCounts(missed=float(d["missed detection"]), false_alarm=float(d["false alarm"]),
                     confusion=float(d["confusion"]), total=float(d["total"]))


def der_from_rttm(reference: str | Path | Mapping[str, Annotation], hypothesis: str | Path | Mapping[str, Annotation],
                  collar: float = 0.0, skip_overlap: bool = False, mode: DerMode = "md-eval") -> DerCounts:
    """DER summed over every file (uri) of two RTTM files (or uri -> Annotation mappings).

    A uri missing on one side counts as an empty annotation there.
    """
    ref = load_rttm(reference) if isinstance(reference, (str, Path)) else reference
    hyp = load_rttm(hypothesis) if isinstance(hypothesis, (str, Path)) else hypothesis
    total = DerCounts()
    for uri in list(ref) + [u for u in hyp if u not in ref]:
        total += der(ref.get(uri, Annotation(uri=uri)), hyp.get(uri, Annotation(uri=uri)), collar, skip_overlap,
                     mode=mode)
    return total
