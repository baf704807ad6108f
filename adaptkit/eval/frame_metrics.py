"""Streaming end-of-turn metrics: per-frame labels, and the cut-off / latency trade-off at silences.

A streaming detector labels every 100 ms chunk SU, Pause (the same speaker goes on) or Gap (the
other speaker takes the turn). `frame_scores` compares those labels frame by frame. At silences,
firing "end of turn" inside a Pause is a false cut-off, firing inside a Gap detects it with a
latency (from the silence's start). One `tradeoff` per threshold or timeout gives a `curve`;
`at_budgets` reads it at fixed latency and cut-off budgets, and `plot_tradeoff` draws the curves of
several systems. Two named modes (`MODES`) define the decision points and the latency:

- `two-party` (adaptkit's own, the default): every Pause or Gap silence of 100 ms or more with a
  speaker on both sides; a detector fires when its score is >= the threshold; latency is the median
  (and p90) over Gaps, a missed Gap has latency inf (so the median is inf once half are missed).
- `eot-bench` (LiveKit's end-of-turn benchmark, https://github.com/livekit/eot-bench): the decision
  points are the speakers' silences, mid-turn "hold" pauses kept only when 0.2-5 s long; a detector
  fires when its score is > the threshold; a missed end of turn (Gap) is charged the timeout as its
  latency; systems are ranked on the mean latency. Every latency is then finite, so the budgets
  read a number wherever some setting meets them.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from sklearn.metrics import confusion_matrix

from adaptkit.atomic import atomic_write
from adaptkit.errors import AdaptkitError

CLASSES = ("SU", "Pause", "Gap")
"""The frame labels, in report order."""

INF = float("inf")

Mode = Literal["two-party", "eot-bench"]
"""How decision points and latency are defined (module docstring)."""

MODES: tuple[str, ...] = ("two-party", "eot-bench")

EOT_BENCH_HOLD = (0.2, 5.0)
"""eot-bench keeps a mid-turn pause (Pause) as a decision point only when it lasts 0.2-5 s."""

EOT_BENCH_TIMEOUT = 5.0
"""Latency charged for a missed end of turn in `eot-bench` mode unless given: adaptkit's default
(the longest hold kept), not a figure of eot-bench; pass the timeout of the system under test."""


def check_mode(mode: str, key: str = "mode") -> Mode:
    """`mode` if it is one of `MODES`, else a one-line error naming `key`."""
    if mode not in MODES:
        raise AdaptkitError(f"{key}: {mode!r} is not a turn-taking mode; choose {' or '.join(MODES)}")
    return mode  # type: ignore[return-value]


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def frame_scores(ref: Sequence[str], hyp: Sequence[str], classes: Sequence[str] = CLASSES) -> dict[str, Any]:
    """Per-class precision, recall, F1, IoU and support; macro F1, mean IoU, accuracy and frame count.

    IoU is TP / (TP + FP + FN). An undefined ratio is 0; macro F1 and mean IoU average the classes
    that occur on either side, as `turn_metrics.multiclass_metrics` does. `confusion` has one row per
    reference class and one column per hypothesis class.
    """
    classes = list(classes)
    if len(ref) != len(hyp):
        raise AdaptkitError(f"reference has {len(ref)} frames but hypothesis has {len(hyp)}")
    for side, labels in (("reference", ref), ("hypothesis", hyp)):
        unknown = sorted(set(labels) - set(classes), key=str)
        if unknown:
            raise AdaptkitError(f"{side} has labels outside {classes}: {unknown}")
    n = len(ref)
    m = confusion_matrix(list(ref), list(hyp), labels=classes) if n else np.zeros((len(classes),) * 2, int)
    tp, fp, fn = np.diag(m), m.sum(0) - np.diag(m), m.sum(1) - np.diag(m)
    per_class = {}
    for k, c in enumerate(classes):
        p, r = _ratio(tp[k], tp[k] + fp[k]), _ratio(tp[k], tp[k] + fn[k])
        per_class[c] = {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
                        "iou": _ratio(tp[k], tp[k] + fp[k] + fn[k]), "support": int(tp[k] + fn[k])}
    present = [c for c in classes if c in set(ref) | set(hyp)]
    return {
        "frames": n,
        "accuracy": int(tp.sum()) / n if n else None,
        "macro_f1": float(np.mean([per_class[c]["f1"] for c in present])) if present else None,
        "mean_iou": float(np.mean([per_class[c]["iou"] for c in present])) if present else None,
        "per_class": per_class,
        "confusion": {"classes": classes, "matrix": m.astype(int).tolist()},
    }


@dataclass(frozen=True)
class DecisionPoint:
    """A silence between two speech units where the detector must decide: `label` is Pause or Gap."""

    start: float
    end: float
    label: str

    @property
    def duration(self) -> float:
        """Length of the silence in seconds."""
        return self.end - self.start


def _kept(label: str, duration: float, min_duration: float, mode: Mode) -> bool:
    if mode == "eot-bench":
        return label == "Gap" or EOT_BENCH_HOLD[0] - 1e-9 <= duration <= EOT_BENCH_HOLD[1] + 1e-9
    return duration >= min_duration - 1e-9


def decision_points(silences: list[dict], min_duration: float = 0.1, mode: Mode = "two-party") -> list[DecisionPoint]:
    """The Pause and Gap silences with a speaker on both sides where the detector must decide.

    `two-party`: those of at least `min_duration` s; `eot-bench`: every Gap, and the Pauses of
    0.2-5 s (`EOT_BENCH_HOLD`). Overlaps and silences at the start or end of the call (`before` or
    `after` None) are skipped.
    """
    check_mode(mode)
    out = []
    for k, s in enumerate(silences):
        try:
            start, end, label = float(s["start"]), float(s["end"]), s["label"]
            edge = s.get("before") is None or s.get("after") is None
        except (KeyError, TypeError, ValueError) as e:
            raise AdaptkitError(f"silence {k} lacks start, end or label: {s!r} ({e})") from None
        if label == "Overlap" or edge or (label in ("Pause", "Gap") and not _kept(label, end - start, min_duration, mode)):
            continue
        if label not in ("Pause", "Gap"):
            raise AdaptkitError(f"silence {k} has label {label!r}; expected Pause, Gap or Overlap")
        out.append(DecisionPoint(start, end, label))
    return out


def tradeoff(points: list[DecisionPoint], fires: list[float | None], mode: Mode = "two-party",
             timeout: float = EOT_BENCH_TIMEOUT) -> dict[str, Any]:
    """False cut-off rate of Pauses and latency of Gaps, for one detector setting.

    `fires[i]` is the time in seconds after `points[i].start` at which the detector declared end of
    turn during that silence (None: never). A fire at or after the silence's end does not count.
    `two-party`: a missed Gap has latency inf, so the median is inf when half or more are missed and
    the p90 (lowest latency that covers 90% of Gaps) is inf when more than 10% are missed.
    `eot-bench`: a missed Gap is charged `timeout`; `gap_latency_mean` is the ranking number.
    Rates are None when there is no Pause (or no Gap).
    """
    check_mode(mode)
    if len(points) != len(fires):
        raise AdaptkitError(f"{len(points)} decision points but {len(fires)} fire times")
    if any(f is not None and f < 0 for f in fires):
        raise AdaptkitError("fire times are seconds after silence onset and must not be negative")
    hit = [f is not None and f < p.duration for p, f in zip(points, fires)]
    pauses = sum(p.label == "Pause" for p in points)
    cutoffs = sum(h for p, h in zip(points, hit) if p.label == "Pause")
    missed_latency = timeout if mode == "eot-bench" else INF
    lat = np.array([f if h else missed_latency for p, f, h in zip(points, fires, hit) if p.label == "Gap"], dtype=float)
    missed = sum(not h for p, h in zip(points, hit) if p.label == "Gap")
    return {
        "false_cutoff_rate": cutoffs / pauses if pauses else None,
        "gap_latency_median": float(np.median(lat)) if lat.size else None,
        "gap_latency_p90": float(np.percentile(lat, 90, method="inverted_cdf")) if lat.size else None,
        "gap_latency_mean": float(np.mean(lat)) if lat.size else None,
        "gap_detected": 1 - missed / lat.size if lat.size else None,
        "pauses": pauses, "gaps": int(lat.size), "cutoffs": int(cutoffs), "missed": missed, "mode": mode,
    }


def curve(points: list[DecisionPoint], fires_by_setting: dict[float, list[float | None]],
          mode: Mode = "two-party", timeout: float = EOT_BENCH_TIMEOUT) -> list[dict[str, Any]]:
    """One `tradeoff` row per setting (threshold or timeout), with its `setting`, sorted by setting."""
    return [{"setting": s, **tradeoff(points, fires_by_setting[s], mode, timeout)} for s in sorted(fires_by_setting)]


def at_budgets(points: list[dict], latency_budgets: Sequence[float] = (0.2, 0.5, 1.0, 2.0),
               cutoff_budgets: Sequence[float] = (0.05, 0.1, 0.2), mode: Mode | None = None) -> dict[str, float | None]:
    """Read a `curve` at fixed budgets, on the latency its mode ranks on (median for `two-party`,
    mean for `eot-bench`; `mode` defaults to the rows' own).

    `fcr@{b}s`: lowest false cut-off rate among settings whose latency is <= b.
    `latency@fcr{b}`: lowest latency among settings with false cut-off rate <= b (`two-party`: inf
    when every such setting misses half the Gaps; `eot-bench` latencies are always finite).
    None: no setting meets the budget.
    """
    mode = check_mode(mode or (points[0].get("mode", "two-party") if points else "two-party"))
    latency = "gap_latency_mean" if mode == "eot-bench" else "gap_latency_median"

    def best(key: str, limit_key: str, budget: float) -> float | None:
        vals = [r[key] for r in points
                if r.get(key) is not None and r.get(limit_key) is not None and r[limit_key] <= budget]
        return min(vals) if vals else None

    return {**{f"fcr@{b:g}s": best("false_cutoff_rate", latency, b) for b in latency_budgets},
            **{f"latency@fcr{b:g}": best(latency, "false_cutoff_rate", b) for b in cutoff_budgets}}


def first_fire(scores: Sequence[float], threshold: float, hop: float = 0.1, offset: float = 0.0,
               mode: Mode = "two-party") -> float | None:
    """Seconds after silence onset of the first score >= `threshold` (`eot-bench`: > `threshold`), or None.

    `scores[k]` is the detector's P(end of turn) available at `offset + (k + 1) * hop`.
    """
    values = np.asarray(scores, dtype=float)
    k = np.flatnonzero(values > threshold if check_mode(mode) == "eot-bench" else values >= threshold)
    return round(offset + (int(k[0]) + 1) * hop, 9) if k.size else None


def calls_per_minute(calls: int, seconds: float) -> float:
    """Detector calls per minute of audio (`calls` over `seconds` of conversation)."""
    if seconds <= 0:
        raise AdaptkitError(f"audio duration must be positive, got {seconds} s")
    return calls * 60.0 / seconds


def plot_tradeoff(curves: dict[str, list[dict]], path: Path, title: str = "") -> None:
    """PNG at `path`, one line per system over its threshold sweep: false cut-off rate over median
    Gap latency (left; settings that miss half the Gaps have no finite median and are skipped),
    and the share of Gaps detected over the false cut-off rate (right; every setting)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.6), dpi=100)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    for name, rows in curves.items():
        xy = [(r["gap_latency_median"], r["false_cutoff_rate"]) for r in rows
              if r.get("gap_latency_median") is not None and r.get("false_cutoff_rate") is not None
              and math.isfinite(r["gap_latency_median"])]
        left.plot([x for x, _ in xy], [y for _, y in xy], marker="o", label=name)
        roc = sorted((r["false_cutoff_rate"], r["gap_detected"]) for r in rows
                     if r.get("false_cutoff_rate") is not None and r.get("gap_detected") is not None)
        right.plot([x for x, _ in roc], [y for _, y in roc], marker="o", label=name)
    left.set(xlabel="median Gap latency (s)", ylabel="false cut-off rate", title=title)
    right.set(xlabel="false cut-off rate", ylabel="Gaps detected before the next speaker", title="detection vs cut-offs")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    if curves:
        right.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write(path, buf.getvalue())
