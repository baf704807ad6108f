"""Speculative end-of-turn detection (the SpeculativeETD seed): a cheap gate on every 100 ms chunk,
a turn model only after 200 ms of non-speech.

`stream` runs one conversation through a gate (speech or not per chunk) and, where the schedule
says, a verifier (P(end of turn) for the audio so far). It records per-chunk what each part said,
so labels at any threshold, and the decisions at every silence, follow without running the models
again. `score_system` turns the traces of many conversations into the metrics of
adaptkit.eval.frame_metrics: frame F1/IoU per class, verifier calls per minute, and the false
cut-off / latency trade-off over a threshold sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from adaptkit.eval import frame_metrics as fm

HOP = 0.1
"""Chunk length in seconds (the frame labels' hop)."""
SAMPLE_RATE = 16000


class Gate(Protocol):
    """Speech or not, chunk by chunk: SileroVAD or the GRU gate's StreamingGate."""

    def reset(self) -> None: ...

    def __call__(self, chunk: np.ndarray) -> float: ...


class Verifier(Protocol):
    """P(end of turn) given the audio up to `end` seconds (audio = wave[: end * 16000])."""

    def reset(self, record: dict) -> None: ...

    def __call__(self, audio: np.ndarray, end: float) -> float: ...


@dataclass
class Trace:
    """What the gate and the verifier said at each chunk of one conversation."""

    speech: list[bool] = field(default_factory=list)
    """Gate decision per chunk."""
    silence: list[float] = field(default_factory=list)
    """Seconds of non-speech up to the end of each chunk (0 on speech)."""
    end_probability: list[float | None] = field(default_factory=list)
    """The verifier's latest P(end of turn) within the current non-speech run (None before it is asked)."""
    calls: int = 0
    """Verifier calls."""
    seconds: float = 0.0
    """Audio length."""

    def scores(self, kind: str) -> list[float]:
        """Per-chunk score that a threshold turns into Gap: the verifier's probability (0 before it
        answers), or the silence length itself (`timeout`: the VAD-only baseline); -inf on speech."""
        if kind == "timeout":
            return [-np.inf if s else r for s, r in zip(self.speech, self.silence)]
        return [-np.inf if s else 0.0 if p is None else p for s, p in zip(self.speech, self.end_probability)]

    def labels(self, threshold: float, kind: str = "verifier") -> list[str]:
        """SU / Pause / Gap per chunk at `threshold` (a probability, or seconds for `timeout`)."""
        return ["SU" if s else "Gap" if x >= threshold else "Pause" for s, x in zip(self.speech, self.scores(kind))]


class CascadeStream:
    """The cascade on one live stream, chunk by chunk: what `stream` runs over a whole wave and the
    pipecat analyzer (`adaptkit.integrations.pipecat`) over the frames it is given.

    The verifier is asked when a non-speech run reaches each of `asks` seconds (the seed: once, at
    200 ms), with the audio up to the run's onset, or on every chunk with `every_chunk` (the cost
    the cascade saves). Its answer holds for the rest of the run. `keep`: seconds of audio kept for
    the verifier (None: all of it; a live stream keeps what its verifier reads)."""

    def __init__(self, gate: Gate, verifier: Verifier | None = None, *, asks: Sequence[float] = (0.2,), every_chunk: bool = False,
                 gate_threshold: float = 0.5, keep: float | None = None):
        self.gate, self.verifier, self.asks = gate, verifier, tuple(asks)
        self.every_chunk, self.gate_threshold = every_chunk, gate_threshold
        self.keep = None if keep is None else int(keep * SAMPLE_RATE)
        self._clear()

    def reset(self, record: dict | None = None) -> None:
        """Start a new stream (`record`: the conversation's synth record, for verifiers that read it)."""
        self.gate.reset()
        if self.verifier is not None:
            self.verifier.reset(record or {})
        self._clear()

    def _clear(self) -> None:
        self.fed, self.run, self.onset, self.latest, self.calls = 0, 0.0, 0.0, None, 0
        self._chunks: list[np.ndarray] = []
        self._dropped = 0  # samples no longer kept

    def audio(self, end: float) -> np.ndarray:
        """The kept audio up to `end` seconds (the stream's first int(end * 16000) samples, less what `keep` dropped)."""
        stop = int(end * SAMPLE_RATE) - self._dropped
        whole = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        return whole[: max(stop, 0)]

    def _remember(self, chunk: np.ndarray) -> None:
        self._chunks.append(chunk)
        while self.keep is not None and len(self._chunks) > 1 and sum(map(len, self._chunks)) - len(self._chunks[0]) >= self.keep:
            self._dropped += len(self._chunks.pop(0))

    def step(self, chunk: np.ndarray) -> tuple[bool, float, float | None]:
        """Feed the next chunk (100 ms, shorter only at the end); returns whether the gate heard
        speech, the non-speech run so far (s) and the verifier's latest answer in this run (None
        before it is asked)."""
        step = int(HOP * SAMPLE_RATE)
        self._remember(np.asarray(chunk, np.float32))
        padded = chunk if len(chunk) == step else np.pad(chunk, (0, step - len(chunk)))
        speech = self.gate(padded) >= self.gate_threshold
        now = self.fed / SAMPLE_RATE + HOP
        self.fed += len(chunk)
        if speech:
            self.run, self.latest = 0.0, None
        else:
            self.onset = now - HOP if self.run == 0 else self.onset
            self.run = round(self.run + HOP, 6)
        if self.verifier is not None and (self.every_chunk or (not speech and any(abs(self.run - a) < 1e-6 for a in self.asks))):
            end = now if speech else self.onset
            p = self.verifier(self.audio(end), end)
            self.calls += 1
            self.latest = None if speech else p
        return bool(speech), self.run, self.latest


def stream(wave: np.ndarray, gate: Gate, verifier: Verifier | None = None, *, record: dict | None = None,
           asks: Sequence[float] = (0.2,), every_chunk: bool = False, gate_threshold: float = 0.5) -> Trace:
    """Run one conversation chunk by chunk through a `CascadeStream` and record what it said."""
    live = CascadeStream(gate, verifier, asks=asks, every_chunk=every_chunk, gate_threshold=gate_threshold)
    live.reset(record)
    step = int(HOP * SAMPLE_RATE)
    trace = Trace(seconds=len(wave) / SAMPLE_RATE)
    for k in range(0, max(len(wave), 1), step):
        chunk = wave[k:k + step]
        speech, run, latest = live.step(chunk)
        trace.speech.append(speech)
        trace.silence.append(run)
        trace.end_probability.append(latest)
    trace.calls = live.calls
    return trace


def fires(trace: Trace, points: list[fm.DecisionPoint], threshold: float, kind: str = "verifier",
          mode: fm.Mode = "two-party") -> list[float | None]:
    """For each reference silence, seconds from its start to the first chunk labelled Gap inside it
    (a chunk's decision is known at its end, so the chunks ending within the silence count), None
    when none is. `mode` says whether a score equal to the threshold fires (`frame_metrics.first_fire`)."""
    scores = trace.scores(kind)
    out = []
    for p in points:
        first = int(np.floor(p.start / HOP + 1e-9))  # the first chunk ending after the silence starts
        last = int(np.floor(p.end / HOP + 1e-9))  # chunks first..last-1 end within the silence
        out.append(fm.first_fire(scores[first:last], threshold, HOP, offset=first * HOP - p.start, mode=mode))
    return out


SWEEPS = {"verifier": tuple(round(x, 2) for x in np.linspace(0.05, 0.95, 19)), "timeout": (0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0)}
"""Threshold sweeps: probabilities for verifiers, seconds of silence for the timeout baseline."""
DEFAULTS = {"verifier": 0.5, "timeout": 0.5}


def _silences(traces: list[Trace], records: list[dict], settings: list[float], kind: str,
              mode: fm.Mode) -> tuple[list[fm.DecisionPoint], dict[float, list[float | None]]]:
    """Every conversation's decision points under `mode`, and the fire times at each setting."""
    points_all: list[fm.DecisionPoint] = []
    fired: dict[float, list[float | None]] = {x: [] for x in settings}
    for trace, rec in zip(traces, records):
        points = fm.decision_points(rec["silences"], mode=mode)
        points_all += points
        for x in settings:
            fired[x] += fires(trace, points, x, kind, mode)
    return points_all, fired


def score_system(traces: list[Trace], records: list[dict], kind: str = "verifier", threshold: float | None = None,
                 timeout: float = fm.EOT_BENCH_TIMEOUT) -> dict[str, Any]:
    """Frame metrics at `threshold`, verifier calls per minute, and the false cut-off trade-off curve
    in the two-party mode, with the same trade-off in the eot-bench mode under `eot_bench`
    (`timeout`: the latency it charges a missed end of turn)."""
    threshold = DEFAULTS[kind] if threshold is None else threshold
    settings = sorted(set(SWEEPS[kind]) | {threshold})
    ref, hyp = [], []
    for trace, rec in zip(traces, records):
        labels = rec["frames"]["labels"]
        n = min(len(labels), len(trace.speech))
        ref += labels[:n]
        hyp += trace.labels(threshold, kind)[:n]
    minutes = sum(t.seconds for t in traces) / 60
    out: dict[str, Any] = {
        "threshold": threshold,
        "frames": fm.frame_scores(ref, hyp),
        "calls_per_minute": 0.0 if kind == "timeout" else fm.calls_per_minute(sum(t.calls for t in traces), 60 * minutes),
    }
    for mode in fm.MODES:
        points, fired = _silences(traces, records, settings, kind, mode)
        sweep = fm.curve(points, {x: fired[x] for x in SWEEPS[kind]}, mode, timeout)
        part = {"mode": mode, "at_threshold": fm.tradeoff(points, fired[threshold], mode, timeout),
                "curve": sweep, "budgets": fm.at_budgets(sweep, mode=mode)}
        if mode == "two-party":
            out.update(part)
        else:
            out["eot_bench"] = {**part, "timeout": timeout}
    return out
