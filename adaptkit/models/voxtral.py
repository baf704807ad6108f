"""Voxtral (`VoxtralForConditionalGeneration`, e.g. mistralai/Voxtral-Mini-3B-2507).

Tree: `audio_tower` (a Whisper encoder), `multi_modal_projector` (two linear layers over 4
stacked encoder frames), `language_model` (Mistral); under `model` on transformers 5. Audio is cut
into 30 s chunks of 3000 mel frames (the last one padded), each read separately; every chunk gives
1500 / 4 = 375 placeholders.

The prompt follows mistral-common's instruct layout, `<s>[INST][BEGIN_AUDIO]` + `[AUDIO]` x n +
`[/INST]` (a system text goes in `[SYSTEM_PROMPT]...[/SYSTEM_PROMPT]` first), built from the
tokenizer's own token ids: Voxtral's processor renders audio through mistral-common, not a Jinja
chat template.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from adaptkit.errors import AdaptkitError
from adaptkit.models.base import pad_features
from adaptkit.models.transformers_audio import MEL_BINS, TransformersAudioLLM, nested_layout
from adaptkit.stack import CURRENT


class Voxtral(TransformersAudioLLM):
    """Voxtral: Whisper encoder in 30 s chunks -> 4-frame stacking MLP -> Mistral."""

    name = "voxtral"
    model_types = ("voxtral",)
    model_class_name = "VoxtralForConditionalGeneration"
    components = nested_layout("audio_tower", "multi_modal_projector")
    ties = not CURRENT  # transformers 5's class declares no tied weights (4.57's ties through its causal LM)
    audio_token = "[AUDIO]"
    tiny_tokens = ("<s>", "</s>", "[INST]", "[/INST]", "[BEGIN_AUDIO]", "[AUDIO]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]")
    tiny_chat_template = ""
    tiny_eos = "</s>"

    def model_class(self) -> type:
        from transformers import VoxtralForConditionalGeneration

        return VoxtralForConditionalGeneration

    def tiny_config(self, tokenizer, text: dict[str, Any]):
        from transformers import VoxtralConfig

        # 256 positions: 5.12 s chunks of 512 frames (the real model: 1500, 30 s). The projector stacks
        # 4 encoder frames by reshaping to intermediate_size, which therefore is 4 x hidden_size.
        audio = {"hidden_size": 32, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
                 "num_mel_bins": MEL_BINS, "max_source_positions": 256}
        return VoxtralConfig(audio_config=audio, text_config=text, audio_token_id=tokenizer.convert_tokens_to_ids(self.audio_token),
                             tie_word_embeddings=text["tie_word_embeddings"], pad_token_id=tokenizer.pad_token_id)

    def prompt_ids(self, tokenizer, n_audio: int, system: str = "") -> list[int]:
        names = ["<s>", "[INST]", "[BEGIN_AUDIO]", "[AUDIO]", "[/INST]"] + (["[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"] if system else [])
        ids = dict(zip(names, tokenizer.convert_tokens_to_ids(names)))
        missing = [n for n, i in ids.items() if i is None or i == tokenizer.unk_token_id]
        if missing:
            raise AdaptkitError(f"voxtral: the tokenizer has no {', '.join(missing)}")
        head = [ids["<s>"]]
        if system:
            head += [ids["[SYSTEM_PROMPT]"]] + tokenizer(system, add_special_tokens=False)["input_ids"] + [ids["[/SYSTEM_PROMPT]"]]
        return head + [ids["[INST]"], ids["[BEGIN_AUDIO]"]] + [ids["[AUDIO]"]] * n_audio + [ids["[/INST]"]]

    def _chunk(self, model: nn.Module | None) -> tuple[int, int]:
        """(mel frames per chunk, placeholders per chunk)."""
        audio = model.config.audio_config
        return 2 * audio.max_source_positions, audio.max_source_positions * audio.hidden_size // audio.intermediate_size

    def audio_token_count(self, num_frames: int, model: nn.Module | None = None) -> int:
        if model is None:
            raise AdaptkitError("voxtral: the placeholder count depends on the model's chunk size")
        frames, per_chunk = self._chunk(model)
        return math.ceil(num_frames / frames) * per_chunk

    def model_inputs(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        frames, _ = self._chunk(model)
        chunks = []
        for i, n in enumerate(mask.sum(dim=1).tolist()):
            count = math.ceil(n / frames)
            padded = pad_features(features[i : i + 1, :, :n], mask[i : i + 1, :n], count * frames)[0]
            chunks += list(padded.split(frames, dim=-1))
        return {"input_features": torch.stack(chunks)}

    def encode_audio(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        frames, _ = self._chunk(model)
        hidden = self.part(model, "encoder")(self.model_inputs(model, features, mask)["input_features"]).last_hidden_state
        counts = [math.ceil(n / frames) for n in mask.sum(dim=1).tolist()]
        width = model.config.audio_config.intermediate_size
        return [h.reshape(-1, width) for h in hidden.split(counts)]

    def project(self, model: nn.Module, states: list[torch.Tensor]) -> torch.Tensor:
        return self.part(model, "projector")(torch.cat(states))
