"""SIGTERM, kill -9 and --resume give the same adapter bit for bit; two torchrun processes split each
global batch and give the one-process curve."""

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

from adaptkit.recipe import Recipe
from adaptkit.train import run


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


TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
LOSS_RTOL = 1e-5
"""Two processes against one, per logged loss. The same samples meet the same weights, only summed
in another order: each process sums its share of the float32 token losses, then gloo adds the two
sums, and the padded widths of the two half batches differ from the whole batch's (other BLAS
blocking in the frozen LLM's matmuls). Each is a few float32 roundings (eps 6e-8) per term over at
most a few hundred supervised tokens, ~1e-6 relative at worst after a handful of AdamW steps (whose
update m / sqrt(v) is insensitive to a relative error in the gradient); 1e-5 leaves a margin of
ten and is still far below any real difference (a sample missing from a step moves the loss by
percents)."""


def _rows(out) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TORCHRUN, "--nproc_per_node", "2", "-m", "adaptkit.cli", *args], env=ENV, capture_output=True, text=True)


def _batches_per_epoch(n: int, batch_size: int) -> list[int]:
    return sorted([batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else []))


def test_two_torchrun_processes_split_each_global_batch_and_follow_the_one_process_run(make_recipe, tmp_path):
    """torchrun, two gloo ranks: the run records world size 2 and each rank's samples per step;
    the ranks' samples are disjoint, their union is the one-process batch (train.batch_size, the
    global batch), an epoch is one pass over the 8 samples, the encoder runs once per sample over
    both ranks, losses agree within LOSS_RTOL, and a resume from the next-to-last checkpoint under
    two processes ends on the same adapter bit for bit."""
    batch_size, epochs, n = 6, 2, 8  # a batch of 6 and one of 2 per epoch: shares 3 + 3, then 1 + 1
    path = make_recipe(train={"max_steps": None, "epochs": epochs, "batch_size": batch_size, "lr": 1e-2, "save_every": 1,
                              "merged": False}, data={"dev": None})
    two = path.parent / "two.yaml"
    two.write_text(path.read_text().replace(str(tmp_path / "run"), str(tmp_path / "two")))
    run(Recipe.load(path))  # the one-process reference, in this process
    proc = _torchrun("train", str(two))
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, dual = _rows(tmp_path / "run"), _rows(tmp_path / "two")
    summaries = [json.loads((tmp_path / name / "summary.json").read_text()) for name in ("run", "two")]
    assert [s["processes"] for s in summaries] == [1, 2]
    assert [s["encoded_samples"] for s in summaries] == [n, n]
    steps = epochs * len(_batches_per_epoch(n, batch_size))
    assert [r["step"] for r in one] == [r["step"] for r in dual] == list(range(1, steps + 1))
    for a, b in zip(one, dual):
        assert len(a["samples"]) == 1 and len(b["samples"]) == 2
        rank0, rank1 = b["samples"]
        assert rank0 and rank1 and not set(rank0) & set(rank1), b
        assert sorted(rank0 + rank1) == sorted(a["samples"][0]), (a, b)
        assert abs(a["loss"] - b["loss"]) <= LOSS_RTOL * abs(a["loss"]), (one, dual)
    per_step = len(dual) // epochs
    for e in range(epochs):
        epoch = [r["samples"][0] + r["samples"][1] for r in dual[e * per_step:(e + 1) * per_step]]
        assert sorted(map(len, epoch)) == _batches_per_epoch(n, batch_size)
        assert sorted(i for b in epoch for i in b) == list(range(n)), "one epoch is one pass over the data"

    out = tmp_path / "two"
    want = _adapter(out)
    (out / "checkpoints" / f"step_{steps:08d}.safetensors").unlink()
    shutil.rmtree(out / "adapter")
    (out / "summary.json").unlink()
    proc = _torchrun("train", str(two), "--resume")
    assert proc.returncode == 0 and f"(step {steps - 1})" in proc.stderr, proc.stderr[-3000:]
    _assert_same(want, _adapter(out))
    assert _rows(out)[-1]["samples"] == dual[-1]["samples"]


def test_a_global_batch_that_does_not_divide_over_the_processes_is_one_line(make_recipe, monkeypatch):
    """train.batch_size is the global batch: 3 over two processes is refused in one line before
    anything is built (how a one-line error reaches every rank under torchrun: the lock test below)."""
    from adaptkit.errors import AdaptkitError
    from adaptkit.recipe import Recipe
    from adaptkit.train import distributed, loop

    path = make_recipe(train={"max_steps": 1, "batch_size": 3}, data={"dev": None})
    monkeypatch.setattr(loop, "process_state", lambda: type("TwoProcesses", (), {"num_processes": 2, "is_main_process": True})())
    with pytest.raises(AdaptkitError) as err:
        loop.run(Recipe.load(path))
    assert str(err.value) == (f"{path}: train.batch_size: 3 is the global batch and does not divide over 2 processes; "
                              "use a multiple of 2")
    distributed.check_global_batch(4, 2)  # a multiple is accepted


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
        proc = subprocess.run([TORCHRUN, "--nproc_per_node", "2", "-m", "adaptkit.cli", "train", str(path)],
                              env=ENV, capture_output=True, text=True)
    finally:
        os.close(fd)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 2, proc.stderr[-3000:]
    assert all(f"output_dir {out} is in use by another run (pid 4242 on elsewhere" in line for line in errors)
    assert "exitcode  : 2" in proc.stderr  # torchrun's own report; the rank that ends second may be sent SIGTERM
    assert "/adaptkit/" not in proc.stderr, "a traceback from adaptkit's code"
    assert not (out / "metrics.jsonl").exists()
