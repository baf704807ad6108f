"""Memory settings for large models, checked on a tiny one: a bfloat16 recipe under bf16 mixed
precision trains float32 tensors (and optimizer state) over bfloat16 frozen weights, and
`train.gradient_checkpointing` gives the loss and gradients of the run without it."""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from adaptkit.data import loading
from adaptkit.recipe import Recipe
from adaptkit.train import checkpoint
from adaptkit.train.checkpointing import is_enabled
from adaptkit.train.loop import _build

LORA = {"train": [{"tokens": "added"}], "lora": {"target": "llm.attention", "r": 4, "alpha": 8, "dropout": 0.1}}


def in_child(fn, *args):
    """`fn(*args)` in a forked child with accelerate's state of its own (it is one per process and
    refuses another mixed precision); returns its JSON result, or fails with the child's traceback."""
    from adaptkit.child import _stop_tqdm_monitors

    _stop_tqdm_monitors()  # no thread of this process left holding a lock the child would need
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read)
        try:
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state(reset_partial_state=True)
            out = {"ok": fn(*args)}
        except BaseException:
            out = {"error": traceback.format_exc()}
        with os.fdopen(write, "w") as f:
            f.write(json.dumps(out))
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    os.waitpid(pid, 0)
    result = json.loads(text)
    assert "error" not in result, result["error"]
    return result["ok"]


def _setup_dtypes(path: str, out: str) -> dict:
    """After `_build` and one optimizer step: dtypes of what trains, of the frozen LLM and of the optimizer state."""
    parts = _build(Recipe.load(path), Path(out))
    llm = parts.model.get_submodule(parts.model.adaptkit.cmap.llm)
    batch = next(loading.timed(parts.loader))  # as the loop takes them: a worker's small tensors come as numpy
    with parts.accelerator.autocast():
        loss_sum, weight = parts.module(batch)
    parts.accelerator.backward(loss_sum / weight)
    parts.optimizer.step()
    state = [v for s in parts.optimizer.state.values() for k, v in s.items() if torch.is_tensor(v) and k != "step"]
    return {"trainable": sorted({str(p.dtype) for _, p in parts.named}), "frozen_llm": sorted({str(p.dtype) for p in llm.parameters() if not p.requires_grad}),
            "optimizer": sorted({str(v.dtype) for v in state}), "names": len(parts.named), "upcast": len(parts.upcast)}


def _train(path: str) -> float:
    from adaptkit.train import run

    return run(Recipe.load(path)).final_loss


@pytest.mark.parametrize("spec", [{"train": ["projector", {"tokens": "added"}]}, LORA], ids=["projector+rows", "lora+rows"])
def test_a_bf16_recipe_trains_float32_tensors_over_bfloat16_frozen_weights(make_recipe, tmp_path, spec):
    path = make_recipe(model={"dtype": "bfloat16"}, freeze=spec, train={"precision": "bf16", "max_steps": 2, "batch_size": 2})
    got = in_child(_setup_dtypes, str(path), str(tmp_path / "setup"))
    assert got["trainable"] == ["torch.float32"] and got["names"] > 0 and got["upcast"] > 0
    assert got["frozen_llm"] == ["torch.bfloat16"]
    assert got["optimizer"] == ["torch.float32"]


def test_a_bf16_run_checkpoints_float32_state_and_merges_in_bfloat16(make_recipe, tmp_path):
    path = make_recipe(model={"dtype": "bfloat16"}, train={"precision": "bf16", "max_steps": 2, "batch_size": 2, "eval_every": 2,
                                                           "eval_samples": 1})
    loss = in_child(_train, str(path))
    assert loss == loss  # finite enough to compare: not NaN
    out = tmp_path / "run"
    state = checkpoint.load(checkpoint.latest(out / "checkpoints"))
    assert {str(v.dtype) for v in state["adapter"].values()} == {"torch.float32"}
    moments = [v for s in state["optimizer"]["state"].values() for k, v in s.items() if torch.is_tensor(v) and k != "step"]
    assert moments and {v.dtype for v in moments} == {torch.float32}
    with safe_open(str(out / "merged" / "model.safetensors"), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes == {"BF16"}  # the merged checkpoint in the recipe's dtype throughout
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("dev_metrics" in r for r in rows)  # dev scoring decoded the mixed model under autocast


def _two_steps(recipe: Recipe, out: Path, calls: list) -> tuple[list[float], list[dict[str, torch.Tensor]], bool]:
    """Losses and gradients of two optimizer steps through the built run (precision no: no autocast);
    `calls` gets one entry per checkpointed layer call."""
    from adaptkit.freeze import train_mode

    parts = _build(recipe, out)
    llm = parts.model.get_submodule(parts.model.adaptkit.cmap.llm)
    for m in llm.modules():  # count the checkpointed calls
        if getattr(m, "gradient_checkpointing", False) is True:
            inner = m._gradient_checkpointing_func
            m._gradient_checkpointing_func = lambda *a, inner=inner, **k: calls.append(1) or inner(*a, **k)
    train_mode(parts.model)
    losses, grads = [], []
    for _, batch in zip(range(2), loading.timed(parts.loader)):
        loss_sum, weight = parts.module(batch)
        loss = loss_sum / weight
        parts.accelerator.backward(loss)
        losses.append(float(loss.detach()))
        grads.append({n: p.grad.detach().clone() for n, p in parts.named})
        parts.optimizer.step()
        parts.optimizer.zero_grad(set_to_none=True)
    return losses, grads, is_enabled(llm)


def test_gradient_checkpointing_is_on_and_changes_neither_loss_nor_gradients(make_recipe, tmp_path):
    path = make_recipe(freeze=LORA, train={"max_steps": 2, "batch_size": 2, "lr": 1e-2})
    plain_calls, ckpt_calls = [], []
    plain = _two_steps(Recipe.load(path), tmp_path / "plain", plain_calls)
    on = Recipe.load(path, ("train.gradient_checkpointing=true",))
    assert on.train.gradient_checkpointing is True
    ckpt = _two_steps(on, tmp_path / "ckpt", ckpt_calls)
    assert not plain[2] and not plain_calls
    assert ckpt[2] and len(ckpt_calls) > 0  # the LLM's layers ran through torch's checkpoint
    for a, b in zip(plain[0], ckpt[0]):
        assert abs(a - b) <= 1e-6 * abs(a)
    for step_a, step_b in zip(plain[1], ckpt[1]):
        assert step_a.keys() == step_b.keys() and any("lora" in n for n in step_a)
        for name in step_a:
            diff, size = (step_a[name] - step_b[name]).norm(), step_a[name].norm()
            assert diff <= 1e-6 * size + 1e-12, name


def test_gradient_checkpointing_on_an_llm_without_it_is_one_line():
    from adaptkit.errors import AdaptkitError
    from adaptkit.train import checkpointing

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(AdaptkitError, match=r"^train.gradient_checkpointing: the LLM \(0, Linear\) does not support"):
        checkpointing.enable(model, "0")
