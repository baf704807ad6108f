"""A recipe writer on the shared synthetic calls (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture
def make_recipe(calls, tmp_path):
    """Write a tiny speaker-ASR recipe on the shared calls; keyword sections override the defaults."""

    def make(**sections) -> Path:
        recipe = {
            "model": {"tiny": "qwen3_asr"},
            "tokens": {"tokens": ["<|spk_0|>", "<|spk_1|>"]},
            "freeze": {"train": ["projector", {"tokens": "added"}]},
            "data": {"train": str(calls / "train" / "speaker_asr.jsonl"), "dev": str(calls / "test_id" / "speaker_asr.jsonl")},
            "task": "speaker_asr",
            "train": {"lr": 1e-2, "max_steps": 6, "batch_size": 4},
            "output_dir": str(tmp_path / "run"),
        }
        for key, value in sections.items():
            recipe[key] = {**recipe[key], **value} if isinstance(value, dict) and isinstance(recipe.get(key), dict) else value
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe, allow_unicode=True))
        return path

    return make

