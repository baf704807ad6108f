"""Checking what users write (recipes, the freezing spec, the cascade recipe): one-line errors.

Every error names the key at fault (`freeze.lora.r`, `train.batch_size`), what was expected and
what was given; an unknown name gets a did-you-mean (`closest`). `from_dict` builds a dataclass
from a mapping by its type hints, so a section's fields and their types are written down once.

Standard library only (with `adaptkit.errors`): `import adaptkit.freeze` uses it and must keep
working with torch and peft alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from adaptkit.errors import AdaptkitError

_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_NAMES: dict[Any, str] = {float: "number", (int, float): "number", Mapping: "mapping"}


def closest(name: Any, candidates: Iterable[Any], n: int = 3) -> str:
    """A ' (closest: a, b)' hint for an unknown name, or '' when nothing is close."""
    near = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=n, cutoff=0.5)
    return f" (closest: {', '.join(near)})" if near else ""


def check_keys(data: Mapping, allowed: Iterable[str], where: str = "") -> None:
    """Every key of `data` is one of `allowed`, else `where.key: unknown key (closest: ...); allowed: ...`
    (at the top level, `where` empty: `unknown key 'key' ...`)."""
    allowed = list(allowed)
    for key in data:
        if key not in allowed:
            head = f"{where}.{key}: unknown key" if where else f"unknown key {key!r}"
            raise AdaptkitError(f"{head}{closest(key, allowed)}; allowed: {', '.join(allowed)}")


def check_choice(value: Any, allowed: Iterable[Any], where: str, what: str = "value") -> Any:
    """`value` if it is one of `allowed`, else `where: unknown WHAT 'value' (closest: ...); use one of ...`."""
    allowed = tuple(allowed)  # a tuple: `in` compares, so an unhashable value (a list) is an error, not a crash
    if value not in allowed:
        raise AdaptkitError(f"{where}: unknown {what} {value!r}{closest(value, allowed)}; use one of {', '.join(map(str, allowed))}")
    return value


def check_range(where: str, value: float | None, low: float, high: float, above_low: bool = False) -> None:
    """A finite number in [low, high] (above `low` with `above_low`); None passes."""
    if value is None:
        return
    if not math.isfinite(value) or value < low or value > high or (above_low and value == low):
        bound = f"> {low:g}" if above_low else f">= {low:g}"
        raise AdaptkitError(f"{where}: must be a finite number {bound} and <= {high:g}, got {value!r}")


def type_name(kind: Any) -> str:
    """How errors name a type: `number` for float, `str or list` for a union, `dict` for dict[str, Any]."""
    if kind in _NAMES:
        return _NAMES[kind]
    if isinstance(kind, tuple):
        return " or ".join(type_name(k) for k in kind)
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(kind) if a is not type(None))
    if origin is not None:
        return origin.__name__
    return getattr(kind, "__name__", str(kind))


def typed(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    """`value` if it is a `kind` (a bool is no int or number), else `where: expected KIND, got TYPE value`."""
    numeric = kind in (int, float, (int, float))
    if not isinstance(value, kind) or (isinstance(value, bool) and numeric):
        raise AdaptkitError(f"{where}: expected {type_name(kind)}, got {type(value).__name__} {value!r}")
    return value


def coerce(value: Any, kind: Any, where: str) -> Any:
    """`value` checked against the type hint `kind` (unions, lists, dicts, dataclasses): an int is
    taken for a float, and so is a number written as a string (YAML 1.1 reads 3e-3 as one); a single
    string or number for a list of them becomes a one-item list."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, kind, where)
    if dataclasses.is_dataclass(kind):
        return from_dict(kind, value, where)
    if origin is list:
        (item,) = typing.get_args(kind)
        value = [value] if isinstance(value, (str, int, float)) and item in (str, float) else value
        typed(value, list, where)
        return [coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(kind)
        typed(value, dict, where)
        return {k: (v if item is Any else coerce(v, item, f"{where}.{k}")) for k, v in value.items()}
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        return float(value)
    if kind is Any:
        return value
    return typed(value, kind, where)


def _coerce_union(value: Any, kind: Any, where: str) -> Any:
    args = typing.get_args(kind)
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return coerce(value, arg, where)
        except AdaptkitError:
            pass
    raise AdaptkitError(f"{where}: expected {type_name(kind)}, got {type(value).__name__} {value!r}")


def from_dict(cls: type, data: Any, where: str) -> Any:
    """Build dataclass `cls` from a mapping: unknown keys get a did-you-mean, types are checked
    (`coerce`), a field without a default must be given."""
    if isinstance(data, cls):
        return data
    typed(data, dict, where)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    check_keys(data, names, where)
    for f in dataclasses.fields(cls):
        if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise AdaptkitError(f"{where}: missing key {f.name!r}")
    return cls(**{key: coerce(value, hints[key], f"{where}.{key}") for key, value in data.items()})
