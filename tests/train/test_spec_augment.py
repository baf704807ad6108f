"""train.spec_augment: masks drawn from (seed, step, sample) inside each sample's own frames; they
reach training, keep --resume bit-identical, and are refused where the encoder cache would freeze them."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from adaptkit.data.spec_augment import SpecAugment, mask_features
from adaptkit.errors import AdaptkitError
from adaptkit.recipe import Recipe
from adaptkit.train import run

POLICY = SpecAugment(freq_masks=2, freq_width=6, time_masks=2, time_width=12, time_ratio=0.5)
MASKS = {"freq_masks": 2, "freq_width": 6, "time_masks": 2, "time_width": 12, "time_ratio": 0.5}


def _batch() -> dict:
    torch.manual_seed(0)
    feats = torch.randn(3, 20, 50)
    mask = torch.zeros(3, 50, dtype=torch.long)
    for row, frames in enumerate((50, 30, 0)):  # the last sample's encoder output is cached: no frames
        mask[row, :frames] = 1
        feats[row, :, frames:] = 0
    return {"input_features": feats, "feature_attention_mask": mask, "index": torch.tensor([7, 3, 9])}


def test_masks_depend_on_seed_step_and_sample_only_and_stay_inside_each_sample():
    batch = _batch()
    before = batch["input_features"].clone()
    masked = mask_features(batch, POLICY, seed=1, step=5)["input_features"]
    assert torch.equal(batch["input_features"], before)  # the batch given is not changed
    assert torch.equal(masked[1, :, 30:], before[1, :, 30:]) and torch.equal(masked[2], before[2])  # padding, cached
    for row, frames in ((0, 50), (1, 30)):
        changed = masked[row, :, :frames] != before[row, :, :frames]
        assert changed.any()
        fill = before[row, :, :frames].mean()
        assert torch.allclose(masked[row, :, :frames][changed], fill.expand(int(changed.sum())))
        rows, cols = changed.all(dim=1), changed.all(dim=0)  # frequency masks span every frame, time masks every bin
        assert int(rows.sum()) <= 2 * POLICY.freq_width and int(cols.sum()) <= 2 * min(POLICY.time_width, int(0.5 * frames))
        assert torch.equal(changed, rows[:, None] | cols[None, :])  # nothing changed outside the masks
    again = mask_features(_batch(), POLICY, seed=1, step=5)["input_features"]
    assert torch.equal(again, masked)
    reordered = {k: v[[1, 0, 2]] for k, v in _batch().items()}  # the same samples in another order
    assert torch.equal(mask_features(reordered, POLICY, seed=1, step=5)["input_features"][[1, 0, 2]], masked)
    assert not torch.equal(mask_features(_batch(), POLICY, seed=1, step=6)["input_features"], masked)
    assert not torch.equal(mask_features(_batch(), POLICY, seed=2, step=5)["input_features"], masked)


def test_off_by_default_and_bad_settings_are_one_line():
    batch = _batch()
    assert mask_features(batch, SpecAugment(), 0, 0) is batch
    base = {"model": {"tiny": "qwen3_asr"}, "freeze": {"train": ["projector"]}}
    assert not Recipe.parse(base).train.spec_augment.active
    with pytest.raises(AdaptkitError, match=r"^r: train\.spec_augment\.time_width: must be a finite number >= 0"):
        Recipe.parse({**base, "train": {"spec_augment": {"time_masks": 1, "time_width": -3}}}, "r")
    with pytest.raises(AdaptkitError, match=r"train\.spec_augment.*freq_mask.*freq_masks"):
        Recipe.parse({**base, "train": {"spec_augment": {"freq_mask": 1}}}, "r")


def _adapter(out) -> dict[str, torch.Tensor]:
    return load_file(out / "adapter" / "adapter.safetensors")


def test_masks_reach_training_and_a_resumed_run_is_bit_identical(make_recipe, tmp_path):
    def train(name: str, steps: int, masks: dict | None, workers: int = 0, resume: bool = False):
        settings = {"max_steps": steps, "encoder_cache": False, "data_workers": workers, "save_every": 1}
        path = make_recipe(train={**settings, **({"spec_augment": masks} if masks else {})},
                           data={"dev": None}, output_dir=str(tmp_path / name))
        run(Recipe.load(path), resume=resume, allow_change=("train.max_steps",) if resume else ())
        return _adapter(tmp_path / name)

    straight = train("straight", 4, MASKS)
    plain = train("plain", 4, None)
    assert any(not torch.equal(straight[k], plain[k]) for k in straight)  # the masks changed what trained
    train("resumed", 2, MASKS)
    resumed = train("resumed", 4, MASKS, workers=2, resume=True)
    assert set(resumed) == set(straight) and all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_spec_augment_with_a_frozen_cached_encoder_is_refused(make_recipe):
    path = make_recipe(train={"spec_augment": MASKS}, data={"dev": None})
    with pytest.raises(AdaptkitError, match=r"recipe\.yaml: train\.spec_augment: the encoder is frozen and its outputs are cached.*"
                                            r"set train\.encoder_cache: false$"):
        run(Recipe.load(path))
