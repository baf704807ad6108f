"""A pipecat turn analyzer around adaptkit's speculative cascade: the GRU gate on every 100 ms chunk,
a turn model (the 3-tag Speech-LLM or Smart Turn v3.2) after 200 ms of non-speech.

pipecat (1.x) ends a user turn through `TurnAnalyzerUserTurnStopStrategy(turn_analyzer=...)`
(pipecat/turns/user_stop/turn_analyzer_user_turn_stop_strategy.py), which takes any
`pipecat.audio.turn.base_turn_analyzer.BaseTurnAnalyzer`: it calls `set_sample_rate` at setup,
`append_audio(frame.audio, vad_user_speaking)` on every input audio frame, `analyze_end_of_turn()`
when pipecat's VAD reports a stop and right after `append_audio` returns COMPLETE, and `clear()` when
a turn ends. `BaseSmartTurn` would not do here: it buffers the turn and asks its model only when
pipecat's VAD stops, whereas the cascade runs its own gate on every chunk. So this is a streaming
analyzer in the manner of pipecat's `KrispVivaTurn` (audio/turn/krisp_viva_turn.py): the decision is
made inside `append_audio`, which returns COMPLETE at the frame that ends the deciding chunk, and
`analyze_end_of_turn` reports that state with its metrics once.

`CascadeStream` (adaptkit.turn.cascade) does the work, so the decisions are `adaptkit cascade`'s:
the first chunk of a non-speech run (after speech) whose verifier answer is >= `threshold`. The
pipecat VAD flag is not used for the decision (the gate is the cascade's first stage). The gate's
stream state (GRU state, STFT context) runs on across turns, as the audio does; `clear()` ends the
current turn only. Optionally `stop_secs` ends a turn after that much non-speech whatever the
verifier says (pipecat's Smart Turn safety net, 3 s there). Input at another rate than 16 kHz is
resampled as it streams (soxr.ResampleStream, HQ: it holds back about 66 ms of audio at 8 kHz, so the
decisions come that much later in the input). The verifier runs inside `append_audio`,
on pipecat's event-loop thread: the tiny and Smart Turn verifiers take milliseconds
(`adaptkit cascade` reports their per-call p50 / p95).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

try:
    from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer, BaseTurnParams, EndOfTurnState
    from pipecat.metrics.metrics import MetricsData, TurnMetricsData
except ImportError as err:  # the module is pipecat's plug-in: without pipecat there is nothing to plug into
    raise ImportError(f"adaptkit.integrations.pipecat needs pipecat-ai (1.x): pip install 'adaptkit[turn]' ({err})") from err

from adaptkit.errors import AdaptkitError
from adaptkit.turn.cascade import HOP, SAMPLE_RATE, CascadeStream, Gate, Verifier

CHUNK = int(HOP * SAMPLE_RATE)


class CascadeTurnParams(BaseTurnParams):
    """The analyzer's settings (pipecat broadcasts them in its SpeechControlParamsFrame)."""

    threshold: float = Field(0.5, ge=0.0, le=1.0)
    """P(end of turn) at or above which the turn is complete (the cascade's operating point)."""
    gate_threshold: float = Field(0.5, ge=0.0, le=1.0)
    """P(speech) at or above which a chunk is speech."""
    asks: list[float] = Field(default_factory=lambda: [0.2])
    """Seconds of non-speech at which the verifier is asked (the seed: once, at 200 ms)."""
    stop_secs: float | None = Field(3.0, gt=0.0)
    """End the turn after this much non-speech whatever the verifier says (None: never)."""
    context_secs: float = Field(8.0, gt=0.0)
    """Seconds of audio before the silence kept for the verifier (Smart Turn and the tag verifier read 8 s)."""


