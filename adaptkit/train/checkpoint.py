"""Checkpoints without pickle: every tensor in one safetensors file, the rest as JSON in its header.

Only what trains is kept (adapter tensors, optimizer, schedule, data position, every RNG): the
frozen base is rebuilt from the recipe on resume, so a checkpoint of a 1.7B model holds a few MB.
Nothing in a checkpoint can run code on load: safetensors holds raw tensors, and the other state
(step, epoch, scheduler, RNG states, the optimizer's layout) is plain JSON with tagged tuples,
int-keyed maps and tensor references. A digest of every tensor's bytes is stored with it, so a
truncated or flipped file is detected and skipped in favour of the previous checkpoint.

Each file is written to a temporary `.step.*` name, fsynced, renamed, and its folder fsynced
(`adaptkit.atomic.atomic_file`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from adaptkit.atomic import atomic_file
from adaptkit.errors import AdaptkitError

log = logging.getLogger("adaptkit")
KEEP = 2
FORMAT = "adaptkit-checkpoint-1"
SUFFIX = ".safetensors"
_NAME = re.compile(r"^step_(\d{8})\.safetensors$")
_TEMP = ".step."


class CorruptCheckpoint(AdaptkitError):
    """A checkpoint file that cannot be read back whole (truncated, altered, not ours)."""


def rng_state() -> dict[str, Any]:
    """Every random state that training consumes."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _encode(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """`value` as JSON, its tensors moved into `tensors` under their path."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().clone().contiguous()
        return {"$tensor": path}
    if isinstance(value, np.ndarray):
        return {"$ndarray": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode(v, f"{path}/{k}", tensors) for k, v in value.items()}
        return {"$map": [[_encode(k, f"{path}/key{i}", tensors), _encode(v, f"{path}/{k}", tensors)]
                         for i, (k, v) in enumerate(value.items())]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"checkpoint: cannot store {type(value).__name__} at {path}")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of `_encode`."""
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "$tensor" in value:
        return tensors[value["$tensor"]]
    if "$ndarray" in value:
        return np.asarray(value["$ndarray"], dtype=value["dtype"])
    if "$tuple" in value:
        return tuple(_decode(v, tensors) for v in value["$tuple"])
    if "$map" in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["$map"]}
    return {k: _decode(v, tensors) for k, v in value.items()}


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors with a NaN or inf element."""
    return [n for n, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def save(folder: Path, step: int, state: dict[str, Any]) -> Path:
    """Write `state` as `folder/step_N.safetensors` atomically and keep only the newest KEEP files.

    A state with a non-finite floating tensor is never written (it would be no good checkpoint)."""
    path = folder / f"step_{step:08d}{SUFFIX}"
    tensors: dict[str, torch.Tensor] = {}
    body = _encode(state, "state", tensors)
    bad = non_finite(tensors)
    if bad:
        raise ValueError(f"checkpoint: refusing to write non-finite tensors ({', '.join(bad[:3])})")
    metadata = {"format": FORMAT, "digest": _digest(tensors), "state": json.dumps(body)}
    try:
        with atomic_file(path, prefix=_TEMP) as tmp:  # `.step.*`: what remove_temporaries finds after a kill
            save_file(tensors, str(tmp), metadata=metadata)
    except (OSError, SafetensorError) as err:
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        raise AdaptkitError(f"{path}: cannot write checkpoint ({reason}); the previous checkpoint is kept") from None
    for old in checkpoints(folder)[:-KEEP]:
        old.unlink(missing_ok=True)
    return path


def checkpoints(folder: Path) -> list[Path]:
    """Every checkpoint file in `folder` by step, oldest first (complete names only)."""
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name)) if folder.is_dir() else []


def latest(folder: Path) -> Path | None:
    """The newest checkpoint file in `folder`, or None (see `newest_readable` to also read it)."""
    found = checkpoints(folder)
    return found[-1] if found else None


def remove_temporaries(folder: Path) -> int:
    """Delete what killed writes left behind (`.step.*`); returns how many."""
    stale = [p for p in folder.glob(f"{_TEMP}*")] if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save`; anything unreadable or altered is a CorruptCheckpoint."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (OSError, SafetensorError) as err:
        raise CorruptCheckpoint(f"{path}: unreadable checkpoint ({getattr(err, 'strerror', None) or str(err).splitlines()[0]})") from None
    if metadata.get("format") != FORMAT:
        raise CorruptCheckpoint(f"{path}: not an adaptkit checkpoint (format {metadata.get('format')!r})")
    if metadata.get("digest") != _digest(tensors):
        raise CorruptCheckpoint(f"{path}: checkpoint tensors do not match their digest (altered or damaged)")
    try:
        return _decode(json.loads(metadata["state"]), tensors)
    except (KeyError, TypeError, ValueError) as err:
        raise CorruptCheckpoint(f"{path}: checkpoint state is damaged ({err})") from None


def newest_readable(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that reads back whole, and its state; each damaged newer one is
    skipped with a one-line warning. None when there is no checkpoint file at all."""
    found = checkpoints(folder)
    if not found:
        legacy = sorted(folder.glob("step_*.pt")) if folder.is_dir() else []
        if legacy:
            raise AdaptkitError(f"{legacy[-1]}: a pickle checkpoint of an older adaptkit; it is never loaded "
                                "(pickles can run code): start the run again with --force")
        return None
    for path in reversed(found):
        try:
            return path, load(path)
        except CorruptCheckpoint as err:
            log.warning("warning: skipping %s", err)
    raise AdaptkitError(f"{folder}: no readable checkpoint ({len(found)} damaged); start again with --force")
