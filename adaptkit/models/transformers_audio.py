"""What transformers' own audio-LLM classes share: one implementation, specialised per class.

Each class (Qwen2AudioForConditionalGeneration, VoxtralForConditionalGeneration,
GraniteSpeechForConditionalGeneration, Qwen2_5OmniThinkerForConditionalGeneration) has an audio
encoder, a projector and a causal LM, a processor with a chat template, and a `generate` that takes
its own audio inputs. The generic parts live here: loading with the checkpoint's processor, the
prompt rendered by the chat template (the processor's where it has one) with the audio
placeholder expanded to the count the processor would give, the LLM forward with the audio rows
at the placeholders, and generation through the class's own `generate`. A subclass gives the
class, its component map, its tiny config, its features and how its encoder and projector run.

Where the parts sit depends on the installed transformers (`adaptkit.stack`): 4.57 keeps the
encoder, projector and causal LM (`language_model`, with `.model` and `.lm_head`) at the top;
5 puts them under `model` (the LM as the bare decoder, `model.language_model`) and the lm_head at
the top. Each class declares one component map per stack and reaches its modules through the one
that applies (`part`), never through attribute chains.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from adaptkit.errors import AdaptkitError
from adaptkit.models.base import Architecture, scatter_audio
from adaptkit.stack import CURRENT

MEL_BINS = 16
"""Mel bins of the tiny front ends (the real checkpoints use 80 or 128)."""
INIT_STD = 0.2
"""Init std of tiny models: with 0.02 a frozen random lm_head cannot move the loss (see qwen3_asr)."""


def tiny_text_config(tokenizer, tied: bool, vocab_size: int | None, std: float) -> dict[str, Any]:
    """A two-layer decoder; vocab leaves 64 spare rows like real checkpoints."""
    return {
        "vocab_size": vocab_size or len(tokenizer) + 64, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "max_position_embeddings": 4096, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id, "tie_word_embeddings": tied, "initializer_range": std,
    }


def layout(encoder: str, projector: str | list[str], llm: str, lm_head: str) -> dict[str, str | list[str]]:
    """A component map whose embeddings are the decoder `llm`'s `embed_tokens`."""
    return {"encoder": encoder, "projector": projector, "llm": llm, "embeddings": f"{llm}.embed_tokens", "lm_head": lm_head}


