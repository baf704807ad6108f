"""Kill -9 and --resume give the same adapter bit for bit; two processes give the one-process curve."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "adaptkit.cli", *args]


def test_sigkill_then_resume_is_bit_identical_to_an_uninterrupted_run(make_recipe, tmp_path):
    path = make_recipe(train={"max_steps": 40, "save_every": 5, "batch_size": 2, "lr": 5e-3}, data={"dev": None})
    straight = path.parent / "straight.yaml"
    straight.write_text(path.read_text().replace(str(tmp_path / "run"), str(tmp_path / "straight")))
    subprocess.run(cli("train", str(straight)), env=ENV, check=True, capture_output=True)

    proc = subprocess.Popen(cli("train", str(path)), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = tmp_path / "run" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not list(ckpts.glob("step_00000010.pt")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "run" / "adapter").exists()
    resumed = subprocess.run(cli("train", str(path), "--resume"), env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr

    want = load_file(tmp_path / "straight" / "adapter" / "adapter.safetensors")
    got = load_file(tmp_path / "run" / "adapter" / "adapter.safetensors")
    assert set(want) == set(got)
    for name in want:
        assert torch.equal(want[name], got[name]), name
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41))


@pytest.mark.skipif(shutil.which("accelerate") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "accelerate")),
                    reason="accelerate launcher not installed")
def test_two_processes_follow_the_one_process_loss_curve(make_recipe, tmp_path):
    """Same global batch (4) split over two gloo processes: the loss curve agrees within 1e-5 relative."""
    path = make_recipe(train={"max_steps": 8, "batch_size": 4, "lr": 1e-2}, data={"dev": None})
    two = path.parent / "two.yaml"
    two.write_text(path.read_text().replace(str(tmp_path / "run"), str(tmp_path / "two")))
    subprocess.run(cli("train", str(path)), env=ENV, check=True, capture_output=True)
    launcher = os.path.join(os.path.dirname(sys.executable), "accelerate")
    proc = subprocess.run([launcher, "launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "adaptkit.cli", "train", str(two)],
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = [json.loads(x)["loss"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    dual = [json.loads(x)["loss"] for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(one) == len(dual) == 8
    for a, b in zip(one, dual):
        assert abs(a - b) <= 1e-5 * abs(a), (one, dual)
