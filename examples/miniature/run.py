"""The seed's experiment in miniature, on CPU, with one command.

Stage 1 trains a broad base: a small Qwen3-ASR-architecture model (every weight trainable,
auxiliary CTC loss) transcribing whole two-speaker calls without speaker tags, and single
utterances, in English and Malay, telephone and wideband, clean and noisy. Stage 2 fine-tunes it
narrowly, as the seed does: speaker tags, English telephone calls only, projector + tag rows
against LoRA + tag rows, each at several learning rates and seeds (`adaptkit compare`). Every slice
is scored against the base on the same calls, with bootstrap intervals (report.py).

    python examples/miniature/run.py --out runs/miniature          # the full study (about 75 min, 2 cores)
    python examples/miniature/run.py --out /tmp/mini --smoke        # every step at toy size (the test suite runs this)
    python examples/miniature/run.py --out runs/miniature --base-only  # data and the stage-1 base only (about 35 min)

Writes OUT/data, OUT/stage1 (the base), OUT/compare (every variant's run, eval and compare report),
OUT/report.md (the study's report) and OUT/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402
from adaptkit.atomic import atomic_write_text  # noqa: E402
import study  # noqa: E402


@dataclass
class Budget:
    """Sizes of one study."""

    base_calls: int = 100
    """Training calls per base group (7 groups)."""
    slice_calls: int = 40
    """Calls per test slice."""
    fine_tune_calls: int = 160
    dev_calls: int = 16
    duration: float = 9.0
    """Target call length, seconds (a call has an opening, a problem and a goodbye: 8 s or more)."""
    stage1_steps: int = 4000
    stage1_batch: int = 16
    stage2_steps: int = 300
    seeds: tuple[int, ...] = (0, 1, 2)
    lrs: dict[str, tuple[float, ...]] = field(default_factory=lambda: {"projector": (1e-3, 3e-3), "lora_r8": (3e-4, 1e-3)})


FULL = Budget()
SMOKE = Budget(base_calls=2, slice_calls=2, fine_tune_calls=3, dev_calls=2, duration=8.0, stage1_steps=2, stage1_batch=4,
               stage2_steps=2, seeds=(0,), lrs={"projector": (1e-3,), "lora_r8": (1e-3,)})


def cpu_name() -> str:
    """The CPU's model name (Linux), else the platform's machine type."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    return next((x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")), platform.machine())


def write_report(out: Path, b: Budget, timings: dict, base_summary: dict, results: list, command: str) -> dict:
    """OUT/report.md from every eval's decoded.jsonl; returns what summary.json holds."""
    base = report.call_table(out / "compare" / "variants" / "base" / "eval" / "decoded.jsonl")
    failed = {r.name: r.status for r in results if r.status != "ok"}
    runs = {run: report.call_table(out / "compare" / "variants" / run.name / "eval" / "decoded.jsonl")
            for run in study.stage2_runs(b.lrs, b.seeds) if run.name not in failed}
    best = report.best_lrs(runs)
    verdict_lines, verdict = report.verdict_section(base, runs, best)
    trainable = {r.name: r.trainable_parameters for r in results if r.trainable_parameters}
    lines = ["# The miniature study: broad base, narrow fine-tune", "",
             f"Command: `{command}`", "",
             f"Machine: {cpu_name()}, {os.cpu_count()} cores. Wall time: "
             + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ". Nothing reused from an earlier run.", "",
             f"Base: {base_summary['steps']} steps, final training loss {base_summary['final_loss']:.3f}, "
             f"dev loss {base_summary['dev_loss']:.3f}. Stage 2: {b.stage2_steps} steps at batch 8 for every variant; "
             f"trainable parameters: " + ", ".join(f"{k} {v:,}" for k, v in trainable.items() if k.endswith("_s0")) + ".",
             *(["", "Failed variants: " + "; ".join(f"{k}: {v}" for k, v in failed.items())] if failed else []), "",
             *verdict_lines, *report.base_section(base), *report.pooled_section(base, runs, best), *report.seed_section(base, runs)]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    summary = {"command": command, "budget": asdict(b), "seconds": dict(timings), "stage1": base_summary, "verdict": verdict,
               "chosen_lr": best, "failed": failed, "trainable_parameters": trainable,
               "base": {name: asdict(report.estimate([base[name]], "cer")) for name in base},
               "variants": {run.name: {name: {m: asdict(report.estimate([t], m)) for m in report.METRICS} for name, t in table.items()}
                            for run, table in runs.items()}}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true", help="Tiny budgets: checks every step in a few minutes.")
    parser.add_argument("--base-only", action="store_true", help="Stop after stage 1 (the base other examples build on).")
    args = parser.parse_args()
    b = SMOKE if args.smoke else FULL
    command = "python examples/miniature/run.py --out " + str(args.out) + (" --smoke" if args.smoke else "") + (" --base-only" if args.base_only else "")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    data = study.make_data(args.out / "data", b.base_calls, b.slice_calls, b.fine_tune_calls, b.dev_calls, b.duration)
    timings["data"] = time.perf_counter() - start
    base_summary = study.train_base(args.out / "stage1", data, b.stage1_steps, b.stage1_batch)
    timings["stage 1"] = time.perf_counter() - start - sum(timings.values())
    print(f"stage 1: {base_summary['steps']} steps in {timings['stage 1']:.0f} s", flush=True)
    if args.base_only:
        base_run = {"command": command, "budget": asdict(b), "seconds": {**timings, "total": time.perf_counter() - start}, "stage1": base_summary}
        atomic_write_text(args.out / "base.json", json.dumps(base_run, indent=1) + "\n")
        print(f"base in {args.out / 'stage1' / 'merged'}; {args.out / 'base.json'} records the command and wall time")
        return
    results = study.fine_tune(args.out, args.out / "stage1" / "merged", data, b.stage2_steps, study.stage2_runs(b.lrs, b.seeds))
    timings["stage 2"] = time.perf_counter() - start - sum(timings.values())
    summary = write_report(args.out, b, timings, base_summary, results, command)
    summary["seconds"] = {**timings, "total": time.perf_counter() - start}
    atomic_write_text(args.out / "summary.json", json.dumps(summary, indent=1) + "\n")
    print(f"done in {summary['seconds']['total']:.0f} s; verdict: {summary['verdict']}; report: {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
