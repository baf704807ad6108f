"""GLM-ASR (`GlmAsrForConditionalGeneration`, e.g. zai-org/GLM-ASR-Nano-2512).

Tree: `model.audio_tower` (a Whisper-style encoder with rotary positions and no attention mask,
read over windows of the feature extractor's `chunk_length`, 30 s in the real model, padding
included), `model.multi_modal_projector` (`linear_1 -> act -> linear_2` over 4 stacked encoder
frames: the tower's output reshaped to `audio_config.intermediate_size`), `model.language_model`
(Llama) and `lm_head`. The processor expands `<|pad|>` to (((frames - 1) // 2 + 1) - 4) // 4 + 1
placeholders over the sample's real frames.

The tiny tokenizer's chat template follows the prompt of GLM-ASR's own inference code
(`<|user|>\\n<|begin_of_audio|>...<|end_of_audio|>...<|assistant|>\\n`); a real checkpoint brings its own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adaptkit.models.native_audio import WINDOW_SECONDS, WindowedAudioLLM
from adaptkit.models.transformers_audio import MEL_BINS

GLM_TEMPLATE = (
    "{%- for m in messages -%}"
    "{{- '<|' + m.role + '|>\\n' -}}"
    "{%- if m.content is string -%}{{- m.content -}}"
    "{%- else -%}{%- for c in m.content -%}"
    "{%- if c.type == 'audio' or 'audio' in c -%}{{- '<|begin_of_audio|><|pad|><|end_of_audio|>' -}}"
    "{%- elif c.type == 'text' -%}{{- c.text -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)
"""GLM's role markers, one `<|begin_of_audio|><|pad|><|end_of_audio|>` per audio item."""


class GlmAsr(WindowedAudioLLM):
    """GLM-ASR: windowed rotary Whisper-style encoder -> 4-frame stacking MLP -> Llama."""

    name = "glmasr"
    model_types = ("glmasr",)
    model_class_name = "transformers.models.glmasr.modeling_glmasr.GlmAsrForConditionalGeneration"
    processor_class_name = "GlmAsrProcessor"
    audio_token = "<|pad|>"
    tiny_tokens = ("<|pad|>", "<|begin_of_audio|>", "<|end_of_audio|>", "<|system|>", "<|user|>", "<|assistant|>")
    tiny_chat_template = GLM_TEMPLATE
    tiny_eos = "<|user|>"  # GLM's chat models end an answer by opening the next user turn

    def tiny_config(self, tokenizer, text: dict[str, Any]):
        from transformers import GlmAsrConfig

        # intermediate_size is 4 x hidden_size: the projector reads 4 stacked encoder frames
        audio = {"hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
                 "num_mel_bins": MEL_BINS, "max_position_embeddings": 50 * WINDOW_SECONDS}
        return GlmAsrConfig(audio_config=audio, text_config=text, audio_token_id=tokenizer.convert_tokens_to_ids(self.audio_token),
                            tie_word_embeddings=text["tie_word_embeddings"])

    def window(self, model: nn.Module) -> int:
        return 2 * model.config.audio_config.max_position_embeddings  # 3000 frames (30 s) in the real model

    def tower_rows(self, model: nn.Module, chunks: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        hidden = self.part(model, "encoder")(chunks).last_hidden_state  # no mask: the window's padding is read too
        return hidden.reshape(chunks.shape[0], -1, model.config.audio_config.intermediate_size)
