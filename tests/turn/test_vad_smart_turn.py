"""Silero VAD and Smart Turn v3.2, run offline from their wheels on espeak-ng speech."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

_threads = torch.get_num_threads()
pytest.importorskip("silero_vad")
pytest.importorskip("onnxruntime")
torch.set_num_threads(_threads)  # importing silero_vad sets torch to one thread; keep other tests' setting

from adaptkit.data.audio import load_audio  # noqa: E402
from adaptkit.errors import AdaptkitError  # noqa: E402
from adaptkit.turn.smart_turn import SmartTurn, model_path  # noqa: E402
from adaptkit.turn.vad import SileroVAD, speech_probabilities  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """1 s of silence, ~3 s of espeak-ng speech, 1 s of silence, at 16 kHz."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    wav = tmp_path_factory.mktemp("speech") / "s.wav"
    text = "I would like to book a table for two people tonight, please."
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), text], check=True)
    wave = load_audio(wav, SR)
    silence = np.zeros(SR, np.float32)
    return np.concatenate([silence, wave, silence])


@pytest.fixture(scope="module")
def smart_turn() -> SmartTurn:
    return SmartTurn()


def test_vad_finds_the_speech_and_not_the_silence(speech: np.ndarray) -> None:
    probs = speech_probabilities(speech, SR)
    assert probs.shape == (int(np.ceil(len(speech) / 1600)),)
    inside = probs[12 : len(probs) - 12]  # speech starts at chunk 10 and ends 10 chunks before the end
    assert (inside > 0.5).mean() > 0.8
    assert probs[:9].max() < 0.2 and probs[-8:].max() < 0.2
    noise = np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32) * 1e-3
    assert speech_probabilities(noise, SR).max() < 0.2
    assert speech_probabilities(np.zeros(SR + 5, np.float32), SR).shape == (11,)


def test_vad_streaming_equals_whole_wave(speech: np.ndarray) -> None:
    whole = speech_probabilities(speech, SR)
    vad = SileroVAD(SR)
    vad(np.random.default_rng(1).standard_normal(3000).astype(np.float32))  # some other stream first
    vad.reset()
    streamed = [vad(speech[i : i + 1600]) for i in range(0, len(speech), 1600)]
    np.testing.assert_allclose(streamed, whole, atol=1e-6)
    # each chunk gives the max over the 512-sample windows that end inside it
    vad.model.reset_states()
    windows = [float(vad.model(torch.from_numpy(speech[j : j + 512]), SR)) for j in range(0, len(speech) - 511, 512)]
    ends = (np.arange(len(windows)) + 1) * 512
    expected = [max(p for p, e in zip(windows, ends) if k * 1600 < e <= (k + 1) * 1600) for k in range(len(whole) - 1)]
    np.testing.assert_allclose(whole[:-1], expected, atol=1e-6)
    assert np.ptp(expected[8:14]) > 0.5  # the speech onset lies in there, so the check has teeth
    # a chunk too short to finish a window repeats the last prob
    vad.reset()
    assert vad(speech[:300]) == 0.0
    first = vad(speech[300:1600])
    assert vad(np.zeros(100, np.float32)) == first


def test_smart_turn_features_pad_at_start_and_keep_last_8s(smart_turn: SmartTurn, speech: np.ndarray) -> None:
    short = speech[: 2 * SR]
    f = smart_turn.features(short)
    assert f.shape == (80, 800) and f.dtype == np.float32
    np.testing.assert_array_equal(f, smart_turn.features(np.pad(short, (6 * SR, 0))))
    assert not np.allclose(f, smart_turn.features(np.pad(short, (0, 6 * SR))))
    np.testing.assert_array_equal(f[:, 10], f[:, 500])  # the padded start is one constant frame
    long = np.concatenate([speech, speech])[: 10 * SR]
    np.testing.assert_array_equal(smart_turn.features(long), smart_turn.features(long[-8 * SR :]))
    assert not np.allclose(smart_turn.features(long), smart_turn.features(long[: 8 * SR]))


def test_smart_turn_features_match_pipecat(smart_turn: SmartTurn, speech: np.ndarray) -> None:
    # pipecat's numpy features (newer wheels), loaded by file path so that pipecat is not imported
    src = Path(importlib.metadata.distribution("pipecat-ai").locate_file("pipecat/audio/turn/smart_turn/_whisper_features.py"))
    if not src.is_file():
        pytest.skip("this pipecat-ai has no _whisper_features.py (older wheels call WhisperFeatureExtractor, as we do)")
    spec = importlib.util.spec_from_file_location("_pipecat_whisper_features", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for wave in (speech[: 3 * SR], np.concatenate([speech] * 3)):
        x = np.pad(wave[-8 * SR :], (max(0, 8 * SR - len(wave)), 0))
        np.testing.assert_allclose(smart_turn.features(wave), mod.compute_whisper_log_mel_features(x), atol=1e-4)


def test_smart_turn_probability(smart_turn: SmartTurn, speech: np.ndarray) -> None:
    p = smart_turn(speech[SR // 2 :])
    assert 0.0 <= p <= 1.0 and smart_turn(speech[SR // 2 :]) == p
    mid = smart_turn(speech[SR // 2 : 2 * SR])
    assert 0.0 <= mid <= 1.0 and mid != p
    assert model_path().name == "smart-turn-v3.2-cpu.onnx" and smart_turn.path == model_path()


def test_vad_leaves_torch_threads_alone() -> None:
    code = "import torch; torch.set_num_threads(3); from adaptkit.turn.vad import SileroVAD; SileroVAD(); print(torch.get_num_threads())"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "3"


def test_errors_name_the_fix(smart_turn: SmartTurn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(AdaptkitError, match=re.escape(str(missing))):
        SmartTurn(missing)
    with pytest.raises(AdaptkitError, match="mono"):
        smart_turn.features(np.zeros((2, 100), np.float32))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "silero_vad", None)
    with pytest.raises(AdaptkitError, match=r"pip install 'adaptkit\[turn\]'"):
        SmartTurn()
    with pytest.raises(AdaptkitError, match=r"pip install 'adaptkit\[turn\]'"):
        SileroVAD()
