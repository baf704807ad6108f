"""Recipes: YAML files that name a model and a freezing spec (later issues add data and training).

    model: {tiny: qwen3_asr}           # or {name: neosophie/Qwen3-ASR-1.7B-JA, arch: qwen3_asr}
    freeze: {train: [projector, {tokens: added}], add_tokens: ["<|spk_0|>", "<|spk_1|>"]}

Loading validates every key: an unknown one gets a did-you-mean, a wrong type names the key and
the expected type, a YAML syntax error names the file and line. `KEY=VALUE` overrides from the
command line (`freeze.lora.r=16`) are applied before validation, their values parsed as YAML.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from adaptkit.errors import AdaptkitError
from adaptkit.freeze.spec import FreezeSpec, closest, parse_spec

DEFAULT = "default"  # the embedded tiny recipe, used when no file is given


@dataclass
class ModelSection:
    """Which model to build."""

    tiny: str | None = None
    """Architecture of a tiny random model built offline (qwen3_asr, qwen2_audio, voxtral, granite_speech)."""
    name: str | None = None
    """Hub id or local path of a real checkpoint."""
    arch: str | None = None
    """Architecture of `name`; read from its config.json when left out."""
    tied: bool = False
    """Tiny models only: tie the input embeddings and lm_head."""
    dtype: str = "float32"
    """Weights dtype when loading a checkpoint: float32, bfloat16 or float16."""


@dataclass
class Recipe:
    """A validated recipe."""

    model: ModelSection
    freeze: FreezeSpec
    source: str = DEFAULT
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: Iterable[str] = ()) -> "Recipe":
        """Read, override and validate a recipe file (None: the embedded default)."""
        source = str(path) if path else DEFAULT
        data = _read_yaml(path)
        for item in overrides:
            _override(data, item)
        return cls.parse(data, source)

    @classmethod
    def parse(cls, data: Any, source: str = "<recipe>") -> "Recipe":
        """Validate a recipe mapping; errors start with `source: key`."""
        if not isinstance(data, dict):
            raise AdaptkitError(f"{source}: a recipe is a mapping of sections, got {type(data).__name__}")
        allowed = ("model", "freeze")
        for key in data:
            if key not in allowed:
                raise AdaptkitError(f"{source}: unknown key {key!r}{closest(key, allowed)}; allowed: {', '.join(allowed)}")
        if "model" not in data:
            raise AdaptkitError(f"{source}: missing section 'model'")
        with blame(source):
            return cls(model=_model_section(data["model"]), freeze=parse_spec(data.get("freeze"), "freeze"), source=source, raw=data)


@contextmanager
def blame(source: str) -> Iterator[None]:
    """Prefix any user error raised inside with the recipe's file name."""
    try:
        yield
    except AdaptkitError as err:
        if str(err).startswith(f"{source}"):
            raise
        raise AdaptkitError(f"{source}: {err}") from None


def _read_yaml(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        text, name = resources.files("adaptkit").joinpath("default_recipe.yaml").read_text(encoding="utf-8"), DEFAULT
    else:
        name = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise AdaptkitError(f"{name}: cannot read recipe ({err.strerror})")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        raise AdaptkitError(f"{where}: invalid YAML: {getattr(err, 'problem', None) or err}")
    return data if data is not None else {}


def _override(data: dict[str, Any], item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise AdaptkitError(f"override {item!r}: expected KEY=VALUE, e.g. freeze.lora.r=16")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        raise AdaptkitError(f"override {item!r}: value is not valid YAML")
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part, {}), dict):
            raise AdaptkitError(f"override {item!r}: {part} is not a section")
        node = node.setdefault(part, {})
    node[parts[-1]] = parsed


def _model_section(data: Any) -> ModelSection:
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict):
        raise AdaptkitError(f"model: expected a mapping, got {type(data).__name__}")
    names = [f.name for f in fields(ModelSection)]
    for key, value in data.items():
        if key not in names:
            raise AdaptkitError(f"model.{key}: unknown key{closest(key, names)}; allowed: {', '.join(names)}")
        kind = bool if key == "tied" else str
        if not isinstance(value, kind):
            raise AdaptkitError(f"model.{key}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    section = ModelSection(**data)
    if bool(section.tiny) == bool(section.name):
        raise AdaptkitError("model: give exactly one of 'tiny' (an architecture) or 'name' (hub id or path)")
    if section.dtype not in ("float32", "bfloat16", "float16"):
        raise AdaptkitError(f"model.dtype: unknown dtype {section.dtype!r}; use float32, bfloat16 or float16")
    return section
