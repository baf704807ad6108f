"""Where a model runs: the `--device` choice of `adaptkit eval`, `cascade` and `compare`, and the
device and dtype a model's inputs must have.

The default is `cuda` when torch sees a GPU, else `cpu`; `cuda:1`, `mps` and `cpu` are named as torch
names them. A device this machine does not have is a one-line error, `--device: ...`, before any
model is loaded. Moving a model keeps its dtype (a bfloat16 checkpoint stays bfloat16 on the GPU);
inputs are placed on the model's device, floating ones in its dtype (`model_place`).

GPUs are counted with `torch.cuda.device_count()`, which asks NVML where it can: unlike the default
`torch.cuda.is_available()` (CUDA's runtime, `cuInit`), that does not poison a later fork, so
`adaptkit compare` can check `--device` and still fork its children (`adaptkit.child`).
"""

from __future__ import annotations

import torch
from torch import nn

from adaptkit.errors import AdaptkitError


def cuda_count() -> int:
    """CUDA GPUs torch sees (0 on a CPU build), counted without poisoning a later fork where NVML answers."""
    return torch.cuda.device_count()


def default_device() -> str:
    """`cuda` when torch sees a GPU, else `cpu`."""
    return "cuda" if cuda_count() > 0 else "cpu"


def _absent(device: torch.device) -> str | None:
    """Why this machine cannot run `device`, or None when it can."""
    if device.type == "cuda":
        count = cuda_count()
        if count == 0:
            return "torch sees no CUDA GPU here"
        if device.index is not None and device.index >= count:
            return f"torch sees {count} CUDA GPU{'s' if count > 1 else ''} (cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})"
        return None
    if device.type == "mps":
        return None if torch.backends.mps.is_available() else "torch sees no Apple MPS device here"
    if device.type == "cpu":
        return None
    backend = getattr(torch, device.type, None)
    available = getattr(backend, "is_available", None)
    return None if callable(available) and available() else f"torch has no {device.type} backend available here"


def resolve_device(name: str | None, flag: str = "--device") -> torch.device:
    """The torch device `name` names (None: `default_device()`); an unknown one, or one this machine
    does not have, is a one-line error naming `flag`."""
    name = name or default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise AdaptkitError(f"{flag}: {name!r} is not a device ({str(err).splitlines()[0]}); "
                            "use cuda, cuda:N, mps or cpu") from None
    why = _absent(device)
    if why:
        raise AdaptkitError(f"{flag}: {name!r} asked for, but {why}; use --device cpu")
    return device


def place(model: nn.Module, device: torch.device | str) -> nn.Module:
    """Move `model` to `device` in its own dtype (returns it)."""
    return model.to(torch.device(device))


def model_place(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """The device and floating dtype of `model`'s first floating parameter: where its inputs go."""
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    if param is None:
        return torch.device("cpu"), torch.float32
    return param.device, param.dtype
