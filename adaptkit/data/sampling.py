"""Which samples train, and how often: field filters, label downsampling, sampling weights."""

from __future__ import annotations

import random

from adaptkit.data.manifest import Sample
from adaptkit.errors import AdaptkitError


def filter_samples(samples: list[Sample], minimum: dict[str, float]) -> list[Sample]:
    """Keep samples whose fields are at least the given values (a missing field drops the sample)."""
    kept = samples
    for key, low in minimum.items():
        kept = [s for s in kept if isinstance(s.fields.get(key), (int, float)) and s.fields[key] >= low]
    return kept


def downsample(samples: list[Sample], label: str, to: str, ratio: float = 1.0, seed: int = 0) -> list[Sample]:
    """Keep at most ratio x count(`to`) samples labelled `label` (a seeded choice), the rest as they are."""
    major = [s for s in samples if s.label == label]
    if not major:
        raise AdaptkitError(f"data.downsample: no sample has label {label!r}")
    keep = min(len(major), round(ratio * sum(s.label == to for s in samples)))
    chosen = {id(s) for s in random.Random(seed).sample(major, keep)}
    return [s for s in samples if s.label != label or id(s) in chosen]


def sample_weights(samples: list[Sample], field: str) -> list[float]:
    """The sampling weight of every sample from manifest field `field` (each must hold a number >= 0)."""
    out = []
    for s in samples:
        value = s.fields.get(field)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise AdaptkitError(f"{s.where}: data.weight_field {field!r} must be a number >= 0, got {value!r}")
        out.append(float(value))
    return out
