"""JSONL manifests: one sample a line, checked line by line with `file:line` in every error.

Speaker ASR lines come in two forms that give the same sample (and the same token ids):
- the official Qwen3-ASR fine-tuning format (QwenLM/Qwen3-ASR, `finetuning/README.md`):
  `{"audio": ..., "text": "language Japanese<asr_text><|spk_0|> ...", "prompt": optional}`, the
  model's answer prefix inside `text`;
- adaptkit's form: `{"audio": ..., "text": "<|spk_0|> ...", "language": "ja"}` (a code or a name),
  the bare transcript and its language.
A line with both a `language` field and a prefix must agree on the language. Turn-tag lines add
`start`, `end` and `label`. Relative audio paths resolve against the manifest's folder.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from adaptkit.control_tokens import CONTROL_TOKEN  # noqa: F401  (re-exported: batching strips them for CTC)
from adaptkit.errors import AdaptkitError

ANSWER_PREFIX = re.compile(r"^\s*(?:language\s+([^<\n]*))?<asr_text>")
"""Qwen3-ASR's answer prefix at the start of a text: `language Japanese<asr_text>` (`language None<asr_text>`:
no speech), or a bare `<asr_text>`. The one definition: manifests, the task and the scorers use it."""
LANGUAGE_NAMES = {
    "ja": "Japanese", "en": "English", "zh": "Chinese", "ms": "Malay", "ta": "Tamil", "ko": "Korean",
    "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese", "ru": "Russian",
    "ar": "Arabic", "hi": "Hindi", "id": "Indonesian", "th": "Thai", "vi": "Vietnamese", "tr": "Turkish",
    "nl": "Dutch", "pl": "Polish", "sv": "Swedish", "yue": "Cantonese", "da": "Danish", "fi": "Finnish",
    "cs": "Czech", "fil": "Filipino", "fa": "Persian", "el": "Greek", "hu": "Hungarian", "mk": "Macedonian",
    "ro": "Romanian",
}
"""ISO 639 code -> the language name Qwen3-ASR writes in its answer prefix and accepts in `transcribe(language=...)`."""


def language_name(language: str | None) -> str | None:
    """`ja` -> `Japanese`; a name (or an unknown code) is kept as it is; None stays None."""
    return LANGUAGE_NAMES.get(language, language) if language else None


def check_language(language: Any, where: str) -> str:
    """`language` if it is a known code or name (see LANGUAGE_NAMES), else a one-line error naming `where`."""
    if not isinstance(language, str) or not language.strip():
        raise AdaptkitError(f"{where}: 'language' must be a language code or name, got {language!r}")
    if language not in LANGUAGE_NAMES and language not in LANGUAGE_NAMES.values() and language != "None":
        raise AdaptkitError(f"{where}: unknown language {language!r}; use a code or name Qwen3-ASR knows "
                            f"({', '.join(sorted(LANGUAGE_NAMES))} or their names)")
    return language


def split_answer_prefix(text: str) -> tuple[str | None, str]:
    """(`Japanese`, transcript) for `language Japanese<asr_text>transcript`; (None, transcript) for a bare
    `<asr_text>` prefix; (None, text) without one."""
    m = ANSWER_PREFIX.match(text)
    if not m:
        return None, text
    return (m.group(1).strip() if m.group(1) else None), text[m.end():]


@dataclass
class Sample:
    """One training or test sample."""

    id: str
    where: str
    """`manifest:line`, for messages."""
    audio: Path | None
    text: str
    """The transcript alone: an official-format answer prefix (`language X<asr_text>`) is split off."""
    language: str | None = None
    """As the line gives it (`ja`, `Japanese`), or the language of its answer prefix."""
    prompt: str = ""
    start: float | None = None
    end: float | None = None
    label: str | None = None
    duration: float = 0.0
    rate: int = 0
    """The audio file's own sample rate in Hz (0: no audio)."""
    fields: dict[str, Any] = field(default_factory=dict)


