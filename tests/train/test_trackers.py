"""train.log_with: accelerate's trackers write inside output_dir (TensorBoard read back, wandb offline),
and a tracker that is unknown or not installed is a one-line error with exit 2."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from adaptkit.cli import main
from adaptkit.recipe import Recipe
from adaptkit.train import run

TINY = {"max_steps": 2, "merged": False, "save_every": 0, "save_every_minutes": 0}


def _losses(out) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_tensorboard_tracker_logs_the_loss_under_output_dir(make_recipe, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    recipe = Recipe.load(make_recipe(train={**TINY, "log_with": "tensorboard"}))
    run(recipe)
    out = recipe.output_dir
    events = sorted((out / "logs" / "adaptkit").glob("events.out.tfevents.*"))
    assert events, sorted(p.relative_to(out) for p in out.rglob("*"))
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    logged = {e.step: e.value for e in acc.Scalars("train/loss")}
    want = _losses(out)
    assert sorted(logged) == [1, 2] == sorted(want)
    assert all(abs(logged[s] - want[s]) <= 1e-6 * max(1.0, abs(want[s])) for s in want)
    assert {"train/lr"} <= set(acc.Tags()["scalars"])
    assert not (tmp_path / "runs").exists() and not (tmp_path / "wandb").exists()  # nothing outside output_dir


def test_wandb_offline_run_lands_in_output_dir(make_recipe, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    recipe = Recipe.load(make_recipe(train={**TINY, "log_with": "wandb"}))
    run(recipe)
    wandb.teardown()  # wandb's service writes the run file on its own; teardown waits for it (atexit does so at exit)
    # accelerate restarts an offline wandb run to store the config (WandBTracker.store_init_configuration),
    # so one of its offline runs holds the history; wandb 0.31 ships no reader for its .wandb records,
    # whose keys are plain bytes inside
    files = sorted((recipe.output_dir / "logs" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert files and any(b"train/loss" in f.read_bytes() and b"train/lr" in f.read_bytes() and b"train.max_steps" in f.read_bytes()
                         for f in files)
    assert not (tmp_path / "wandb").exists()


@pytest.mark.parametrize("tracker,message", [
    ("mlflow", "train.log_with: mlflow is not installed (pip install mlflow), or drop train.log_with"),
    ("wandb", "train.log_with: wandb is not installed (pip install wandb), or drop train.log_with"),
    ("comet", "train.log_with: unknown tracker 'comet'"),
])
def test_a_tracker_that_is_missing_or_unknown_is_one_line(make_recipe, monkeypatch, tracker, message):
    monkeypatch.setitem(sys.modules, tracker, None)  # importlib.util.find_spec answers None: not installed
    path = make_recipe(train=TINY)
    result = CliRunner().invoke(main, ["train", str(path), f"train.log_with={tracker}"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {path}: {message}") and len(result.output.strip().splitlines()) == 1
    assert not (path.parent / "run" / "adapter").exists()
