"""Sampling (buckets, weights, downsampling, filters), schedules and the placeholder check, as numbers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from adaptkit.data.batching import BucketBatchSampler
from adaptkit.data.manifest import Sample
from adaptkit.data.sharding import ProcessShard, share
from adaptkit.data.sampling import downsample, filter_samples, sample_weights
from adaptkit.errors import AdaptkitError
from adaptkit.recipe import Recipe
from adaptkit.train.loop import schedule


def samples(labels, **fields):
    return [Sample(id=str(i), where=f"m:{i + 1}", audio=Path("x.wav"), text="t", label=lab,
                   fields={k: v[i] for k, v in fields.items()}) for i, lab in enumerate(labels)]


def test_buckets_cover_every_sample_once_and_depend_only_on_seed_and_epoch():
    lengths = [int(x) for x in torch.randint(1, 1000, (103,), generator=torch.Generator().manual_seed(0))]
    sampler = BucketBatchSampler(lengths, 8, seed=1)
    first = list(sampler)
    assert sorted(i for b in first for i in b) == list(range(103)) and len(first) == len(sampler) == 13
    assert list(BucketBatchSampler(lengths, 8, seed=1)) == first
    sampler.epoch = 1
    assert list(sampler) != first
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first if len(b) == 8]
    assert max(spread) < 200  # sorted within pools: batches hold similar lengths


def test_process_shares_cut_each_global_batch_into_disjoint_contiguous_parts():
    """Every process iterates the same global batches and keeps its part: the parts are disjoint,
    together the batch, their sizes differ by at most one; an empty part is one padding entry."""
    lengths = [int(x) for x in torch.randint(1, 1000, (103,), generator=torch.Generator().manual_seed(0))]
    sampler = BucketBatchSampler(lengths, 8, seed=1)
    for world in (1, 2, 3, 8):  # 103 samples: the last batch holds 7
        shards = [list(ProcessShard(sampler, rank, world)) for rank in range(world)]
        for k, batch in enumerate(sampler):
            parts = [shards[rank][k] for rank in range(world)]
            real = [part for part in parts if part[0] >= 0]
            assert [i for part in real for i in part] == batch
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
            assert len(real) == min(world, len(batch))  # a padding entry only where the batch is too short
    assert [share([5, 9], rank, 4) for rank in range(4)] == [[5], [9], [~5], [~5]]  # ~5: sample 5, no loss
    shard = ProcessShard(sampler, 1, 2)
    shard.skip = 3  # a resume after three global batches
    assert list(shard) == [share(b, 1, 2) for b in list(sampler)[3:]]


def test_a_padding_entry_is_collated_without_supervised_positions():
    from adaptkit.data.batching import IGNORE, Encoded
    from adaptkit.data.loading import SampleDataset, collate_fn

    items = SampleDataset([Sample(id="a", where="m:1", audio=None, text="t")], lambda s, n: Encoded(s, [1, 2, 3], [IGNORE, 2, 3], None))
    batch = collate_fn(0)([items[0], items[~0]])
    assert batch["index"].tolist() == [0, 0] and batch["real"].tolist() == [True, False]
    assert batch["labels"].tolist() == [[IGNORE, 2, 3], [IGNORE, IGNORE, IGNORE]]


def test_weighted_sampling_follows_clipped_weights():
    weights = [1.0] * 90 + [100.0] * 10  # clipped to 10
    sampler = BucketBatchSampler([1] * 100, 10, seed=0, weights=weights, max_weight=10.0)
    counts = Counter()
    for epoch in range(30):
        sampler.epoch = epoch
        counts.update(i for b in sampler for i in b)
    heavy = sum(counts[i] for i in range(90, 100)) / sum(counts.values())
    assert abs(heavy - 100 / 190) < 0.03  # 10 x 10 of 90 + 100


def test_downsampling_keeps_ratio_times_the_other_label_and_filters_drop_low_confidence():
    data = samples(["complete"] * 30 + ["incomplete"] * 10 + ["backchannel"] * 5, conf=[0.95] * 40 + [0.5] * 5)
    kept = downsample(data, "complete", "incomplete", 1.0, seed=0)
    assert Counter(s.label for s in kept) == {"complete": 10, "incomplete": 10, "backchannel": 5}
    assert [s.id for s in downsample(data, "complete", "incomplete", 1.0, seed=0)] == [s.id for s in kept]
    assert Counter(s.label for s in downsample(data, "complete", "incomplete", 2.0)) ["complete"] == 20
    assert len(filter_samples(data, {"conf": 0.9})) == 40
    with pytest.raises(AdaptkitError, match="m:1: data.weight_field 'w' must be a number"):
        sample_weights(data, "w")


def test_schedules_warm_up_then_decay_to_their_floor():
    def lr(text, total=100):
        recipe = Recipe.parse({"model": {"tiny": "qwen3_asr"}, "freeze": {"train": ["projector"]}, "train": text})
        return [schedule(recipe, total)(s) for s in range(total + 1)]

    cos = lr({"schedule": "cosine", "warmup_steps": 10, "min_lr_ratio": 0.1})
    assert cos[0] == pytest.approx(0.1) and cos[9] == pytest.approx(1.0)
    assert cos[10] == pytest.approx(1.0) and cos[55] == pytest.approx(0.55) and cos[100] == pytest.approx(0.1)
    lin = lr({"schedule": "linear"})
    assert lin[50] == pytest.approx(0.5) and lin[100] == pytest.approx(0.0)
    assert set(lr({"schedule": "constant"})) == {1.0}


def test_a_wrong_placeholder_count_is_an_error_naming_the_sample(stack_qwen3):
    from adaptkit.data.batching import Encoded, collate
    from adaptkit.freeze import apply
    from adaptkit.models import architecture, build_tiny
    from adaptkit.train.step import SpeechLMLoss

    fam = architecture(stack_qwen3)
    model, tok = build_tiny(stack_qwen3)
    model, _ = apply(model, {"train": ["projector"]}, tokenizer=tok)
    feats = fam.features(fam.tiny_feature_extractor(), torch.zeros(32000).numpy())
    n = fam.audio_token_count(feats.shape[-1], model)
    assert n == 26  # 2 s of audio: two 1 s chunks of 13 placeholders (both layouts count as Qwen3-ASR's processor)
    ids = fam.prompt_ids(tok, n - 1, "")  # one placeholder short
    item = Encoded(samples(["x"])[0], ids + [tok.eos_token_id], [-100] * len(ids) + [tok.eos_token_id], feats)
    batch = collate([item], tok.pad_token_id)
    batch["index"] = torch.tensor([0])
    loss = SpeechLMLoss(model, fam, encoder_trains=False, cache={}, where=["data.jsonl:7"])
    with pytest.raises(AdaptkitError, match=r"data.jsonl:7: 25 audio placeholders but the encoder and projector give 26"):
        loss(batch)
