"""One run per output_dir (a lock naming its holder), preemption (SIGTERM / SIGINT at a step
boundary), and the helper processes a run forks (DataLoader workers), which take part in neither."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from adaptkit.errors import AdaptkitError

LOCK = ".adaptkit.lock"
_HELD: set[int] = set()
"""Descriptors of the run locks this process holds (a forked worker closes its copies)."""


def writable_dir(out: Path) -> None:
    """Make `out` (and its parents) or raise one line naming the path and the OS's reason."""
    if out.exists() and not out.is_dir():
        raise AdaptkitError(f"output_dir {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise AdaptkitError(f"output_dir {out}: cannot create it ({err.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise AdaptkitError(f"output_dir {out}: not writable")


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on `out` for the duration; a second holder gets one line naming the first.

    The lock is `flock` on `out/.adaptkit.lock`: the kernel drops it when the process dies, so a
    killed run never leaves a stale lock behind."""
    writable_dir(out)
    path = out / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise AdaptkitError(f"{path}: cannot open the run lock ({err.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AdaptkitError(f"output_dir {out} is in use by another run ({_holder(path)}); wait for it or choose another output_dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        _HELD.add(fd)
        yield
    finally:
        _HELD.discard(fd)
        os.close(fd)  # closing releases the lock


@contextmanager
def run_lock(out: Path, state) -> Iterator[None]:
    """`output_lock` for a run of one or more processes (`state`: accelerate's PartialState).

    The main process takes the lock; with several processes it tells the others whether it got
    it, so a refused run stops on every rank with the same line instead of leaving the other ranks
    waiting at their first collective."""
    if state.num_processes == 1:
        with output_lock(out):
            yield
        return
    from accelerate.utils import broadcast_object_list

    with ExitStack() as held:
        refusal = None
        if state.is_main_process:
            try:
                held.enter_context(output_lock(out))
            except AdaptkitError as err:
                refusal = str(err)
        refusal = broadcast_object_list([refusal])[0]
        if refusal:
            raise AdaptkitError(refusal)
        yield


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


class Interrupted(Exception):
    """Raised at a step boundary after SIGTERM or SIGINT, once the checkpoint is written."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


class StopFlag:
    """Set by SIGTERM / SIGINT; the training loop reads it between optimizer steps."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


@contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """While inside, SIGTERM and SIGINT only set the returned flag (a second SIGINT still stops at once)."""
    flag = StopFlag()
    previous = {}

    def handler(signum, frame):
        if flag.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.signum = signum

    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: signals stay as they are
        pass
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def detach_worker(parent: int, worker_id: int = 0) -> None:
    """Make a process forked from the run `parent` (a DataLoader worker; `worker_id` is torch's
    `worker_init_fn` argument) one that neither holds the run nor stops it:

    - its copies of the run lock's descriptors are closed, so a killed run's lock goes with the run's
      process (a flock is released when every descriptor of it is closed, forked copies included)
      and `--resume` can take it at once;
    - SIGTERM and SIGINT are ignored: a Ctrl-C reaches the whole process group and a scheduler may
      signal every process, but only the run decides to stop (at a step boundary) and then shuts its
      workers down; a worker killed by the signal would make torch's SIGCHLD handler fail the run
      mid-step instead;
    - on Linux it gets SIGKILL when the run's process dies (PR_SET_PDEATHSIG), so a SIGKILLed run
      leaves no worker behind (torch's own watchdog notices only within seconds), and a worker that
      hangs at shutdown, which torch's SIGTERM no longer ends, goes when the run exits."""
    for fd in list(_HELD):
        try:
            os.close(fd)  # closing a copy does not unlock: the run's own descriptor still holds it
        except OSError:
            pass
    _HELD.clear()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the run died before the line above took effect
        os._exit(0)
