"""The Qwen2.5-Omni thinker, audio only (`Qwen2_5OmniThinkerForConditionalGeneration`).

Tree: `audio_tower` (the Whisper-derived encoder of Qwen2-Audio, windowed, whose last layer `proj`
is the projector into the LLM's width), `visual` (the vision tower, group `other`: never trained
here), `model` (the Qwen2.5 LLM with multimodal RoPE) and `lm_head`; on transformers 5 the tower,
`visual` and the LLM (`language_model`) sit under `model`, the `lm_head` stays at the top. The
processor renders an audio item as `<|audio_bos|><|AUDIO|><|audio_eos|>` and expands `<|AUDIO|>`
to ((frames - 1) // 2 + 1 - 2) // 2 + 1 placeholders. Audio and text positions are consecutive in all
three RoPE sections, so without images or video the position ids are a running count.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adaptkit.models.transformers_audio import MEL_BINS, TransformersAudioLLM, layout, stack_layout

OMNI_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}{% if item['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen2.5-Omni's ChatML with audio items, for the tiny tokenizer."""


class Qwen25OmniThinker(TransformersAudioLLM):
    """Qwen2.5-Omni thinker: audio encoder (with its projection) -> Qwen2.5, audio only."""

    name = "qwen2_5_omni_thinker"
    model_types = ("qwen2_5_omni_thinker",)
    model_class_name = "Qwen2_5OmniThinkerForConditionalGeneration"
    components = stack_layout(v4=layout("audio_tower", ["audio_tower.proj"], "model", "lm_head"),
                              v5=layout("model.audio_tower", ["model.audio_tower.proj"], "model.language_model", "lm_head"))
    audio_token = "<|AUDIO|>"
    tiny_tokens = ("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>", "<|IMAGE|>", "<|VIDEO|>", "<|vision_bos|>", "<|vision_eos|>")
    tiny_chat_template = OMNI_TEMPLATE

    def model_class(self) -> type:
        from transformers import Qwen2_5OmniThinkerForConditionalGeneration

        return Qwen2_5OmniThinkerForConditionalGeneration

    def tiny_config(self, tokenizer, text: dict[str, Any]):
        from transformers import Qwen2_5OmniThinkerConfig

        ids = dict(zip(self.tiny_tokens, tokenizer.convert_tokens_to_ids(list(self.tiny_tokens))))
        audio = {"num_mel_bins": MEL_BINS, "d_model": 64, "encoder_layers": 1, "encoder_attention_heads": 2,
                 "encoder_ffn_dim": 128, "output_dim": text["hidden_size"], "n_window": 50, "max_source_positions": 1500}
        vision = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": text["hidden_size"],
                  "fullatt_block_indexes": [0]}
        text = {**text, "rope_scaling": {"rope_type": "default", "mrope_section": [2, 3, 3]}}
        return Qwen2_5OmniThinkerConfig(
            audio_config=audio, vision_config=vision, text_config=text, audio_token_index=ids["<|AUDIO|>"],
            image_token_index=ids["<|IMAGE|>"], video_token_index=ids["<|VIDEO|>"], audio_start_token_id=ids["<|audio_bos|>"],
            audio_end_token_id=ids["<|audio_eos|>"], vision_start_token_id=ids["<|vision_bos|>"],
            vision_end_token_id=ids["<|vision_eos|>"], tie_word_embeddings=text["tie_word_embeddings"],
            pad_token_id=tokenizer.pad_token_id)

    def audio_token_count(self, num_frames: int, model: nn.Module | None = None) -> int:
        after_conv = (num_frames - 1) // 2 + 1
        return (after_conv - 2) // 2 + 1

    def model_inputs(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"input_features": features, "feature_attention_mask": mask}

    def encode_audio(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """The tower's states just before `proj`, captured while the tower runs its own code (per
        sample on 4.57, all samples at once on 5) and cut at the tower's own output lengths."""
        captured: list[torch.Tensor] = []
        hook = self.part(model, "projector").register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            model.get_audio_features(features, feature_attention_mask=mask)
        finally:
            hook.remove()
        _, lengths = self.part(model, "encoder")._get_feat_extract_output_lengths(mask.sum(-1))
        return list(torch.cat(captured).split(lengths.tolist()))

    def project(self, model: nn.Module, states: list[torch.Tensor]) -> torch.Tensor:
        return self.part(model, "projector")(torch.cat(states))

    def llm_hidden(self, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   audio_embeds: torch.Tensor | None) -> torch.Tensor:
        embeds = self.embedded(model, input_ids, audio_embeds)
        positions = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        positions = positions[None].expand(3, *positions.shape)
        llm = self.part(model, "llm")
        return llm(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions, use_cache=False).last_hidden_state
