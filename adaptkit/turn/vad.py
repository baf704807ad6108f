"""Voice activity: Silero VAD from the silero-vad wheel (MIT; the model ships inside the wheel).

The wheel's ONNX model runs on onnxruntime (one thread). It reads 512-sample windows at 16 kHz
(256 at 8 kHz) and keeps its state between calls. `SileroVAD` takes 100 ms chunks, carries
leftover samples so windows continue across chunks, and gives one P(speech) per chunk. Optional dependency: `pip install 'adaptkit[turn]'`.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from adaptkit.errors import AdaptkitError

CHUNK_SECONDS = 0.1


def _load_model():
    # The ONNX model in its own one-thread onnxruntime session (identical probabilities to the JIT
    # model, to 1e-6): the JIT model follows torch's global thread count, and with 2+ threads on a
    # busy machine its 512-sample windows ran ~20x slower. Importing silero_vad also sets torch to
    # one thread, process-wide; the caller's setting is put back.
    import torch

    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():  # silero's importlib.resources.path deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            from silero_vad import load_silero_vad

            return load_silero_vad(onnx=True)
    except ImportError:
        raise AdaptkitError("Silero VAD needs silero-vad and onnxruntime: pip install 'adaptkit[turn]'") from None
    finally:
        torch.set_num_threads(threads)


class SileroVAD:
    """Silero VAD (from the silero-vad wheel): P(speech) per 100 ms chunk, streaming."""

    def __init__(self, sample_rate: int = 16000) -> None:
        if sample_rate not in (8000, 16000):
            raise AdaptkitError(f"Silero VAD: sample_rate must be 8000 or 16000, not {sample_rate}")
        self.sample_rate = sample_rate
        self.window = 512 if sample_rate == 16000 else 256
        self.model = _load_model()
        self.reset()

    def reset(self) -> None:
        """Start a new stream: clear the model state, the leftover samples and the last prob."""
        self.model.reset_states()
        self.rest = np.zeros(0, np.float32)
        self.prob = 0.0

    def __call__(self, chunk: np.ndarray) -> float:
        """P(speech) for one chunk (float audio in [-1, 1]): the max over the windows ending in it."""
        import torch

        x = np.concatenate([self.rest, np.asarray(chunk, np.float32).reshape(-1)])
        n = len(x) // self.window * self.window
        windows = [torch.from_numpy(x[i : i + self.window]) for i in range(0, n, self.window)]
        probs = [float(self.model(w, self.sample_rate)) for w in windows]
        self.rest = x[n:].copy()
        if probs:
            self.prob = max(probs)
        return self.prob


@functools.lru_cache(maxsize=None)
def _shared(sample_rate: int) -> SileroVAD:
    return SileroVAD(sample_rate)


def speech_probabilities(wave: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """P(speech) per 100 ms chunk of a whole wave (ceil(len / chunk) values), from a fresh stream."""
    vad = _shared(sample_rate)
    vad.reset()
    wave = np.asarray(wave, np.float32).reshape(-1)
    step = round(sample_rate * CHUNK_SECONDS)
    return np.array([vad(wave[i * step : (i + 1) * step]) for i in range(math.ceil(len(wave) / step))], np.float32)
