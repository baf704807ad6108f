"""adaptkit.child: a command in a forked child where that is safe, a fresh interpreter otherwise."""

from __future__ import annotations

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
