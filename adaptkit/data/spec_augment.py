"""SpecAugment-style masking of the input features in training (Park et al. 2019,
arXiv:1904.08779, "SpecAugment: A Simple Data Augmentation Method for Automatic Speech
Recognition": frequency and time masking; time warping is left out).

Written here rather than taken from torchaudio (`torchaudio.transforms.FrequencyMasking` /
`TimeMasking`): torchaudio is not one of adaptkit's dependencies, its masks draw from torch's global
random state (so a resumed run would mask differently from an uninterrupted one), and it masks
padding frames as readily as speech. Here each sample's masks are a function of (train.seed, the
optimizer step, the sample's index) alone, drawn inside its own frames, so training stays the same
bit for bit across --resume and whatever the data-worker count. Masked cells take the sample's mean
feature value over its own frames (the mean of normalised features, as in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SpecAugment:
    """`train.spec_augment`: masks applied to each training sample's features (never to dev data or
    in evaluation). All zero, the default, is off."""

    freq_masks: int = 0
    """Frequency masks per sample (the paper's LibriSpeech policies: 1 or 2)."""
    freq_width: int = 0
    """Largest width of a frequency mask in feature bins; each width is drawn from 0..freq_width
    (the paper: 27 of 80 log-mel bins)."""
    time_masks: int = 0
    """Time masks per sample (the paper: 1 or 2)."""
    time_width: int = 0
    """Largest width of a time mask in feature frames (10 ms each for Whisper-style log-mel); each
    width is drawn from 0..time_width (the paper: 100)."""
    time_ratio: float = 0.2
    """No time mask is wider than this fraction of the sample's own frames (the paper's p: 1.0 or 0.2)."""

    @property
    def active(self) -> bool:
        """True when any mask can be drawn."""
        return (self.freq_masks > 0 and self.freq_width > 0) or (self.time_masks > 0 and self.time_width > 0)


def mask_features(batch: dict, policy: SpecAugment, seed: int, step: int) -> dict:
    """`batch` with its `input_features` masked per `policy` (a new tensor; the batch given is not
    changed). A sample's masks depend on (seed, step, its dataset index) only; a sample whose
    features are absent (cached encoder output) is left as it is."""
    if not policy.active or "input_features" not in batch:
        return batch
    feats = batch["input_features"].clone()
    lengths = batch["feature_attention_mask"].sum(dim=1).tolist()
    for row, (index, frames) in enumerate(zip(batch["index"].tolist(), lengths)):
        if frames == 0:
            continue
        rng = np.random.default_rng([seed, step, index])
        sample = feats[row, :, :frames]
        fill = sample.mean()
        for start, width in _spans(rng, policy.freq_masks, policy.freq_width, sample.shape[0]):
            sample[start:start + width, :] = fill
        widest = min(policy.time_width, int(policy.time_ratio * frames))
        for start, width in _spans(rng, policy.time_masks, widest, frames):
            sample[:, start:start + width] = fill
    return {**batch, "input_features": feats}


def _spans(rng: np.random.Generator, count: int, widest: int, size: int) -> list[tuple[int, int]]:
    """`count` (start, width) spans inside 0..size, each width uniform in 0..min(widest, size)."""
    spans = []
    for _ in range(count if widest > 0 else 0):
        width = int(rng.integers(0, min(widest, size) + 1))
        start = int(rng.integers(0, size - width + 1))
        spans.append((start, width))
    return spans
