"""Encoder -> projector -> LLM classes that ship with transformers 4.57.

Covers Qwen2AudioForConditionalGeneration ("qwen2_audio"), VoxtralForConditionalGeneration
("voxtral") and GraniteSpeechForConditionalGeneration ("granite_speech"): tiny random models
built from the real config classes, a matching example batch, and the training loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import (
    GraniteSpeechConfig,
    GraniteSpeechForConditionalGeneration,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    VoxtralConfig,
    VoxtralForConditionalGeneration,
)

from adaptkit.errors import AdaptkitError

_CLASSES = {
    "qwen2_audio": Qwen2AudioForConditionalGeneration,
    "voxtral": VoxtralForConditionalGeneration,
    "granite_speech": GraniteSpeechForConditionalGeneration,
}

AUDIO_TOKEN = "<|audio_pad|>"
MEL_BINS = 16  # tiny mel front end for all three encoders


def _text_config(tokenizer, tied: bool, vocab_size: int | None = None) -> dict:
    """A two-layer decoder; vocab leaves 64 spare rows like real checkpoints."""
    return {
        "vocab_size": vocab_size or len(tokenizer) + 64,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "max_position_embeddings": 256,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "tie_word_embeddings": tied,
    }


def _config(arch: str, tokenizer, tied: bool, vocab_size: int | None = None):
    """The real config class of `arch`, shrunk to a tiny size."""
    text = _text_config(tokenizer, tied, vocab_size)
    common = {
        "tie_word_embeddings": tied,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
    }
    audio_id = tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)
    if arch == "qwen2_audio":
        # The encoder insists on exactly 2 * max_source_positions mel frames (3000 in the real
        # model, 30 s padded); 32 positions gives 64 frames -> at most 16 audio tokens.
        audio = {"d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
                 "num_mel_bins": MEL_BINS, "max_source_positions": 32}
        return Qwen2AudioConfig(audio_config=audio, text_config=text, audio_token_index=audio_id, **common)
    if arch == "voxtral":
        # Same fixed chunk length rule as Qwen2Audio (one chunk = 2 * max_source_positions frames).
        # The projector stacks 4 encoder frames by reshaping to intermediate_size, which therefore
        # must be 4 * hidden_size: 32 positions -> 8 audio tokens per chunk.
        audio = {"hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
                 "num_mel_bins": MEL_BINS, "max_source_positions": 32}
        return VoxtralConfig(audio_config=audio, text_config=text, audio_token_id=audio_id, **common)
    if arch == "granite_speech":
        # Input frames are two stacked mel frames (input_dim = 2 * mel bins). The Q-Former
        # projector turns every window_size (15) encoder frames into 15 // 5 = 3 tokens.
        encoder = {"input_dim": 2 * MEL_BINS, "num_layers": 2, "hidden_dim": 32, "num_heads": 2, "dim_head": 16,
                   "output_dim": 16, "context_size": 16, "max_pos_emb": 16, "conv_kernel_size": 5, "dropout": 0.0}
        projector = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
                     "encoder_hidden_size": 32, "cross_attention_frequency": 1, "max_position_embeddings": 32}
        text = {**text, "model_type": "granite"}
        return GraniteSpeechConfig(text_config=text, encoder_config=encoder, projector_config=projector,
                                   audio_token_index=audio_id, has_lora_adapter=False, **common)
    raise AdaptkitError(f"hf_speech does not cover {arch!r}; it covers qwen2_audio, voxtral, granite_speech")


def build_tiny(arch: str, tokenizer, tied: bool = False, seed: int = 0, vocab_size: int | None = None,
               init_std: float | None = None, size: str = "tiny") -> nn.Module:
    """Build a tiny random float32 model of `arch` whose embeddings are tied or not, as asked."""
    if size != "tiny":
        raise AdaptkitError(f"model.size: {arch} is built in size 'tiny' only")
    config = _config(arch, tokenizer, tied, vocab_size)
    if init_std:
        for cfg in (config, config.get_text_config()):
            cfg.initializer_range = init_std
    torch.manual_seed(seed)
    model = _CLASSES[arch](config).float()
    same = model.get_input_embeddings().weight is model.get_output_embeddings().weight
    assert same == tied, f"{arch}: asked for tied={tied}, the weights say tied={same}"
    return model


def _audio_features(arch: str, model: nn.Module, batch_size: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Random features under the names the model expects; the last sample is shorter (not for Voxtral)."""
    if arch in ("qwen2_audio", "voxtral"):
        frames = 2 * model.config.audio_config.max_source_positions
        feats = {"input_features": torch.randn(batch_size, MEL_BINS, frames, generator=gen)}
        if arch == "qwen2_audio":  # real length per sample; the rest is padding up to `frames`
            lengths = torch.full((batch_size,), frames)
            lengths[-1] = frames * 3 // 4
            feats["feature_attention_mask"] = (torch.arange(frames) < lengths[:, None]).long()
        return feats
    lengths = torch.full((batch_size,), 40)  # granite_speech: stacked frames per sample
    lengths[-1] = 25
    features = torch.randn(batch_size, int(lengths.max()), 2 * MEL_BINS, generator=gen)
    features = features * (torch.arange(features.shape[1]) < lengths[:, None])[..., None]
    window, rate = model.config.window_size, model.config.downsample_rate
    sizes = torch.tensor([math.ceil(int(n) / window) * (window // rate) for n in lengths])
    mask = torch.arange(int(sizes.max())) < sizes[:, None]
    return {"input_features": features, "input_features_mask": mask}


def _audio_token_counts(arch: str, model: nn.Module, features: dict[str, torch.Tensor], batch_size: int) -> list[int]:
    """How many audio placeholders each sample needs, computed as the processor does."""
    if arch == "qwen2_audio":
        _, out = model.audio_tower._get_feat_extract_output_lengths(features["feature_attention_mask"].sum(-1))
        return out.tolist()
    if arch == "voxtral":  # one 2 * max_source_positions chunk per sample, 4 encoder frames a token
        audio = model.config.audio_config
        chunks = features["input_features"].shape[0] // batch_size
        return [chunks * audio.max_source_positions * audio.hidden_size // audio.intermediate_size] * batch_size
    return features["input_features_mask"].sum(-1).tolist()  # granite_speech: projector outputs kept


def _check_placeholders(arch: str, model: nn.Module, batch: dict[str, torch.Tensor]) -> None:
    """Raise ValueError unless every sample holds exactly the audio placeholders its features need.

    Needed because the models check at most the batch total (Qwen2Audio), only whether every sample
    is wrong (GraniteSpeech), or nothing (Voxtral); otherwise features silently shift between samples.
    """
    ids = batch["input_ids"]
    found = (ids == model.config.audio_token_id).sum(-1).tolist()
    expected = _audio_token_counts(arch, model, batch, ids.shape[0])
    if found != expected:
        raise ValueError(f"{arch}: audio placeholders per sample {found}, the features need {expected}")


def example_batch(
    arch: str, model: nn.Module, tokenizer, batch_size: int = 2, seed: int = 0, answers: list[str] | None = None
) -> dict[str, torch.Tensor]:
    """A small random batch with labels that `model(**batch)` accepts.

    Each sample is `<|im_start|>user <|audio_start|>` + N x `<|audio_pad|>` + `<|audio_end|><|im_end|>`
    then the assistant turn; only the answer and its `<|im_end|>` are supervised. Right padded.
    """
    gen = torch.Generator().manual_seed(seed)
    features = _audio_features(arch, model, batch_size, gen)
    counts = _audio_token_counts(arch, model, features, batch_size)
    answers = answers or ["thank you for calling", "order number one two three four"]
    rows, labels = [], []
    for i, n in enumerate(counts):
        prompt = ("<|im_start|>user\n<|audio_start|>" + AUDIO_TOKEN * n
                  + "<|audio_end|><|im_end|>\n<|im_start|>assistant\n")
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answers[i % len(answers)] + "<|im_end|>", add_special_tokens=False)["input_ids"]
        rows.append(prompt_ids + answer_ids)
        labels.append([-100] * len(prompt_ids) + answer_ids)
    width = max(len(r) for r in rows)
    batch = {
        "input_ids": torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        "labels": torch.tensor([r + [-100] * (width - len(r)) for r in labels]),
        **features,
    }
    _check_placeholders(arch, model, batch)
    return batch


def load_pretrained(arch: str, name: str, dtype: torch.dtype = torch.float32):
    """Load a checkpoint of `arch` (hub id or folder). Returns (model, tokenizer, feature extractor, processor)."""
    from transformers import AutoProcessor

    model = _CLASSES[arch].from_pretrained(name, dtype=dtype)
    processor = AutoProcessor.from_pretrained(name)
    return model, processor.tokenizer, processor.feature_extractor, processor


def forward(model: nn.Module, batch: dict[str, torch.Tensor]):
    """The model's own forward on one batch (outputs with `.loss` and `.logits`)."""
    return model(**batch)
