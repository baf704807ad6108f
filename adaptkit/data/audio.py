"""Audio loading through soundfile, resampled to the processor's rate."""

from __future__ import annotations

import logging
from math import gcd
from pathlib import Path

import numpy as np

from adaptkit.errors import AdaptkitError

log = logging.getLogger("adaptkit")
_noted: set[tuple[int, int]] = set()


def load_audio(path: str | Path, sample_rate: int, start: float | None = None, end: float | None = None) -> np.ndarray:
    """Mono float32 audio of `path` between `start` and `end` seconds, at `sample_rate` Hz.

    A file at another rate is resampled (scipy's polyphase filter) and noted once per rate pair. A
    file that cannot be read (moved or deleted after the manifest was checked) is a one-line error.
    """
    import soundfile as sf
    from scipy.signal import resample_poly

    try:
        info = sf.info(str(path))
        first = int(round((start or 0.0) * info.samplerate))
        last = int(round(end * info.samplerate)) if end is not None else -1
        wave, rate = sf.read(str(path), start=first, stop=None if last < 0 else last, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, OSError, RuntimeError) as err:  # soundfile's own error types, a vanished file
        raise AdaptkitError(f"{path}: cannot read audio ({str(err).strip().splitlines()[0]})") from None
    wave = wave.mean(axis=1)
    if rate != sample_rate:
        note_resampling(rate, sample_rate, path)
        g = gcd(rate, sample_rate)
        wave = resample_poly(wave, sample_rate // g, rate // g).astype(np.float32)
    return wave


def note_resampling(rate: int, sample_rate: int, path: str | Path) -> None:
    """Log, once per process and rate pair, that audio at `rate` Hz is resampled to `sample_rate`.

    Training calls it in the main process for every sample before its DataLoader workers fork: they
    inherit the pairs already noted, so a note is written once, not once per worker."""
    if rate != sample_rate and (rate, sample_rate) not in _noted:
        _noted.add((rate, sample_rate))
        log.warning("resampling audio from %d Hz to %d Hz (first: %s; noted once)", rate, sample_rate, path)
