"""Qwen2-Audio (`Qwen2AudioForConditionalGeneration`, e.g. Qwen/Qwen2-Audio-7B-Instruct).

Tree: `audio_tower` (a Whisper encoder ending in a stride-2 average pool), `multi_modal_projector`
(one linear layer), `language_model` (Qwen2); under `model` on transformers 5 (transformers_audio).
The encoder reads a fixed 30 s window of 3000 mel frames; the processor expands `<|AUDIO|>` to
((frames - 1) // 2 + 1 - 2) // 2 + 1 placeholders.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adaptkit.models.base import pad_features
from adaptkit.models.transformers_audio import MEL_BINS, TransformersAudioLLM, nested_layout
from adaptkit.stack import CURRENT


class Qwen2Audio(TransformersAudioLLM):
    """Qwen2-Audio: Whisper encoder -> linear projector -> Qwen2."""

    name = "qwen2_audio"
    model_types = ("qwen2_audio",)
    model_class_name = "Qwen2AudioForConditionalGeneration"
    components = nested_layout("audio_tower", "multi_modal_projector")
    ties = not CURRENT  # transformers 5's class declares no tied weights (4.57's ties through its causal LM)
    audio_token = "<|AUDIO|>"
    tiny_tokens = ("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>")

    @property
    def tiny_chat_template(self) -> str:  # the processor's own default template
        from transformers import Qwen2AudioProcessor

        return Qwen2AudioProcessor.default_chat_template.fget(None)

    def model_class(self) -> type:
        from transformers import Qwen2AudioForConditionalGeneration

        return Qwen2AudioForConditionalGeneration

    def tiny_config(self, tokenizer, text: dict[str, Any]):
        from transformers import Qwen2AudioConfig

        # 1000 positions: a 20 s window (the real model: 1500, 30 s), one layer of width 32.
        audio = {"d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
                 "num_mel_bins": MEL_BINS, "max_source_positions": 1000}
        return Qwen2AudioConfig(audio_config=audio, text_config=text, audio_token_index=tokenizer.convert_tokens_to_ids(self.audio_token),
                                tie_word_embeddings=text["tie_word_embeddings"], pad_token_id=tokenizer.pad_token_id)

    def audio_token_count(self, num_frames: int, model: nn.Module | None = None) -> int:
        after_conv = (num_frames - 1) // 2 + 1
        return (after_conv - 2) // 2 + 1

    def _window(self, model: nn.Module) -> int:
        return 2 * model.config.audio_config.max_source_positions

    def model_inputs(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        window = self._window(model)
        padded_mask = torch.zeros(mask.shape[0], window, dtype=mask.dtype, device=mask.device)
        padded_mask[:, : mask.shape[1]] = mask
        return {"input_features": pad_features(features, mask, window), "feature_attention_mask": padded_mask}

    def encode_audio(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        inputs = self.model_inputs(model, features, mask)
        x, tower = inputs["input_features"], self.part(model, "encoder")
        conv_lengths, out_lengths = tower._get_feat_extract_output_lengths(mask.sum(-1))
        # The attention mask over the encoder's frames after its stride-2 conv, built as the class's
        # forward builds it (transformers 4.57 has no get_audio_features for Qwen2-Audio).
        width = (x.shape[-1] - 2) // 2 + 1
        padding = torch.arange(width, device=x.device)[None, :] >= conv_lengths[:, None]
        attention = torch.zeros(x.shape[0], 1, width, width, dtype=x.dtype, device=x.device)
        attention.masked_fill_(padding[:, None, None, :], float("-inf"))
        hidden = tower(x, attention_mask=attention).last_hidden_state
        return [hidden[i, : int(n)] for i, n in enumerate(out_lengths.tolist())]

    def project(self, model: nn.Module, states: list[torch.Tensor]) -> torch.Tensor:
        return self.part(model, "projector")(torch.cat(states))
