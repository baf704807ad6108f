"""Granite Speech (`GraniteSpeechForConditionalGeneration`, e.g. ibm-granite/granite-speech-3.3-2b).

Tree: `encoder` (a Conformer over pairs of stacked 80-bin log-mel frames, 160 inputs per frame),
`projector` (a windowed Q-Former: every 15 encoder frames become 15 // 5 = 3 rows; the tiny
model keeps 15 // 3 = 5, which a projector-only adapter on a random LLM needs to learn), and
`language_model` (Granite); under `model` on transformers 5. The processor expands `<|audio|>` to
ceil(frames / window_size) x (window_size // downsample_rate) placeholders.

Logits: on transformers 4.57 the class runs its Granite causal LM, which divides them by the text
config's `logits_scaling`; on transformers 5 it applies its own `lm_head` and does not divide.
adaptkit computes them as the installed class does, so training and the class's `generate` agree.

Each sample is encoded and projected on its own: the class's forward runs a padded batch through
the encoder without a mask, so a shorter sample's last window would see its neighbours' padding.

Features: the checkpoint's `GraniteSpeechFeatureExtractor` (it needs torchaudio, which has no build
for the torch this project pins); the tiny model reads Whisper-style log-mel frames stacked in
pairs, the same layout (2 x mel bins per frame).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from adaptkit.errors import AdaptkitError
from adaptkit.stack import CURRENT
from adaptkit.models.transformers_audio import MEL_BINS, TransformersAudioLLM, nested_layout

GRANITE_TEMPLATE = (
    "{% for message in messages %}<|start_of_role|>{{ message['role'] }}<|end_of_role|>{{ message['content'] }}<|end_of_text|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|start_of_role|>assistant<|end_of_role|>{% endif %}"
)
"""Granite 3's chat layout (role markers, `<|end_of_text|>` after each turn), for the tiny tokenizer."""


class GraniteSpeech(TransformersAudioLLM):
    """Granite Speech: Conformer -> windowed Q-Former -> Granite."""

    name = "granite_speech"
    model_types = ("granite_speech",)
    model_class_name = "GraniteSpeechForConditionalGeneration"
    components = nested_layout("encoder", "projector")
    audio_token = "<|audio|>"
    tiny_tokens = ("<|audio|>", "<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>")
    tiny_chat_template = GRANITE_TEMPLATE
    tiny_eos = "<|end_of_text|>"

    def user_content(self) -> Any:
        return self.audio_token  # Granite's template takes text content with the placeholder in it

    def model_class(self) -> type:
        from transformers import GraniteSpeechForConditionalGeneration

        return GraniteSpeechForConditionalGeneration

    def tiny_config(self, tokenizer, text: dict[str, Any]):
        from transformers import GraniteSpeechConfig

        encoder = {"input_dim": 2 * MEL_BINS, "num_layers": 2, "hidden_dim": 64, "num_heads": 2, "dim_head": 16,
                   "output_dim": 16, "context_size": 16, "max_pos_emb": 16, "conv_kernel_size": 5, "dropout": 0.0}
        projector = {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 128,
                     "encoder_hidden_size": 64, "cross_attention_frequency": 1, "max_position_embeddings": 32,
                     "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
        return GraniteSpeechConfig(text_config={**text, "model_type": "granite"}, encoder_config=encoder, projector_config=projector,
                                   audio_token_index=tokenizer.convert_tokens_to_ids(self.audio_token), has_lora_adapter=False, downsample_rate=3,
                                   tie_word_embeddings=text["tie_word_embeddings"], pad_token_id=tokenizer.pad_token_id)

    def features(self, feature_extractor, wave) -> torch.Tensor:
        if type(feature_extractor).__name__ == "WhisperFeatureExtractor":  # the tiny front end: stack pairs of frames
            mel = super().features(feature_extractor, wave)
            frames = mel.shape[-1] // 2 * 2
            return mel[:, :frames].T.reshape(frames // 2, 2 * mel.shape[0]).T
        out = feature_extractor(wave)
        return out["input_features"][0].T

    def projected_length(self, model: nn.Module, states: int) -> int:
        window, rate = model.config.window_size, model.config.downsample_rate
        return math.ceil(states / window) * (window // rate)

    def audio_token_count(self, num_frames: int, model: nn.Module | None = None) -> int:
        if model is None:
            raise AdaptkitError("granite_speech: the placeholder count depends on the model's projector window")
        return self.projected_length(model, num_frames)

    def model_inputs(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        frames = mask.sum(dim=1)
        sizes = torch.tensor([self.projected_length(model, int(n)) for n in frames.tolist()], device=mask.device)
        rows = torch.arange(int(sizes.max()), device=mask.device)[None, :] < sizes[:, None]
        x = features.transpose(1, 2) * mask[..., None].to(features.dtype)
        return {"input_features": x, "input_features_mask": rows}

    def encode_audio(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        x = features.transpose(1, 2)
        encoder = self.part(model, "encoder")
        outs = [encoder(x[i : i + 1, :n]) for i, n in enumerate(mask.sum(dim=1).tolist())]
        return [getattr(out, "last_hidden_state", out)[0] for out in outs]  # a tensor on 4.57, an output object on 5

    def project(self, model: nn.Module, states: list[torch.Tensor]) -> torch.Tensor:
        projector = self.part(model, "projector")
        return torch.cat([projector(s[None])[0] for s in states])

    def logits(self, model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        out = self.output_layer(model)(hidden)
        return out if CURRENT else out / model.config.text_config.logits_scaling  # see the module docstring
