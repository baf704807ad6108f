"""Real-shaped fixtures: a tiny Qwen3-ASR saved in the layout of a hub checkpoint, and one call.

The checkpoint folder has the real Qwen3 vocabulary (151,936 rows), the published Qwen3-ASR token
ids and flags, the processor, chat template and generation config, so tests load it by name exactly
as a GPU user loads `neosophie/Qwen3-ASR-1.7B-JA`, and qwen_asr's own client loads what adaptkit writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from adaptkit.models.hub_checkpoint import save_qwen3_asr_checkpoint

CALL_TEXT = "<|spk_0|> はい、お電話ありがとうございます。 <|spk_1|> すいません"
"""One call in the seed's tagged format."""


@pytest.fixture(scope="session")
def hub_qwen3_asr(tmp_path_factory) -> Path:
    """A hub-shaped Qwen3-ASR checkpoint folder (untied embeddings, like the 1.7B thinker)."""
    return save_qwen3_asr_checkpoint(tmp_path_factory.mktemp("hub") / "Qwen3-ASR-tiny")


def call_wave(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A deterministic 16 kHz test signal: chirped bursts, different for each seed."""
    t = np.arange(int(16000 * seconds)) / 16000
    f0 = 200 + 50 * seed
    return (0.3 * np.sin(2 * np.pi * (f0 + 300 * t) * t) * np.exp(-((t % 0.5) - 0.25) ** 2 / 0.01)).astype("float32")


@pytest.fixture(scope="session")
def one_call(tmp_path_factory) -> Path:
    """A folder with call.wav and the same call as two manifests: adaptkit's form and the official one."""
    out = tmp_path_factory.mktemp("one_call")
    sf.write(out / "call.wav", call_wave(), 16000)
    ours = {"audio": "call.wav", "text": CALL_TEXT, "language": "ja"}
    official = {"audio": "call.wav", "text": "language Japanese<asr_text>" + CALL_TEXT}
    (out / "adaptkit.jsonl").write_text(json.dumps(ours, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "official.jsonl").write_text(json.dumps(official, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def overrides(hub: Path, data: Path, out: Path, **train) -> list[str]:
    """Recipe overrides that point a seed recipe at the hub-shaped checkpoint and one call (CPU, float32)."""
    settings = {"precision": "no", "lr": 0.02, "warmup_steps": 0, "schedule": "constant", "max_steps": 100,
                "batch_size": 1, "grad_accum": 1, "eval_every": 0, "save_every": 0, **train}
    return [f"model.name={hub}", "model.dtype=float32", f"data.train={data}", "data.dev=null", f"output_dir={out}",
            *(f"train.{k}={v}" for k, v in settings.items())]


@pytest.fixture(scope="session")
def real():
    """The helpers above, for test modules (conftest is not importable under --import-mode=importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(CALL_TEXT=CALL_TEXT, call_wave=call_wave, overrides=overrides)
