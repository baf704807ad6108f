"""Architectures: one registry of typed `Architecture` objects (see base.py), keyed by name and
by config.json `model_type`, and `load` for a recipe's `model` section.

Built in: qwen3_asr (qwen_asr's layout), qwen2_audio, voxtral, granite_speech, qwen2_5_omni_thinker
(transformers' classes, transformers_audio.py), qwen3_asr_hf, audioflamingo3, glmasr (transformers 5's
native classes, native_audio.py) and composed (any encoder -> projector -> causal LM).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub.errors import HFValidationError
from torch import nn

from adaptkit.errors import AdaptkitError
from adaptkit.freeze.components import register_map
from adaptkit.models.base import Architecture

ARCHITECTURES: dict[str, Architecture] = {}
"""Architecture name -> its implementation."""
MODEL_TYPES: dict[str, str] = {}
"""config.json `model_type` -> architecture name."""


def register(arch: Architecture) -> Architecture:
    """Make `arch` known to recipes (`model.tiny` / `model.arch`), config.json detection and the
    freezing DSL's architecture maps. Returns it (usable on an instance at module level)."""
    if not isinstance(arch, Architecture):
        raise TypeError(f"register() takes an Architecture instance, not {type(arch).__name__}")
    ARCHITECTURES[arch.name] = arch
    for model_type in arch.model_types:
        MODEL_TYPES[model_type] = arch.name
    if arch.components is not None and arch.model_class_name:
        register_map(arch.model_class_name, arch.components)
    return arch


