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


def test_a_child_writes_bars_when_a_killed_sibling_left_tqdms_shared_lock_held():
    """tqdm's write lock holds a multiprocessing semaphore that forked processes share: one killed
    inside a bar's write leaves it held. A forked child takes locks of its own (`fresh_tqdm_lock`).
    All of it runs in a forked sandbox, so that this process's own tqdm lock stays free."""
    sandbox = os.fork()
    if sandbox == 0:
        code = 1
        try:
            code = _sibling_leaves_the_lock_held_and_a_child_takes_its_own()
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(sandbox, 0)[1]) == 0


def _sibling_leaves_the_lock_held_and_a_child_takes_its_own() -> int:
    """0 when a sibling left the shared lock held and a child's fresh locks are free, else 1."""
    from tqdm import tqdm
    from tqdm.auto import tqdm as auto_tqdm

    child.fresh_tqdm_lock()  # the sandbox's own shared lock, inherited by its children below
    auto_tqdm.set_lock(auto_tqdm.get_lock().__class__())  # a subclass with a lock of its own, as one made first has
    shared = auto_tqdm.get_lock().locks[0]
    holder = os.fork()
    if holder == 0:  # a sibling that dies holding the lock, as a SIGKILL inside a write leaves it
        shared.acquire()
        os._exit(0)
    os.waitpid(holder, 0)
    pid = os.fork()
    if pid == 0:
        held = not shared.acquire(False)
        child.fresh_tqdm_lock()
        free = all(lock.acquire(False) for cls in (tqdm, auto_tqdm) for lock in cls.get_lock().locks)
        os._exit(0 if held and free else 1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
