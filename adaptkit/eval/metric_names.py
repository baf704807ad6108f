"""Which way each headline metric improves (a task's metric names are the task's: `Task.metrics`).

Light on purpose (no torch, no scoring code): recipe validation and training read it.
"""

from __future__ import annotations

HIGHER_IS_BETTER = frozenset({"macro_f1", "accuracy", "f1", "precision", "recall", "balanced_accuracy"})
"""Metrics that improve upwards; every other one is an error rate (lower is better)."""
