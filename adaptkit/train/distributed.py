"""The processes of a run: accelerate's process state, the same under `accelerate launch` and torchrun.

accelerate decides the distributed type from the environment the launcher sets. In accelerate 1.16
(the current stack) a process started by torchrun on a machine without a GPU is
`DistributedType.NO` unless `cpu=True` is passed: `PartialState._prepare_backend` only falls back
to MULTI_CPU (gloo) when `cpu` is set (src/accelerate/state.py,
https://github.com/huggingface/accelerate/blob/main/src/accelerate/state.py), so every rank would
train alone on the whole data into the same output_dir. 1.12 (the qwen-asr stack) falls back to
gloo by itself.
"""

from __future__ import annotations

import os

from adaptkit.errors import AdaptkitError


def launched_on_cpu() -> bool:
    """True when a launcher started several processes (WORLD_SIZE > 1) and there is no accelerator."""
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.cuda.is_available():
        return False
    try:
        return torch.accelerator.current_accelerator() is None
    except (AttributeError, RuntimeError):  # torch without torch.accelerator, or one that raises on CPU builds
        return True


def process_state():
    """accelerate's PartialState of this run (created once; Accelerator() later shares it), on
    gloo when torchrun or `accelerate launch` started several processes on a CPU-only machine."""
    from accelerate import PartialState

    return PartialState(cpu=launched_on_cpu())


def check_global_batch(batch_size: int, world: int) -> None:
    """Refuse a train.batch_size (the global batch) that `world` processes cannot share equally."""
    if batch_size % world:
        raise AdaptkitError(f"train.batch_size: {batch_size} is the global batch and does not divide over {world} processes; "
                            f"use a multiple of {world}")
