"""The `proportional` tiny Qwen3-ASR has the FLOP proportions of Qwen3-ASR-1.7B (benchmarks/vs_peers.py)."""

from __future__ import annotations

import pytest
from torch import nn

pytest.importorskip("qwen_asr")

from adaptkit.models import build_tiny  # noqa: E402


def _linear_weights(module: nn.Module) -> int:
    """Multiply-adds per token of the Linear layers in `module` (their weight sizes)."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))


def test_proportional_size_has_the_1_7b_flop_proportions():
    model, _ = build_tiny("qwen3_asr", size="proportional", vocab_size=5_440)
    thinker = model.thinker
    llm = _linear_weights(thinker.model)
    encoder = sum(_linear_weights(layer) for layer in thinker.audio_tower.layers)
    head = thinker.lm_head.weight.numel()
    # Qwen3-ASR-1.7B's LLM (Qwen3-1.7B): 28 layers of 12.6 M attention + 37.7 M MLP weights against an
    # lm_head of 2,048 x 151,936: 0.22; encoder / LLM 0.25 as the issue gives it for the 1.7B checkpoint
    assert head / llm == pytest.approx(0.22, abs=0.01)
    assert encoder / llm == pytest.approx(0.25, abs=0.01)
    assert thinker.config.text_config.head_dim == 128
