"""What the speculative cascade saves: turn-model calls and wall time against asking on every chunk.

Synthesises a few English calls, trains the GRU gate briefly, and streams each call twice with the
same gate and the same 3-tag Speech-LLM (a tiny composed model; its weights do not change the cost):
once as the cascade (asked after 200 ms of non-speech), once on every 100 ms chunk. Prints the
ratios measured in this run.

    python benchmarks/cascade_cost.py [--calls 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    from adaptkit.data.audio import load_audio
    from adaptkit.eval.run import TaskModel
    from adaptkit.freeze import apply
    from adaptkit.models import Loaded, build_tiny
    from adaptkit.models.composed import tiny_feature_extractor
    from adaptkit.synth import SynthConfig, generate
    from adaptkit.turn import cascade
    from adaptkit.turn.gate import StreamingGate, train_gate
    from adaptkit.turn.verifiers import TagVerifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "data"
        generate(SynthConfig(out=out, langs=("en",), n=args.calls + 4, splits=(4, 1, args.calls - 1), duration=15.0, seed=5, jobs=1))
        gate = StreamingGate(train_gate(sorted((out / "train").glob("*.wav")), steps=150)[0])
        model, tok = build_tiny("composed", encoder="parakeet_encoder", llm="qwen2",
                                projector={"type": "conv_transformer", "layers": 1, "heads": 4})
        model, _ = apply(model, {"add_tokens": ["<COMPLETE>", "<INCOMPLETE>", "<BACKCHANNEL>"], "train": ["projector"]}, tokenizer=tok)
        verifier = TagVerifier(TaskModel(Loaded("composed", model, tok, tiny_feature_extractor("parakeet_encoder")), "turn_tags", "en", "", set(), "tiny"))
        waves = [load_audio(p, 16000) for split in ("test_id", "test_ood") for p in sorted((out / split).glob("*.wav"))
                 if not p.name.endswith(".stereo.wav")]
        cost = {}
        for every in (False, True):
            start, calls = time.perf_counter(), 0
            for w in waves:
                calls += cascade.stream(w, gate, verifier, every_chunk=every).calls
            cost[every] = (calls, time.perf_counter() - start)
    minutes = sum(len(w) for w in waves) / 16000 / 60
    (c_calls, c_time), (e_calls, e_time) = cost[False], cost[True]
    print(f"{len(waves)} calls, {minutes:.2f} min of audio, one CPU thread")
    print(f"cascade:     {c_calls / minutes:7.1f} turn-model calls/min, {c_time:6.2f} s")
    print(f"every chunk: {e_calls / minutes:7.1f} turn-model calls/min, {e_time:6.2f} s")
    print(f"calls ratio (every chunk / cascade): {e_calls / max(c_calls, 1):.1f}x; wall-time ratio: {e_time / c_time:.1f}x")


if __name__ == "__main__":
    main()
