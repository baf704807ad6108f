"""Reading RTTM files: the SPEAKER lines, each turned into a segment of a pyannote Annotation.

An RTTM line is `type file channel start duration ortho stype name conf [slat]` (NIST RT-09
evaluation plan, appendix A). Only `SPEAKER` lines carry diarization; the other types the plan
defines (`SEGMENT`, `LEXEME`, `SPKR-INFO`, ...) are skipped, and so are blank lines and `;;`
comments. Anything else is refused with `file:line: ...` rather than dropped: a line of unknown
type (`speaker` in lower case included: the plan's types are upper case), a start or duration
that is not a finite number, a negative start or duration, fewer than 8 fields. A UTF-8 byte order
mark at the start of the file is read as such, not as part of the first line.
"""

from __future__ import annotations

import math
from pathlib import Path

from pyannote.core import Annotation, Segment

from adaptkit.errors import AdaptkitError

OTHER_TYPES = frozenset({
    "SEGMENT", "NOSCORE", "NO_RT_METADATA", "LEXEME", "NON-LEX", "NON-SPEECH", "FILLER", "EDIT", "IP",
    "SU", "CB", "A/P", "SPKR-INFO",
})
"""The RTTM types besides SPEAKER (NIST RT-09 evaluation plan): read past, not scored."""


def _number(text: str, what: str, where: str, line: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise AdaptkitError(f"{where}: {what} {text!r} is not a finite number >= 0: {line.strip()!r}")
    return value


def parse_line(line: str, where: str) -> tuple[str, float, float, str] | None:
    """(uri, start, end, speaker) of a SPEAKER line; None for a line to skip; `where` is `file:line`."""
    f = line.split()
    if not f or f[0].startswith(";"):
        return None
    if f[0] in OTHER_TYPES:
        return None
    if f[0] != "SPEAKER":
        hint = " (types are upper case: SPEAKER)" if f[0].upper() == "SPEAKER" else ""
        raise AdaptkitError(f"{where}: unknown RTTM type {f[0]!r}{hint}: {line.strip()!r}")
    if len(f) < 8:
        raise AdaptkitError(f"{where}: a SPEAKER line needs at least 8 fields, got {len(f)}: {line.strip()!r}")
    start = _number(f[3], "start", where, line)
    duration = _number(f[4], "duration", where, line)
    return f[1], start, start + duration, f[7]


def load_rttm(path: str | Path) -> dict[str, Annotation]:
    """uri -> Annotation of the SPEAKER lines of an RTTM file, one track per line, in file order.

    Same-speaker segments stay separate tracks here; `adaptkit.eval.der` merges them before scoring.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise AdaptkitError(f"{path}: cannot read RTTM ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise AdaptkitError(f"{path}: not UTF-8 text (byte {e.start})") from None
    out: dict[str, Annotation] = {}
    for n, line in enumerate(text.splitlines(), 1):
        parsed = parse_line(line, f"{path}:{n}")
        if parsed is None:
            continue
        uri, start, end, name = parsed
        ann = out.setdefault(uri, Annotation(uri=uri))
        if end > start:
            ann[Segment(start, end), n] = name
    return out
