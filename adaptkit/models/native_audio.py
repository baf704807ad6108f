"""What transformers 5's native speech LLMs share (Qwen3-ASR `-hf`, AudioFlamingo3, GLM-ASR).

In transformers 5 these classes keep everything under `model.*`: `model.audio_tower` (the encoder),
`model.multi_modal_projector` (`linear_1 -> act -> linear_2`: what trains), `model.language_model`
(the decoder, a base model without a head) and `lm_head` at the top; their processors give
`input_features` with `input_features_mask`. The generic class (transformers_audio.py) reaches
every module through the component map, so what is here is only what these classes share beyond it:
the refusal before transformers 5, the processor's placeholder count and windowed features.

They need transformers 5: on the qwen-asr stack (4.57) every entry point refuses in one line, and
nothing here imports a 5.x name at module level, so adaptkit imports with them registered.
"""

from __future__ import annotations

import importlib
import math
from abc import abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from adaptkit.models.transformers_audio import TransformersAudioLLM
from adaptkit.stack import need_current

NATIVE_COMPONENTS: dict[str, str | list[str]] = {
    "encoder": "model.audio_tower", "projector": "model.multi_modal_projector", "llm": "model.language_model",
    "embeddings": "model.language_model.embed_tokens", "lm_head": "lm_head",
}
"""Where the components of every native class sit (the freezing DSL's architecture map)."""


class NativeAudioLLM(TransformersAudioLLM):
    """A speech LLM transformers 5 ships natively (see the module docstring)."""

    components = NATIVE_COMPONENTS
    stack = "current"
    model_class_name: ClassVar[str]
    """The module-qualified class name: Qwen3-ASR's native class shares its bare name with qwen_asr's."""
    processor_class_name: ClassVar[str]
    """The transformers processor class whose placeholder count the architecture uses."""

    def model_class(self) -> type:
        need_current(f"model.arch: {self.name}")
        module, _, name = self.model_class_name.rpartition(".")
        return getattr(importlib.import_module(module), name)

    def processor_class(self) -> type:
        """The class's processor (the placeholder count and the prompt are checked against it)."""
        need_current(f"model.arch: {self.name}")
        import transformers

        return getattr(transformers, self.processor_class_name)

    # --- building and loading: refused in one line before transformers 5 ---------------------

    def tiny_tokenizer(self, **parts: Any):
        need_current(f"model.tiny: {self.name}")
        return super().tiny_tokenizer(**parts)

    def tiny_feature_extractor(self, **parts: Any):
        need_current(f"model.tiny: {self.name}")
        return self.tiny_front_end()

    @abstractmethod
    def tiny_front_end(self):
        """The tiny model's feature extractor: the checkpoint's own class, at MEL_BINS bins."""

    def build_tiny(self, tokenizer, **kwargs: Any) -> nn.Module:
        need_current(f"model.tiny: {self.name}")
        return super().build_tiny(tokenizer, **kwargs)

    def load(self, name: str, dtype: torch.dtype):
        need_current(f"model.arch: {self.name}")
        return super().load(name, dtype)

    # --- the forward pass: the generic class's, through NATIVE_COMPONENTS ----------------------

    def project(self, model: nn.Module, states: list[torch.Tensor]) -> torch.Tensor:
        return self.part(model, "projector")(torch.cat(states))

    def processor_count(self, frames: torch.Tensor, *args: Any) -> torch.Tensor:
        """Placeholders for `frames` mel frames, by the processor's own `_get_audio_token_length`
        (it reads no processor state, so it runs without building a processor)."""
        return torch.as_tensor(self.processor_class()._get_audio_token_length(None, frames, *args))


SILENCE_BELOW_MAX = 2.0
"""Whisper's log-mel front end clamps at its window's maximum minus 8 (log10) and scales by 1/4, so
the zero samples it pads a window with read as that window's maximum minus 2."""


def window_chunks(features: torch.Tensor, mask: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Each sample's real frames cut into `window`-frame chunks, as the processors cut audio into
    their feature extractor's windows: the last chunk padded with the log-mel of silence (the
    chunk's maximum minus SILENCE_BELOW_MAX, what the extractor's zero padding gives), a frame mask
    per chunk, and how many chunks each sample has."""
    chunks, masks, counts = [], [], []
    for i, n in enumerate(mask.sum(dim=1).tolist()):
        k = max(1, math.ceil(n / window))
        for j in range(k):
            real = features[i, :, j * window : min(n, (j + 1) * window)]
            chunk = features.new_full((features.shape[1], window), float(real.max()) - SILENCE_BELOW_MAX if real.numel() else 0.0)
            chunk[:, : real.shape[-1]] = real
            chunks.append(chunk)
            masks.append((torch.arange(window, device=mask.device) < real.shape[-1]).to(mask.dtype))
        counts.append(k)
    return torch.stack(chunks), torch.stack(masks), counts


def per_sample(rows: list[torch.Tensor], counts: list[int]) -> list[torch.Tensor]:
    """Per-chunk rows joined back into one tensor per sample (`counts` chunks each, in order)."""
    out, start = [], 0
    for k in counts:
        out.append(torch.cat(rows[start : start + k]))
        start += k
    return out


WINDOW_SECONDS = 2
"""The tiny windowed models' window (the real ones: 30 s); 2 s makes the tests' clips span several."""


class WindowedAudioLLM(NativeAudioLLM):
    """A native class whose processor cuts audio into its feature extractor's fixed windows
    (AudioFlamingo3, GLM-ASR) and counts placeholders over each sample's real frames."""

    @abstractmethod
    def window(self, model: nn.Module) -> int:
        """Mel frames per window, as the model's config fixes them."""

    @abstractmethod
    def tower_rows(self, model: nn.Module, chunks: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """The encoder's output per window (windows, rows, width), as the projector reads it."""

    def tiny_front_end(self):
        from transformers import WhisperFeatureExtractor

        from adaptkit.models.transformers_audio import MEL_BINS

        return WhisperFeatureExtractor(feature_size=MEL_BINS, sampling_rate=16000, chunk_length=WINDOW_SECONDS,
                                       return_attention_mask=True)

    def features(self, feature_extractor, wave) -> torch.Tensor:
        """Log-mel frames window by window, as the processor computes them: each window of the
        extractor's `chunk_length` on its own (its own maximum, its own zero padding), trimmed."""
        size = feature_extractor.n_samples
        parts = [feature_extractor(wave[start : start + size], sampling_rate=feature_extractor.sampling_rate, padding="max_length",
                                   max_length=size, truncation=True, return_attention_mask=True, return_tensors="pt")
                 for start in range(0, max(len(wave), 1), size)]
        return torch.cat([p["input_features"][0, :, : int(p["attention_mask"][0].sum())] for p in parts], dim=-1)

    def audio_token_count(self, num_frames: int, model: nn.Module | None = None) -> int:
        return int(self.processor_count(torch.tensor(num_frames)))

    def model_inputs(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        chunks, masks, _ = window_chunks(features, mask, self.window(model))
        return {"input_features": chunks, "input_features_mask": masks}

    def encode_audio(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        chunks, masks, counts = window_chunks(features, mask, self.window(model))
        rows = self.tower_rows(model, chunks, masks)
        lengths = self.processor_count(masks.sum(dim=-1)).tolist()
        return per_sample([r[: int(n)] for r, n in zip(rows, lengths)], counts)
