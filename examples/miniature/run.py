"""The seed's experiment in miniature, on CPU, with one command.

Stage 1 trains a small Qwen3-ASR-architecture model (about 2.4 M parameters, every weight
trainable, auxiliary CTC loss) to transcribe single utterances of synthetic English calls.
Stage 2 starts from that base and runs `adaptkit compare`: projector + speaker rows against LoRA +
speaker rows (and a LoRA sweep) on speaker-attributed transcription of whole calls, scored in
domain (telephone, seen voices) and on out-of-domain slices: wideband + unseen voices, noise at
5 dB SNR, and another language (Malay: unseen words and accent).

    python examples/miniature/run.py --out runs/miniature            # the full study (about 40 min, 2 cores)
    python examples/miniature/run.py --out /tmp/mini --smoke          # seconds: every step, tiny budgets

Writes OUT/stage1 (base), OUT/compare/report (Markdown, HTML, JSON, plots) and OUT/summary.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import jiwer

from adaptkit.compare import compare
from adaptkit.eval.run import evaluate
from adaptkit.recipe import Recipe
from adaptkit.synth import SynthConfig, generate
from adaptkit.train import run


@dataclass
class Budget:
    """Sizes of one study."""

    calls: int = 160
    test_calls: int = 8
    stage1_steps: int = 2400
    stage2_steps: int = 300
    eval_limit: int | None = None


FULL, SMOKE = Budget(), Budget(calls=4, test_calls=1, stage1_steps=2, stage2_steps=2, eval_limit=1)
SMOKE_VARIANTS = ("projector", "lora_r8")
"""--smoke trains these two variants only (one of each kind): every step runs, in a fraction of the time."""


def utterance_manifest(split: Path, out: Path) -> Path:
    """One plain-ASR line per inter-pausal unit of every call in `split` (single speaker, no tags)."""
    rows = []
    for meta in sorted(split.glob("*.json")):
        call = json.loads(meta.read_text())
        for k, u in enumerate(call["units"]):
            rows.append({"audio": str(meta.with_suffix(".wav")), "start": max(0.0, u["start"] - 0.05), "end": u["end"] + 0.05,
                         "text": u["text"], "language": call.get("language", "en"), "id": f"{meta.stem}_u{k:03d}"})
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return out


def make_data(root: Path, b: Budget) -> dict[str, Path]:
    """The main English calls (telephone train + in-domain test + wideband unseen-voice test), a
    noisy in-channel slice and a Malay slice."""
    generate(SynthConfig(out=root / "main", langs=("en",), n=b.calls + 2 * b.test_calls, splits=(b.calls, b.test_calls, b.test_calls),
                         duration=12.0, telephone=True, seed=1, force=True))
    generate(SynthConfig(out=root / "noise", langs=("en",), n=b.test_calls + 2, splits=(1, b.test_calls, 1),
                         duration=12.0, telephone=True, snr=5.0, seed=2, force=True))
    generate(SynthConfig(out=root / "malay", langs=("ms",), n=b.test_calls + 2, splits=(1, b.test_calls, 1),
                         duration=12.0, telephone=True, seed=3, force=True))
    (root / "slices").mkdir(exist_ok=True)
    slices = {"test_id": root / "main" / "test_id", "test_ood_wideband_voices": root / "main" / "test_ood",
              "test_ood_noise_5db": root / "noise" / "test_id", "test_ood_malay": root / "malay" / "test_id"}
    out = {}
    for name, folder in slices.items():  # one folder per slice, so the reports name them
        target = root / "slices" / name
        target.mkdir(exist_ok=True)
        text = (folder / "speaker_asr.jsonl").read_text()
        rows = [json.loads(x) for x in text.splitlines()]
        for r in rows:
            r["audio"] = str(folder / r["audio"])
        (target / "speaker_asr.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        out[name] = target / "speaker_asr.jsonl"
    out["asr_train"] = utterance_manifest(root / "main" / "train", root / "asr_train.jsonl")
    out["asr_test_id"] = utterance_manifest(root / "main" / "test_id", root / "asr_test_id.jsonl")
    out["train"] = root / "main" / "train" / "speaker_asr.jsonl"
    return out


def stage1(out: Path, data: dict[str, Path], b: Budget) -> dict:
    """Train the base from scratch (all weights, CTC weight 0.5) and measure its in-domain CER."""
    recipe = Recipe.parse({
        "model": {"tiny": "qwen3_asr", "size": "small", "init_std": 0.02},
        "freeze": {"train": ["encoder", "projector", "llm", "embeddings", "lm_head"]},
        "data": {"train": str(data["asr_train"]), "dev": str(data["asr_test_id"])},
        "task": "speaker_asr", "language": "en",
        "train": {"lr": 1e-3, "betas": [0.9, 0.98], "weight_decay": 0.01, "schedule": "cosine", "warmup_steps": min(200, b.stage1_steps // 4),
                  "min_lr_ratio": 0.05, "clip": 1.0, "batch_size": 24, "max_steps": b.stage1_steps, "ctc_weight": 0.5,
                  "save_every": 500, "encoder_cache": False},
        "output_dir": str(out / "stage1"),
    }, "stage1")
    if (out / "stage1" / "adapter").is_dir():  # trained by an earlier call: reuse it
        summary = argparse.Namespace(**json.loads((out / "stage1" / "summary.json").read_text()))
    else:
        summary = run(recipe)
    scores = evaluate(out / "stage1" / "adapter", [str(data["asr_test_id"])], out / "stage1" / "eval", limit=b.eval_limit and 4)
    rows = [json.loads(x) for x in (out / "stage1" / "eval" / "decoded.jsonl").read_text().splitlines()]
    plain = lambda t: t.split("<asr_text>")[-1].strip().lower()  # noqa: E731
    cer = jiwer.cer([plain(r["reference"]) for r in rows], [plain(r["hypothesis"]) for r in rows])
    return {"steps": summary.steps, "seconds": summary.seconds, "final_loss": summary.final_loss, "dev_loss": summary.dev_loss,
            "cer_in_domain": cer, "wer_in_domain": scores.overall["error_rate"], "utterances": len(rows)}


VARIANTS = {
    "projector": {"freeze": {"train": ["projector", {"tokens": "added"}]}},
    "projector_lr3x": {"freeze": {"train": ["projector", {"tokens": "added"}]}, "train": {"lr": 3e-3}},
    "lora_r8": {"freeze": {"train": [{"tokens": "added"}], "lora": {"target": "llm", "r": 8, "alpha": 16}}},
    "lora_r32_lr3x": {"freeze": {"train": [{"tokens": "added"}], "lora": {"target": "llm", "r": 32, "alpha": 64}},
                      "train": {"lr": 3e-3}},
    "lora_r32_lr10x": {"freeze": {"train": [{"tokens": "added"}], "lora": {"target": "llm", "r": 32, "alpha": 64}},
                       "train": {"lr": 1e-2}},
}


def stage2(out: Path, data: dict[str, Path], b: Budget, names: tuple[str, ...] | None = None) -> list:
    """adaptkit compare on the stage-1 base: projector + rows against LoRA + rows, and a LoRA sweep point."""
    base = {
        "model": {"name": str(out / "stage1" / "merged"), "arch": "qwen3_asr"},
        "tokens": {"tokens": ["<|spk_0|>", "<|spk_1|>"], "init": "mean"},
        "freeze": {"train": ["projector", {"tokens": "added"}]},
        "data": {"train": str(data["train"]), "dev": str(data["test_id"])},
        "task": "speaker_asr", "language": "en",
        "train": {"lr": 1e-3, "schedule": "cosine", "warmup_steps": min(30, b.stage2_steps // 4), "min_lr_ratio": 0.1,
                  "batch_size": 8, "max_steps": b.stage2_steps, "clip": 1.0},
    }
    (out / "stage2.yaml").write_text(json.dumps(base))
    (out / "variants.yaml").write_text(json.dumps({"variants": {k: v for k, v in VARIANTS.items() if names is None or k in names}}))
    tests = [str(data[k]) for k in ("test_id", "test_ood_wideband_voices", "test_ood_noise_5db", "test_ood_malay")]
    return compare(out / "stage2.yaml", [], out / "compare", out / "variants.yaml", tests, limit=b.eval_limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true", help="Tiny budgets: checks every step in seconds.")
    args = parser.parse_args()
    b = SMOKE if args.smoke else FULL
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    data = make_data(args.out / "data", b)
    base = stage1(args.out, data, b)
    print(f"stage 1: {base['steps']} steps in {base['seconds']:.0f} s, in-domain CER {base['cer_in_domain']:.3f}", flush=True)
    results = stage2(args.out, data, b, SMOKE_VARIANTS if args.smoke else None)
    summary = {"budget": asdict(b), "stage1": base, "seconds": round(time.perf_counter() - start, 1),
               "variants": [{"name": r.name, "status": r.status, "scores": r.scores, "degeneration": r.degeneration,
                             "trainable_parameters": r.trainable_parameters} for r in results]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"done in {summary['seconds']:.0f} s; report: {args.out / 'compare' / 'report' / 'report.md'}")


if __name__ == "__main__":
    main()
