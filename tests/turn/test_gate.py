"""The SpeculativeETD edge gate: size, streaming equals batch, training on synth data, save / load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptkit.errors import AdaptkitError
from adaptkit.turn.gate import GRUGate, StreamingGate, load_gate, log_mel_chunks, save_gate, train_gate


def _wave(seconds: float = 2.37, seed: int = 0) -> np.ndarray:
    """Noise bursts over a tone: not a multiple of 100 ms, so the last chunk is padded."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    bursts = (np.sin(2 * np.pi * 1.3 * t) > 0) * rng.normal(0, 0.1, len(t))
    return (0.2 * np.sin(2 * np.pi * 220 * t) + bursts).astype(np.float32)


def _chunks(wave: np.ndarray) -> list[np.ndarray]:
    return [wave[i : i + 1600] for i in range(0, len(wave), 1600)]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from adaptkit.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("gate") / "data"
    generate(SynthConfig(out=out, langs=("en",), splits=(8, 2, 2), duration=10, seed=3, jobs=1))
    return out


def test_parameter_count_and_chunk_feature_size() -> None:
    gate = GRUGate()
    n = sum(p.numel() for p in gate.parameters())
    assert 150_000 <= n <= 250_000, n
    assert gate.features(torch.zeros(2, 3, 10, 40)).shape == (2, 3, 960)


def test_log_mel_streaming_equals_whole_wave() -> None:
    wave = _wave()
    whole = log_mel_chunks(wave)
    assert whole.shape == (24, 10, 40)
    stream = StreamingGate(GRUGate())
    parts = torch.stack([stream.features(c) for c in _chunks(wave)])
    torch.testing.assert_close(parts, whole, atol=1e-5, rtol=0)
    # causal: a prefix's features are the whole wave's first chunks
    torch.testing.assert_close(log_mel_chunks(wave[: 1600 * 7]), whole[:7], atol=1e-5, rtol=0)


def test_forward_equals_streaming_gate() -> None:
    torch.manual_seed(0)
    gate = GRUGate().eval()
    wave = _wave(seed=1)
    batch = gate.speech_probabilities(wave)
    stream = StreamingGate(gate)
    for _ in range(2):  # reset gives a fresh stream
        step = np.array([stream(c) for c in _chunks(wave)])
        np.testing.assert_allclose(step, batch, atol=1e-5, rtol=0)
        stream.reset()
    # a batch of two waves gives each wave's own probabilities
    other = _wave(seed=2)
    logits, state = gate(torch.stack([log_mel_chunks(wave), log_mel_chunks(other)]))
    assert logits.shape == (2, 24, 2) and state.shape == (1, 2, 64)
    np.testing.assert_allclose(torch.softmax(logits[1], -1)[:, 1].detach().numpy(), gate.speech_probabilities(other), atol=1e-5)


def test_training_on_synth_separates_speech_from_silence(synth: Path, tmp_path: Path) -> None:
    from adaptkit.data.audio import load_audio

    gate, stats = train_gate(sorted((synth / "train").glob("*.wav")), steps=80, seed=0)
    assert stats["steps"] == 80 and stats["parameters"] == sum(p.numel() for p in gate.parameters())
    assert stats["final_loss"] < 0.2 and stats["seconds"] > 0
    pred, true = [], []
    for wav in sorted((synth / "test_ood").glob("*.wav")):
        labels = json.loads(wav.with_suffix(".json").read_text())["frames"]["labels"]
        p = gate.speech_probabilities(load_audio(wav, 16000))
        n = min(len(p), len(labels))
        pred.append(p[:n] > 0.5)
        true.append(np.array(labels[:n]) == "SU")
    pred, true = np.concatenate(pred), np.concatenate(true)
    accuracy = (pred == true).mean()
    # most frames are speech, so also ask for each class on its own (always-SU scores 0 on silence)
    assert accuracy >= 0.85, accuracy
    assert pred[true].mean() >= 0.8 and (~pred[~true]).mean() >= 0.7, (pred[true].mean(), (~pred[~true]).mean())

    # the same seed trains the same gate
    again, _ = train_gate(sorted((synth / "train").glob("*.wav"))[:2], steps=3, seed=5)
    twice, _ = train_gate(sorted((synth / "train").glob("*.wav"))[:2], steps=3, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), twice.state_dict().values()))


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    gate = GRUGate(channels=(8, 32), hidden=32).eval()
    gate.mean.fill_(-3.0)
    path = tmp_path / "gate.safetensors"
    save_gate(gate, path)
    back = load_gate(path)
    assert back.config == gate.config and not back.training
    wave = _wave(seed=3)
    assert np.array_equal(back.speech_probabilities(wave), gate.speech_probabilities(wave))
    assert [p.name for p in tmp_path.iterdir()] == ["gate.safetensors"]  # no temporary left behind
    (tmp_path / "junk.safetensors").write_text("not a gate")
    with pytest.raises(AdaptkitError, match="junk.safetensors"):
        load_gate(tmp_path / "junk.safetensors")


def test_bad_json_names_the_file(tmp_path: Path) -> None:
    import soundfile as sf

    sf.write(tmp_path / "conv.wav", _wave(1.0), 16000)  # 10 chunks
    meta = tmp_path / "conv.json"
    meta.write_text(json.dumps({"id": "conv"}))
    with pytest.raises(AdaptkitError, match=r"conv\.json.*frame labels") as e:
        train_gate([tmp_path / "conv.wav"], steps=1)
    assert "\n" not in str(e.value)
    meta.write_text(json.dumps({"frames": {"hop": 0.1, "labels": ["SU"] * 13}}))
    with pytest.raises(AdaptkitError, match=r"conv\.json: 13 frame labels but conv\.wav has 10 chunks"):
        train_gate([tmp_path / "conv.wav"], steps=1)
    meta.write_text(json.dumps({"frames": {"hop": 0.1, "labels": ["SU"] * 11}}))  # off by one is fine
    gate, stats = train_gate([tmp_path / "conv.wav"], steps=1)
    assert stats["steps"] == 1
