"""Turn taking on synthetic calls: every turn model against the baselines, streaming.

1. `adaptkit synth`: English two-speaker calls (telephone train/test_id, wideband test_ood), with
   a stereo file per call (one channel per speaker).
2. Three turn models: the 3-tag Speech-LLM (projector + tag rows on a base Speech-LLM) and two
   end-of-turn LMs (P(<|im_end|>), LoRA on a tiny Qwen3, positive-only training): one on the
   reference text as written, one on the same text normalised like LiveKit's turn detector.
3. `adaptkit cascade`: the GRU gate trained on the frame labels; each turn model asked after
   200 ms of non-speech (the cascade) and on every chunk. The end-of-turn LM runs three ways: on
   the punctuated reference words (an oracle), on the reference words normalised, and on the words
   of an ASR in the loop (`--base` transcribing each of the judged speaker's units as it ends),
   normalised. Also the gate + timeout, and the baselines Silero VAD + timeout and Smart Turn v3.2
   on the judged speaker's own channel; on the out-of-domain split and the in-domain one.

    python examples/turn_taking/run.py --out /tmp/turn --base /tmp/full/stage1/merged

`--base` is a Speech-LLM that already transcribes the synthetic calls, e.g. the stage-1 base of
examples/miniature (`python examples/miniature/run.py --out /tmp/full`); it is both the 3-tag
model's base and the ASR. Without it both are a tiny random composed model, which cannot hear
words (saved once as OUT/tiny_base for the ASR); the pipeline runs the same. The report lands in
OUT/cascade and, with --commit, in examples/turn_taking/results/.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
TINY = {"tiny": "composed", "encoder": "parakeet_encoder", "projector": {"type": "conv_transformer", "layers": 1, "heads": 4}, "llm": "qwen2"}
"""The base without --base: a tiny random composed Speech-LLM (Parakeet-like encoder, Conv1d + Transformer projector, Qwen2)."""


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def tiny_base(folder: Path) -> Path:
    """The tiny random base saved as a merged checkpoint (the ASR without --base); kept when it exists."""
    from adaptkit.freeze import save_merged
    from adaptkit.models import load
    from adaptkit.recipe import ModelSection
    from adaptkit.validation import from_dict

    if not (folder / "config.json").is_file():
        loaded = load(from_dict(ModelSection, TINY, "model"))
        save_merged(loaded.model, folder, *loaded.save_pretrained_objects())
    return folder


def normalised_data(data: Path, out: Path, splits: list[str]) -> Path:
    """turn_end.jsonl of every split used, its messages normalised like LiveKit, in `out`/SPLIT/."""
    from adaptkit.turn.normalize import write_normalized_turn_end

    for split in dict.fromkeys(["train", "test_id", *splits]):
        write_normalized_turn_end(data / split / "turn_end.jsonl", out / split / "turn_end.jsonl")
    return out


def turn_recipes(out: Path, data: Path, normalised: Path, args: argparse.Namespace) -> dict[str, Path]:
    """The training recipes: the 3-tag model, the end-of-turn LM on the text as written and on it normalised."""
    model = {"name": args.base, "arch": "qwen3_asr"} if args.base else TINY
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
    recipes = {"turn_tags": tags}
    for name, folder in (("turn_end", data), ("turn_end_normalised", normalised)):
        recipes[name] = write(out / f"{name}.yaml", {
            "model": {"tiny": "composed", "llm": "qwen3"},
            "freeze": {"lora": {"target": "llm", "r": 8, "alpha": 16}},
            "data": {"train": str(folder / "train" / "turn_end.jsonl"), "dev": str(folder / "test_id" / "turn_end.jsonl")},
            "task": "turn_end",
            "train": {"lr": 5e-3, "max_steps": args.text_steps, **schedule, "token_loss_weights": {"<|im_end|>": 5.0}},
            "output_dir": str(out / name),
        })
    return recipes


def main() -> None:
    from adaptkit.atomic import atomic_write_text
    from adaptkit.synth import SynthConfig, generate
    from adaptkit.turn.punctuation import describe
    from adaptkit.turn.study import CascadeRecipe, run_study

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--base", default=None, help="merged Qwen3-ASR checkpoint: the 3-tag model's base and the ASR (default: tiny random composed)")
    ap.add_argument("--calls", type=int, default=60, help="conversations over all splits")
    ap.add_argument("--tag-steps", type=int, default=1500, help="training steps of the 3-tag model")
    ap.add_argument("--text-steps", type=int, default=300, help="training steps of each end-of-turn LM")
    ap.add_argument("--splits", nargs="+", default=["test_ood", "test_id"], help="test splits, one report each")
    ap.add_argument("--limit", type=int, default=None, help="score at most this many test conversations")
    ap.add_argument("--commit", action="store_true", help="copy the report into examples/turn_taking/results/")
    args = ap.parse_args()
    started = time.perf_counter()
    command = " ".join(["python", "examples/turn_taking/run.py", *map(shlex.quote, sys.argv[1:])])
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    reused = (data / "train").is_dir()  # data made by an earlier call into OUT: run.json says so
    if not reused:
        generate(SynthConfig(out=data, langs=("en",), n=args.calls, duration=15.0, telephone=True, seed=7, stereo=True))
    normalised = normalised_data(data, out / "data_normalised", args.splits)
    recipes = turn_recipes(out, data, normalised, args)
    asr = str(Path(args.base).resolve()) if args.base else str(tiny_base(out / "tiny_base"))
    end_normalised = str(recipes["turn_end_normalised"])
    gate = None
    for split in args.splits:
        cascade = write(out / f"cascade_{split}.yaml", {
            "turn_models": {"3-tag Speech-LLM": str(recipes["turn_tags"]),
                            "end-of-turn LM (reference words, punctuated)": str(recipes["turn_end"]),
                            "end-of-turn LM (reference words, normalised)": {"model": end_normalised, "words": "oracle_normalised"},
                            "end-of-turn LM (ASR words, normalised)": {"model": end_normalised, "words": "asr", "asr": asr}},
            "data": str(data), "test": split, "gate": {"kind": "gru", "steps": 600, "path": gate}, "asks": [0.2], "threshold": 0.5,
            "every_chunk": True, "baselines": ["vad_timeout", "smart_turn"], "smart_turn_audio": "own_channel", "timeout": 0.5,
            "limit": args.limit, "output_dir": str(out / "cascade" / split),
        })
        report = run_study(CascadeRecipe.load(cascade))
        gate = gate or str(out / "cascade" / split / "gate.safetensors")  # one gate for every split
        report["base"], report["asr"] = args.base or "tiny random composed", asr
        atomic_write_text(out / "cascade" / split / "report.json", json.dumps(report, indent=1) + "\n")
        print(f"{split} turn_end data, {describe(report['final_punctuation'])}")
        for name, x in (report["asr_words"] or {}).items():
            print(f"{split} ASR words read by {name}: WER {x['wer']:.3f} over {x['units']} units")
        for name, s in report["systems"].items():
            print(f"{split} {name}: calls/min {s['calls_per_minute']:.1f}, macro F1 {s['frames']['macro_f1']:.3f} (hears {s['hears']})")
    evaluate_alone(out, data, normalised, args.splits)
    run_record = {"command": command, "wall_seconds": round(time.perf_counter() - started, 1), "base": args.base,
                  "calls": args.calls, "reused_data": reused}
    atomic_write_text(out / "cascade" / "run.json", json.dumps(run_record, indent=1) + "\n")
    print(f"done in {run_record['wall_seconds']:.0f} s")
    if args.commit:
        dest = HERE / "results"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(out / "cascade", dest, ignore=shutil.ignore_patterns("*.safetensors"))


def evaluate_alone(out: Path, data: Path, normalised: Path, splits: list[str]) -> None:
    """Each turn model on its own task (3-class / end-of-turn tables); the normalised LM on normalised text."""
    from adaptkit.eval.run import evaluate

    for name, folder in (("turn_tags", data), ("turn_end", data), ("turn_end_normalised", normalised)):
        manifest = "turn_end" if name.startswith("turn_end") else name
        evaluate(out / name / "adapter", [str(folder / split / f"{manifest}.jsonl") for split in splits], out / "cascade" / f"{name}_eval")


if __name__ == "__main__":
    main()
