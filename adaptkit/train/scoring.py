"""Scoring during training: decode a few dev samples with `adaptkit eval`'s own code, keep the best.

At each `train.eval_every` the model in memory decodes the first `train.eval_samples` samples of
the dev manifest through `adaptkit.eval.run.decode_task_model` and is scored by `score_rows`, so the
numbers are those `adaptkit eval` would report on the same samples (speaker ASR: cpCER / cpWER,
WDER, degenerate rate; turn tags: macro-F1; turn end: F1). `Best` follows one of those metrics
and counts evaluations without improvement for early stopping.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from adaptkit.eval.metric_names import HIGHER_IS_BETTER
from adaptkit.tasks import task as task_of


def best_metric(task: str, name: str | None) -> str:
    """The metric that chooses `adapter_best/`: `name`, or the task's default."""
    return name or task_of(task).headline_metric


def dev_metrics(model: nn.Module, loaded: Any, task: str, language: str | None, prompt: str, tokens: set[str],
                manifest: str, samples: int, batch_size: int, on_bad_sample: str = "error") -> dict[str, Any]:
    """Decode the first `samples` of `manifest` with `model` and score them as `adaptkit eval` does.

    The model is left in eval mode; the caller returns it to training (`train_mode`)."""
    from adaptkit.eval.run import TaskModel, decode_task_model, score_rows

    task_model = TaskModel(dataclasses.replace(loaded, model=model), task, language, prompt, set(tokens), "training")
    rows, known = decode_task_model(task_model, [manifest], batch_size, samples, progress=False, on_bad_sample=on_bad_sample)
    overall = score_rows(rows, task, manifest, known).overall
    out: dict[str, Any] = {"n": overall.get("n", len(rows))}
    if "unit" in overall:
        out["unit"] = overall["unit"]
    out.update({k: overall[k] for k in task_of(task).metrics if overall.get(k) is not None})
    return out


@dataclass
class Best:
    """The best value of one metric so far, its step, and evaluations since it last improved."""

    metric: str
    value: float | None = None
    step: int | None = None
    stale: int = 0

    @property
    def higher(self) -> bool:
        """True when the metric improves upwards (F1, accuracy)."""
        return self.metric in HIGHER_IS_BETTER

    def update(self, step: int, metrics: dict[str, Any]) -> bool:
        """Record one evaluation; True when it is strictly better than every earlier one."""
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(float(value)):
            self.stale += 1
            return False
        value = float(value)
        better = self.value is None or (value > self.value if self.higher else value < self.value)
        if better:
            self.value, self.step, self.stale = value, step, 0
        else:
            self.stale += 1
        return better

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: metric, value, step."""
        return {"metric": self.metric, "value": self.value, "step": self.step}