def stack_layout(v4: dict[str, str | list[str]], v5: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
    """The component map of the installed stack: `v5` on transformers 5, `v4` on 4.57."""
    return v5 if CURRENT else v4


def nested_layout(encoder: str, projector: str) -> dict[str, str | list[str]]:
    """The component map, on the installed stack, of a class whose encoder, projector and causal LM
    are siblings (Qwen2-Audio, Voxtral, Granite Speech): at the top with the LM's head inside it on
    4.57, under `model` with the head at the top on 5."""
    return stack_layout(
        v4=layout(encoder, projector, "language_model.model", "language_model.lm_head"),
        v5=layout(f"model.{encoder}", f"model.{projector}", "model.language_model", "lm_head"))


class TransformersAudioLLM(Architecture):
    """An audio-LLM class that ships with transformers (see the module docstring)."""

    audio_token: ClassVar[str]
    """The placeholder the processor expands, one per audio in the rendered chat template."""
    tiny_tokens: ClassVar[tuple[str, ...]] = ()
    """Special tokens the tiny tokenizer adds for this class (placeholders, chat markers)."""
    tiny_chat_template: ClassVar[str]
    """The chat template of the tiny tokenizer (the real checkpoints bring their own)."""
    tiny_eos: ClassVar[str] = "<|im_end|>"

    @abstractmethod
    def model_class(self) -> type:
        """The transformers class."""

    @abstractmethod
    def tiny_config(self, tokenizer, text: dict[str, Any]):
        """The class's real config, shrunk, around the tiny decoder config `text`."""

    @abstractmethod
    def model_inputs(self, model: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """adaptkit's right-padded (batch, channels, frames) features and frame mask, as the class's
        forward and generate take them (its processor's output names and shapes)."""

    def user_content(self) -> Any:
        """The user turn's content as the chat template expects an audio item."""
        return [{"type": "audio", "audio": "audio"}]

    # --- building and loading ---------------------------------------------------------------

    def tiny_tokenizer(self, **parts: Any):
        from adaptkit.models.tokenizer import QWEN_SPECIAL_TOKENS, tiny_tokenizer

        tok = tiny_tokenizer(special_tokens=QWEN_SPECIAL_TOKENS + [t for t in self.tiny_tokens if t not in QWEN_SPECIAL_TOKENS])
        tok.eos_token = self.tiny_eos
        tok.chat_template = self.tiny_chat_template
        return tok

    def tiny_feature_extractor(self, **parts: Any):
        from transformers import WhisperFeatureExtractor

        return WhisperFeatureExtractor(feature_size=MEL_BINS, sampling_rate=16000)

    def build_tiny(self, tokenizer, *, tied: bool = False, seed: int = 0, vocab_size: int | None = None,
                   init_std: float | None = None, size: str = "tiny", **parts: Any) -> nn.Module:
        if size != "tiny":
            raise AdaptkitError(f"model.size: {self.name} is built in size 'tiny' only")
        if tied and not self.ties:
            import transformers

            raise AdaptkitError(f"{self.name}: tied=True, but transformers {transformers.__version__}'s {self.model_class_name} "
                                "declares no tied weights; build it untied")
        std = init_std or INIT_STD
        config = self.tiny_config(tokenizer, tiny_text_config(tokenizer, tied, vocab_size, std))
        for cfg in (config, config.get_text_config()):
            cfg.initializer_range = std
        torch.manual_seed(seed)
        model = self.model_class()(config).float()
        same = model.get_input_embeddings().weight is model.get_output_embeddings().weight
        if same != tied:
            raise AdaptkitError(f"{self.name}: asked for tied={tied}, the built weights say tied={same}")
        return model

    def load(self, name: str, dtype: torch.dtype):
        from transformers import AutoFeatureExtractor, AutoProcessor, AutoTokenizer
        from transformers.processing_utils import ProcessorMixin

        model = self.model_class().from_pretrained(name, dtype=dtype)
        try:
            processor = AutoProcessor.from_pretrained(name)
        except (ImportError, ValueError) as err:
            # Voxtral's processor needs mistral-common (its tekken tokenizer); a thinker saved alone
            # has a model type AutoProcessor does not map. A folder adaptkit merged from a tiny
            # model carries a plain tokenizer and feature extractor instead.
            if not (Path(name) / "tokenizer_config.json").is_file():
                raise AdaptkitError(f"{self.name}: cannot load the processor of {name}: {str(err).strip().splitlines()[0]}") from None
            processor = None
        if not isinstance(processor, ProcessorMixin):  # a folder adaptkit merged from a tiny model
            return model, AutoTokenizer.from_pretrained(name), AutoFeatureExtractor.from_pretrained(name), None
        tokenizer = processor.tokenizer
        if getattr(processor, "chat_template", None):  # the processor's template is the one that renders audio
            tokenizer.chat_template = processor.chat_template
        # Granite Speech's processor names its feature extractor `audio_processor`
        features = getattr(processor, "feature_extractor", None) or getattr(processor, "audio_processor", None)
        return model, tokenizer, features, processor

    # --- inputs -----------------------------------------------------------------------------

    def features(self, feature_extractor, wave) -> torch.Tensor:
        out = feature_extractor(wave, sampling_rate=feature_extractor.sampling_rate, return_attention_mask=True,
                                padding="longest", truncation=False, return_tensors="pt")
        return out["input_features"][0, :, : int(out["attention_mask"][0].sum())]

    def prompt_ids(self, tokenizer, n_audio: int, system: str = "") -> list[int]:
        """The chat template's prompt with its one audio placeholder repeated `n_audio` times, as the
        processor expands it."""
        if not getattr(tokenizer, "chat_template", None):
            raise AdaptkitError(f"{self.name}: the tokenizer has no chat template to build the prompt with")
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": self.user_content()}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if text.count(self.audio_token) != 1:
            raise AdaptkitError(f"{self.name}: the chat template renders {text.count(self.audio_token)} {self.audio_token}, expected 1")
        return tokenizer(text.replace(self.audio_token, self.audio_token * n_audio), add_special_tokens=False)["input_ids"]

    def audio_token_id(self, model: nn.Module) -> int:
        config = model.config  # Qwen2-Audio, Granite and the Omni thinker name it audio_token_index
        token = getattr(config, "audio_token_id", None)
        return int(token if token is not None else config.audio_token_index)

    # --- the forward pass in pieces -----------------------------------------------------------

    def part(self, model: nn.Module, component: str) -> nn.Module:
        """The module of `component` (encoder, projector, llm, embeddings, lm_head) where the installed
        stack's component map puts it."""
        paths = self.components[component]
        if not isinstance(paths, str):
            (paths,) = paths  # one module (a list only where the map must name it so)
        return model.get_submodule(paths)

    def embedded(self, model: nn.Module, input_ids: torch.Tensor, audio_embeds: torch.Tensor | None) -> torch.Tensor:
        """Input embeddings with the audio rows at the placeholders."""
        return scatter_audio(model.get_input_embeddings()(input_ids), input_ids, self.audio_token_id(model), audio_embeds)

    def llm_hidden(self, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   audio_embeds: torch.Tensor | None) -> torch.Tensor:
        embeds = self.embedded(model, input_ids, audio_embeds)
        return self.part(model, "llm")(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).last_hidden_state

    def output_layer(self, model: nn.Module) -> nn.Module:
        return model.get_output_embeddings()

    def text_model(self, model: nn.Module) -> nn.Module:
        """The module that holds the lm_head: the causal LM on 4.57, the model itself on 5 (its forward
        reads text alone)."""
        return model.get_submodule(self.components["lm_head"].rpartition(".")[0])

    def generate(self, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 input_features: torch.Tensor | None = None, feature_attention_mask: torch.Tensor | None = None,
                 **kwargs: Any):
        audio = self.model_inputs(model, input_features, feature_attention_mask) if input_features is not None else {}
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, **audio, **kwargs)
