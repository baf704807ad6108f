"""Languages and voices, the espeak-ng call, and pyopenjtalk kana readings for Japanese."""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
from scipy.signal import resample_poly

from adaptkit.errors import AdaptkitError

SR = 16_000
"""Sample rate of everything adaptkit synth writes (Hz)."""

LANGUAGES = {"ja": "Japanese", "en": "English", "zh": "Mandarin (pinyin voice)", "ms": "Malay", "ta": "Tamil"}
"""Supported language codes and their names."""

ESPEAK_INSTALL = "espeak-ng not found: install it with `apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS)"
OPENJTALK_INSTALL = "pyopenjtalk not found (needed for Japanese): install it with `pip install pyopenjtalk-plus`"


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an espeak-ng voice with a pitch and a speed."""

    name: str
    """Name used on the command line (`--voice`)."""
    espeak: str
    """espeak-ng voice and variant, e.g. `en-us+f3`."""
    pitch: int
    """espeak-ng `-p`, 0-99 (50 is the default)."""
    speed: int
    """espeak-ng `-s`, words per minute (175 is the default)."""
    seen: bool
    """True: used for train and in-domain test; False: kept unseen for the out-of-domain test."""


def _voices(lang: str, espeak: str, rows: str) -> list[Voice]:
    """Parse rows of `variant pitch speed seen [accent]` into voices named `<lang>-<accent>-<variant>`."""
    out = []
    for row in rows.strip().splitlines():
        variant, pitch, speed, seen, *accent = row.split()
        base = accent[0] if accent else espeak
        tag = f"{lang}-{accent[0].split('-', 1)[1]}-{variant}" if accent else f"{lang}-{variant}"
        out.append(Voice(tag, f"{base}+{variant}", int(pitch), int(speed), seen == "y"))
    return out


# Low voices use male variants and pitch 20-42, high voices female variants and pitch 62-82, so
# that a conversation can always pair one low with one high voice.
_GENERIC = """
m1 30 165 y
m3 38 180 y
m2 25 150 y
f1 70 170 y
f3 78 155 y
f2 64 185 y
m6 42 190 n
m7 20 145 n
f4 82 175 n
f5 66 150 n
"""
_ENGLISH = """
m1 30 165 y en-us
m3 38 180 y en-us
m2 25 150 y en-gb
f1 70 170 y en-us
f3 78 155 y en-us
f2 64 185 y en-gb
m4 34 170 n en-gb-scotland
m7 42 150 n en-029
f4 74 165 n en-029
f5 68 190 n en-us-nyc
"""
VOICES: dict[str, list[Voice]] = {
    "ja": _voices("ja", "ja", _GENERIC),
    "en": _voices("en", "en-us", _ENGLISH),
    "zh": _voices("zh", "cmn-latn-pinyin", _GENERIC),
    "ms": _voices("ms", "ms", _GENERIC),
    "ta": _voices("ta", "ta", _GENERIC),
}
"""Voice presets per language; `seen=False` ones are held out for the out-of-domain test."""


def check_language(lang: str) -> str:
    """Return `lang` if supported, else raise with the list of supported languages."""
    if lang not in LANGUAGES:
        known = ", ".join(f"{k} ({v})" for k, v in LANGUAGES.items())
        raise AdaptkitError(f"unknown language {lang!r}; supported: {known}")
    return lang


def voice_pools(lang: str, names: tuple[str, ...] = ()) -> tuple[list[Voice], list[Voice]]:
    """Split the voices of `lang` into (seen, unseen); `names` that belong to `lang` replace the seen presets."""
    voices = VOICES[check_language(lang)]
    every = [v.name for vs in VOICES.values() for v in vs]
    for name in names:
        if name not in every:
            raise AdaptkitError(f"unknown voice {name!r}; supported: {', '.join(every)}")
    seen = [v for v in voices if v.name in names] or [v for v in voices if v.seen]
    return seen, [v for v in voices if v not in seen]


def pick_pair(pool: list[Voice], rng: np.random.Generator) -> tuple[Voice, Voice]:
    """Two clearly distinct voices: the second differs in pitch by 20 or more when the pool allows."""
    if len(pool) < 2:
        raise AdaptkitError(f"a conversation needs two voices; the pool has {[v.name for v in pool]}")
    first = pool[rng.integers(len(pool))]
    rest = [v for v in pool if v is not first]
    far = [v for v in rest if abs(v.pitch - first.pitch) >= 20] or rest
    return first, far[rng.integers(len(far))]


def require_tools(langs: tuple[str, ...]) -> None:
    """Raise a one-line install hint when espeak-ng (or pyopenjtalk, for Japanese) is missing."""
    if shutil.which("espeak-ng") is None:
        raise AdaptkitError(ESPEAK_INSTALL)
    if "ja" in langs:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints a warning about onnxruntime
                importlib.import_module("pyopenjtalk")
        except ImportError:
            raise AdaptkitError(OPENJTALK_INSTALL) from None


@functools.cache
def _openjtalk():
    with contextlib.redirect_stdout(io.StringIO()):
        import pyopenjtalk
    return pyopenjtalk


def kana(text: str) -> str:
    """Katakana reading of Japanese text (kanji included) that espeak-ng's `ja` voice can speak."""
    return _openjtalk().g2p(text, kana=True)


def trim(x: np.ndarray, threshold_db: float = -50.0, hop: int = 80) -> np.ndarray:
    """Cut leading and trailing silence: keep from the first to the last 5 ms frame above `threshold_db` dBFS."""
    n = len(x) // hop
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))
    active = np.flatnonzero(rms > 10 ** (threshold_db / 20))
    if len(active) == 0:
        return x[:0]
    return x[active[0] * hop : (active[-1] + 1) * hop]


@functools.lru_cache(maxsize=1024)
def speak(speech: str, voice: Voice) -> np.ndarray:
    """Speak `speech` with espeak-ng and return 16 kHz float32 audio with its silences trimmed.

    The text goes in through stdin and the 22,050 Hz WAV comes back on stdout; the result is
    cached (read-only) because fillers, backchannels and fixed phrases recur.
    """
    cmd = ["espeak-ng", "-v", voice.espeak, "-p", str(voice.pitch), "-s", str(voice.speed), "--stdin", "--stdout"]
    wav = subprocess.run(cmd, input=speech.encode(), capture_output=True, check=True).stdout
    if wav[36:40] != b"data":  # espeak-ng writes a plain 44-byte header when it streams
        raise RuntimeError(f"unexpected WAV header from espeak-ng: {wav[:44]!r}")
    x = np.frombuffer(wav[44:], dtype="<i2").astype(np.float32) / 32768.0
    y = trim(resample_poly(x, 320, 441).astype(np.float32))
    if len(y) == 0:
        raise RuntimeError(f"espeak-ng voice {voice.espeak} produced no audible speech for {speech!r}")
    y.flags.writeable = False
    return y
