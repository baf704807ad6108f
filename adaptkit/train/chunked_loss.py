"""Weighted cross-entropy of the output layer at supervised positions, one chunk of positions at a time.

The logits of all supervised positions at once are positions x vocabulary floats: 4,096 positions
at 151,936 rows are 2.5 GB of float32. Here the positions go through the output layer in chunks of
at most `chunk` rows; with autograd on, each chunk runs under activation checkpointing, so its
logits are freed after its loss and recomputed in backward: at most one chunk's logits live at any
time, in forward and in backward. When every position fits in one chunk (the usual batch) nothing
is checkpointed or recomputed. Each position's loss and gradient depend on its own logits only, so
the chunked sum equals the unchunked one up to the order of float32 additions.

On CUDA, with `liger_kernel` importable and a plain `nn.Linear` output layer, Liger Kernel's fused
linear cross-entropy does the same in Triton (`fused_loss`); it is not exercised on a CPU machine.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from torch.utils.checkpoint import checkpoint

LOGIT_BUDGET_BYTES = 256 * 2**20
"""The float32 logits one chunk may hold (256 MiB: 441 positions at 151,936 rows)."""


def chunk_positions(vocab: int, budget: int = LOGIT_BUDGET_BYTES) -> int:
    """Positions per chunk so that one chunk's float32 logits over `vocab` columns fit in `budget` bytes."""
    return max(1, budget // (4 * vocab))


def output_rows(head: nn.Module) -> int:
    """The vocabulary size an output layer (plain or wrapped by peft) produces."""
    rows = getattr(head, "out_features", None)
    if isinstance(rows, int):
        return rows
    base = head.get_base_layer() if hasattr(head, "get_base_layer") else head
    return int(base.weight.shape[0])


def _chunk_loss(logits_fn: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor, targets: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
    losses = F.cross_entropy(logits_fn(hidden).float(), targets, reduction="none")
    return (losses * weights).sum()


def weighted_cross_entropy(logits_fn: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor, targets: torch.Tensor,
                           weights: torch.Tensor, chunk: int) -> torch.Tensor:
    """sum_i weights[i] * CE(logits_fn(hidden[i]), targets[i]) over `hidden` (positions x width), at most
    `chunk` positions' logits at a time (checkpointed chunks when there are several and autograd is on)."""
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of positions, not {chunk}")
    n = hidden.shape[0]
    if n <= chunk:
        return _chunk_loss(logits_fn, hidden, targets, weights)
    parts = []
    for start in range(0, n, chunk):
        args = (logits_fn, hidden[start:start + chunk], targets[start:start + chunk], weights[start:start + chunk])
        if torch.is_grad_enabled():
            parts.append(checkpoint(_chunk_loss, *args, use_reentrant=False))
        else:
            parts.append(_chunk_loss(*args))
    return torch.stack(parts).sum()


def liger_fused_linear_ce() -> Callable | None:
    """Liger Kernel's `liger_fused_linear_cross_entropy`, or None where `liger_kernel` is not importable."""
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy
    except ImportError:
        return None
    return liger_fused_linear_cross_entropy


def fused_loss(head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor,
               token_weights: dict[int, float]) -> torch.Tensor | None:
    """The weighted cross-entropy sum through Liger's fused linear cross-entropy, or None where it does
    not apply: not on CUDA, no `liger_kernel`, or an output layer that is not a plain `nn.Linear`
    (peft's wrappers, the token rows among them, are not one weight matrix Liger could take)."""
    if not hidden.is_cuda or type(head) is not nn.Linear or isinstance(head, BaseTunerLayer):
        return None
    fused = liger_fused_linear_ce()
    if fused is None:
        return None
    ce_weight = None
    if token_weights:  # per-class weights: Liger's "sum" reduction gives sum_i w[y_i] * CE_i, as the chunked path
        ce_weight = torch.ones(head.out_features, dtype=torch.float32, device=hidden.device)
        for token, weight in token_weights.items():
            ce_weight[token] = weight
    return fused(hidden, head.weight, targets, bias=head.bias, ce_weight=ce_weight, reduction="sum").float()
