"""Acceptance figures of the generic training path: each transformers audio-LLM class trains from
its tiny recipe (projector + speaker rows) on 8 synthetic samples (the first two turns of 8
English calls, as tests/train/test_audio_llms_train.py builds them) for 200 steps.

Prints, per architecture: the first loss, the lowest, their ratio (target <= 0.5), the step at which
the loss first fell to half, and seconds per step on this machine.

    python benchmarks/audio_llm_training.py [--out /tmp/audio_llm_training]

The output of the last run is committed beside this file (`audio_llm_training.txt`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from adaptkit.data.synthetic import first_turns_manifest
from adaptkit.recipe import Recipe
from adaptkit.synth import SynthConfig, generate
from adaptkit.train import run

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "tiny"
ARCHS = ("qwen2_audio", "voxtral", "granite_speech", "qwen2_5_omni_thinker")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/audio_llm_training")
    out = Path(parser.parse_args().out)
    shutil.rmtree(out, ignore_errors=True)
    calls = out / "calls"
    generate(SynthConfig(out=calls, langs=("en",), n=12, splits=(8, 2, 2), duration=8.0, telephone=True, seed=3, jobs=1))
    train, dev = first_turns_manifest(calls / "train", out / "train.jsonl"), first_turns_manifest(calls / "test_id", out / "dev.jsonl")
    print("architecture            first   lowest  lowest/first  half at step  s/step")
    for arch in ARCHS:
        recipe = Recipe.load(RECIPES / f"{arch}_diarization.yaml", [
            f"data.train={train}", f"data.dev={dev}", "data.synth=null", "train.eval_every=0", "train.save_every=0",
            f"output_dir={out / arch}"])
        start = time.perf_counter()
        summary = run(recipe)
        seconds = (time.perf_counter() - start) / summary.steps
        losses = [json.loads(x)["loss"] for x in (out / arch / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
        half = next((i + 1 for i, x in enumerate(losses) if x <= 0.5 * losses[0]), None)
        print(f"{arch:22s} {losses[0]:7.3f} {min(losses):8.3f} {min(losses) / losses[0]:12.3f} {str(half):>13s} {seconds:7.3f}")


if __name__ == "__main__":
    main()
