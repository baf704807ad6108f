"""A recipe writer on the shared synthetic calls (tests/conftest.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml

from adaptkit import child
from adaptkit.stack import has_qwen_asr

STACK_QWEN3 = "qwen3_asr" if has_qwen_asr() else "qwen3_asr_hf"
"""This stack's tiny Qwen3-ASR: qwen_asr's class (`thinker.*` layout) where qwen_asr is installed,
else transformers 5's native Qwen3ASRForConditionalGeneration (`model.*` layout)."""


@pytest.fixture(scope="session")
def stack_qwen3() -> str:
    """The architecture name of this stack's tiny Qwen3-ASR (STACK_QWEN3)."""
    return STACK_QWEN3


@pytest.fixture(scope="session")
def qwen3_layout():
    """The freezing DSL's component map of this stack's tiny Qwen3-ASR: where its encoder, projector,
    LLM, embeddings and lm_head sit, and the projector's parameter names (as saved, from the root)."""
    from adaptkit.freeze.components import component_map
    from adaptkit.models import build_tiny

    model, _ = build_tiny(STACK_QWEN3)
    cmap = component_map(model)
    projector = [f"{p}.{n}" for p in cmap.paths("projector") for n, _ in model.get_submodule(p).named_parameters()]
    return cmap, projector


@pytest.fixture
def make_recipe(calls, tmp_path):
    """Write a tiny speaker-ASR recipe on the shared calls; keyword sections override the defaults."""

    def make(**sections) -> Path:
        recipe = {
            "model": {"tiny": STACK_QWEN3},
            "tokens": {"tokens": ["<|spk_0|>", "<|spk_1|>"]},
            "freeze": {"train": ["projector", {"tokens": "added"}]},
            "data": {"train": str(calls / "train" / "speaker_asr.jsonl"), "dev": str(calls / "test_id" / "speaker_asr.jsonl")},
            "task": "speaker_asr",
            "train": {"lr": 1e-2, "max_steps": 6, "batch_size": 4},
            "output_dir": str(tmp_path / "run"),
        }
        for key, value in sections.items():
            recipe[key] = {**recipe[key], **value} if isinstance(value, dict) and isinstance(recipe.get(key), dict) else value
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe, allow_unicode=True))
        return path

    return make



class ForkedCli:
    """`adaptkit <args>` in a child forked from this test process (adaptkit.child): a real process with
    its own pid, to signal and kill, that starts from the imports already done here instead of paying
    them again. Its stdout goes to /dev/null and its stderr to `stderr`."""

    def __init__(self, args: list[str], stderr: Path):
        self.stderr = stderr
        self.returncode: int | None = None
        self.pid = child.start(args, stderr)

    def poll(self) -> int | None:
        """The exit code once the child has ended (a signal N as -N), else None."""
        if self.returncode is None:
            self.returncode = child.wait(self.pid, block=False)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self) -> int:
        """Wait for the child; its exit code."""
        if self.returncode is None:
            self.returncode = child.wait(self.pid)
        return self.returncode

    def err(self) -> str:
        """What the child wrote to stderr."""
        return self.stderr.read_text()


@pytest.fixture
def forked_cli(tmp_path):
    """Start `adaptkit <args>` as a forked child (ForkedCli); every child is reaped at the end."""
    started: list[ForkedCli] = []

    def start(*args: str) -> ForkedCli:
        proc = ForkedCli(list(args), tmp_path / f"child_{len(started)}.stderr")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
