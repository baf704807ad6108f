"""Optional experiment trackers through accelerate (`train.log_with`): tensorboard, wandb or mlflow.

accelerate's tracking API (huggingface.co/docs/accelerate/usage_guides/tracking):
`Accelerator(log_with=..., project_dir=...)`, then `init_trackers(project_name, config, init_kwargs)`,
`log(values, step)` and `end_training()`, each acting on the main process only. TensorBoard's
tracker writes under `project_dir/<project_name>` (accelerate/tracking.py, TensorBoardTracker);
wandb's is given `dir=` (wandb.init's folder for its files) and mlflow's tracking URI is pointed
into the run unless MLFLOW_TRACKING_URI says otherwise (mlflow.set_tracking_uri), so every file
stays inside output_dir.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from adaptkit.errors import AdaptkitError

PROJECT = "adaptkit"
PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",)}
"""Tracker -> the packages any one of which accelerate accepts (accelerate.utils.is_*_available)."""


def accelerator_kwargs(recipe, out: Path) -> dict[str, Any]:
    """`log_with` and `project_dir` for `Accelerator(...)` ({} without a tracker); refuses a tracker
    whose package is missing in one line (`train.log_with: ...`)."""
    name = recipe.train.log_with
    if name is None:
        return {}
    if not any(importlib.util.find_spec(p) is not None for p in PACKAGES[name]):
        raise AdaptkitError(f"train.log_with: {name} is not installed (pip install {PACKAGES[name][0]}), or drop train.log_with")
    return {"log_with": name, "project_dir": str(out / "logs")}


def hyperparameters(recipe) -> dict[str, Any]:
    """The recipe's scalar settings, flat (what TensorBoard's add_hparams and wandb's config take)."""
    model = recipe.model.name or f"tiny:{recipe.model.tiny or recipe.model.arch}"
    values = {"model": str(model), "task": recipe.task}
    values.update({f"train.{k}": v for k, v in asdict(recipe.train).items() if isinstance(v, (int, float, str, bool))})
    return values


def start(accelerator, recipe, out: Path) -> None:
    """init_trackers with the hyperparameters; wandb and mlflow keep their files in output_dir/logs."""
    name = recipe.train.log_with
    logs = out / "logs"
    if name == "mlflow" and accelerator.is_main_process and not os.environ.get("MLFLOW_TRACKING_URI"):
        import mlflow

        mlflow.set_tracking_uri((logs / "mlruns").resolve().as_uri())
    init = {"wandb": {"dir": str(logs), "name": out.name}, "mlflow": {"run_name": out.name}}
    if name == "wandb":
        logs.mkdir(parents=True, exist_ok=True)
    accelerator.init_trackers(PROJECT, config=hyperparameters(recipe), init_kwargs=init)
