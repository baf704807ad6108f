"""One small synthetic set per test session: every language, clean wideband train, telephone OOD."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest

from adaptkit.synth import SynthConfig, generate

LANGS = ("ja", "en", "zh", "ms", "ta")


def _need_tools() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    with contextlib.redirect_stdout(io.StringIO()):  # pyopenjtalk prints a warning on import
        pytest.importorskip("pyopenjtalk")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train: one short call per language (wideband, clean); test_id: 1; test_ood: 1 (telephone)."""
    _need_tools()
    out = tmp_path_factory.mktemp("synth") / "data"
    generate(SynthConfig(out=out, langs=LANGS, splits=(5, 1, 1), duration=6, seed=11, jobs=1, stereo=True))
    return out


@pytest.fixture
def tools() -> None:
    """Skip a test when espeak-ng or pyopenjtalk is missing."""
    _need_tools()
