"""Turn placement: two speakers, gaps, overlaps, within-turn pauses, fillers, backchannels.

Times are whole milliseconds, so that every label is exact in the files. A unit is an
inter-pausal unit (IPU): clauses of one speaker joined by 60-140 ms breaks, with
its leading and trailing silence trimmed by energy. Silences between units are labelled
from the floor holder (backchannels never take the floor): Pause when the same speaker
goes on, Gap when the other one does, Overlap when the next turn starts before the last
one ends. The silence before the first and after the last unit is a Gap (the floor is open).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaincinv

from adaptkit.synth.config import SynthConfig
from adaptkit.synth.templates import SCRIPTS, draw_slots, turn_clauses, word
from adaptkit.synth.voices import SR, Voice, speak

MS = SR // 1000
"""Samples per millisecond."""
LEAD_MS, TAIL_MS = 200, 400
"""Silence before the first and after the last unit."""
MAX_TURNS = 40
"""A safety stop; calls close long before."""


@dataclass
class Unit:
    """An inter-pausal unit of one speaker, placed on the conversation timeline."""

    speaker: int
    """0 for the agent (who speaks first), 1 for the customer."""
    start: int
    """Start in ms."""
    end: int
    """End in ms (start + audio length)."""
    text: str
    """Transcript text (with a filler at the end when one precedes the pause)."""
    reading: str
    """What espeak-ng read (clauses joined): kana for Japanese, pinyin for Mandarin, else the text."""
    label: str
    """`complete` (last unit of a turn), `incomplete` (a Pause follows), or `backchannel`."""
    turn: int
    """Index of the turn; a backchannel has the index of the turn it interrupts."""
    audio: np.ndarray = field(repr=False)
    """16 kHz samples, (end - start) ms long."""


@dataclass
class Silence:
    """A stretch without speech between units, or an overlap between turns."""

    start: int
    end: int
    label: str
    """`Pause`, `Gap` or `Overlap`."""
    before: int | None
    """Speaker holding the floor before it (None at the start)."""
    after: int | None
    """Speaker holding the floor after it (None at the end)."""


@dataclass
class Conversation:
    """One synthetic call: two voices, units sorted by start, silences, length in ms."""

    lang: str
    voices: tuple[Voice, Voice]
    units: list[Unit]
    silences: list[Silence]
    length: int


def _gamma_ms(rng: np.random.Generator, median: float, shape: float) -> int:
    """A gamma draw with the given median and shape, in ms."""
    return int(round(1000 * rng.gamma(shape, median / gammaincinv(shape, 0.5))))


def _kind(turn: int, speaker: int, closing: bool) -> str:
    role = ("agent", "customer")[speaker]
    if turn < 2:
        return f"{role}_open"
    return f"{role}_close" if closing else f"{role}_middle"


def _join(lang: str, parts: list[str]) -> str:
    return (" " if SCRIPTS[lang].spaced else "").join(parts)


def _whole_ms(x: np.ndarray) -> np.ndarray:
    """Drop the last partial millisecond, so that every unit ends on a whole ms."""
    return x[: len(x) // MS * MS]


def _units_of_turn(
    lang: str, kind: str, voice: Voice, rng: np.random.Generator, cfg: SynthConfig, slots: dict, used: set
) -> list[tuple[str, str, np.ndarray]]:
    """Synthesise one turn as IPUs (text, reading, audio): a pause may split it at each clause boundary."""
    clauses = turn_clauses(lang, kind, rng, slots, used)
    groups = [[clauses[0]]]
    for clause in clauses[1:]:
        if rng.random() < cfg.pause_prob:
            groups.append([clause])
        else:
            groups[-1].append(clause)
    for group in groups[:-1]:
        if rng.random() < cfg.filler_prob:
            group.append(word(lang, "fillers", rng))
    ipus = []
    for group in groups:
        pieces = []
        for i, clause in enumerate(group):
            if i:
                pieces.append(np.zeros(int(rng.integers(60, 141)) * MS, np.float32))
            pieces.append(speak(clause.speech, voice))
        audio = _whole_ms(np.concatenate(pieces))
        ipus.append((_join(lang, [c.text for c in group]), ("" if lang == "ja" else " ").join(c.speech for c in group), audio))
    return ipus


def make_conversation(lang: str, voices: tuple[Voice, Voice], rng: np.random.Generator, cfg: SynthConfig) -> Conversation:
    """Draw and place the turns of one call until it reaches `cfg.duration`, then close it."""
    slots, used = draw_slots(lang, rng), set()
    units: list[Unit] = []
    reserve = min(8000, 350 * cfg.duration)
    speaker, closing, last = 0, False, None
    for turn in range(MAX_TURNS):
        kind = _kind(turn, speaker, closing)
        ipus = _units_of_turn(lang, kind, voices[speaker], rng, cfg, slots, used)
        if last is None:
            start = LEAD_MS
        else:
            first_ms = len(ipus[0][2]) // MS
            longest = min(600, (last.end - last.start) // 2, first_ms // 2)
            if rng.random() < cfg.overlap_prob and longest >= 100:
                start = last.end - int(rng.integers(100, longest + 1))
            else:
                start = last.end + max(10, _gamma_ms(rng, cfg.gap_median, cfg.gap_shape))
        for k, (text, reading, audio) in enumerate(ipus):
            final = k == len(ipus) - 1
            last = Unit(speaker, start, start + len(audio) // MS, text, reading, "complete" if final else "incomplete", turn, audio)
            units.append(last)
            if final:
                break
            pause = int(1000 * cfg.pause_min) + _gamma_ms(rng, cfg.pause_median - cfg.pause_min, 2.0)
            if rng.random() < cfg.backchannel_prob:
                bc = word(lang, "backchannels", rng)
                bc_audio = _whole_ms(speak(bc.speech, voices[1 - speaker]))
                bc_ms = len(bc_audio) // MS
                before, after = (int(x) for x in rng.integers(200, 501, size=2))
                pause = max(pause, before + bc_ms + after)
                at = last.end + before
                units.append(Unit(1 - speaker, at, at + bc_ms, bc.text, bc.speech, "backchannel", turn, bc_audio))
            start = last.end + pause
        if kind == "agent_close":
            break
        closing = closing or (turn >= 1 and last.end >= 1000 * cfg.duration - reserve)
        speaker = 1 - speaker
    units.sort(key=lambda u: u.start)
    length = max(u.end for u in units) + TAIL_MS
    return Conversation(lang, voices, units, silences(units, length), length)


def silences(units: list[Unit], length: int) -> list[Silence]:
    """Label every stretch without speech (and every overlap between turns) from the floor holders."""
    floor = [u for u in units if u.label != "backchannel"]

    def holder(before: int | None = None, after: int | None = None) -> int | None:
        if before is not None:
            prior = [u for u in floor if u.start < before]
            return prior[-1].speaker if prior else None
        later = [u for u in floor if u.start >= after]
        return later[0].speaker if later else None

    out: list[Silence] = []
    cur_end = 0
    for u in units:
        if u.start > cur_end:
            a, b = holder(before=cur_end), holder(after=u.start)
            out.append(Silence(cur_end, u.start, "Pause" if a is not None and a == b else "Gap", a, b))
        elif u.start < cur_end and u.label != "backchannel":
            out.append(Silence(u.start, min(cur_end, u.end), "Overlap", holder(before=u.start), u.speaker))
        cur_end = max(cur_end, u.end)
    if length > cur_end:
        out.append(Silence(cur_end, length, "Gap", holder(before=cur_end), None))
    return out


def render(conv: Conversation) -> np.ndarray:
    """Per-speaker tracks, shape (2, samples), unscaled."""
    tracks = np.zeros((2, conv.length * MS), np.float32)
    for u in conv.units:
        tracks[u.speaker, u.start * MS : u.end * MS] += u.audio
    return tracks