def architecture(name: str) -> Architecture:
    """The registered architecture `name`, or an error listing the known ones."""
    if name not in ARCHITECTURES:
        raise AdaptkitError(f"unknown architecture {name!r}; supported: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]


def build_tiny(arch: str, *, tied: bool = False, seed: int = 0, vocab_size: int | None = None, init_std: float | None = None,
               size: str = "tiny", **parts):
    """Build a tiny random model of `arch` and its tokenizer, offline. Returns (model, tokenizer).

    `vocab_size` sets the rows of the embedding and lm_head (default: the tokenizer plus 64 spare
    rows); a real-size vocabulary (151,936) makes the output layer cost what it costs on Qwen3.
    `init_std` sets the weights' init std (default: the architecture's); `size` picks a preset;
    `parts` are a composed model's encoder, llm and projector.
    """
    impl = architecture(arch)
    tokenizer = impl.tiny_tokenizer(**parts)
    model = impl.build_tiny(tokenizer, tied=tied, seed=seed, vocab_size=vocab_size, init_std=init_std, size=size, **parts)
    return model, tokenizer


def _arch_of(name: str) -> str:
    """Read the architecture of a local checkpoint from its config.json."""
    config = Path(name) / "config.json"
    if not config.is_file():
        raise AdaptkitError(f"model.arch: not given, and {name!r} is not a local folder with a config.json; set model.arch")
    data = json.loads(config.read_text())
    model_type = data.get("model_type")
    if model_type == "qwen3_asr":
        return _qwen3_asr_layout(config, data)
    if model_type not in MODEL_TYPES:
        raise AdaptkitError(f"model.arch: {config} has model_type {model_type!r}; supported: {', '.join(sorted(MODEL_TYPES))}")
    return MODEL_TYPES[model_type]


def _qwen3_asr_layout(config: Path, data: dict) -> str:
    """qwen_asr's checkpoints and transformers 5's native `-hf` ones both say model_type qwen3_asr:
    qwen_asr's nest everything in a `thinker_config`, the native ones have a top-level
    `audio_config` and `text_config`. Exactly one shape must fit."""
    thinker = "thinker_config" in data
    native = "audio_config" in data and "text_config" in data
    if thinker != native:
        return "qwen3_asr" if thinker else "qwen3_asr_hf"
    shape = "both a thinker_config and a top-level audio_config/text_config" if thinker else \
        "neither a thinker_config (qwen_asr's layout) nor a top-level audio_config and text_config (the native -hf layout)"
    raise AdaptkitError(f"model.arch: {config} has model_type 'qwen3_asr' with {shape}; set model.arch to qwen3_asr or qwen3_asr_hf")


def _check_path(key: str, name: str | None) -> None:
    """A name written as a path (/x, ./x, ../x, ~/x) must be a folder: say so instead of a hub-id error."""
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
    source: Path | None = None
    """The local checkpoint folder the model was loaded from (None: a hub id, a tiny or composed model)."""

    @property
    def architecture(self) -> Architecture:
        """The implementation of `arch`."""
        return architecture(self.arch)

    def save_pretrained_objects(self) -> list:
        """What a merged checkpoint must carry beside the weights so it loads directly."""
        if self.processor is not None:
            return [self.processor]
        return [x for x in (self.tokenizer, self.feature_extractor) if x is not None]

    def carried_files(self) -> list[Path]:
        """The base folder's files a merged checkpoint carries as they are (the architecture's
        `carried_files` that the folder has)."""
        if self.source is None:
            return []
        return [self.source / name for name in self.architecture.carried_files if (self.source / name).is_file()]


def load(section) -> Loaded:
    """Build what a recipe's `model` section names."""
    if section.tiny:
        parts = ({"encoder": section.encoder, "llm": section.llm or "qwen2", "projector": section.projector}
                 if section.tiny == "composed" else {})
        model, tokenizer = build_tiny(section.tiny, tied=section.tied, vocab_size=section.vocab_size, init_std=section.init_std,
                                      size=section.size, **parts)
        if section.dtype != "float32":  # built in float32 from the same seed, then cast: a bf16 recipe on CPU
            model.to(getattr(torch, section.dtype))
        return Loaded(section.tiny, model, tokenizer, architecture(section.tiny).tiny_feature_extractor(**parts))
    for key in ("name", "encoder", "llm"):
        _check_path(key, getattr(section, key, None))
    arch = section.arch or _arch_of(section.name)
    dtype = getattr(torch, section.dtype)
    if arch == "composed" and not section.name:
        from adaptkit.models.composed import compose

        model, tokenizer, fe = compose(section.encoder, section.llm, section.projector, dtype)
        return Loaded(arch, model, tokenizer, fe)
    with loading("name", section.name):
        model, tokenizer, fe, processor = architecture(arch).load(section.name, dtype)
    source = Path(section.name).expanduser()
    return Loaded(arch, model, tokenizer, fe, processor, source if source.is_dir() else None)


@contextmanager
def loading(key: str, name: str) -> Iterator[None]:
    """Turn a failed load of `name` (not found locally and no hub, a bad path, unreadable files)
    into a one-line error naming the recipe key `model.<key>`. A folder without a config.json is an
    OSError on transformers 4.57, a ValueError ("Unrecognized model") on 5."""
    try:
        yield
    except (OSError, HFValidationError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AdaptkitError(f"model.{key}: cannot load {name!r}: {first}") from None


def _register_builtins() -> None:
    from adaptkit.models.audioflamingo3 import AudioFlamingo3
    from adaptkit.models.composed import Composed
    from adaptkit.models.glmasr import GlmAsr
    from adaptkit.models.granite_speech import GraniteSpeech
    from adaptkit.models.qwen2_5_omni import Qwen25OmniThinker
    from adaptkit.models.qwen2_audio import Qwen2Audio
    from adaptkit.models.qwen3_asr import Qwen3ASR
    from adaptkit.models.qwen3_asr_hf import Qwen3ASRHF
    from adaptkit.models.voxtral import Voxtral

    for arch in (Qwen3ASR(), Qwen2Audio(), Voxtral(), GraniteSpeech(), Qwen25OmniThinker(), Composed(),
                 Qwen3ASRHF(), AudioFlamingo3(), GlmAsr()):
        register(arch)


_register_builtins()
