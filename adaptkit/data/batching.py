"""From samples to batches: token ids with the prompt masked, features, and a length-bucketed sampler."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Sampler

from adaptkit.data.audio import load_audio
from adaptkit.data.manifest import CONTROL_TOKEN, Sample
from adaptkit.models.base import Architecture

IGNORE = -100


@dataclass
class Encoded:
    """One sample ready for batching."""

    sample: Sample
    input_ids: list[int]
    labels: list[int]
    features: torch.Tensor | None
    """Log-mel features (n_mels, frames); None for a text-only sample."""
    ctc_ids: list[int] | None = None
    """Token ids of the plain transcript (control tokens removed), for an auxiliary CTC loss."""
    cached: bool = False
    """The sample's encoder output is cached: its audio was not read and `features` is None."""


def encode(sample: Sample, arch: Architecture, tokenizer, feature_extractor, target: str, system: str, sample_rate: int,
           ctc: bool = False, model: nn.Module | None = None, n_audio: int | None = None) -> Encoded:
    """Audio -> features; prompt (masked from the loss) + target + eos -> ids and labels.

    A text-only sample (no audio) is the target alone, every token supervised. `model` is needed
    where the placeholder count depends on it (composed models, Voxtral, Granite Speech). With
    `n_audio` (the placeholder count of a sample whose encoder output is cached) the audio is
    neither read nor turned into features."""
    if sample.audio is None:
        ids = tokenizer(target, add_special_tokens=False)["input_ids"]
        return Encoded(sample, ids, list(ids), None)
    feats = None
    if n_audio is None:
        wave = load_audio(sample.audio, sample_rate, sample.start, sample.end)
        feats = arch.features(feature_extractor, wave)
        n_audio = arch.audio_token_count(feats.shape[-1], model)
    prompt = arch.prompt_ids(tokenizer, n_audio, sample.prompt or system)
    answer = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ctc_ids = tokenizer(" ".join(CONTROL_TOKEN.sub(" ", sample.text).split()), add_special_tokens=False)["input_ids"] if ctc else None
    return Encoded(sample, prompt + answer, [IGNORE] * len(prompt) + answer, feats, ctc_ids, cached=feats is None)


def collate(items: list[Encoded], pad_id: int) -> dict:
    """Right-padded tensors. A sample whose encoder output is cached has no feature frames (its
    `feature_attention_mask` row is all 0) and is True in `cached`."""
    width = max(len(x.input_ids) for x in items)
    batch = {
        "input_ids": torch.full((len(items), width), pad_id, dtype=torch.long),
        "labels": torch.full((len(items), width), IGNORE, dtype=torch.long),
        "attention_mask": torch.zeros((len(items), width), dtype=torch.long),
    }
    for i, x in enumerate(items):
        n = len(x.input_ids)
        batch["input_ids"][i, :n] = torch.tensor(x.input_ids)
        batch["labels"][i, :n] = torch.tensor(x.labels)
        batch["attention_mask"][i, :n] = 1
    heard = [x.features for x in items if x.features is not None]
    if not heard and not any(x.cached for x in items):  # a text-only batch
        return batch
    frames = max((f.shape[-1] for f in heard), default=0)
    batch["input_features"] = torch.zeros((len(items), heard[0].shape[0] if heard else 0, frames))
    batch["feature_attention_mask"] = torch.zeros((len(items), frames), dtype=torch.long)
    batch["cached"] = torch.tensor([x.cached for x in items])
    for i, x in enumerate(items):
        if x.features is not None:
            batch["input_features"][i, :, : x.features.shape[-1]] = x.features
            batch["feature_attention_mask"][i, : x.features.shape[-1]] = 1
    if items[0].ctc_ids is not None:
        longest = max(len(x.ctc_ids) for x in items)
        batch["ctc_labels"] = torch.full((len(items), longest), IGNORE, dtype=torch.long)
        for i, x in enumerate(items):
            batch["ctc_labels"][i, : len(x.ctc_ids)] = torch.tensor(x.ctc_ids, dtype=torch.long)
    return batch


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length, in an order fixed by (seed, epoch).

    Without weights: shuffle, cut into pools of 50 batches, sort each pool by length, cut into
    batches, shuffle the batches. With weights: draw len(lengths) samples with replacement in
    proportion to the weights (clipped at max_weight), then bucket the draws the same way.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, shuffle: bool = True,
                 weights: list[float] | None = None, max_weight: float = math.inf, pool: int = 50):
        self.lengths, self.batch_size, self.seed, self.shuffle, self.pool = lengths, batch_size, seed, shuffle, pool
        self.weights = torch.tensor([min(w, max_weight) for w in weights], dtype=torch.double) if weights else None
        self.epoch = 0
        """The epoch whose order the next iteration gives; set by the training loop. (No `set_epoch`
        method on purpose: accelerate would call it with its own iteration count, which restarts at
        zero on a loader that skips batches after a resume.)"""

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        n = len(self.lengths)
        if self.weights is not None:
            order = torch.multinomial(self.weights, n, replacement=True, generator=gen).tolist()
        elif self.shuffle:
            order = torch.randperm(n, generator=gen).tolist()
        else:
            order = list(range(n))
        span = self.batch_size * self.pool
        batches = []
        for i in range(0, n, span):
            chunk = sorted(order[i:i + span], key=lambda j: self.lengths[j]) if self.shuffle else order[i:i + span]
            batches += [chunk[k:k + self.batch_size] for k in range(0, len(chunk), self.batch_size)]
        if self.shuffle:
            batches = [batches[k] for k in torch.randperm(len(batches), generator=gen).tolist()]
        return iter(batches)
