"""FSDP and DeepSpeed ZeRO-2 through accelerate's own config files, as far as a CPU machine allows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
PROBE = """
import sys
import torch
from accelerate import Accelerator
from adaptkit.train.distributed import process_state
process_state()  # as adaptkit starts a run (gloo under a launcher on CPU)
accelerator = Accelerator()
model = accelerator.prepare(torch.nn.Linear(2, 2))
with open(f"{sys.argv[1]}/rank{accelerator.process_index}.txt", "w") as out:  # one file a rank: no interleaved lines
    out.write(f"rank {accelerator.process_index}: {accelerator.distributed_type.value} {type(model).__name__}")
"""


def _cpu_config(tmp_path: Path, example: str, **fsdp) -> Path:
    """examples/distributed/<example> for two CPU processes, `fsdp` keys changed in its fsdp_config."""
    config = yaml.safe_load((ROOT / "examples" / "distributed" / example).read_text())
    config.update(num_processes=2, use_cpu=True, mixed_precision="no")
    config.get("fsdp_config", {}).update(fsdp)
    path = tmp_path / example
    path.write_text(yaml.safe_dump(config))
    return path


def _launch(config: Path, *args: str) -> subprocess.CompletedProcess:
    launcher = os.path.join(os.path.dirname(sys.executable), "accelerate")
    return subprocess.run([launcher, "launch", "--config_file", str(config), *args], env=ENV, capture_output=True, text=True)


def test_fsdp_is_refused_in_one_line_and_accelerate_runs_it_as_ddp_on_cpu(make_recipe, tmp_path):
    """adaptkit under examples/distributed/fsdp.yaml (two CPU processes) stops on every rank with one
    line; and the fact FSDP_ON_CPU states holds: without sync_module_states the same config gives
    MULTI_CPU and DistributedDataParallel. When that part fails, accelerate has begun to run FSDP on
    CPU, and adaptkit's FSDP path (the adapter gathered before saving) can be built and tested here."""
    path = make_recipe(train={"max_steps": 1, "batch_size": 2}, data={"dev": None})
    proc = _launch(_cpu_config(tmp_path, "fsdp.yaml"), "-m", "adaptkit.cli", "train", str(path))
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 2, proc.stderr[-3000:]
    assert all(line.startswith(f"error: {path}: FSDP (accelerate's distributed_type FSDP) is not supported") for line in errors)
    assert "/adaptkit/" not in proc.stderr, "a traceback from adaptkit's code"

    (tmp_path / "probe.py").write_text(PROBE)
    config = _cpu_config(tmp_path, "fsdp.yaml", fsdp_sync_module_states=False, fsdp_cpu_ram_efficient_loading=False)
    proc = _launch(config, str(tmp_path / "probe.py"), str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [(tmp_path / f"rank{k}.txt").read_text() for k in (0, 1)] == \
        ["rank 0: MULTI_CPU DistributedDataParallel", "rank 1: MULTI_CPU DistributedDataParallel"]


def test_the_zero2_example_config_is_valid_for_accelerate():
    """examples/distributed/deepspeed_zero2.yaml, read by accelerate's config loader and turned into
    its DeepSpeedPlugin (which imports deepspeed): ZeRO stage 2, no offload, clipping 1.0. Runs where
    deepspeed is installed (`pip install --no-build-isolation deepspeed`; it builds on CPU, and
    scripts/install.sh leaves it out: from an isolated build it pulls a CUDA torch)."""
    pytest.importorskip("deepspeed", reason="deepspeed is not installed (pip install --no-build-isolation deepspeed)")
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin, DistributedType

    config = load_config_from_file(str(ROOT / "examples" / "distributed" / "deepspeed_zero2.yaml"))
    assert config.distributed_type == DistributedType.DEEPSPEED
    plugin = DeepSpeedPlugin(**config.deepspeed_config)
    zero = plugin.deepspeed_config["zero_optimization"]
    assert zero["stage"] == 2 and zero["offload_optimizer"]["device"] == zero["offload_param"]["device"] == "none"
    assert plugin.deepspeed_config["gradient_clipping"] == 1.0
