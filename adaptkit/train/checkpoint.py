"""Checkpoints: only what trains, the optimizer, the schedule, the data position and every RNG.

The frozen base is rebuilt from the recipe on resume, so a checkpoint of a 1.7B model holds a few
MB instead of the full weights that accelerate's `save_state` would write each time. Each file is
written to a temporary name and renamed, so a kill leaves the last good checkpoint whole.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

KEEP = 2
_NAME = re.compile(r"step_(\d+)\.pt$")


def rng_state() -> dict[str, Any]:
    """Every random state that training consumes."""
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def save(folder: Path, step: int, state: dict[str, Any]) -> Path:
    """Write `state` as `folder/step_N.pt` atomically and keep only the newest KEEP files."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:08d}.pt"
    fd, tmp = tempfile.mkstemp(prefix=".step.", dir=folder)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    for old in sorted(folder.glob("step_*.pt"))[:-KEEP]:
        old.unlink()
    return path


def latest(folder: Path) -> Path | None:
    """The newest complete checkpoint in `folder`, or None."""
    found = sorted(p for p in folder.glob("step_*.pt") if _NAME.search(p.name)) if folder.is_dir() else []
    return found[-1] if found else None


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save`."""
    return torch.load(path, map_location="cpu", weights_only=False)
