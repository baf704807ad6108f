"""The seed recipe as written (bfloat16 weights, bf16 mixed precision) on CPU: the run ends with everything saved."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.qwen_asr_stack  # the hub-shaped Qwen3-ASR fixture

ROOT = Path(__file__).resolve().parents[2]


def test_the_bf16_seed_recipe_finishes_on_cpu_and_its_adapter_evaluates(hub_qwen3_asr, one_call, tmp_path):
    out = tmp_path / "run"
    manifest = one_call / "adaptkit.jsonl"
    def adaptkit(*args: str) -> None:  # a process of its own, as a user runs it (accelerate's state is per process)
        done = subprocess.run([sys.executable, "-m", "adaptkit.cli", *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]

    adaptkit("train", str(ROOT / "recipes/ja_diarization.yaml"), f"model.name={hub_qwen3_asr}", f"data.train={manifest}",
             f"data.dev={manifest}", f"output_dir={out}", "train.max_steps=2", "train.batch_size=1", "train.grad_accum=1",
             "train.warmup_steps=0")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["dev_loss"] is not None
    assert (out / "adapter" / "adapter.safetensors").is_file() and (out / "merged" / "model.safetensors").is_file()
    config = json.loads((out / "merged" / "config.json").read_text())
    assert "bfloat16" in (config.get("torch_dtype"), config.get("dtype"))

    adaptkit("eval", str(out / "adapter"), "--data", str(manifest), "--out", str(tmp_path / "eval"), "--device", "cpu")
    (row,) = [json.loads(x) for x in (tmp_path / "eval" / "decoded.jsonl").read_text(encoding="utf-8").splitlines()]
    assert row["tokens"] > 0 and isinstance(row["ended_with_eos"], bool)
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["headline"][0]["n"] == 1
