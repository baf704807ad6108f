"""A GRU gate trained once per session on the shared calls' train split (tests/conftest.py `calls`)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def trained_gate(calls: Path):
    """A GRUGate trained for 60 steps on the 8 training calls (seconds on one thread)."""
    from adaptkit.turn.gate import train_gate

    gate, _ = train_gate(sorted(p for p in (calls / "train").glob("*.wav") if not p.name.endswith(".stereo.wav")), steps=60, seed=0)
    return gate


@pytest.fixture(scope="session")
def call_waves(calls: Path) -> list[tuple[str, object, dict]]:
    """(name, 16 kHz wave, synth record) of every shared call, train and test splits."""
    import json

    from adaptkit.data.audio import load_audio

    out = []
    for split in ("train", "test_id", "test_ood"):
        for wav in sorted((calls / split).glob("*.wav")):
            if not wav.name.endswith(".stereo.wav"):
                out.append((f"{split}/{wav.stem}", load_audio(wav, 16000), json.loads(wav.with_suffix(".json").read_text())))
    return out
