"""Model families: how to load each by name and how to build a tiny random copy offline.

Every family module offers the same three functions:
  build_tiny(arch, tokenizer, tied, seed) -> model   a random model of the real config class
  example_batch(arch, model, tokenizer, batch_size, seed) -> dict   a small batch with labels
  load_pretrained(arch, name, dtype) -> (model, tokenizer)   a real checkpoint by hub id or path
  forward(model, batch) -> outputs   the forward pass (with .loss and .logits) through the module that has one
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch
from torch import nn

from adaptkit.errors import AdaptkitError

# architecture name -> module that implements it
FAMILIES: dict[str, str] = {
    "qwen3_asr": "adaptkit.models.qwen3_asr",
    "qwen2_audio": "adaptkit.models.hf_speech",
    "voxtral": "adaptkit.models.hf_speech",
    "granite_speech": "adaptkit.models.hf_speech",
}


def family(arch: str) -> ModuleType:
    """Return the module that implements `arch`, or fail with the list of supported ones."""
    if arch not in FAMILIES:
        raise AdaptkitError(f"unknown architecture {arch!r}; supported: {', '.join(sorted(FAMILIES))}")
    return importlib.import_module(FAMILIES[arch])


def build_tiny(arch: str, *, tied: bool = False, seed: int = 0):
    """Build a tiny random model of `arch` and its tokenizer, offline. Returns (model, tokenizer)."""
    from adaptkit.models.tokenizer import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    model = family(arch).build_tiny(arch, tokenizer, tied=tied, seed=seed)
    return model, tokenizer


# config.json model_type -> architecture name
MODEL_TYPES = {"qwen3_asr": "qwen3_asr", "qwen2_audio": "qwen2_audio", "voxtral": "voxtral", "granite_speech": "granite_speech"}


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


def load(section) -> tuple[str, nn.Module, object]:
    """Build what a recipe's `model` section names. Returns (arch, model, tokenizer)."""
    if section.tiny:
        model, tokenizer = build_tiny(section.tiny, tied=section.tied)
        return section.tiny, model, tokenizer
    arch = section.arch or _arch_of(section.name)
    dtype = getattr(torch, section.dtype)
    try:
        model, tokenizer = family(arch).load_pretrained(arch, section.name, dtype)
    except OSError as err:  # not found locally and no hub (offline), or unreadable files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AdaptkitError(f"model.name: cannot load {section.name!r}: {first}")
    return arch, model, tokenizer
