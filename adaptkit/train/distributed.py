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

FSDP_ON_CPU = ("accelerate 1.12 and 1.16 do not run FSDP on CPU: with fsdp_sync_module_states (as in "
               "examples/distributed/fsdp.yaml) Accelerator() raises 'There are currently no available devices found, must be one "
               "of 'XPU', 'CUDA', 'MLU', 'NPU', 'MUSA', or 'HPU'.' (FullyShardedDataParallelPlugin.__post_init__, "
               "src/accelerate/utils/dataclasses.py); without it AcceleratorState sets DistributedType.FSDP only on MULTI_GPU, "
               "MULTI_MLU, MULTI_SDAA, MULTI_MUSA, MULTI_NPU, MULTI_XPU or MULTI_HPU (src/accelerate/state.py), so the run "
               "is MULTI_CPU with DistributedDataParallel")
"""Why FSDP is not exercised on CPU (tests/train/test_sharding_backends.py checks it still holds)."""


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


def check_sharding() -> None:
    """Refuse FSDP (an accelerate config with distributed_type FSDP) in one line, before accelerate
    starts: adaptkit saves the adapter, checkpoints and the merged model from the main process's
    parameters, which under FSDP are shards, and no FSDP run can be tested on CPU (FSDP_ON_CPU)."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return
    raise AdaptkitError("FSDP (accelerate's distributed_type FSDP) is not supported: adaptkit saves from the main process without "
                        "gathering shards, and FSDP cannot be tested on CPU (accelerate runs it as DDP or refuses it); "
                        "use DDP or DeepSpeed ZeRO-2 (examples/distributed/)")
