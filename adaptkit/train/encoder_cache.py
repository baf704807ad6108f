"""Encoder outputs (just before the projector) kept across epochs, and across runs on disk.

Valid only while nothing before the projector trains. A disk entry is keyed by the audio file
(path, size, mtime), the span, the sample rate and a digest of the frozen encoder weights, so a
changed file or another base model never reuses a stale entry.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from adaptkit.atomic import atomic_file
from adaptkit.data.manifest import Sample


def encoder_digest(model: nn.Module, prints: dict[str, str]) -> str:
    """A digest of every encoder parameter and buffer (the part whose outputs are cached), from the
    model's `fingerprint` (taken once per run: hashing a large model's weights costs seconds)."""
    cmap = model.adaptkit.cmap
    h = hashlib.blake2b(digest_size=12)
    for name in sorted(prints):
        if cmap.group_of(name.removeprefix("buffer:")) == "encoder":
            h.update(f"{name}={prints[name]};".encode())
    return h.hexdigest()


def sample_key(sample: Sample, sample_rate: int, digest: str) -> str:
    """The disk key of one sample's encoder output."""
    stat = os.stat(sample.audio)
    text = f"{Path(sample.audio).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sample.start}|{sample.end}|{sample_rate}|{digest}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class EncoderCache:
    """Dataset index -> encoder states; in memory, and in `folder` when given."""

    def __init__(self, keys: list[str] | None = None, folder: str | Path | None = None):
        self.memory: dict[int, torch.Tensor] = {}
        self.keys = keys or []
        self.folder = Path(folder) if folder else None
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)

    def get(self, index: int) -> torch.Tensor | None:
        """The cached states of sample `index`, or None."""
        if index in self.memory:
            return self.memory[index]
        if self.folder and index < len(self.keys):
            path = self.folder / f"{self.keys[index]}.safetensors"
            if path.is_file():
                try:
                    self.memory[index] = load_file(str(path))["states"]
                except (OSError, SafetensorError, KeyError):
                    return None  # a damaged entry is computed again and rewritten
                return self.memory[index]
        return None

    def __setitem__(self, index: int, states: torch.Tensor) -> None:
        self.memory[index] = states
        if self.folder and index < len(self.keys):
            # not durable: an entry lost at a power cut is only computed again, and no fsync per sample
            with atomic_file(self.folder / f"{self.keys[index]}.safetensors", prefix=".enc.", durable=False) as tmp:
                save_file({"states": states.detach().cpu().contiguous()}, str(tmp))
