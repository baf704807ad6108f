"""Qwen3-ASR (package `qwen_asr`): load by name, or build a tiny random copy offline.

Tree: `thinker.audio_tower` (encoder, with the projector `proj1 -> GELU -> proj2` inside it),
`thinker.model` (the Qwen3 LLM), `thinker.lm_head`. The outer class has no `forward`, so
training goes through `model.thinker`.
"""

from __future__ import annotations

import torch
from torch import nn

from adaptkit.errors import AdaptkitError
from adaptkit.models.base import Architecture, scatter_audio
from adaptkit.models.tokenizer import chatml_prompt
from adaptkit.stack import need_qwen_asr

AUDIO_TOKEN = "<|audio_pad|>"
N_MELS = 128
SIZES = {  # audio d_model, layers, FFN width / d_model; LLM hidden, layers, FFN width / hidden
    "tiny": (64, 2, 2, 128, 2, 2),
    "small": (192, 3, 2, 192, 3, 2),
    # Qwen3-ASR-1.7B's FFN widths (encoder 4x, LLM 3x) and head layout (head dim 128, half as many
    # KV heads): per token, encoder / LLM = 0.25 of the weights' FLOPs, and with 5,440 vocabulary
    # rows output layer / LLM = 0.22, the proportions of the 1.7B checkpoint (benchmarks/vs_peers.py)
    "proportional": (256, 4, 4, 512, 4, 3),
}
INIT_STD = 0.2


def _classes():
    """Import the qwen_asr classes and register them with the transformers Auto* factories."""
    need_qwen_asr("Qwen3-ASR in qwen_asr's layout (qwen3_asr; on transformers 5 use qwen3_asr_hf and adaptkit convert)")
    from qwen_asr.core.transformers_backend import (
        Qwen3ASRConfig,
        Qwen3ASRForConditionalGeneration,
        Qwen3ASRProcessor,
    )
    from transformers import AutoConfig, AutoModel, AutoProcessor

    try:
        AutoConfig.register("qwen3_asr", Qwen3ASRConfig)
        AutoModel.register(Qwen3ASRConfig, Qwen3ASRForConditionalGeneration)
        AutoProcessor.register(Qwen3ASRConfig, Qwen3ASRProcessor)
    except ValueError:  # already registered (by us or by qwen_asr.inference)
        pass
    return Qwen3ASRConfig, Qwen3ASRForConditionalGeneration, Qwen3ASRProcessor


