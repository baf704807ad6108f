"""adaptkit's own commands in a child process forked from this one, so a child starts from the imports
already done here (torch, transformers, peft: seconds of CPU a start) instead of a fresh interpreter.

A forked child is a real process (its own pid, memory freed at exit, killed like any other), but
forking is only safe where nothing here holds what a child cannot inherit: no CUDA context (a forked
child cannot use its parent's, https://pytorch.org/docs/stable/notes/multiprocessing.html#cuda-in-multiprocessing)
and no other thread (one could hold a lock the child would wait on forever). That includes the native
threads of an OpenMP pool, which Python cannot see: after torch ran parallel work here with more
than one thread, a forked child's first parallel op waits forever for pool threads it does not have
(GNU libgomp, which torch's CPU wheels ship, is not fork-safe). `can_fork` checks all three; callers
fall back to `python -m adaptkit.cli` otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path

_TASKS = Path("/proc/self/task")


def _native_threads() -> int | None:
    """This process's OS threads (Linux), or None where the system does not list them."""
    try:
        return len(os.listdir(_TASKS))
    except OSError:
        return None


_NATIVE_AT_IMPORT = _native_threads()
"""OS threads when this module was first imported, plus those `warm`'s imports started: the imports'
own (no OpenMP pool unless parallel torch work ran before). More later means a pool (or another
native thread) exists."""


def _stop_tqdm_monitors() -> None:
    """tqdm's monitor threads (one per tqdm class that made a bar, asleep between checks every 10 s)
    are stopped and joined; a stopped monitor no longer reports, so tqdm starts a new one with its
    next bar (tqdm/std.py, tqdm.__new__; tqdm/_monitor.py, TMonitor.exit)."""
    from tqdm._monitor import TMonitor

    for thread in threading.enumerate():
        if isinstance(thread, TMonitor):
            thread.exit()


def fresh_tqdm_lock() -> None:
    """Give this (forked) process tqdm write locks of its own. tqdm's lock holds a multiprocessing
    RLock, a semaphore every forked child shares with its parent and siblings (tqdm/std.py,
    TqdmDefaultWriteLock.create_mp_lock): a sibling killed while it wrote a bar leaves it held, and
    every child forked later waited forever at its first bar."""
    from tqdm import tqdm
    from tqdm.std import TqdmDefaultWriteLock

    TqdmDefaultWriteLock.th_lock = threading.RLock()
    if hasattr(TqdmDefaultWriteLock, "mp_lock"):
        del TqdmDefaultWriteLock.mp_lock
    lock, classes = TqdmDefaultWriteLock(), [tqdm]
    while classes:  # a subclass (tqdm.auto's) that made its lock first holds its own: replace each
        cls = classes.pop()
        if cls is tqdm or "_lock" in vars(cls):
            cls.set_lock(lock)
        classes += cls.__subclasses__()


def _settle_queue_feeders(seconds: float = 5.0) -> None:
    """Wait for multiprocessing.Queue feeder threads: a DataLoader's index queues are closed when its
    workers shut down, and their feeder threads then end on their own, a moment later
    (multiprocessing/queues.py, Queue._feed). One whose queue is still open stays alive, and
    `can_fork` says no."""
    for thread in threading.enumerate():
        if thread.name == "QueueFeederThread":
            thread.join(seconds)


def can_fork() -> bool:
    """Whether `start` may fork here: POSIX, one Python thread (tqdm's monitor stopped first), no CUDA
    context initialised, and no OpenMP pool: torch uses one thread, or the OS lists no more threads
    than at this module's import."""
    _stop_tqdm_monitors()
    _settle_queue_feeders()
    if not hasattr(os, "fork") or threading.active_count() != 1:
        return False
    import torch

    if torch.cuda.is_initialized():
        return False
    native = _native_threads()
    return torch.get_num_threads() == 1 or (native is not None and _NATIVE_AT_IMPORT is not None and native <= _NATIVE_AT_IMPORT)


def warm() -> None:
    """Import what `adaptkit train` and `adaptkit eval` need, once, here: every child inherits it.
    Threads those imports start count as the imports' own (`_NATIVE_AT_IMPORT`)."""
    global _NATIVE_AT_IMPORT
    before = _native_threads()
    import adaptkit.cli  # noqa: F401
    import adaptkit.eval.run  # noqa: F401
    import adaptkit.train  # noqa: F401

    after = _native_threads()
    if None not in (before, after, _NATIVE_AT_IMPORT):
        _NATIVE_AT_IMPORT += max(0, after - before)


def run(args: list[str], stderr: Path) -> int:
    """Run `adaptkit ARGS` in a child process (stdout to /dev/null, stderr to the file `stderr`) and
    return its exit code: forked where `can_fork`, else a fresh `python -m adaptkit.cli`."""
    warm()
    if can_fork():
        return wait(start(args, stderr))
    with open(stderr, "w") as err:
        return subprocess.run([sys.executable, "-m", "adaptkit.cli", *args], stdout=subprocess.DEVNULL, stderr=err).returncode


def start(args: list[str], stderr: Path) -> int:
    """Fork a child that runs `adaptkit ARGS` (stdout to /dev/null, stderr to the file `stderr`) and
    exits with the command's exit code. Returns the child's pid (see `wait`). Only where `can_fork`."""
    warm()
    if not can_fork():
        others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        raise RuntimeError(f"adaptkit.child.start: cannot fork here (threads {others}, or a CUDA context)")
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: never returns to the caller
        err = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.dup2(err, 2)
        sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", buffering=1, closefd=False)
        fresh_tqdm_lock()
        from adaptkit.cli import main

        main.main(args, prog_name="adaptkit")
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - shown on the child's stderr, then a failing exit code
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def wait(pid: int, block: bool = True) -> int | None:
    """The exit code of the child `pid` (a signal N as -N, as subprocess gives it); None while it runs
    and `block` is False."""
    done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    return os.waitstatus_to_exitcode(status) if done else None
