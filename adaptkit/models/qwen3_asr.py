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
SIZES = {"tiny": (64, 2, 128, 2), "small": (192, 3, 192, 3)}  # audio d_model, layers; LLM hidden, layers
INIT_STD = 0.2


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
    """Load a Qwen3-ASR checkpoint (hub id or folder). Returns (model, tokenizer, feature extractor, processor)."""
    _, model_cls, processor_cls = _classes()
    model = model_cls.from_pretrained(name, dtype=dtype)
    try:
        processor = processor_cls.from_pretrained(name)
    except (OSError, ValueError, AttributeError, TypeError):
        # a checkpoint adaptkit merged from a tiny model carries a tokenizer and a feature extractor
        # but no Qwen3-ASR processor (its tokenizer lacks the processor's audio token attributes)
        from transformers import AutoTokenizer, WhisperFeatureExtractor

        return model, AutoTokenizer.from_pretrained(name), WhisperFeatureExtractor.from_pretrained(name), None
    return model, processor.tokenizer, processor.feature_extractor, processor


def tiny_feature_extractor():
    """The Whisper-style log-mel front end Qwen3-ASR uses (128 bins, 16 kHz), built offline."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=N_MELS, sampling_rate=16000)


def features(feature_extractor, wave) -> torch.Tensor:
    """Log-mel features (n_mels, frames) of one mono 16 kHz waveform, unpadded."""
    out = feature_extractor(wave, sampling_rate=feature_extractor.sampling_rate, return_attention_mask=True,
                            padding="longest", truncation=False, return_tensors="pt")
    return out["input_features"][0, :, : int(out["attention_mask"][0].sum())]


def prompt_ids(tokenizer, n_audio: int, system: str = "") -> list[int]:
    """Token ids of the chat prompt: system context, user turn holding `n_audio` placeholders, assistant start."""
    text = (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n<|audio_start|>" + AUDIO_TOKEN * n_audio
            + "<|audio_end|><|im_end|>\n<|im_start|>assistant\n")
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_audio(model: nn.Module, input_features: torch.Tensor, feature_attention_mask: torch.Tensor) -> list[torch.Tensor]:
    """Audio-tower outputs just before the projector, one (tokens, d_model) tensor per sample.

    Captured with a hook on the projector's first layer while the tower runs its own code, so
    nothing of the encoder is re-implemented; the caller decides whether autograd is on.
    """
    captured: list[torch.Tensor] = []
    hook = model.thinker.audio_tower.proj1.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    try:
        model.thinker.get_audio_features(input_features, feature_attention_mask=feature_attention_mask)
    finally:
        hook.remove()
    return captured


def project(model: nn.Module, states: list[torch.Tensor]) -> torch.Tensor:
    """The projector (proj1 -> GELU -> proj2) on per-sample pre-projector audio states, concatenated."""
    tower = model.thinker.audio_tower
    return tower.proj2(tower.act(tower.proj1(torch.cat(states))))


def llm_hidden(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, audio_embeds: torch.Tensor | None) -> torch.Tensor:
    """Last hidden states of the LLM with the audio embeddings placed at the placeholders (none: text only)."""
    thinker = model.thinker
    embeds = thinker.get_input_embeddings()(input_ids)
    if audio_embeds is not None:
        mask = (input_ids == thinker.config.audio_token_id).unsqueeze(-1).expand_as(embeds)
        embeds = embeds.masked_scatter(mask, audio_embeds.to(embeds.dtype))
    position_ids, _ = thinker.get_rope_index(attention_mask)
    return thinker.model(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False).last_hidden_state


def generate(model: nn.Module, **kwargs):
    """Greedy generation through `model.thinker` (the outer class's generate drops options)."""
    return model.thinker.generate(**kwargs)


def text_model(model: nn.Module) -> nn.Module:
    """The causal LM that reads text alone (for the end-of-turn scorer): the thinker."""
    return model.thinker


def audio_token_id(model: nn.Module) -> int:
    """Id of the audio placeholder token."""
    return model.thinker.config.audio_token_id


def output_layer(model: nn.Module) -> nn.Module:
    """The lm_head (possibly wrapped by peft)."""
    return model.thinker.lm_head


def projected_length(model: nn.Module, states: int) -> int:
    """Rows the projector makes of `states` encoder states: one each (proj1 -> GELU -> proj2)."""
    return states


def audio_token_count(num_frames: int, model: nn.Module | None = None) -> int:
    """Number of audio placeholder tokens the encoder produces for `num_frames` mel frames (any model)."""
    from qwen_asr.core.transformers_backend.modeling_qwen3_asr import _get_feat_extract_output_lengths

    return int(_get_feat_extract_output_lengths(torch.tensor(num_frames)))


def build_tiny(arch: str, tokenizer, tied: bool = False, seed: int = 0, vocab_size: int | None = None,
               init_std: float | None = None, size: str = "tiny") -> nn.Module:
    """A random Qwen3-ASR of the real classes: `tiny` (audio d_model 64 x 2 layers, LLM hidden 128 x 2)
    or `small` (192 x 3 and 192 x 3, about 3 M parameters: a base that can learn to transcribe on CPU)."""
    if size not in SIZES:
        raise AdaptkitError(f"model.size: unknown size {size!r}; use one of {', '.join(SIZES)}")
    d_audio, n_audio, d_text, n_text = SIZES[size]
    config_cls, model_cls, _ = _classes()
    vocab = vocab_size or len(tokenizer) + 64  # spare rows, like the real checkpoints
    text = dict(
        vocab_size=vocab, hidden_size=d_text, intermediate_size=2 * d_text, num_hidden_layers=n_text,
        num_attention_heads=4, num_key_value_heads=2, head_dim=d_text // 4, max_position_embeddings=2048,
        rope_scaling={"rope_type": "default", "mrope_section": [8, 4, 4], "interleaved": True},
        tie_word_embeddings=tied, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    audio = dict(
        num_mel_bins=N_MELS, d_model=d_audio, encoder_layers=n_audio, encoder_attention_heads=4, encoder_ffn_dim=2 * d_audio,
        output_dim=d_text, n_window=50, n_window_infer=400, downsample_hidden_size=32, max_source_positions=1500,
    )
    thinker = dict(
        audio_config=audio, text_config=text, audio_token_id=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN),
        audio_start_token_id=tokenizer.convert_tokens_to_ids("<|audio_start|>"), tie_word_embeddings=tied,
        pad_token_id=tokenizer.pad_token_id,
    )
    # A wider default init than the usual 0.02: with std 0.02 a frozen random lm_head spreads logits
    # by about 2.5 at most, so no adapter can lower the loss much; 0.2 makes the frozen LLM responsive.
    std = init_std or INIT_STD
    thinker["initializer_range"] = text["initializer_range"] = std
    config = config_cls(thinker_config=thinker, tie_word_embeddings=tied, initializer_range=std)
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
