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


def _modules_of(model, cmap, component: str) -> dict:
    """Module name -> module of every module under `component`'s paths (the paths themselves included)."""
    return {n: m for n, m in model.named_modules() if any(n == p or n.startswith(p + ".") for p in cmap.paths(component))}


def test_a_frozen_encoder_stays_in_eval_mode_while_the_projector_trains(stack_qwen3):
    """qwen3_asr: the projector (proj1/proj2) sits inside the encoder; qwen3_asr_hf: beside it."""
    from adaptkit.freeze import apply, train_mode
    from adaptkit.models import build_tiny

    model, tok = build_tiny(stack_qwen3)
    model, _ = apply(model, {"train": ["projector"]}, tokenizer=tok)
    train_mode(model)
    cmap = model.adaptkit.cmap
    projector = _modules_of(model, cmap, "projector")
    assert projector and all(m.training for m in projector.values())
    frozen = {n: m for n, m in _modules_of(model, cmap, "encoder").items() if n not in projector}
    assert len(frozen) > 3 and not any(m.training for m in frozen.values()), [n for n, m in frozen.items() if m.training]
    assert model.get_submodule(cmap.llm).training  # the LLM is not the encoder: its mode is left to model.train()


def test_an_encoder_that_trains_stays_in_train_mode(stack_qwen3):
    from adaptkit.freeze import apply, train_mode
    from adaptkit.models import build_tiny

    model, tok = build_tiny(stack_qwen3)
    model, _ = apply(model, {"train": ["projector", "encoder.layers.0"]}, tokenizer=tok)
    train_mode(model)
    encoder = model.get_submodule(model.adaptkit.cmap.encoder)
    assert encoder.training and encoder.layers[0].training


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
