"""Fingerprints of frozen weights, to prove that training moved nothing it should not."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def _digest(t: torch.Tensor) -> str:
    data = t.detach().cpu().contiguous().view(-1).view(torch.uint8)
    return hashlib.blake2b(data.numpy().tobytes(), digest_size=16).hexdigest()


def fingerprint(model: nn.Module) -> dict[str, str]:
    """Name -> digest of the bytes of every parameter that does not train, and of every buffer
    (running statistics of a frozen BatchNorm count as frozen weights)."""
    out = {name: _digest(p) for name, p in model.named_parameters() if not p.requires_grad}
    out.update({f"buffer:{name}": _digest(b) for name, b in model.named_buffers()})
    return out


def moved(model: nn.Module, before: dict[str, str]) -> list[str]:
    """Names of parameters fingerprinted in `before` whose bytes have changed (or vanished)."""
    now = fingerprint(model)
    return [name for name, digest in before.items() if now.get(name) != digest]

