"""The telephone channel (300-3400 Hz, 8 kHz G.711 mu-law, back to 16 kHz) and noise at an SNR."""

from __future__ import annotations

import functools
import io

import numpy as np
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfiltfilt

from adaptkit.synth.voices import SR


@functools.cache
def _band() -> np.ndarray:
    return butter(4, [300, 3400], btype="bandpass", fs=SR, output="sos")


def telephone(x: np.ndarray) -> np.ndarray:
    """Band-pass 300-3400 Hz (zero phase), resample to 8 kHz, mu-law encode and decode, resample to 16 kHz."""
    narrow = resample_poly(sosfiltfilt(_band(), x), 1, 2)
    buf = io.BytesIO()
    sf.write(buf, np.clip(narrow, -1.0, 1.0), SR // 2, format="WAV", subtype="ULAW")
    buf.seek(0)
    decoded, _ = sf.read(buf, dtype="float32")
    return resample_poly(decoded, 2, 1)[: len(x)].astype(np.float32)


def noise_std(x: np.ndarray, speech: np.ndarray, snr_db: float) -> float:
    """Standard deviation of white noise that sits `snr_db` below the power of `x` where `speech` is True."""
    power = float(np.mean(x[speech] ** 2)) if speech.any() else 0.0
    return float(np.sqrt(power / 10 ** (snr_db / 10)))
