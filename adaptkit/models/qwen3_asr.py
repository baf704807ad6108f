"""Qwen3-ASR (package `qwen_asr`): load by name, or build a tiny random copy offline.

Tree: `thinker.audio_tower` (encoder, with the projector `proj1 -> GELU -> proj2` inside it),
`thinker.model` (the Qwen3 LLM), `thinker.lm_head`. The outer class has no `forward`, so
training goes through `model.thinker`.
"""

from __future__ import annotations

import torch
from torch import nn

from adaptkit.errors import AdaptkitError

ARCH = "qwen3_asr"
AUDIO_TOKEN = "<|audio_pad|>"
N_MELS = 128


def _classes():
    """Import the qwen_asr classes and register them with the transformers Auto* factories."""
    try:
        from qwen_asr.core.transformers_backend import (
            Qwen3ASRConfig,
            Qwen3ASRForConditionalGeneration,
            Qwen3ASRProcessor,
        )
    except ImportError as err:  # the extra is optional: say how to get it
        raise AdaptkitError(f"Qwen3-ASR needs the qwen_asr package: pip install 'adaptkit[qwen3-asr]' ({err})")
    from transformers import AutoConfig, AutoModel, AutoProcessor

    try:
        AutoConfig.register("qwen3_asr", Qwen3ASRConfig)
        AutoModel.register(Qwen3ASRConfig, Qwen3ASRForConditionalGeneration)
        AutoProcessor.register(Qwen3ASRConfig, Qwen3ASRProcessor)
    except ValueError:  # already registered (by us or by qwen_asr.inference)
        pass
    return Qwen3ASRConfig, Qwen3ASRForConditionalGeneration, Qwen3ASRProcessor


def load_pretrained(arch: str, name: str, dtype: torch.dtype = torch.float32):
    """Load a Qwen3-ASR checkpoint (hub id or folder) and its tokenizer. Returns (model, tokenizer)."""
    _, model_cls, processor_cls = _classes()
    model = model_cls.from_pretrained(name, dtype=dtype)
    processor = processor_cls.from_pretrained(name)
    return model, processor.tokenizer


def audio_token_count(num_frames: int) -> int:
    """Number of audio placeholder tokens the encoder produces for `num_frames` mel frames."""
    from qwen_asr.core.transformers_backend.modeling_qwen3_asr import _get_feat_extract_output_lengths

    return int(_get_feat_extract_output_lengths(torch.tensor(num_frames)))


def build_tiny(arch: str, tokenizer, tied: bool = False, seed: int = 0) -> nn.Module:
    """A tiny random Qwen3-ASR (audio d_model 64 x 2 layers, LLM hidden 128 x 2 layers)."""
    config_cls, model_cls, _ = _classes()
    vocab = len(tokenizer) + 64  # spare rows, like the real checkpoints
    text = dict(
        vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=2048,
        rope_scaling={"rope_type": "default", "mrope_section": [8, 4, 4], "interleaved": True},
        tie_word_embeddings=tied, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    audio = dict(
        num_mel_bins=N_MELS, d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128,
        output_dim=128, n_window=50, n_window_infer=400, downsample_hidden_size=32, max_source_positions=1500,
    )
    thinker = dict(
        audio_config=audio, text_config=text, audio_token_id=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN),
        audio_start_token_id=tokenizer.convert_tokens_to_ids("<|audio_start|>"), tie_word_embeddings=tied,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = config_cls(thinker_config=thinker, tie_word_embeddings=tied)
    torch.manual_seed(seed)
    model = model_cls(config).float()
    thinker_module = model.thinker
    if tied:
        thinker_module.lm_head.weight = thinker_module.model.embed_tokens.weight
    else:
        thinker_module.lm_head.weight = nn.Parameter(thinker_module.lm_head.weight.detach().clone())
    return model


def example_batch(arch: str, model: nn.Module, tokenizer, batch_size: int = 2, seed: int = 0,
                  answers: list[str] | None = None, num_frames: int = 200) -> dict[str, torch.Tensor]:
    """A random batch in the Qwen3-ASR prompt layout, with labels on the text after the audio."""
    g = torch.Generator().manual_seed(seed)
    n_audio = audio_token_count(num_frames)
    ids = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = ids("<|im_start|>user\n<|audio_start|>") + ids(AUDIO_TOKEN) * n_audio + ids("<|audio_end|><|im_end|>\n<|im_start|>assistant\n")
    answers = answers or ["hello order"]
    rows = [prompt + ids(f"language English<asr_text>{answers[i % len(answers)]}") + [tokenizer.eos_token_id] for i in range(batch_size)]
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    labels = torch.tensor([[-100] * len(prompt) + r[len(prompt):] + [-100] * (width - len(r)) for r in rows])
    return {
        "input_ids": input_ids,
        "attention_mask": (labels != -100).long() | (torch.arange(width) < len(prompt)).long(),
        "input_features": torch.randn(batch_size, N_MELS, num_frames, generator=g),
        "feature_attention_mask": torch.ones(batch_size, num_frames, dtype=torch.long),
        "labels": labels,
    }


def forward(model: nn.Module, batch: dict[str, torch.Tensor]):
    """Forward one batch through `model.thinker` (the outer class has no forward)."""
    return model.thinker(**batch)
