"""Trainable tensors in float32 over frozen weights kept in the recipe's dtype.

A recipe that loads its checkpoint in bfloat16 (`model.dtype: bfloat16`) and trains under mixed
precision (`train.precision: bf16` or `fp16`) keeps every frozen weight in bfloat16 (half the
memory), while what trains (the projector, token rows, LoRA) gets float32 data before the optimizer
is built, so the optimizer state is float32 too and small updates are not rounded away (a bfloat16
weight of 1.0 cannot take a step under 0.0039). Autocast runs the matmuls in the low dtype either
way; peft's token rows and LoRA layers cast what they add to their base layer's dtype. Without mixed
precision a bfloat16 recipe trains in bfloat16 as it is (nothing autocasts a float32 projector's
input there). Dev scoring decodes with the trained tensors in their loaded dtype (`in_loaded_dtypes`:
the model `adaptkit eval` builds from the adapter; decoding is not autocast, whose dtype would reach
the feature extractor), and before a merged checkpoint is written they go back to that dtype, so the
checkpoint is in the recipe's dtype throughout.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn

MIXED = ("bf16", "fp16")
"""`train.precision` values under which trainable tensors are kept in float32."""


def upcast_trainable(named: Iterable[tuple[str, nn.Parameter]], precision: str) -> dict[str, torch.dtype]:
    """Give each trainable floating parameter of `named` float32 data in place, under mixed
    `precision` (before the optimizer exists, so its state follows); returns name -> the dtype it had,
    for the parameters it changed (none without mixed precision or where all are float32 already)."""
    if precision not in MIXED:
        return {}
    changed: dict[str, torch.dtype] = {}
    for name, param in named:
        if param.requires_grad and param.is_floating_point() and param.dtype != torch.float32:
            changed[name] = param.dtype
            param.data = param.data.to(torch.float32)
    return changed


def restore_dtypes(model: nn.Module, changed: dict[str, torch.dtype]) -> None:
    """Give the parameters `upcast_trainable` changed their loaded dtype back (before merging)."""
    if not changed:
        return
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, dtype in changed.items():
            if name in named:
                named[name].data = named[name].data.to(dtype)


@contextmanager
def in_loaded_dtypes(model: nn.Module, changed: dict[str, torch.dtype]) -> Iterator[None]:
    """Inside the block the parameters `upcast_trainable` changed hold their loaded dtype (a copy);
    their float32 data is put back exactly afterwards, so training goes on unrounded."""
    named = dict(model.named_parameters())
    kept = {name: named[name].data for name in changed if name in named}
    try:
        for name, data in kept.items():
            named[name].data = data.to(changed[name])
        yield
    finally:
        for name, data in kept.items():
            named[name].data = data
