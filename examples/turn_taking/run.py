"""Turn taking on synthetic calls: every turn model against the baselines, streaming.

1. `adaptkit synth`: English two-speaker calls (telephone train/test_id, wideband test_ood).
2. Two turn models: the 3-tag Speech-LLM (projector + tag rows on a base Speech-LLM) and the
   end-of-turn LM (P(<|im_end|>), LoRA on a tiny Qwen3, positive-only training).
3. `adaptkit cascade`: the GRU gate trained on the frame labels; each turn model asked after
   200 ms of non-speech (the cascade) and on every chunk; the gate + timeout; Silero VAD + timeout
   and Smart Turn v3.2 as baselines; on the out-of-domain split.

    python examples/turn_taking/run.py --out /tmp/turn --base /tmp/full/stage1/merged

`--base` is a Speech-LLM that already transcribes the synthetic calls, e.g. the stage-1 base of
examples/miniature (`python examples/miniature/run.py --out /tmp/full`); without it the 3-tag
model sits on a tiny random composed model, which cannot hear words. The report lands in OUT/cascade
and, with --commit, in examples/turn_taking/results/.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def main() -> None:
    from adaptkit.atomic import atomic_write_text
    from adaptkit.synth import SynthConfig, generate
    from adaptkit.turn.study import CascadeRecipe, run_study

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--base", default=None, help="merged Qwen3-ASR checkpoint for the 3-tag model (default: tiny random composed)")
    ap.add_argument("--calls", type=int, default=60, help="conversations over all splits")
    ap.add_argument("--tag-steps", type=int, default=1500, help="training steps of the 3-tag model")
    ap.add_argument("--text-steps", type=int, default=300, help="training steps of the end-of-turn LM")
    ap.add_argument("--splits", nargs="+", default=["test_ood", "test_id"], help="test splits, one report each")
    ap.add_argument("--limit", type=int, default=None, help="score at most this many test conversations")
    ap.add_argument("--commit", action="store_true", help="copy the report into examples/turn_taking/results/")
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    if not (data / "train").is_dir():
        generate(SynthConfig(out=data, langs=("en",), n=args.calls, duration=15.0, telephone=True, seed=7))
    model = {"name": args.base, "arch": "qwen3_asr"} if args.base else \
        {"tiny": "composed", "encoder": "parakeet_encoder", "projector": {"type": "conv_transformer", "layers": 1, "heads": 4}, "llm": "qwen2"}
    schedule = {"schedule": "cosine", "warmup_steps": 30, "min_lr_ratio": 0.1, "batch_size": 16, "eval_every": 0}
    tags = write(out / "turn_tags.yaml", {
        "model": model,
        "tokens": {"tokens": ["<COMPLETE>", "<INCOMPLETE>", "<BACKCHANNEL>"], "init": "description",
                   "descriptions": {"<COMPLETE>": "complete", "<INCOMPLETE>": "incomplete", "<BACKCHANNEL>": "backchannel"}},
        "freeze": {"strategy": "projector_and_tokens"},
        "data": {"train": str(data / "train" / "turn_tags.jsonl"), "dev": str(data / "test_id" / "turn_tags.jsonl"),
                 "filters": {"confidence": 0.5}, "weight_field": "weight", "max_weight": 50.0,
                 "downsample": {"label": "complete", "to": "incomplete", "ratio": 1.0}},
        "task": "turn_tags", "language": "en",
        "train": {"lr": 3e-3, "max_steps": args.tag_steps, **schedule, "token_loss_weights": {t: 5.0 for t in ("<COMPLETE>", "<INCOMPLETE>", "<BACKCHANNEL>")}},
        "output_dir": str(out / "turn_tags"),
    })
    end = write(out / "turn_end.yaml", {
        "model": {"tiny": "composed", "llm": "qwen3"},
        "freeze": {"lora": {"target": "llm", "r": 8, "alpha": 16}},
        "data": {"train": str(data / "train" / "turn_end.jsonl"), "dev": str(data / "test_id" / "turn_end.jsonl")},
        "task": "turn_end",
        "train": {"lr": 5e-3, "max_steps": args.text_steps, **schedule, "token_loss_weights": {"<|im_end|>": 5.0}},
        "output_dir": str(out / "turn_end"),
    })
    gate = None
    for split in args.splits:
        cascade = write(out / f"cascade_{split}.yaml", {
            "turn_models": {"3-tag Speech-LLM": str(tags), "end-of-turn LM (oracle words)": str(end)},
            "data": str(data), "test": split, "gate": {"kind": "gru", "steps": 600, "path": gate}, "asks": [0.2], "threshold": 0.5,
            "every_chunk": True, "baselines": ["vad_timeout", "smart_turn"], "timeout": 0.5, "limit": args.limit,
            "output_dir": str(out / "cascade" / split),
        })
        report = run_study(CascadeRecipe.load(cascade))
        gate = gate or str(out / "cascade" / split / "gate.safetensors")  # one gate for every split
        report["base"] = args.base or "tiny random composed"
        atomic_write_text(out / "cascade" / split / "report.json", json.dumps(report, indent=1) + "\n")
        for name, s in report["systems"].items():
            print(f"{split} {name}: calls/min {s['calls_per_minute']:.1f}, macro F1 {s['frames']['macro_f1']:.3f}")
    from adaptkit.eval.run import evaluate

    for name in ("turn_tags", "turn_end"):  # each turn model on its own task: 3-class / end-of-turn tables
        evaluate(out / name / "adapter", [str(data / split / f"{name}.jsonl") for split in args.splits], out / "cascade" / f"{name}_eval")
    if args.commit:
        dest = HERE / "results"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(out / "cascade", dest, ignore=shutil.ignore_patterns("*.safetensors"))


if __name__ == "__main__":
    main()
