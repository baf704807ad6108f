"""Projectors from encoder states to LLM embeddings: frame stacking + linear, or Conv1d + Transformer.

Both take a list of per-sample states (frames, d_in) and return the projected rows of all samples
concatenated, so a batch gives the same rows as its samples one at a time.
"""

from __future__ import annotations

import torch
from torch import nn

from adaptkit.errors import AdaptkitError

TYPES = ("linear", "conv_transformer")


class FrameStackProjector(nn.Module):
    """Stack `stack` consecutive frames (the last group zero-padded) and map them with one Linear."""

    def __init__(self, d_in: int, d_out: int, stack: int = 4) -> None:
        super().__init__()
        self.stack = stack
        self.linear = nn.Linear(d_in * stack, d_out)

    def length(self, frames: int) -> int:
        """Output rows for `frames` input frames."""
        return -(-frames // self.stack)

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        rows = []
        for s in states:
            pad = self.length(s.shape[0]) * self.stack - s.shape[0]
            s = nn.functional.pad(s, (0, 0, 0, pad))
            rows.append(s.reshape(-1, s.shape[1] * self.stack))
        return self.linear(torch.cat(rows))


class ConvTransformerProjector(nn.Module):
    """Conv1d (kernel 3, stride 2) to the LLM width, GELU, then Transformer encoder layers over the
    shortened sequence (the 3-tag turn-taking seed's projector, 1024 -> 896 there)."""

    def __init__(self, d_in: int, d_out: int, layers: int = 2, heads: int = 8, stride: int = 2) -> None:
        super().__init__()
        if d_out % heads:
            raise AdaptkitError(f"model.projector.heads: {heads} does not divide the LLM width {d_out}")
        self.stride = stride
        self.conv = nn.Conv1d(d_in, d_out, kernel_size=3, stride=stride, padding=1)
        layer = nn.TransformerEncoderLayer(d_out, heads, dim_feedforward=4 * d_out, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def length(self, frames: int) -> int:
        """Output rows for `frames` input frames."""
        return (frames - 1) // self.stride + 1

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        x = nn.utils.rnn.pad_sequence(states, batch_first=True)  # zeros beyond each end, as the conv pads
        x = nn.functional.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        lengths = torch.tensor([self.length(s.shape[0]) for s in states], device=x.device)
        padding = torch.arange(x.shape[1], device=x.device)[None, :] >= lengths[:, None]  # on the GPU with x
        x = self.transformer(x, src_key_padding_mask=padding if padding.any() else None)
        return x[~padding]


def build(kind: str, d_in: int, d_out: int, stack: int = 4, layers: int = 2, heads: int = 8) -> nn.Module:
    """A projector of type `kind` (see TYPES)."""
    if kind == "linear":
        return FrameStackProjector(d_in, d_out, stack)
    if kind == "conv_transformer":
        return ConvTransformerProjector(d_in, d_out, layers, heads)
    raise AdaptkitError(f"model.projector.type: unknown projector {kind!r}; use one of {', '.join(TYPES)}")
