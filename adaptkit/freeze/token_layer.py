"""Token rows that train without rebuilding the embedding or output matrix on every forward.

peft's `TrainableTokensLayer.forward_adapters` (peft/tuners/trainable_tokens/layer.py, peft 0.21.2)
calls `get_merged_weights`, which builds `W = base.weight.index_copy(0, index, delta)`: a full
copy of the matrix (151,936 rows at the real Qwen3 vocabulary) on every forward, and in backward
a full-size gradient of that copy (the embedding's dense backward, the linear's `grad^T @ x`).
`SparseTokensLayer` keeps peft's layer (its parameters `trainable_tokens_delta`, its state dict,
`merge`, `unmerge`, `get_merged_weights`, tying through `tied_adapter`) and replaces only the
unmerged forward with what that copy amounts to:

- embedding: look up with the frozen weight, then put the trained rows at the positions that
  hold a trained token (scaled embeddings get their scale afterwards, as peft applies it);
- output layer: the frozen matmul, then the trained rows' logits put into their vocabulary columns
  (`index_add_` of the difference to the frozen rows on the logits, whose size is positions x
  vocabulary, never the matrix's).

Anything peft's forward handles that this one does not (`max_norm`, `scale_grad_by_freq`, sparse
gradients, a bias on the output layer, extra arguments, a base layer that is neither
`nn.Embedding` nor `nn.Linear`) goes to peft's own forward unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
from torch import nn


class SparseTokensLayer(TrainableTokensLayer):
    """peft's `TrainableTokensLayer` with a forward that never materialises the full weight."""

    def _sparse_forward_fits(self, args: tuple, kwargs: dict) -> bool:
        """True when the sparse forward computes exactly what peft's forward does for this call."""
        base = self.base_layer
        if args or kwargs:
            return False
        if isinstance(base, nn.Embedding):
            return base.max_norm is None and not base.scale_grad_by_freq and not base.sparse
        return isinstance(base, nn.Linear) and base.bias is None

    def _rows(self, active_adapters: list[str], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sorted token ids, their trained rows) of the active adapters, in the dtype of `like`.

        The overlap check (as in peft) makes the adapters' ids disjoint, so concatenating them is
        what peft's successive `index_copy` calls give."""
        ids = torch.tensor([i for a in active_adapters for i in self.token_indices[a]], dtype=torch.long, device=like.device)
        rows = torch.cat([self.trainable_tokens_delta[a].to(like) for a in active_adapters])
        order = torch.argsort(ids)
        return ids[order], rows[order]

    def _embed(self, x: torch.Tensor, ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        base = self.base_layer
        out = F.embedding(x, base.weight, padding_idx=base.padding_idx)
        slot = torch.searchsorted(ids, x.to(ids.dtype)).clamp_max(ids.numel() - 1)  # int32 ids too
        hit = ids[slot] == x
        picked = rows[slot]
        if base.padding_idx is not None:  # F.embedding gives the padding row no gradient: neither does peft's copy
            pad = (x == base.padding_idx).unsqueeze(-1)
            picked = torch.where(pad, picked.detach(), picked)
        out = torch.where(hit.unsqueeze(-1), picked, out)
        scale = self._get_embed_scale()
        return out * scale.to(out.dtype) if scale is not None else out

    def _project(self, x: torch.Tensor, ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        # The trained columns are added as a difference, not copied over: index_copy_'s backward
        # clones the whole positions x vocabulary gradient to zero those columns, index_add_'s passes
        # it through. The columns then hold x.W[ids] + x.(rows - W[ids]), x.rows within float
        # rounding (exactly at peft's initialisation, where rows == W[ids]).
        weight = self.base_layer.weight
        logits = F.linear(x, weight)  # a fresh tensor the matmul's backward does not read: written in place
        return logits.index_add_(logits.dim() - 1, ids, F.linear(x, rows - weight[ids]))

    def forward_adapters(self, x: torch.Tensor, active_adapters, *args, **kwargs) -> torch.Tensor:
        """peft's forward, except that unmerged token rows are applied without a full-matrix copy."""
        if self.disable_adapters or not active_adapters or self.merged or not self._sparse_forward_fits(args, kwargs):
            return super().forward_adapters(x, active_adapters, *args, **kwargs)
        self._check_overlapping_tokens(active_adapters)
        ids, rows = self._rows(list(active_adapters), self.base_layer.weight)
        if ids.numel() == 0:
            return self.base_layer(x)
        if isinstance(self.base_layer, nn.Embedding):
            return self._embed(x, ids, rows)
        return self._project(x, ids, rows)
