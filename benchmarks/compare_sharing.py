"""Shared encoder work in `adaptkit compare`: wall time with the shared encoder cache against the
same variants run separately (no sharing), measured in one run.

    python benchmarks/compare_sharing.py [--steps 30] [--variants projector,lora,tokens]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from adaptkit.compare import compare

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "ja_diarization.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--variants", default="projector,lora,tokens")
    args = parser.parse_args()
    names = args.variants.split(",")
    overrides = [f"train.max_steps={args.steps}", "train.eval_every=0", "train.save_every=0", "data.synth.n=16"]
    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        for share in (False, True):
            out = Path(tmp) / ("shared" if share else "separate")
            start = time.perf_counter()
            results = compare(RECIPE, names, out, overrides=overrides, share_encoder=share, limit=2, base_row=False)
            walls[share] = time.perf_counter() - start
            assert all(r.status == "ok" for r in results), [r.status for r in results]
            train = sum(r.wall_seconds for r in results)
            print(f"{'shared encoder cache' if share else 'separate runs       '}: {walls[share]:7.1f} s in all, "
                  f"{train:6.1f} s in training processes ({', '.join(f'{r.name} {r.seconds_per_step * 1000:.0f} ms/step' for r in results)})")
    print(f"compare wall time / sum of separate runs: {walls[True] / walls[False]:.3f}")


if __name__ == "__main__":
    main()
