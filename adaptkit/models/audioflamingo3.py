"""AudioFlamingo3 (`AudioFlamingo3ForConditionalGeneration`, e.g. nvidia/audio-flamingo-3-hf).

Tree: `model.audio_tower` (a Whisper encoder over fixed windows of 2 x max_source_positions mel
frames, 30 s in the real model, ending in a stride-2 average pool and a LayerNorm),
`model.multi_modal_projector` (`linear_1 -> act -> linear_2`), `model.language_model` (Qwen2) and
`lm_head`. The processor cuts audio into the feature extractor's windows (its `chunk_length`), each
padded to the full window with `input_features_mask` marking the real frames, and expands `<sound>`
to ((frames - 1) // 2 + 1 - 2) // 2 + 1 placeholders over the sample's real frames.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adaptkit.models.native_audio import WINDOW_SECONDS, WindowedAudioLLM
from adaptkit.models.transformers_audio import MEL_BINS

AF3_TEMPLATE = (
    "{%- if messages[0].role != 'system' -%}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}{%- endif -%}"
    "{%- for m in messages if m.content is not none -%}"
    "{{- '<|im_start|>' + m.role + '\\n' -}}"
    "{%- if m.content is string -%}{{- m.content -}}"
    "{%- else -%}{%- set ns = namespace(audio=false, text='') -%}"
    "{%- for c in m.content -%}"
    "{%- if c.type == 'audio' or 'audio' in c -%}{%- set ns.audio = true -%}"
    "{%- elif c.type == 'text' or 'text' in c -%}{%- set ns.text = ns.text + c.text -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if ns.audio -%}{{- '<sound>' -}}{%- endif -%}{{- ns.text -}}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
"""What the -hf checkpoint's processor template renders: ChatML with a default system turn, one
`<sound>` before the text of a message holding audio."""


class AudioFlamingo3(WindowedAudioLLM):
    """AudioFlamingo3: windowed Whisper encoder with average pool -> 2-layer MLP -> Qwen2."""

    name = "audioflamingo3"
    model_types = ("audioflamingo3",)
    model_class_name = "transformers.models.audioflamingo3.modeling_audioflamingo3.AudioFlamingo3ForConditionalGeneration"
    processor_class_name = "AudioFlamingo3Processor"
    ties = False  # the class never ties its output layer to the embeddings
    audio_token = "<sound>"
    tiny_tokens = ("<sound>",)
    tiny_chat_template = AF3_TEMPLATE

    def tiny_config(self, tokenizer, text: dict[str, Any]):
        from transformers import AudioFlamingo3Config

        audio = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                 "num_mel_bins": MEL_BINS, "max_source_positions": 50 * WINDOW_SECONDS}
        return AudioFlamingo3Config(audio_config=audio, text_config=text, audio_token_id=tokenizer.convert_tokens_to_ids(self.audio_token),
                                    tie_word_embeddings=text["tie_word_embeddings"], pad_token_id=tokenizer.pad_token_id)

    def window(self, model: nn.Module) -> int:
        return 2 * model.config.audio_config.max_source_positions  # 3000 frames (30 s) in the real model

    def tower_rows(self, model: nn.Module, chunks: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return self.part(model, "encoder")(chunks, input_features_mask=masks).last_hidden_state
