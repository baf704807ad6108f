"""Save only what trains, load it onto a fresh base, merge it into a full checkpoint.

An adapter folder holds `adapter.safetensors` (every trainable tensor under its name in the
adapted model: projector weights, token-row values, LoRA matrices) and `adaptkit_adapter.json`
(the spec, the added tokens in order, the trained rows, the architecture, and a fingerprint of
the frozen base: loading onto another base is an error). The tokenizer is not
copied: the added tokens are re-added to the base's own tokenizer on load, and their ids checked.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from adaptkit.atomic import atomic_dir
from adaptkit.errors import AdaptkitError
from adaptkit.freeze.apply import Applied, apply
from adaptkit.freeze.fingerprint import fingerprint
from adaptkit.freeze.report import FreezeReport
from adaptkit.freeze.tokens import set_tie_flags

WEIGHTS = "adapter.safetensors"
CONFIG = "adaptkit_adapter.json"
FORMAT = 1


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every trainable tensor, by name (shared tensors, such as tied token rows, once)."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def base_fingerprint(model: nn.Module, prints: dict[str, str] | None = None) -> str:
    """One digest of every weight that does not train (and every buffer) of a model prepared by
    `apply`: the base an adapter belongs to. `prints` is a `fingerprint(model)` already taken."""
    prints = prints if prints is not None else fingerprint(model)
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(prints):
        h.update(f"{name}={prints[name]};".encode())
    return h.hexdigest()


def save_adapter(model: nn.Module, out_dir: str | Path, base: str | None = None, extra: dict[str, Any] | None = None,
                 prints: dict[str, str] | None = None) -> Path:
    """Write the adapter of a model prepared by `apply` to `out_dir` (atomically). Returns the path.

    The config stores `base_fingerprint`, checked by `load_adapter`."""
    state: Applied | None = getattr(model, "adaptkit", None)
    if state is None:
        raise AdaptkitError("save_adapter: this model has no freezing spec applied (adaptkit.freeze.apply)")
    config = {
        "format": FORMAT,
        "architecture": type(model).__name__,
        "base": base,
        "base_fingerprint": base_fingerprint(model, prints),
        "spec": state.spec.to_dict(),
        "added_tokens": state.added_tokens,
        "token_rows": state.token_rows,
        "tied_embeddings": state.tied,
        **(extra or {}),
    }
    with atomic_dir(out_dir) as tmp:
        save_file(adapter_state(model), str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return Path(out_dir)


def read_adapter_config(path: str | Path) -> dict[str, Any]:
    """The adapter's JSON config; a folder without one is an error naming it."""
    file = Path(path) / CONFIG
    if not file.is_file():
        raise AdaptkitError(f"{path}: not an adaptkit adapter (no {CONFIG})")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise AdaptkitError(f"{file}:{err.lineno}: not valid JSON ({err.msg})")
    except UnicodeDecodeError:
        raise AdaptkitError(f"{file}: not UTF-8 text")
    except OSError as err:
        raise AdaptkitError(f"{file}: cannot read ({err.strerror})")
    if not isinstance(config, dict) or not isinstance(config.get("spec"), dict):
        raise AdaptkitError(f"{file}: not an adaptkit adapter config (no 'spec' mapping)")
    return config


def load_adapter(model: nn.Module, path: str | Path, tokenizer=None) -> tuple[nn.Module, FreezeReport]:
    """Apply the saved spec to a fresh base `model` and load the saved tensors into it."""
    config = read_adapter_config(path)
    if config.get("architecture") != type(model).__name__:
        raise AdaptkitError(f"{path}: adapter is for {config.get('architecture')}, but the base is {type(model).__name__}")
    model, report = apply(model, config["spec"], tokenizer=tokenizer)
    rows = model.adaptkit.token_rows
    if rows != config.get("token_rows", {}):
        raise AdaptkitError(f"{path}: adapter does not match its base: token rows {config['token_rows']} vs {rows} in this tokenizer")
    expected = config.get("base_fingerprint")
    if expected is not None and base_fingerprint(model) != expected:
        raise AdaptkitError(f"{path}: adapter was trained on another base ({config.get('base')}, fingerprint {expected[:12]}); "
                            f"this base's weights give {base_fingerprint(model)[:12]}")
    weights = Path(path) / WEIGHTS
    try:
        saved = load_file(str(weights))
    except FileNotFoundError:
        raise AdaptkitError(f"{weights}: missing; the adapter folder is incomplete") from None
    except (OSError, SafetensorError) as err:
        raise AdaptkitError(f"{weights}: unreadable adapter weights ({getattr(err, 'strerror', None) or str(err).splitlines()[0]})") from None
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    missing, unexpected = sorted(set(params) - set(saved)), sorted(set(saved) - set(params))
    if missing or unexpected:
        name = (missing or unexpected)[0]
        raise AdaptkitError(f"{path}: adapter does not match its base: {'missing' if missing else 'unexpected'} tensor {name}")
    for name, p in params.items():
        if tuple(saved[name].shape) != tuple(p.shape):
            raise AdaptkitError(f"{path}: adapter does not match its base: {name} has shape {tuple(saved[name].shape)}, base wants {tuple(p.shape)}")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(saved[name])
    return model, report


def merge(model: nn.Module) -> nn.Module:
    """Fold every peft layer (LoRA, token rows) into its base weights, in place; returns the plain model."""
    state = getattr(model, "adaptkit", None)
    tied = state is not None and state.tied
    head_known = state is None or state.cmap.lm_head is not None
    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            model.set_submodule(name, module.get_base_layer())
    if hasattr(model, "adaptkit"):
        del model.adaptkit
    if head_known:
        set_tie_flags(model, tied)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def save_merged(model: nn.Module, out_dir: str | Path, *extras, carry: Iterable[str | Path] = ()) -> Path:
    """Merge in place and write a checkpoint that loads with the class's own `from_pretrained`.

    `extras` are a tokenizer, feature extractor or processor (anything with `save_pretrained`):
    the tokenizer holds the new tokens, so the checkpoint loads directly, with no adapter step.
    `carry`: files copied in as they are (the base folder's records, `Loaded.carried_files()`).
    """
    merge(model)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        for extra in extras:
            if extra is not None:
                extra.save_pretrained(tmp)
        for path in carry:
            shutil.copy2(path, Path(tmp) / Path(path).name)
    return Path(out_dir)
