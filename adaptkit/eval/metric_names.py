"""The headline metrics of each task's scores (keys of `Scores.overall`) and which way each improves.

Light on purpose (no torch, no scoring code): recipe validation reads it.
"""

from __future__ import annotations

METRICS: dict[str, tuple[str, ...]] = {
    "speaker_asr": ("cp_error_rate", "error_rate", "wder", "der", "speaker_count_abs", "degenerate"),
    "turn_tags": ("macro_f1", "accuracy", "other", "degenerate"),
    "turn_end": ("f1", "accuracy", "precision", "recall", "balanced_accuracy"),
}
"""Headline metrics per task; `cp_error_rate` is cpCER or cpWER after the scores' `unit`."""
DEFAULT_METRIC = {"speaker_asr": "cp_error_rate", "turn_tags": "macro_f1", "turn_end": "f1"}
"""The metric that ranks a task's models when none is named."""
HIGHER_IS_BETTER = frozenset({"macro_f1", "accuracy", "f1", "precision", "recall", "balanced_accuracy"})
"""Metrics that improve upwards; every other one is an error rate (lower is better)."""
