"""Qwen3-ASR, transformers 5's native class (`Qwen3ASRForConditionalGeneration`, the `-hf` checkpoints
such as Qwen/Qwen3-ASR-1.7B-hf).

Tree: `model.audio_tower` (three stride-2 convolutions over 100-frame chunks, then windowed
attention; its output is packed: the valid rows of every sample, one after the other),
`model.multi_modal_projector` (`linear_1 -> act -> linear_2`, qwen_asr's `proj1`/`proj2`),
`model.language_model` (Qwen3) and `lm_head`. `Qwen3ASRFeatureExtractor` pads the mel axis to a
multiple of 2 x n_window (100) frames with `input_features_mask` marking the real ones; the processor
gives 13 placeholders per full chunk plus the last chunk's length after three stride-2 convolutions.

Not the `qwen3_asr` architecture: that is qwen_asr's class of the same name (`thinker.*` layout).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from adaptkit.models.native_audio import NativeAudioLLM
from adaptkit.models.transformers_audio import MEL_BINS

QWEN3_ASR_TEMPLATE = (
    "{%- set ns = namespace(system='', audio='') -%}"
    "{%- for m in messages -%}"
    "{%- if m.content is string -%}"
    "{%- if m.role == 'system' -%}{%- set ns.system = ns.system + m.content -%}{%- endif -%}"
    "{%- else -%}{%- for c in m.content -%}"
    "{%- if c.type == 'audio' or 'audio' in c or 'audio_url' in c -%}"
    "{%- set ns.audio = ns.audio + '<|audio_start|><|audio_pad|><|audio_end|>' -%}"
    "{%- elif m.role == 'system' and c.type == 'text' -%}{%- set ns.system = ns.system + c.text -%}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<|im_start|>system\\n' + ns.system + '<|im_end|>\\n<|im_start|>user\\n' + ns.audio + '<|im_end|>\\n' -}}"
    "{%- for m in messages if m.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' + (m.content if m.content is string else m.content | map(attribute='text') | join)"
    " + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
"""What the -hf checkpoints' processor template renders: the system text (always a system turn),
one `<|audio_start|><|audio_pad|><|audio_end|>` per audio item in the user turn, the assistant."""


class Qwen3ASRHF(NativeAudioLLM):
    """Qwen3-ASR in transformers 5's native layout: chunked conv encoder -> 2-layer MLP -> Qwen3."""

    name = "qwen3_asr_hf"
    model_types = ("qwen3_asr",)  # shared with qwen_asr's checkpoints: models/__init__._arch_of tells them apart
    model_class_name = "transformers.models.qwen3_asr.modeling_qwen3_asr.Qwen3ASRForConditionalGeneration"
    processor_class_name = "Qwen3ASRProcessor"
    audio_token = "<|audio_pad|>"
    tiny_chat_template = QWEN3_ASR_TEMPLATE
    named_tokens = {"audio_token": "<|audio_pad|>", "audio_bos_token": "<|audio_start|>", "audio_eos_token": "<|audio_end|>"}
    """The tokenizer attributes Qwen3ASRProcessor reads."""
    carried_files = ("qwen_asr_layout.json",)
    """`adaptkit convert`'s record of the qwen_asr original (adaptkit.convert.RECORD): with it a
    merged checkpoint converts back to qwen_asr's layout (the merged config's values win there)."""

    def tiny_tokenizer(self, **parts: Any):
        tok = super().tiny_tokenizer(**parts)
        tok._set_model_specific_special_tokens(dict(self.named_tokens))  # saved in tokenizer_config.json
        return tok

    def tiny_front_end(self):
        from transformers import Qwen3ASRFeatureExtractor

        return Qwen3ASRFeatureExtractor(feature_size=MEL_BINS)

    def tiny_config(self, tokenizer, text: dict[str, Any]):
        from transformers import Qwen3ASRConfig

        audio = {"num_mel_bins": MEL_BINS, "d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2,
                 "encoder_ffn_dim": 64, "output_dim": text["hidden_size"], "downsample_hidden_size": 16,
                 "n_window": 50, "n_window_infer": 400}
        return Qwen3ASRConfig(audio_config=audio, text_config=text, audio_token_id=tokenizer.convert_tokens_to_ids(self.audio_token),
                              tie_word_embeddings=text["tie_word_embeddings"], pad_token_id=tokenizer.pad_token_id,
                              eos_token_id=tokenizer.eos_token_id)

    def _n_window(self, model: nn.Module | None) -> int:
        return model.config.audio_config.n_window if model is not None else 50  # the processor's default

    def audio_token_count(self, num_frames: int, model: nn.Module | None = None) -> int:
        return int(self.processor_count(torch.tensor([num_frames]), self._n_window(model))[0])

    def model_inputs(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The mel axis zero-padded to a multiple of 2 x n_window, as the feature extractor pads it."""
        chunk = 2 * self._n_window(model)
        frames = math.ceil(features.shape[-1] / chunk) * chunk
        x = features.new_zeros(features.shape[0], features.shape[1], frames)
        x[..., : features.shape[-1]] = features * mask[:, None, :].to(features.dtype)
        m = mask.new_zeros(mask.shape[0], frames)
        m[:, : mask.shape[1]] = mask
        return {"input_features": x, "input_features_mask": m}

    def encode_audio(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        packed = self.part(model, "encoder")(**self.model_inputs(model, features, mask)).last_hidden_state
        return list(packed.split([self.audio_token_count(int(n), model) for n in mask.sum(dim=1).tolist()]))
