"""Streaming end-of-turn metrics: per-frame labels, and the cut-off / latency trade-off at silences.

A streaming detector labels every 100 ms chunk SU, Pause (the same speaker goes on) or Gap (the
other speaker takes the turn). `frame_scores` compares those labels frame by frame. The trade-off
follows LiveKit's eot-bench: every silence of 100 ms or more between two speech units is a decision
point; firing "end of turn" inside a Pause is a false cut-off, firing inside a Gap detects it with a
latency. One `tradeoff` per threshold or timeout gives a `curve`; `at_budgets` reads it at fixed
latency and cut-off budgets, and `plot_tradeoff` draws the curves of several systems.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import confusion_matrix

from adaptkit.atomic import atomic_write
from adaptkit.errors import AdaptkitError

CLASSES = ("SU", "Pause", "Gap")
"""The frame labels, in report order."""

INF = float("inf")


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


def decision_points(silences: list[dict], min_duration: float = 0.1) -> list[DecisionPoint]:
    """The Pause and Gap silences of at least `min_duration` s with a speaker on both sides.

    Overlaps and silences at the start or end of the call (`before` or `after` None) are skipped.
    """
    out = []
    for k, s in enumerate(silences):
        try:
            start, end, label = float(s["start"]), float(s["end"]), s["label"]
            edge = s.get("before") is None or s.get("after") is None
        except (KeyError, TypeError, ValueError) as e:
            raise AdaptkitError(f"silence {k} lacks start, end or label: {s!r} ({e})") from None
        if label == "Overlap" or edge or end - start < min_duration - 1e-9:
            continue
        if label not in ("Pause", "Gap"):
            raise AdaptkitError(f"silence {k} has label {label!r}; expected Pause, Gap or Overlap")
        out.append(DecisionPoint(start, end, label))
    return out


def tradeoff(points: list[DecisionPoint], fires: list[float | None]) -> dict[str, Any]:
    """False cut-off rate of Pauses and latency of Gaps, for one detector setting.

    `fires[i]` is the time in seconds after `points[i].start` at which the detector declared end of
    turn during that silence (None: never). A fire at or after the silence's end does not count.
    A missed Gap has latency inf, so the median is inf when half or more are missed and the p90
    (lowest latency that covers 90% of Gaps) is inf when more than 10% are missed.
    Rates are None when there is no Pause (or no Gap).
    """
    if len(points) != len(fires):
        raise AdaptkitError(f"{len(points)} decision points but {len(fires)} fire times")
    if any(f is not None and f < 0 for f in fires):
        raise AdaptkitError("fire times are seconds after silence onset and must not be negative")
    hit = [f is not None and f < p.duration for p, f in zip(points, fires)]
    pauses = sum(p.label == "Pause" for p in points)
    cutoffs = sum(h for p, h in zip(points, hit) if p.label == "Pause")
    lat = np.array([f if h else INF for p, f, h in zip(points, fires, hit) if p.label == "Gap"], dtype=float)
    missed = int(np.isinf(lat).sum())
    return {
        "false_cutoff_rate": cutoffs / pauses if pauses else None,
        "gap_latency_median": float(np.median(lat)) if lat.size else None,
        "gap_latency_p90": float(np.percentile(lat, 90, method="inverted_cdf")) if lat.size else None,
        "gap_detected": 1 - missed / lat.size if lat.size else None,
        "pauses": pauses, "gaps": int(lat.size), "cutoffs": int(cutoffs), "missed": missed,
    }


def curve(points: list[DecisionPoint], fires_by_setting: dict[float, list[float | None]]) -> list[dict[str, Any]]:
    """One `tradeoff` row per setting (threshold or timeout), with its `setting`, sorted by setting."""
    return [{"setting": s, **tradeoff(points, fires_by_setting[s])} for s in sorted(fires_by_setting)]


def at_budgets(points: list[dict], latency_budgets: Sequence[float] = (0.2, 0.5, 1.0, 2.0),
               cutoff_budgets: Sequence[float] = (0.05, 0.1, 0.2)) -> dict[str, float | None]:
    """Read a `curve` at fixed budgets, as eot-bench does.

    `fcr@{b}s`: lowest false cut-off rate among settings with median Gap latency <= b.
    `latency@fcr{b}`: lowest median Gap latency among settings with false cut-off rate <= b
    (inf when every such setting misses half the Gaps). None: no setting meets the budget.
    """
    def best(key: str, limit_key: str, budget: float) -> float | None:
        vals = [r[key] for r in points
                if r.get(key) is not None and r.get(limit_key) is not None and r[limit_key] <= budget]
        return min(vals) if vals else None

    return {**{f"fcr@{b:g}s": best("false_cutoff_rate", "gap_latency_median", b) for b in latency_budgets},
            **{f"latency@fcr{b:g}": best("gap_latency_median", "false_cutoff_rate", b) for b in cutoff_budgets}}


def first_fire(scores: Sequence[float], threshold: float, hop: float = 0.1, offset: float = 0.0) -> float | None:
    """Seconds after silence onset of the first score >= `threshold`, or None.

    `scores[k]` is the detector's P(end of turn) available at `offset + (k + 1) * hop`.
    """
    k = np.flatnonzero(np.asarray(scores, dtype=float) >= threshold)
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
