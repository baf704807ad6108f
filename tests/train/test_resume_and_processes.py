"""SIGTERM, kill -9 and --resume give the same adapter bit for bit; two processes give the one-process curve."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file


ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
KILLS = 10
"""SIGKILLs at random moments, some inside checkpoint writes (save_every 1)."""
STEPS = 60
"""Steps of the killed run: enough that 10 kills, each up to 0.15 s after a step, land before the end
even on the smaller native Qwen3-ASR of the current stack (its steps are the faster)."""


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "adaptkit.cli", *args]


def _adapter(out):
    return load_file(out / "adapter" / "adapter.safetensors")


def _assert_same(want, got):
    assert set(want) == set(got)
    for name in want:
        assert torch.equal(want[name], got[name]), name


def _metric_lines(out) -> int:
    try:
        return (out / "metrics.jsonl").read_text().count("\n")
    except OSError:
        return 0


def test_sigterm_and_sigkills_then_resume_are_bit_identical_to_an_uninterrupted_run(make_recipe, forked_cli, tmp_path):
    """Acceptance: SIGTERM writes a checkpoint and says how to resume; SIGKILLs at random moments
    (save_every 1, so some land inside checkpoint writes) leave no temporaries and change no bit.
    The uninterrupted run and the first resume are fresh interpreters; the runs that are signalled
    are forked from this process (real processes, killed for real, without the imports each time)."""
    path = make_recipe(train={"max_steps": STEPS, "save_every": 1, "batch_size": 2, "lr": 5e-3}, data={"dev": None})
    variants = {}
    for name, save_every in (("straight", 1), ("term", 0), ("killed", 1)):
        variants[name] = path.parent / f"{name}.yaml"
        variants[name].write_text(path.read_text().replace(str(tmp_path / "run"), str(tmp_path / name))
                                  .replace("save_every: 1", f"save_every: {save_every}\n  save_every_minutes: 0"))
    subprocess.run(cli("train", str(variants["straight"])), env=ENV, check=True, capture_output=True)
    want = _adapter(tmp_path / "straight")

    term = tmp_path / "term"
    proc = forked_cli("train", str(variants["term"]))
    while proc.poll() is None and _metric_lines(term) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 128 + signal.SIGTERM, proc.err()[-2000:]
    last = proc.err().strip().splitlines()[-1]
    assert last.startswith("stopped by SIGTERM at step ") and f"continue with: adaptkit train {variants['term']} --resume" in last
    step = int(last.split("at step ")[1].split(",")[0])
    assert [p.name for p in (term / "checkpoints").iterdir()] == [f"step_{step:08d}.safetensors"] and step < STEPS
    resumed = subprocess.run(cli("train", str(variants["term"]), "--resume"), env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0 and f"(step {step})" in resumed.stderr, resumed.stderr[-2000:]
    _assert_same(want, _adapter(term))

    killed, rng, kills = tmp_path / "killed", random.Random(15), 0
    while kills < KILLS:
        resume = ["--resume"] if list((killed / "checkpoints").glob("step_*")) else []
        before = _metric_lines(killed)
        proc = forked_cli("train", str(variants["killed"]), *resume)
        while proc.poll() is None and _metric_lines(killed) <= before:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
        kills += 1
    assert not (killed / "adapter").exists()
    resumed = forked_cli("train", str(variants["killed"]), "--resume")
    assert resumed.wait() == 0, resumed.err()[-2000:]
    _assert_same(want, _adapter(killed))
    assert not list((killed / "checkpoints").glob(".step.*"))
    steps = [json.loads(x)["step"] for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))


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
                          env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = [json.loads(x)["loss"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    dual = [json.loads(x)["loss"] for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(one) == len(dual) == 8
    for a, b in zip(one, dual):
        assert abs(a - b) <= 1e-5 * abs(a), (one, dual)


def test_a_two_process_run_into_a_locked_output_dir_stops_on_every_rank_with_one_line(make_recipe, tmp_path):
    """torchrun, two gloo ranks: the main rank cannot take the lock another run holds; both ranks
    print the same one line (the other rank learns it from the main one) and stop, none left waiting."""
    import fcntl

    path = make_recipe(train={"max_steps": 2, "batch_size": 2}, data={"dev": None})
    out = tmp_path / "run"
    out.mkdir()
    fd = os.open(out / ".adaptkit.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"pid": 4242, "host": "elsewhere", "since": "2026-01-01 00:00:00"}).encode())
        torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
        proc = subprocess.run([torchrun, "--nproc_per_node", "2", "-m", "adaptkit.cli", "train", str(path)],
                              env=ENV, capture_output=True, text=True)
    finally:
        os.close(fd)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 2, proc.stderr[-3000:]
    assert all(f"output_dir {out} is in use by another run (pid 4242 on elsewhere" in line for line in errors)
    assert "exitcode  : 2" in proc.stderr  # torchrun's own report; the rank that ends second may be sent SIGTERM
    assert "/adaptkit/" not in proc.stderr, "a traceback from adaptkit's code"
    assert not (out / "metrics.jsonl").exists()
