"""The one interface every Speech-LLM architecture implements.

An `Architecture` is a stateless description of one model class: how to load it by name, how to
build a tiny random copy offline, where its components sit (for the freezing DSL), and the pieces
training, decoding and the turn models call: features, prompt, placeholder count, encoder,
projector, LLM hidden states, logits and generation. Every method takes the model as its first
argument, so one instance serves every model of its class (and the peft-wrapped ones). Saving is
the model's own `save_pretrained`: a merged checkpoint reloads with the class's `from_pretrained`.

Register a new one with `adaptkit.models.register(MyArchitecture())`; nothing else needs editing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from adaptkit.errors import AdaptkitError


class Architecture(ABC):
    """One Speech-LLM architecture (encoder -> projector -> LLM)."""

    name: ClassVar[str]
    """The recipe's `model.tiny` / `model.arch` value."""
    model_types: ClassVar[tuple[str, ...]] = ()
    """config.json `model_type` values that select this architecture when `model.arch` is left out."""
    components: ClassVar[dict[str, str | list[str]] | None] = None
    """Component -> module path(s) for the freezing DSL (encoder, projector, llm, embeddings, lm_head,
    optionally towers); None when the model class knows its own parts (`component_paths()`) or the
    structural fallback finds them."""
    model_class_name: ClassVar[str | None] = None
    """Class name the component map is registered under: `type(model).__name__`, or the module-qualified
    `module.Class` where two classes share a bare name (see adaptkit.freeze.components.ARCH_MAPS)."""
    stack: ClassVar[str | None] = None
    """The one software stack the architecture needs (`qwen-asr` or `current`, see adaptkit.stack);
    None: it runs on both."""
    ties: ClassVar[bool] = True
    """Whether the installed model class can tie its output layer to the input embeddings (`tied=True`)."""
    carried_files: ClassVar[tuple[str, ...]] = ()
    """Files of the base checkpoint folder a merged checkpoint carries over as they are (when the base
    folder has them): records its own `save_pretrained` does not write, such as a layout record."""

    # --- building and loading ---------------------------------------------------------------

    @abstractmethod
    def build_tiny(self, tokenizer, *, tied: bool, seed: int, vocab_size: int | None, init_std: float | None,
                   size: str, **parts: Any) -> nn.Module:
        """A random float32 model of the real config classes, small enough for CPU tests."""

    def tiny_tokenizer(self, **parts: Any):
        """The offline tokenizer tiny models of this architecture use (its placeholders, chat template)."""
        from adaptkit.models.tokenizer import tiny_tokenizer

        return tiny_tokenizer()

    def tiny_feature_extractor(self, **parts: Any):
        """The audio front end of a tiny model (None: text only)."""
        return None

    @abstractmethod
    def load(self, name: str, dtype: torch.dtype) -> tuple[nn.Module, Any, Any, Any]:
        """Load a checkpoint by hub id or folder: (model, tokenizer, feature extractor, processor or None)."""

    # --- inputs -----------------------------------------------------------------------------

    @abstractmethod
    def features(self, feature_extractor, wave) -> torch.Tensor:
        """Encoder input of one mono waveform at the extractor's rate, unpadded: (channels, frames)."""

    @abstractmethod
    def prompt_ids(self, tokenizer, n_audio: int, system: str = "") -> list[int]:
        """Token ids of the chat prompt up to the assistant's answer, with `n_audio` audio placeholders."""

    @abstractmethod
    def audio_token_count(self, num_frames: int, model: nn.Module | None = None) -> int:
        """Audio placeholders the model fills for `num_frames` feature frames (as its processor counts)."""

    @abstractmethod
    def audio_token_id(self, model: nn.Module) -> int:
        """Id of the audio placeholder token."""

    # --- the forward pass in pieces -----------------------------------------------------------

    @abstractmethod
    def encode_audio(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Encoder outputs just before the projector, one tensor per sample (features right-padded,
        `mask` marks real frames). The caller decides whether autograd is on."""

    def projected_length(self, model: nn.Module, states: int) -> int:
        """Rows the projector makes of `states` encoder states (default: one each)."""
        return states

    @abstractmethod
    def project(self, model: nn.Module, states: list[torch.Tensor]) -> torch.Tensor:
        """The projector on per-sample encoder states; rows of all samples concatenated."""

    @abstractmethod
    def llm_hidden(self, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   audio_embeds: torch.Tensor | None) -> torch.Tensor:
        """Last hidden states of the LLM with `audio_embeds` at the placeholders (None: text only)."""

    @abstractmethod
    def output_layer(self, model: nn.Module) -> nn.Module:
        """The lm_head (possibly wrapped by peft)."""

    def logits(self, model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits of LLM hidden states, as the class's own forward computes them
        (default: the output layer alone)."""
        return self.output_layer(model)(hidden)

    @abstractmethod
    def text_model(self, model: nn.Module) -> nn.Module:
        """The causal LM that reads text alone (the end-of-turn scorer)."""

    @abstractmethod
    def generate(self, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 input_features: torch.Tensor | None = None, feature_attention_mask: torch.Tensor | None = None,
                 **kwargs: Any):
        """Generation by the model's own `generate` from adaptkit's batch layout (prompt left-padded,
        features right-padded); sequences start with `input_ids`."""


def pad_features(features: torch.Tensor, mask: torch.Tensor, frames: int) -> torch.Tensor:
    """Features right-padded to exactly `frames` frames, the padding filled with each sample's floor.

    Whisper-style encoders read a fixed window (2 x max_source_positions frames, 30 s in the real
    models); their feature extractors pad the waveform with zeros, whose log-mel is the clip's floor
    (its minimum after the max - 8 clamp), so the minimum of the real frames is what they see."""
    if features.shape[-1] > frames:
        raise AdaptkitError(f"audio of {features.shape[-1]} frames is longer than the encoder's window of {frames}")
    out = features.new_zeros(features.shape[0], features.shape[1], frames)
    for i, n in enumerate(mask.sum(dim=1).tolist()):
        out[i, :, :n] = features[i, :, :n]
        out[i, :, n:] = features[i, :, :n].min() if n else 0.0
    return out


def scatter_audio(embeds: torch.Tensor, input_ids: torch.Tensor, audio_id: int, audio_embeds: torch.Tensor | None) -> torch.Tensor:
    """Input embeddings with the audio rows placed at the placeholder positions, in order."""
    if audio_embeds is None:
        return embeds
    mask = (input_ids == audio_id).unsqueeze(-1).expand_as(embeds)
    return embeds.masked_scatter(mask, audio_embeds.to(embeds.dtype))
