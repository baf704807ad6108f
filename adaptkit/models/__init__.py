"""Model families: how to load each by name and how to build a tiny random copy offline.

Every family module offers:
  build_tiny(arch, tokenizer, tied, seed, ...) -> model   a random model of the real config class
  example_batch(arch, model, tokenizer, batch_size, seed) -> dict   a small batch with labels
  load_pretrained(arch, name, dtype) -> (model, tokenizer, feature extractor, processor)   by hub id or path
  forward(model, batch) -> outputs   the forward pass (with .loss and .logits) through the module that has one

Families that train (qwen3_asr, composed) also offer the pieces the training loss, the decoder and
the turn models use:
  features(fe, wave), prompt_ids(tokenizer, n_audio, system), audio_token_count(frames, model)
  encode_audio(model, feats, mask) -> per-sample encoder states
  projected_length(model, states) -> placeholders those states fill; project(model, states) -> rows
  llm_hidden(model, ids, mask, audio_rows), output_layer(model), text_model(model),
  audio_token_id(model), generate(model, **kwargs)
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

import torch
from huggingface_hub.errors import HFValidationError
from torch import nn

from adaptkit.errors import AdaptkitError

# architecture name -> module that implements it
FAMILIES: dict[str, str] = {
    "qwen3_asr": "adaptkit.models.qwen3_asr",
    "qwen2_audio": "adaptkit.models.hf_speech",
    "voxtral": "adaptkit.models.hf_speech",
    "granite_speech": "adaptkit.models.hf_speech",
    "composed": "adaptkit.models.composed",
}


def family(arch: str) -> ModuleType:
    """Return the module that implements `arch`, or fail with the list of supported ones."""
    if arch not in FAMILIES:
        raise AdaptkitError(f"unknown architecture {arch!r}; supported: {', '.join(sorted(FAMILIES))}")
    return importlib.import_module(FAMILIES[arch])


def build_tiny(arch: str, *, tied: bool = False, seed: int = 0, vocab_size: int | None = None, init_std: float | None = None,
               size: str = "tiny", **parts):
    """Build a tiny random model of `arch` and its tokenizer, offline. Returns (model, tokenizer).

    `vocab_size` sets the rows of the embedding and lm_head (default: the tokenizer plus 64 spare
    rows); a real-size vocabulary (151,936) makes the output layer cost what it costs on Qwen3.
    `init_std` sets the weights' init std (default: the family's choice); `size` picks a preset;
    `parts` are a composed model's encoder, llm and projector.
    """
    from adaptkit.models.tokenizer import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    model = family(arch).build_tiny(arch, tokenizer, tied=tied, seed=seed, vocab_size=vocab_size, init_std=init_std, size=size,
                                     **parts)
    return model, tokenizer


# config.json model_type -> architecture name
MODEL_TYPES = {"qwen3_asr": "qwen3_asr", "qwen2_audio": "qwen2_audio", "voxtral": "voxtral", "granite_speech": "granite_speech",
               "adaptkit_composed": "composed"}


def _arch_of(name: str) -> str:
    """Read the architecture of a local checkpoint from its config.json."""
    import json
    from pathlib import Path

    config = Path(name) / "config.json"
    if not config.is_file():
        raise AdaptkitError(f"model.arch: not given, and {name!r} is not a local folder with a config.json; set model.arch")
    model_type = json.loads(config.read_text()).get("model_type")
    if model_type not in MODEL_TYPES:
        raise AdaptkitError(f"model.arch: {config} has model_type {model_type!r}; supported: {', '.join(sorted(MODEL_TYPES))}")
    return MODEL_TYPES[model_type]


def _check_path(key: str, name: str | None) -> None:
    """A name written as a path (/x, ./x, ../x, ~/x) must be a folder: say so instead of a hub-id error."""
    from pathlib import Path

    if name and name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().is_dir():
        raise AdaptkitError(f"model.{key}: {name!r} is not a folder (a path, not a hub id)")


@dataclass
class Loaded:
    """A model with what reads its inputs, as one recipe's `model` section builds it."""

    arch: str
    model: nn.Module
    tokenizer: object
    feature_extractor: object | None
    processor: object | None = None
    """The checkpoint's processor, when it has one (saved with a merged checkpoint)."""

    def save_pretrained_objects(self) -> list:
        """What a merged checkpoint must carry beside the weights so it loads directly."""
        if self.processor is not None:
            return [self.processor]
        return [x for x in (self.tokenizer, self.feature_extractor) if x is not None]


def load(section) -> Loaded:
    """Build what a recipe's `model` section names."""
    if section.tiny == "composed":
        from adaptkit.models.composed import tiny_feature_extractor

        model, tokenizer = build_tiny("composed", tied=section.tied, vocab_size=section.vocab_size, init_std=section.init_std,
                                      size=section.size, encoder=section.encoder, llm=section.llm or "qwen2",
                                      projector=section.projector)
        return Loaded("composed", model, tokenizer, tiny_feature_extractor(section.encoder))
    if section.tiny:
        model, tokenizer = build_tiny(section.tiny, tied=section.tied, vocab_size=section.vocab_size, init_std=section.init_std,
                                      size=section.size)
        fe = getattr(family(section.tiny), "tiny_feature_extractor", lambda: None)()
        return Loaded(section.tiny, model, tokenizer, fe)
    for key in ("name", "encoder", "llm"):
        _check_path(key, getattr(section, key, None))
    arch = section.arch or _arch_of(section.name)
    dtype = getattr(torch, section.dtype)
    if arch == "composed" and not section.name:
        from adaptkit.models.composed import compose

        model, tokenizer, fe = compose(section.encoder, section.llm, section.projector, dtype)
        return Loaded(arch, model, tokenizer, fe)
    with loading("name", section.name):
        model, tokenizer, fe, processor = family(arch).load_pretrained(arch, section.name, dtype)
    return Loaded(arch, model, tokenizer, fe, processor)


@contextmanager
def loading(key: str, name: str) -> Iterator[None]:
    """Turn a failed load of `name` (not found locally and no hub, a bad path, unreadable files)
    into a one-line error naming the recipe key `model.<key>`."""
    try:
        yield
    except (OSError, HFValidationError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AdaptkitError(f"model.{key}: cannot load {name!r}: {first}") from None
