"""adaptkit.child: a command in a forked child where that is safe, a fresh interpreter otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from adaptkit import child


def _error_line(log) -> str:
    return next(x for x in log.read_text().splitlines() if x.startswith("error: "))


def test_a_forked_child_runs_the_command_and_reports_its_exit_code_and_error_line(tmp_path):
    child.warm()
    assert child.can_fork()
    log = tmp_path / "err.log"
    pid = child.start(["train", str(tmp_path / "missing.yaml")], log)
    assert child.wait(pid) == 2
    assert _error_line(log).startswith(f"error: {tmp_path / 'missing.yaml'}")
    assert child.run(["--version"], tmp_path / "version.log") == 0


def test_with_another_thread_alive_it_does_not_fork_and_runs_a_fresh_interpreter(tmp_path):
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, name="busy")
    other.start()
    try:
        assert not child.can_fork()
        log = tmp_path / "err.log"
        assert child.run(["train", str(tmp_path / "missing.yaml")], log) == 2
        assert _error_line(log).startswith(f"error: {tmp_path / 'missing.yaml'}")
    finally:
        stop.set()
        other.join()


def test_after_parallel_torch_work_it_does_not_fork(tmp_path):
    """A child forked after torch ran an op on two OpenMP threads hangs in its first parallel op
    (libgomp is not fork-safe), so such a process must start a fresh interpreter instead. Run in a
    fresh interpreter with two threads: the suite's own process uses one (tests/conftest.py)."""
    code = ("import os, torch; from adaptkit import child; child.warm(); assert torch.get_num_threads() == 2; "
            "before = child.can_fork(); torch.exp(torch.randn(1 << 20)); print(before, child.can_fork())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False"]