def build_tiny_model(tokenizer, tied: bool = False, seed: int = 0, vocab_size: int | None = None,
                     init_std: float | None = None, size: str = "tiny") -> nn.Module:
    """A random Qwen3-ASR of the real classes: `tiny` (audio d_model 64 x 2 layers, LLM hidden 128 x 2),
    `small` (192 x 3 and 192 x 3, about 3 M parameters: a base that can learn to transcribe on CPU)
    or `proportional` (256 x 4 and 512 x 4 with the 1.7B checkpoint's FFN widths, see SIZES)."""
    if size not in SIZES:
        raise AdaptkitError(f"model.size: unknown size {size!r}; use one of {', '.join(SIZES)}")
    d_audio, n_audio, ffn_audio, d_text, n_text, ffn_text = SIZES[size]
    config_cls, model_cls, _ = _classes()
    vocab = vocab_size or len(tokenizer) + 64  # spare rows, like the real checkpoints
    text = dict(
        vocab_size=vocab, hidden_size=d_text, intermediate_size=ffn_text * d_text, num_hidden_layers=n_text,
        num_attention_heads=4, num_key_value_heads=2, head_dim=d_text // 4, max_position_embeddings=2048,
        # the real checkpoint's sections at its head dim (128), small ones below it
        rope_scaling={"rope_type": "default", "mrope_section": [24, 20, 20] if d_text // 4 >= 128 else [8, 4, 4],
                      "interleaved": True},
        tie_word_embeddings=tied, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    audio = dict(
        num_mel_bins=N_MELS, d_model=d_audio, encoder_layers=n_audio, encoder_attention_heads=4, encoder_ffn_dim=ffn_audio * d_audio,
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


def tiny_feature_extractor():
    """The Whisper-style log-mel front end Qwen3-ASR uses (128 bins, 16 kHz), built offline."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=N_MELS, sampling_rate=16000)


class Qwen3ASR(Architecture):
    """Qwen3-ASR in qwen_asr's layout (`thinker.audio_tower` with `proj1`/`proj2`, `thinker.model`)."""

    name = "qwen3_asr"
    model_types = ("qwen3_asr",)
    stack = "qwen-asr"
    # module-qualified: transformers 5 ships a class of the same bare name in another layout (qwen3_asr_hf)
    model_class_name = "qwen_asr.core.transformers_backend.modeling_qwen3_asr.Qwen3ASRForConditionalGeneration"
    components = {
        "encoder": "thinker.audio_tower", "projector": ["thinker.audio_tower.proj1", "thinker.audio_tower.proj2"],
        "llm": "thinker.model", "embeddings": "thinker.model.embed_tokens", "lm_head": "thinker.lm_head",
    }

    def build_tiny(self, tokenizer, *, tied=False, seed=0, vocab_size=None, init_std=None, size="tiny", **parts) -> nn.Module:
        return build_tiny_model(tokenizer, tied, seed, vocab_size, init_std, size)

    def tiny_feature_extractor(self, **parts):
        return tiny_feature_extractor()

    def load(self, name: str, dtype: torch.dtype = torch.float32):
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

    def features(self, feature_extractor, wave) -> torch.Tensor:
        out = feature_extractor(wave, sampling_rate=feature_extractor.sampling_rate, return_attention_mask=True,
                                padding="longest", truncation=False, return_tensors="pt")
        return out["input_features"][0, :, : int(out["attention_mask"][0].sum())]

    def prompt_ids(self, tokenizer, n_audio: int, system: str = "") -> list[int]:
        return chatml_prompt(tokenizer, n_audio, system)

    def audio_token_count(self, num_frames: int, model: nn.Module | None = None) -> int:
        from qwen_asr.core.transformers_backend.modeling_qwen3_asr import _get_feat_extract_output_lengths

        return int(_get_feat_extract_output_lengths(torch.tensor(num_frames)))

    def audio_token_id(self, model: nn.Module) -> int:
        return model.thinker.config.audio_token_id

    def encode_audio(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Captured with a hook on `proj1` while the tower runs its own code (nothing re-implemented)."""
        captured: list[torch.Tensor] = []
        hook = model.thinker.audio_tower.proj1.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            model.thinker.get_audio_features(features, feature_attention_mask=mask)
        finally:
            hook.remove()
        return captured

    def project(self, model: nn.Module, states: list[torch.Tensor]) -> torch.Tensor:
        tower = model.thinker.audio_tower
        return tower.proj2(tower.act(tower.proj1(torch.cat(states))))

    def llm_hidden(self, model, input_ids, attention_mask, audio_embeds) -> torch.Tensor:
        thinker = model.thinker
        embeds = scatter_audio(thinker.get_input_embeddings()(input_ids), input_ids, thinker.config.audio_token_id, audio_embeds)
        position_ids, _ = thinker.get_rope_index(attention_mask)
        return thinker.model(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                             use_cache=False).last_hidden_state

    def output_layer(self, model: nn.Module) -> nn.Module:
        return model.thinker.lm_head

    def text_model(self, model: nn.Module) -> nn.Module:
        return model.thinker

    def generate(self, model, input_ids, attention_mask, input_features=None, feature_attention_mask=None, **kwargs):
        """Through `model.thinker` (the outer class's generate drops options)."""
        audio = {"input_features": input_features, "feature_attention_mask": feature_attention_mask} if input_features is not None else {}
        return model.thinker.generate(input_ids=input_ids, attention_mask=attention_mask, **audio, **kwargs)
