"""Per-call latency of the cascade's parts: each gate chunk and each turn-model call timed on one
intra-op thread (a voice agent gives its turn detector a core, not the machine), as p50 / p95 ms."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside, the caller's setting restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Timed:
    """A gate or verifier with the same calls, each call's wall time kept in `ms`."""

    def __init__(self, part: Any):
        self.part, self.ms = part, []

    def reset(self, *args: Any) -> None:
        """The part's own reset (a gate takes nothing, a verifier the conversation's record)."""
        self.part.reset(*args)

    def __call__(self, *args: Any) -> float:
        start = time.perf_counter()
        out = self.part(*args)
        self.ms.append(1000.0 * (time.perf_counter() - start))
        return out


def percentiles(ms: list[float]) -> dict[str, float] | None:
    """{"calls", "p50_ms", "p95_ms"} of per-call times (None when there were none)."""
    if not ms:
        return None
    p50, p95 = np.percentile(np.asarray(ms, np.float64), [50, 95])
    return {"calls": len(ms), "p50_ms": round(float(p50), 4), "p95_ms": round(float(p95), 4)}
