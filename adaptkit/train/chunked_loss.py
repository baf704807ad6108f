"""Weighted cross-entropy of the output layer at supervised positions, one chunk of positions at a time.

The logits of all supervised positions at once are positions x vocabulary floats: 4,096 positions
at 151,936 rows are 2.5 GB of float32. Here the positions go through the output layer in chunks of
at most `chunk` rows. With autograd on, each chunk's gradients (to its hidden states and to every
trainable tensor the output layer uses) are computed in the forward pass, right after its loss, and
its logits are freed: at most one chunk's logits live at any time, and no chunk goes through the
output layer twice. The loss is a scalar, so its gradients are linear in the gradient that arrives
in backward, which only scales the stored ones (Liger Kernel's fused linear cross-entropy does the
same). Activation checkpointing, which this replaces, ran every chunk's matmul again in backward:
at 852 positions x 151,936 rows that was a third of the step. When every position fits in one
chunk (the usual batch) plain autograd runs. Each position's loss and gradient depend on its own
logits only, so the chunked sum equals the unchunked one up to the order of float32 additions.

On CUDA, with `liger_kernel` importable and a plain `nn.Linear` output layer, Liger Kernel's fused
linear cross-entropy does the same in Triton (`fused_loss`); it is not exercised on a CPU machine.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

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


def trainable_leaves(logits_fn: Callable[[torch.Tensor], torch.Tensor], probe: torch.Tensor) -> list[torch.Tensor]:
    """Every tensor requiring grad that `logits_fn`'s output depends on, its input aside: the leaves of
    the autograd graph of one call on `probe` (one position). Found, not listed by the caller, so that
    an output layer with trained tensors of its own (token rows, LoRA, a bias) loses none of their
    gradients."""
    with torch.enable_grad():
        start = probe.detach().requires_grad_()
        out = logits_fn(start)
    leaves, seen, todo = [], set(), [out.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # an AccumulateGrad node holds a leaf
        if variable is not None and variable is not start and all(variable is not x for x in leaves):
            leaves.append(variable)
        todo.extend(next_node for next_node, _ in node.next_functions)
    return leaves


class _ChunkedCrossEntropy(torch.autograd.Function):
    """The weighted cross-entropy sum over chunks of positions, its gradients taken chunk by chunk in
    forward (each chunk's logits freed after it) and scaled by the incoming gradient in backward."""

    @staticmethod
    def forward(ctx, hidden, targets, weights, chunk, logits_fn, *params):
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.zeros_like(hidden)
        grad_params: list[torch.Tensor | None] = [None] * len(params)
        for start in range(0, hidden.shape[0], chunk):
            end = start + chunk
            with torch.enable_grad():
                part = hidden[start:end].detach().requires_grad_()
                loss = _chunk_loss(logits_fn, part, targets[start:end], weights[start:end])
                grads = torch.autograd.grad(loss, [part, *params], allow_unused=True)
            total += loss.detach()
            grad_hidden[start:end] = grads[0]
            for k, g in enumerate(grads[1:]):
                if g is not None:
                    grad_params[k] = g if grad_params[k] is None else grad_params[k] + g
        ctx.unused = [g is None for g in grad_params]
        ctx.save_for_backward(grad_hidden, *(g for g in grad_params if g is not None))
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_hidden, *stored = ctx.saved_tensors
        found = iter(stored)
        grad_params = [None if unused else next(found) * grad_total for unused in ctx.unused]
        return grad_hidden * grad_total, None, None, None, None, *grad_params


def weighted_cross_entropy(logits_fn: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor, targets: torch.Tensor,
                           weights: torch.Tensor, chunk: int) -> torch.Tensor:
    """sum_i weights[i] * CE(logits_fn(hidden[i]), targets[i]) over `hidden` (positions x width), at most
    `chunk` positions' logits at a time (gradients taken per chunk in forward when there are several
    and autograd is on)."""
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of positions, not {chunk}")
    n = hidden.shape[0]
    if n <= chunk:
        return _chunk_loss(logits_fn, hidden, targets, weights)
    if not torch.is_grad_enabled():
        return torch.stack([_chunk_loss(logits_fn, hidden[s:s + chunk], targets[s:s + chunk], weights[s:s + chunk])
                            for s in range(0, n, chunk)]).sum()
    params = trainable_leaves(logits_fn, hidden[:1])
    return _ChunkedCrossEntropy.apply(hidden, targets, weights, chunk, logits_fn, *params)


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