class CascadeTurnAnalyzer(BaseTurnAnalyzer):
    """pipecat turn analyzer: adaptkit's gate + verifier cascade on int16 input frames (16 kHz, or resampled to it)."""

    def __init__(self, gate: Gate, verifier: Verifier, *, params: CascadeTurnParams | None = None, sample_rate: int | None = None):
        super().__init__(sample_rate=sample_rate)
        self._params = params or CascadeTurnParams()
        keep = self._params.context_secs + max(self._params.asks, default=0.0) + HOP
        self.cascade = CascadeStream(gate, verifier, asks=self._params.asks, gate_threshold=self._params.gate_threshold, keep=keep)
        self.cascade.reset()
        self._pending = np.zeros(0, np.float32)  # 16 kHz samples not yet a whole chunk
        self._resampler = None
        self._speech_triggered = False
        self._last_state = EndOfTurnState.INCOMPLETE
        self._metrics: TurnMetricsData | None = None

    @classmethod
    def from_files(cls, gate: str | Path, turn_model: str = "smart_turn", threshold: float = 0.5, **params: Any) -> "CascadeTurnAnalyzer":
        """An analyzer on a saved gate (`gate.safetensors` from `adaptkit cascade`, or its ONNX export)
        and a turn model: `smart_turn`, or a 3-tag model's adapter folder, recipe or merged checkpoint."""
        from adaptkit.turn.verifiers import SmartTurnVerifier

        path = Path(gate)
        if path.suffix == ".onnx":
            from adaptkit.turn.gate_onnx import OnnxStreamingGate

            streaming: Gate = OnnxStreamingGate(path)
        else:
            from adaptkit.turn.gate import StreamingGate, load_gate

            streaming = StreamingGate(load_gate(path))
        verifier = SmartTurnVerifier() if turn_model == "smart_turn" else tag_verifier(turn_model)
        return cls(streaming, verifier, params=CascadeTurnParams(threshold=threshold, **params))

    @property
    def speech_triggered(self) -> bool:
        """Whether the gate has heard speech in the current turn."""
        return self._speech_triggered

    @property
    def params(self) -> CascadeTurnParams:
        """The analyzer's settings."""
        return self._params

    def set_sample_rate(self, sample_rate: int) -> None:
        """Take pipecat's input rate; another rate than 16 kHz (8 kHz telephony) is resampled as it
        streams, with soxr's streaming resampler (pipecat's Smart Turn resamples with soxr too)."""
        super().set_sample_rate(sample_rate)
        self._resampler = None
        self._pending = np.zeros(0, np.float32)
        if self._sample_rate and self._sample_rate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(self._sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    def append_audio(self, buffer: bytes, is_speech: bool) -> EndOfTurnState:
        """Feed one frame of int16 PCM; COMPLETE at the frame that ends the chunk deciding the turn."""
        samples = np.frombuffer(buffer, dtype=np.int16).astype(np.float32) / 32768.0
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        self._pending = np.concatenate([self._pending, samples])
        state = EndOfTurnState.INCOMPLETE
        while len(self._pending) >= CHUNK:
            chunk, self._pending = self._pending[:CHUNK], self._pending[CHUNK:]
            if self._decide(*self.cascade.step(chunk)) and state == EndOfTurnState.INCOMPLETE:
                state = EndOfTurnState.COMPLETE
        self._last_state = state
        return state

    def _decide(self, speech: bool, run: float, latest: float | None) -> bool:
        """Whether this chunk ends the turn: the verifier's answer reaches the threshold, or the safety net."""
        if speech:
            self._speech_triggered = True
            return False
        if not self._speech_triggered:
            return False
        p = self._params
        by_model = latest is not None and latest >= p.threshold
        if not by_model and not (p.stop_secs is not None and run >= p.stop_secs - 1e-6):
            return False
        self._speech_triggered = False  # one decision per turn: the next needs speech again
        self._metrics = TurnMetricsData(processor="CascadeTurnAnalyzer", is_complete=True,
                                        probability=float(latest) if latest is not None else 0.0, e2e_processing_time_ms=1000.0 * run)
        return True

    async def analyze_end_of_turn(self) -> tuple[EndOfTurnState, MetricsData | None]:
        """The state the last `append_audio` reached, with its metrics (given once)."""
        metrics, self._metrics = self._metrics, None
        return self._last_state, metrics

    def clear(self) -> None:
        """End the current turn (the gate's stream goes on: the audio is continuous)."""
        self._speech_triggered = False
        self._last_state = EndOfTurnState.INCOMPLETE
        self._metrics = None


def tag_verifier(path: str) -> Verifier:
    """The end-of-turn verifier of a 3-tag Speech-LLM (adapter folder, recipe or merged checkpoint)."""
    from adaptkit.eval.run import load_task_model
    from adaptkit.tasks import task

    task_model = load_task_model(path)
    kind = task(task_model.task)
    verifier = kind.verifier(task_model) if kind.audio else None
    if verifier is None:
        what = "reads text" if not kind.audio else "gives no end-of-turn verifier"
        raise AdaptkitError(f"pipecat analyzer: {path} is a {task_model.task} model, which {what}; the analyzer hears audio, so its "
                            "turn model is a 3-tag Speech-LLM or smart_turn (a text end-of-turn model: adaptkit.integrations.livekit)")
    return verifier
