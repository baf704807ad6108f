"""The synthetic calls shared by every test that trains (one set per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptkit.synth import SynthConfig, generate


@pytest.fixture(scope="session")
def calls(tmp_path_factory) -> Path:
    """12 short two-speaker English calls: 8 train, 2 in-domain test, 2 out-of-domain test."""
    out = tmp_path_factory.mktemp("calls")
    generate(SynthConfig(out=out, langs=("en",), n=12, splits=(8, 2, 2), duration=8.0, telephone=True, seed=3, jobs=1))
    return out
