"""What must not change between a run and its `--resume`: a flat fingerprint stored in each checkpoint.

The fingerprint holds the model, the freezing spec and tokens, the task, the content hash of each
data file, the data options, and every training setting that shapes the trajectory (batch size,
seed, optimizer, schedule). `--resume` compares it key by key; a difference is refused in one line
naming the keys, unless each changed key is in CHANGEABLE and passed with `--allow-change KEY`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from adaptkit.errors import AdaptkitError
from adaptkit.recipe import Recipe

CHANGEABLE = {
    "train.lr": "the new peak learning rate applies from the next step on",
    "train.weight_decay": "the new weight decay applies from the next step on",
    "train.clip": "the new clipping applies from the next step on",
    "train.max_steps": "the run ends at the new step count (the schedule is recomputed for it)",
    "train.epochs": "the run ends after the new number of epochs (the schedule is recomputed for it)",
}
"""Keys that may change on resume with `--allow-change KEY`, and what the change means."""
_TRAIN = ("optimizer", "lr", "weight_decay", "betas", "schedule", "warmup_steps", "min_lr_ratio", "epochs", "max_steps",
          "batch_size", "grad_accum", "clip", "precision", "seed", "token_loss_weights", "ctc_weight")
_DATA = ("sample_rate", "max_audio_seconds", "on_bad_sample", "weight_field", "max_weight", "downsample", "filters")


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, or `missing`."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return "missing"
    return h.hexdigest()


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flat(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = list(value) if isinstance(value, tuple) else value


def fingerprint(recipe: Recipe, train_path: str, dev_path: str | None) -> dict[str, Any]:
    """The flat fingerprint of `recipe` with its data files (`data.train` and `data.dev` as sha256)."""
    out: dict[str, Any] = {}
    _flat("model", asdict(recipe.model), out)
    _flat("freeze", recipe.freeze.to_dict(), out)
    out.update({"task": recipe.task, "prompt": recipe.prompt, "language": recipe.language})
    out["data.train"] = file_digest(train_path)
    out["data.dev"] = file_digest(dev_path) if dev_path else None
    d = recipe.data
    for key in _DATA:
        _flat(f"data.{key}", getattr(d, key), out)
    if d.synth:
        _flat("data.synth", asdict(d.synth), out)
    for key in _TRAIN:
        _flat(f"train.{key}", getattr(recipe.train, key), out)
    if recipe.train.spec_augment.active:  # absent when off, so checkpoints written before the option still resume
        _flat("train.spec_augment", asdict(recipe.train.spec_augment), out)
    return out


def changed_keys(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Keys whose value differs between two fingerprints (present in one only counts)."""
    return sorted(k for k in set(saved) | set(now) if saved.get(k, "<absent>") != now.get(k, "<absent>"))


def check(saved: dict[str, Any] | None, now: dict[str, Any], allowed: tuple[str, ...], where: Path) -> list[str]:
    """Refuse a resume whose recipe or data differ from the checkpoint's, unless every changed key is
    allowed; returns the accepted changed keys."""
    for key in allowed:
        if key not in CHANGEABLE:
            raise AdaptkitError(f"--allow-change {key}: only {', '.join(sorted(CHANGEABLE))} can change on resume")
    if saved is None:
        raise AdaptkitError(f"{where}: the checkpoint has no fingerprint of its run; it cannot be resumed safely")
    changed = changed_keys(saved, now)
    refused = [k for k in changed if k not in allowed]
    if refused:
        shown = ", ".join(f"{k} ({_short(saved.get(k))} -> {_short(now.get(k))})" for k in refused[:6])
        more = f" and {len(refused) - 6} more" if len(refused) > 6 else ""
        can = [k for k in refused if k in CHANGEABLE]
        hint = f"; accept with {' '.join(f'--allow-change {k}' for k in can)}" if can and len(can) == len(refused) else \
            ("; " + ", ".join(can) + " could be accepted with --allow-change, the others need a new output_dir" if can
             else "; start a new run in another output_dir (or --force to start over)")
        raise AdaptkitError(f"--resume: the run differs from its checkpoint {where.name} in {shown}{more}{hint}")
    return changed


def _short(value: Any) -> str:
    text = repr(value)
    if isinstance(value, str) and len(value) == 64:
        text = f"sha256 {value[:12]}"
    return text if len(text) <= 40 else text[:37] + "..."
