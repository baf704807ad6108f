"""Atomic writes: a file or folder appears complete or not at all, never half written.

Files are fsynced before the rename and their folder after it, so a power cut leaves either the
old or the new content (caches may skip the fsyncs: `atomic_file(durable=False)`). Every writer
goes through `atomic_file`, whose temporary name a folder's cleanup can choose. A folder is replaced by one atomic exchange (Linux `renameat2`
RENAME_EXCHANGE), so no reader ever sees it missing; elsewhere two renames are the fallback.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a folder, so the names in it (a rename) are on disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems do not fsync folders
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(folder)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step; False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        rename = libc.renameat2
    except (OSError, AttributeError):
        return False
    rename.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return rename(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes 0700; the result is an ordinary folder
    try:
        yield tmp
        _fsync_tree(tmp)
        if path.is_dir() and _exchange(tmp, path):
            pass  # tmp now holds the old folder, removed below
        else:
            old = None
            if path.exists():
                old = path.with_name(f".{path.name}.old.{os.getpid()}")
                os.replace(path, old)
            os.replace(tmp, path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_file(path: str | os.PathLike, prefix: str | None = None, durable: bool = True) -> Iterator[Path]:
    """Yield the path of an empty temporary file beside `path`; on success it replaces `path` in one rename.

    For writers that want a file name (safetensors' `save_file`). The temporary name starts with
    `prefix` (default `.{name}.`), so a folder's cleanup can find what a killed write left. With
    `durable`, the file is fsynced before the rename and the folder after it; without, a power cut
    may lose the new file (for caches, whose entries are recomputed). On any error the temporary
    file is removed and `path` keeps its old content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}." if prefix is None else prefix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the result is an ordinary file
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write `data` (text as UTF-8) to `path` through a temporary file in the same folder and one rename."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (see `atomic_write`)."""
    atomic_write(path, text)
