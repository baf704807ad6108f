"""Turn-taking metrics: turn end from a probability (binary), turn tags (three classes).

Binary: the positive class is "turn complete"; a prediction is complete when
`probability >= threshold`. Three tags: per-class precision, recall and F1, macro-F1 and the
confusion matrix, with predictions outside the tag set counted in an extra `OTHER` column.
Counts come from scikit-learn (`zero_division=0`: an undefined ratio is 0).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

TURN_TAGS = ("COMPLETE", "INCOMPLETE", "BACKCHANNEL")
"""The three turn tags, in report order."""

OTHER = "OTHER"
"""The predicted class of an output with no tag, several tags or an unknown one."""

SWEEP = tuple(round(0.1 * k, 1) for k in range(1, 10))
"""Default thresholds of `threshold_sweep`: 0.1, 0.2, ..., 0.9."""


def _arrays(y_true: Sequence[bool | int], prob: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=bool)
    p = np.asarray(prob, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels and probabilities differ in shape: {y.shape} vs {p.shape}")
    return y, p


def binary_metrics(y_true: Sequence[bool | int], prob: Sequence[float], threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 of "complete" at `threshold`, accuracy per class and the counts.

    `accuracy_complete` is the recall of complete turns, `accuracy_incomplete` the share of
    incomplete turns predicted incomplete (specificity); `balanced_accuracy` is their mean.
    """
    y, p = _arrays(y_true, prob)
    pred = p >= threshold
    tp, fp = int(np.sum(pred & y)), int(np.sum(pred & ~y))
    fn, tn = int(np.sum(~pred & y)), int(np.sum(~pred & ~y))
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, pred, labels=[True], average=None, zero_division=0)
    n = len(y)
    acc_pos = tp / (tp + fn) if tp + fn else None
    acc_neg = tn / (tn + fp) if tn + fp else None
    per_class = [a for a in (acc_pos, acc_neg) if a is not None]
    return {
        "threshold": threshold, "n": n,
        "accuracy": (tp + tn) / n if n else None,
        "precision": float(precision[0]), "recall": float(recall[0]), "f1": float(f1[0]),
        "accuracy_complete": acc_pos, "accuracy_incomplete": acc_neg,
        "balanced_accuracy": float(np.mean(per_class)) if per_class else None,
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
    }


def threshold_sweep(y_true: Sequence[bool | int], prob: Sequence[float],
                    thresholds: Sequence[float] = SWEEP) -> list[dict[str, Any]]:
    """`binary_metrics` at each threshold (one row each, for tables and plots)."""
    return [binary_metrics(y_true, prob, t) for t in thresholds]


def probability_distribution(y_true: Sequence[bool | int], prob: Sequence[float]) -> dict[str, dict[str, Any]]:
    """Per true class (`complete`, `incomplete`): n, mean, median, min and max of the probability."""
    y, p = _arrays(y_true, prob)
    out = {}
    for name, mask in (("complete", y), ("incomplete", ~y)):
        v = p[mask]
        out[name] = {"n": int(v.size), **({k: float(f(v)) for k, f in
                                           (("mean", np.mean), ("median", np.median), ("min", np.min), ("max", np.max))}
                                          if v.size else dict.fromkeys(("mean", "median", "min", "max")))}
    return out


def multiclass_metrics(y_true: Sequence[str], y_pred: Sequence[str | None],
                       labels: Sequence[str] = TURN_TAGS) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro-F1 and the confusion matrix.

    Macro-F1 averages the labels that occur (as truth or prediction): a class absent from a
    group on both sides does not count as an F1 of 0.

    A prediction outside `labels` (None included) becomes `OTHER`: it lowers the recall of its true
    class and lands in the last confusion column. The matrix has one row per true label
    (`labels`) and one column per predicted label (`labels` + `OTHER`).
    """
    labels = list(labels)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    unknown = sorted({t for t in y_true if t not in labels})
    if unknown:
        raise ValueError(f"true labels outside {labels}: {unknown}")
    pred = [p if p in labels else OTHER for p in y_pred]
    precision, recall, f1, support = precision_recall_fscore_support(
        list(y_true), pred, labels=labels, average=None, zero_division=0)
    matrix = confusion_matrix(list(y_true), pred, labels=labels + [OTHER])[: len(labels)] if len(pred) else \
        np.zeros((len(labels), len(labels) + 1), dtype=int)
    n = len(pred)
    present = {t for t in y_true} | {p for p in pred}
    return {
        "n": n,
        "accuracy": sum(t == p for t, p in zip(y_true, pred)) / n if n else None,
        "macro_f1": float(np.mean([f1[k] for k, lab in enumerate(labels) if lab in present])) if present else None,
        "per_class": {lab: {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
                            "support": int(support[k])} for k, lab in enumerate(labels)},
        "other": pred.count(OTHER),
        "confusion": {"true": labels, "predicted": labels + [OTHER], "matrix": matrix.astype(int).tolist()},
    }