def _declared_wav_bytes(path: Path) -> tuple[int, int] | None:
    """(bytes the WAV header's data chunk declares, bytes present after it), or None when not a WAV
    with a sized data chunk (streamed WAVs declare 0 or 0xFFFFFFFF)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                present = path.stat().st_size - f.tell()
                return None if size in (0, 0xFFFFFFFF) else (size, present)
            f.seek(size + (size & 1), 1)


def _check_audio(path: Path, where: str, start: float | None, end: float | None) -> tuple[float, int]:
    """The seconds of audio the sample uses and the file's rate, after checking the file: a folder,
    an unreadable or truncated file, a span outside it, or a NaN / inf sample are errors naming `where`."""
    import numpy as np
    import soundfile as sf

    if path.is_dir():
        raise AdaptkitError(f"{where}: audio {path} is a folder, not an audio file")
    if not path.is_file():
        raise AdaptkitError(f"{where}: audio file {path} not found")
    try:
        info = sf.info(str(path))
        sizes = _declared_wav_bytes(path)
        if sizes and sizes[1] < sizes[0]:
            raise AdaptkitError(f"{where}: audio {path} is truncated: its header declares {sizes[0]} bytes of samples, "
                                f"the file holds {sizes[1]}")
        first = round((start or 0.0) * info.samplerate)
        last = round(end * info.samplerate) if end is not None else info.frames
        if end is not None and last > info.frames + 1:
            raise AdaptkitError(f"{where}: 'end' {end} s is past the end of {path} ({info.duration:.2f} s)")
        wave, _ = sf.read(str(path), start=first, stop=last, dtype="float32", always_2d=True)
    except AdaptkitError:
        raise
    except Exception as err:  # soundfile raises its own error types for unreadable files
        raise AdaptkitError(f"{where}: cannot read audio {path} ({str(err).splitlines()[0]})")
    if not np.isfinite(wave).all():
        raise AdaptkitError(f"{where}: audio {path} has NaN or infinite samples")
    return len(wave) / info.samplerate, info.samplerate


def _number(data: dict[str, Any], key: str, where: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise AdaptkitError(f"{where}: '{key}' must be a number of seconds >= 0, got {value!r}")
    return float(value)


def parse_line(raw: str, where: str, base: Path, allowed_tokens: set[str], require: tuple[str, ...], audio: bool = True) -> Sample:
    """One manifest line as a Sample; any problem is an AdaptkitError naming `where`.

    Text-only lines (`audio=False`, e.g. end-of-turn conversations) need only the `require` keys."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise AdaptkitError(f"{where}: not valid JSON ({err.msg} at column {err.colno})")
    if not isinstance(data, dict):
        raise AdaptkitError(f"{where}: expected a JSON object, got {type(data).__name__}")
    for key in (("audio", "text") if audio else ()) + tuple(require):
        if key not in data:
            raise AdaptkitError(f"{where}: missing key {key!r}")
    if not audio:
        return Sample(id=str(data.get("id", where)), where=where, audio=None, text=data.get("text", ""),
                      language=data.get("language"), fields=data)
    text, language, prompt = data["text"], data.get("language"), data.get("prompt")
    if not isinstance(text, str):
        raise AdaptkitError(f"{where}: 'text' must be a string, got {type(text).__name__} {text!r}")
    if not text.strip():
        raise AdaptkitError(f"{where}: empty text")
    if prompt is not None and not isinstance(prompt, str):
        raise AdaptkitError(f"{where}: 'prompt' must be a string, got {type(prompt).__name__} {prompt!r}")
    if language is not None:
        check_language(language, where)
    prefixed, text = split_answer_prefix(text)
    if prefixed is not None:
        if language is not None and language_name(language) != prefixed:
            raise AdaptkitError(f"{where}: 'language' {language!r} disagrees with the text's prefix "
                                f"'language {prefixed}<asr_text>'; give one of them, or make them agree")
        language = language or check_language(prefixed, where)
    for tok in CONTROL_TOKEN.findall(text):
        if tok not in allowed_tokens:
            raise AdaptkitError(f"{where}: token {tok} in the text is not among the recipe's tokens ({', '.join(sorted(allowed_tokens)) or 'none'})")
    if not CONTROL_TOKEN.sub("", text).strip():
        raise AdaptkitError(f"{where}: the text holds only tags and no words")
    if not isinstance(data["audio"], str) or not data["audio"].strip():
        raise AdaptkitError(f"{where}: 'audio' must be a path to an audio file, got {data['audio']!r}")
    path = Path(data["audio"])
    path = path if path.is_absolute() else base / path
    start, end = _number(data, "start", where), _number(data, "end", where)
    if start is not None and end is not None and end <= start:
        raise AdaptkitError(f"{where}: empty audio span (start {start}, end {end})")
    duration, rate = _check_audio(path, where, start, end)
    if duration <= 0:
        raise AdaptkitError(f"{where}: empty audio span (start {start}, end {end})")
    return Sample(
        id=str(data.get("id", where)), where=where, audio=path, text=text, language=language,
        prompt=prompt or "", start=start, end=end, label=data.get("label"), duration=duration, rate=rate,
        fields=data,
    )


def read_manifest(path: str | Path, allowed_tokens: set[str], on_bad_sample: str = "error",
                  require: tuple[str, ...] = (), check: Callable[[Sample], None] | None = None,
                  audio: bool = True) -> tuple[list[Sample], list[str]]:
    """Read and check every line. Returns (samples, skipped messages); with on_bad_sample 'error'
    the first bad line raises instead."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise AdaptkitError(f"{path}: cannot read manifest ({err.strerror})")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[:err.start].count(b"\n") + 1
        raise AdaptkitError(f"{path}:{line}: not UTF-8 text (byte {err.object[err.start]:#04x})")
    samples, skipped = [], []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            sample = parse_line(raw, where, path.parent, allowed_tokens, require, audio)
            if check:
                check(sample)
            samples.append(sample)
        except AdaptkitError as err:
            if on_bad_sample == "error":
                raise
            skipped.append(str(err))
    if not samples:
        raise AdaptkitError(f"{path}: no usable sample" + (f" ({len(skipped)} skipped, first: {skipped[0]})" if skipped else ""))
    return samples, skipped
