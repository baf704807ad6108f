"""Per-call timing of the cascade's parts: what is timed, the percentiles, one thread restored after."""

from __future__ import annotations

import numpy as np
import torch

from adaptkit.turn import cascade
from adaptkit.turn.gate import StreamingGate
from adaptkit.turn.latency import Timed, one_thread, percentiles
from adaptkit.turn.study import part_latency


class Half:
    """P(end of turn) = 0.5, counting the records it is reset with."""

    def __init__(self):
        self.records = []

    def reset(self, record):
        self.records.append(record)

    def __call__(self, audio, end):
        return 0.5


def test_timed_parts_keep_one_time_per_call_and_answer_the_same(trained_gate, call_waves):
    name, wave, record = call_waves[-1]
    plain = cascade.stream(wave, StreamingGate(trained_gate), Half(), record=record)
    gate, inner = Timed(StreamingGate(trained_gate)), Half()
    verifier = Timed(inner)
    torch.set_num_threads(2)
    with one_thread():
        assert torch.get_num_threads() == 1
        timed = cascade.stream(wave, gate, verifier, record=record)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
    assert timed.speech == plain.speech and timed.end_probability == plain.end_probability
    assert len(gate.ms) == len(plain.speech) and len(verifier.ms) == plain.calls > 0 and inner.records == [record]
    stats = percentiles(gate.ms)
    assert stats["calls"] == len(gate.ms) and 0 < stats["p50_ms"] <= stats["p95_ms"] <= max(gate.ms)
    assert percentiles([]) is None


def test_percentiles_and_parts():
    stats = percentiles(list(np.arange(1.0, 101.0)))
    assert stats == {"calls": 100, "p50_ms": 50.5, "p95_ms": 95.05}
    g, v = percentiles([1.0]), percentiles([5.0, 7.0])
    systems = {"cascade: tags": {"gate": "GRU", "latency_ms": {"gate": g, "turn_model": v}},
               "every chunk: tags": {"gate": "GRU", "latency_ms": {"gate": g, "turn_model": percentiles([9.0])}},
               "GRU gate + timeout": {"gate": "GRU", "latency_ms": {"gate": g, "turn_model": None}},
               "baseline: Smart Turn v3.2": {"gate": "Silero VAD", "latency_ms": {"gate": v, "turn_model": g}}}
    assert part_latency(systems) == {"gate: GRU": g, "tags": v, "gate: Silero VAD": v, "Smart Turn v3.2": g}
