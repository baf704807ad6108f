"""adaptkit.atomic: a file appears whole or not at all, and a failed write leaves nothing behind."""

from __future__ import annotations

import os
import stat

import pytest

from adaptkit.atomic import atomic_file, atomic_write


@pytest.mark.parametrize("durable", [True, False])
def test_atomic_file_replaces_the_target_with_what_was_written(tmp_path, durable):
    target = tmp_path / "sub" / "x.bin"
    with atomic_file(target, prefix=".step.", durable=durable) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".step.") and tmp.is_file()
        tmp.write_bytes(b"new")
        assert not target.exists()
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert os.listdir(target.parent) == ["x.bin"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "x.bin"
    atomic_write(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.bin"]


def test_the_default_temporary_name_is_hidden_beside_the_target(tmp_path):
    with atomic_file(tmp_path / "report.json") as tmp:
        assert tmp.name.startswith(".report.json.")
