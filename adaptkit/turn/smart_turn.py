"""End of turn from the audio: Smart Turn v3.2 (Daily, BSD-2-Clause), 8 M params, int8 ONNX.

The model file ships inside the pipecat-ai wheel; it is found through the wheel's metadata, so
`pipecat` itself (heavy imports) is never imported. It runs on onnxruntime alone. Preprocessing
follows pipecat's `local_smart_turn_v3.py`: the last 8 s of 16 kHz audio, zero-padded at the start,
then Whisper log-mel features (80 bins x 800 frames, waveform normalised to zero mean and unit
variance). pipecat 1.0 called transformers' WhisperFeatureExtractor(chunk_length=8) as we do; later
wheels vendor a numpy copy (`_whisper_features.py`) that agrees to 2.5e-5 (float32 rounding), which
tests/turn checks. The model's output is already a sigmoid probability.
Optional dependency: `pip install 'adaptkit[turn]'`.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np

from adaptkit.errors import AdaptkitError

SAMPLE_RATE = 16000
SECONDS = 8
MODEL_FILE = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
INSTALL = "pip install 'adaptkit[turn]'"
SMART_TURN_AUDIO = ("own_channel", "mono")
"""What the cascade's Smart Turn hears: the judged speaker's own channel (`<id>.stereo.wav`) or the mono mix."""


def model_path() -> Path:
    """Where smart-turn-v3.2-cpu.onnx lies in the installed pipecat-ai wheel."""
    try:
        path = Path(metadata.distribution("pipecat-ai").locate_file(MODEL_FILE))
    except metadata.PackageNotFoundError:
        raise AdaptkitError(f"Smart Turn needs the pipecat-ai package (its model ships there): {INSTALL}") from None
    if not path.is_file():
        raise AdaptkitError(f"Smart Turn: the installed pipecat-ai has no {MODEL_FILE} (expected at {path})")
    return path


class SmartTurn:
    """Smart Turn v3.2 (ONNX inside the pipecat-ai wheel): P(turn complete) for the audio so far."""

    def __init__(self, path: str | Path | None = None, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise AdaptkitError(f"Smart Turn needs onnxruntime: {INSTALL}") from None
        from transformers import WhisperFeatureExtractor

        self.path = Path(path) if path is not None else model_path()
        if not self.path.is_file():
            raise AdaptkitError(f"Smart Turn: no model file at {self.path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.extractor = WhisperFeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE, chunk_length=SECONDS)

    def features(self, wave: np.ndarray) -> np.ndarray:
        """(80, 800) float32 log-mel of the last 8 s of `wave`, zero-padded at the start."""
        wave = np.asarray(wave, np.float32)
        if wave.ndim != 1:
            raise AdaptkitError(f"Smart Turn: expected mono 1-D audio, got shape {wave.shape}")
        n = SAMPLE_RATE * SECONDS
        wave = wave[-n:]
        wave = np.pad(wave, (n - len(wave), 0))
        out = self.extractor(wave, sampling_rate=SAMPLE_RATE, do_normalize=True, return_tensors="np")
        return out.input_features[0].astype(np.float32)

    def __call__(self, wave: np.ndarray) -> float:
        """P(turn complete) for 16 kHz mono float audio of the turn (from speech start - 0.5 s)."""
        return float(self.session.run(None, {"input_features": self.features(wave)[None]})[0][0, 0])
