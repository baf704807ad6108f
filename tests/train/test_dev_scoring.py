"""Scoring during training (issue 16, acceptance 5): dev scores per evaluation, adapter_best/, early stopping."""

from __future__ import annotations

import json

import pytest

from adaptkit.errors import AdaptkitError
from adaptkit.recipe import Recipe
from adaptkit.train import run


@pytest.fixture
def short_dev(calls, tmp_path):
    """The dev calls with references cut to a few words: decoding stops at a short length limit (fast on CPU)."""
    path = tmp_path / "dev_short.jsonl"
    lines = []
    for line in (calls / "test_id" / "speaker_asr.jsonl").read_text().splitlines():
        row = json.loads(line)
        row.update(audio=str(calls / "test_id" / row["audio"]), text=" ".join(row["text"].split()[:5]))
        lines.append(json.dumps(row) + "\n")
    path.write_text("".join(lines))
    return path


def _rows(out) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_dev_scores_and_best_adapter(make_recipe, short_dev, calls, tmp_path):
    train = {"eval_every": 1, "eval_samples": 2, "save_every": 0, "max_steps": 3, "merged": False}
    data = {"dev": str(short_dev)}
    recipe = Recipe.load(make_recipe(train=train, data=data))
    summary = run(recipe)
    out = recipe.output_dir
    rows = _rows(out)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]  # the loss rows stay as they were
    dev = [r for r in rows if "dev_metrics" in r]
    assert [r["step"] for r in dev] == [1, 2, 3]
    for r in dev:
        m = r["dev_metrics"]
        assert m["n"] == 2 and m["unit"] in ("word", "char")
        assert 0 <= m["cp_error_rate"] and 0 <= m["degenerate"] <= 1 and "wder" in m
    values = [r["dev_metrics"]["cp_error_rate"] for r in dev]
    best_step = dev[values.index(min(values))]["step"]  # the first evaluation at the minimum
    assert summary.best == {"metric": "cp_error_rate", "value": min(values), "step": best_step}
    config = json.loads((out / "adapter_best" / "adaptkit_adapter.json").read_text())
    assert config["best"]["step"] == best_step and config["task"] == "speaker_asr"

    # the same run stopped at the best step (constant schedule: the same trajectory) gives adapter/ byte for byte
    again = Recipe.load(make_recipe(train={**train, "eval_every": 0, "max_steps": best_step}, data=data, output_dir=str(tmp_path / "again")))
    run(again)
    best = (out / "adapter_best" / "adapter.safetensors").read_bytes()
    assert best == (again.output_dir / "adapter" / "adapter.safetensors").read_bytes()
    assert (best == (out / "adapter" / "adapter.safetensors").read_bytes()) == (best_step == 3)


def test_early_stopping_after_patience(make_recipe, short_dev):
    # lr so small that greedy outputs cannot change: the second evaluation cannot improve on the first
    recipe = Recipe.load(make_recipe(train={"eval_every": 1, "eval_samples": 2, "save_every": 0, "max_steps": 6, "lr": 1e-9,
                                            "early_stopping_patience": 1, "best_metric": "degenerate"},
                                     data={"dev": str(short_dev)}))
    summary = run(recipe)
    out = recipe.output_dir
    assert summary.steps == 2 and summary.stopped_early and summary.best["step"] == 1
    rows = _rows(out)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    assert [r["step"] for r in rows if "dev_metrics" in r] == [1, 2]
    assert (out / "adapter").is_dir() and (out / "adapter_best").is_dir()
    assert run(recipe, resume=True).finished_before  # an early stop is a finished run


@pytest.mark.parametrize("train, message", [
    ({"best_metric": "cpcer"}, "train.best_metric: 'cpcer' is not a speaker_asr metric"),
    ({"early_stopping_patience": 2}, "train.early_stopping_patience: needs train.eval_every"),
    ({"eval_every": 1, "early_stopping_patience": 0}, "train.early_stopping_patience: must be a finite number >= 1"),
    ({"eval_samples": -1}, "train.eval_samples: must be a finite number >= 0"),
])
def test_scoring_keys_are_checked(make_recipe, train, message):
    with pytest.raises(AdaptkitError, match=message):
        Recipe.load(make_recipe(train=train))
