"""Gradient accumulation equals the larger batch; a frozen encoder stays in eval mode; `precision: no` reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from adaptkit.errors import AdaptkitError
from adaptkit.recipe import Recipe
from adaptkit.train import run


def four_samples(calls: Path, out: Path) -> Path:
    """The first four training calls, audio paths made absolute."""
    lines = (calls / "train" / "speaker_asr.jsonl").read_text(encoding="utf-8").splitlines()[:4]
    rows = [json.loads(x) for x in lines]
    for r in rows:
        r["audio"] = str(calls / "train" / r["audio"])
    path = out / "four.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.qwen_asr_stack
def test_grad_accum_2_x_batch_2_is_batch_4(calls, make_recipe, tmp_path):
    manifest = four_samples(calls, tmp_path)
    texts = [json.loads(x)["text"] for x in manifest.read_text(encoding="utf-8").splitlines()]
    assert len({len(t) for t in texts}) > 1  # micro-batches of unequal supervised length: the case that differs
    results = []
    for name, batch, accum in (("big", 4, 1), ("accumulated", 2, 2)):
        recipe = make_recipe(data={"train": str(manifest), "dev": None},
                             train={"optimizer": "sgd", "weight_decay": 0.0, "clip": None, "lr": 0.01, "max_steps": 1,
                                    "batch_size": batch, "grad_accum": accum, "merged": False},
                             output_dir=str(tmp_path / name))
        run(Recipe.load(recipe))
        adapter = load_file(str(tmp_path / name / "adapter" / "adapter.safetensors"))
        loss = json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[0])["loss"]
        results.append((adapter, loss))
    (big, big_loss), (acc, acc_loss) = results
    assert abs(big_loss - acc_loss) <= 1e-6 * abs(big_loss)
    for name in big:  # one SGD step: the weights differ from each other by the difference of the updates
        scale = float(big[name].abs().max())
        assert float((big[name] - acc[name]).abs().max()) <= 1e-6 * max(scale, 1.0), name


@pytest.mark.qwen_asr_stack
def test_a_frozen_encoder_stays_in_eval_mode_while_the_projector_inside_it_trains():
    from adaptkit.freeze import apply, train_mode
    from adaptkit.models import build_tiny

    model, tok = build_tiny("qwen3_asr")
    model, _ = apply(model, {"train": ["projector"]}, tokenizer=tok)
    train_mode(model)
    tower = model.thinker.audio_tower
    assert tower.proj1.training and tower.proj2.training
    frozen = [n for n, m in tower.named_modules() if not n.startswith(("proj1", "proj2"))]
    assert frozen and all(not tower.get_submodule(n).training for n in frozen if n) and not tower.training
    assert model.thinker.model.training  # the LLM is not the encoder: its mode is left to model.train()


@pytest.mark.qwen_asr_stack
def test_an_encoder_that_trains_stays_in_train_mode():
    from adaptkit.freeze import apply, train_mode
    from adaptkit.models import build_tiny

    model, tok = build_tiny("qwen3_asr")
    model, _ = apply(model, {"train": ["projector", "encoder.layers.0"]}, tokenizer=tok)
    train_mode(model)
    assert model.thinker.audio_tower.training and model.thinker.audio_tower.layers[0].training


@pytest.mark.parametrize("written", ["no", "false", "'no'"])
def test_precision_no_reads_however_yaml_spells_it(make_recipe, written):
    path = make_recipe()
    text = re.sub(r"^train:\n", f"train:\n  precision: {written}\n", path.read_text(), count=1, flags=re.M)
    path.write_text(text)
    assert yaml.safe_load(text)["train"]["precision"] in (False, "no")
    assert Recipe.load(path).train.precision == "no"


def test_precision_yes_is_one_line_error(make_recipe):
    with pytest.raises(AdaptkitError, match=r"train\.precision: unknown value True.*use one of no, bf16, fp16"):
        Recipe.load(make_recipe(train={"precision": True}))
