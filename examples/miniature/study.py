"""The miniature study's data and its two stages (examples/miniature/run.py runs them in order).

Data: synthetic two-speaker calls (`adaptkit synth`: espeak-ng voices) in groups, each one
language, one channel and one noise level. The base trains on every group's calls, transcribed
whole without speaker tags, and on the single-speaker utterances cut from them; the fine-tune
trains speaker tags on its own calls of one group only (English, telephone, clean).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from adaptkit import child
from adaptkit.compare import compare
from adaptkit.recipe import Recipe
from adaptkit.synth import SynthConfig, generate


@dataclass(frozen=True)
class Group:
    """Calls of one language, channel and noise level."""

    lang: str
    telephone: bool
    snr: float | None
    seed: int


GROUPS = {
    "en_tel": Group("en", True, None, 11),
    "en_wide": Group("en", False, None, 12),
    "ms_tel": Group("ms", True, None, 13),
    "ms_wide": Group("ms", False, None, 14),
    "en_tel_snr10": Group("en", True, 10.0, 15),
    "ms_wide_snr20": Group("ms", False, 20.0, 16),
    "en_wide_snr20": Group("en", False, 20.0, 17),
}
"""The base's groups: both channels, both languages, clean and noisy at 20 and 10 dB SNR."""

SLICES = {"test_id": "en_tel", "ood_wideband": "en_wide", "ood_malay": "ms_tel", "ood_noise_10db": "en_tel_snr10"}
"""Test slice -> the group its calls come from (held-out calls of that group, the same seen voices).
test_id is the fine-tune's domain; the others are where the base trained and the fine-tune never looked."""

FINE_TUNE = Group("en", True, None, 21)
"""The fine-tune's own calls: English, telephone, clean (a seed of their own: not the base's calls)."""

TAG = re.compile(r"<\|spk_\d+\|>")


def untagged(text: str) -> str:
    """The transcript without speaker tags, whitespace collapsed."""
    return " ".join(TAG.sub(" ", text).split())


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _synth(out: Path, g: Group, train: int, test: int, duration: float) -> None:
    generate(SynthConfig(out=out, langs=(g.lang,), splits=(train, test, 0), duration=duration,
                         telephone=g.telephone, snr=g.snr, seed=g.seed, force=True))


def whole_calls(split: Path, tagged: bool, prefix: str = "") -> list[dict]:
    """One row per call of `split`, audio paths made absolute, ids prefixed; speaker tags kept or removed."""
    rows = _rows(split / "speaker_asr.jsonl")
    for r in rows:
        r["audio"], r["id"] = str(split.resolve() / r["audio"]), prefix + r["id"]
        r["text"] = r["text"] if tagged else untagged(r["text"])
    return rows


def utterances(split: Path, prefix: str = "") -> list[dict]:
    """One plain-ASR row per inter-pausal unit of every call in `split` (single speaker, no tags)."""
    rows = []
    for meta in sorted(split.resolve().glob("*.json")):
        call = json.loads(meta.read_text(encoding="utf-8"))
        for k, u in enumerate(call["units"]):
            rows.append({"audio": str(meta.with_suffix(".wav")), "start": max(0.0, u["start"] - 0.05), "end": u["end"] + 0.05,
                         "text": u["text"], "language": call.get("language", "en"), "id": f"{prefix}{meta.stem}_u{k:03d}"})
    return rows


def make_data(root: Path, base_calls: int, slice_calls: int, fine_tune_calls: int, dev_calls: int,
              duration: float) -> dict[str, Path]:
    """Every group's calls, the base's training manifest, the fine-tune's train and dev manifests and
    one tagged manifest per test slice (its folder name is the slice's name in the reports)."""
    for name, g in GROUPS.items():
        _synth(root / name, g, base_calls, slice_calls if name in SLICES.values() else 0, duration)
    _synth(root / "fine_tune", FINE_TUNE, fine_tune_calls, dev_calls, duration)
    base = []
    for name in GROUPS:
        split = root / name / "train"
        base += whole_calls(split, tagged=False, prefix=f"{name}/") + utterances(split, prefix=f"{name}/")
    out = {"base_train": _write(root / "base_train.jsonl", base),
           "base_dev": _write(root / "base_dev.jsonl", whole_calls(root / "fine_tune" / "test_id", tagged=False)),
           "train": _write(root / "fine_tune_train.jsonl", whole_calls(root / "fine_tune" / "train", tagged=True)),
           "dev": _write(root / "slices" / "dev" / "speaker_asr.jsonl", whole_calls(root / "fine_tune" / "test_id", tagged=True))}
    for name, group in SLICES.items():
        out[name] = _write(root / "slices" / name / "speaker_asr.jsonl", whole_calls(root / group / "test_id", tagged=True))
    return out


BASE_MASKS = {"freq_masks": 2, "freq_width": 12, "time_masks": 2, "time_width": 20, "time_ratio": 0.2}
"""Stage 1's SpecAugment-style masks (`train.spec_augment`): milder than the paper's LibriSpeech
policy (2 x 27 of 80 bins, 2 x 100 frames) for a model this small and a run this short: two masks
of up to 12 of the 128 mel bins and two of up to 0.2 s."""


def train_base(out: Path, data: dict[str, Path], steps: int, batch_size: int) -> dict:
    """Stage 1: a small Qwen3-ASR-architecture model from scratch, every weight trainable, with the
    auxiliary CTC loss and SpecAugment-style masks, on whole untagged calls and single utterances of
    every group. It trains in a child process (`adaptkit.child`), as compare's variants do, so that
    this process never runs parallel torch work and can keep forking them."""
    recipe = {
        "model": {"tiny": "qwen3_asr", "size": "small", "init_std": 0.02},
        "freeze": {"train": ["encoder", "projector", "llm", "embeddings", "lm_head"]},
        "data": {"train": str(data["base_train"]), "dev": str(data["base_dev"])},
        "task": "speaker_asr", "language": "en",
        "train": {"lr": 1e-3, "betas": [0.9, 0.98], "weight_decay": 0.01, "schedule": "cosine",
                  "warmup_steps": min(200, steps // 4), "min_lr_ratio": 0.05, "clip": 1.0, "batch_size": batch_size,
                  "max_steps": steps, "ctc_weight": 0.5, "save_every": 500, "encoder_cache": False,
                  "spec_augment": BASE_MASKS},
        "output_dir": str(out),
    }
    Recipe.parse(recipe, "stage1")
    path = out.parent / "stage1.yaml"
    path.write_text(json.dumps(recipe))
    if child.run(["train", str(path), "--force"], out.parent / "stage1.log") != 0:
        raise SystemExit(f"stage 1 failed: see {out.parent / 'stage1.log'}")
    summary = json.loads((out / "summary.json").read_text())
    return {"steps": summary["steps"], "seconds": round(summary["seconds"], 1), "final_loss": summary["final_loss"],
            "dev_loss": summary["dev_loss"]}


KINDS = {
    "projector": {"train": ["projector", {"tokens": "added"}]},
    "lora_r8": {"train": [{"tokens": "added"}], "lora": {"target": "llm", "r": 8, "alpha": 16}},
}
"""The two adapters: the projector and the new tag rows, or LoRA r8 on every LLM Linear and the new
rows: about the same number of trainable parameters on the small base (the report prints both)."""


@dataclass(frozen=True)
class Run:
    """One stage-2 training run: which adapter, learning rate and seed."""

    kind: str
    lr: float
    seed: int

    @property
    def name(self) -> str:
        """Its variant name in `adaptkit compare`: `projector_lr0.001_s0`."""
        return f"{self.kind}_lr{self.lr:g}_s{self.seed}"


def stage2_runs(lrs: dict[str, tuple[float, ...]], seeds: tuple[int, ...]) -> list[Run]:
    """Every kind x learning rate x seed of stage 2."""
    return [Run(kind, lr, seed) for kind in KINDS for lr in lrs[kind] for seed in seeds]


def fine_tune(out: Path, base: Path, data: dict[str, Path], steps: int, runs: list[Run]) -> list:
    """Stage 2: `adaptkit compare` from the merged base: every kind x learning rate x seed, the same
    steps and batch; scored on the dev set and every slice, the base (no adapter) beside them."""
    recipe = {
        "model": {"name": str(base), "arch": "qwen3_asr"},
        "tokens": {"tokens": ["<|spk_0|>", "<|spk_1|>"], "init": "mean"},
        "freeze": KINDS["projector"],
        "data": {"train": str(data["train"]), "dev": str(data["dev"])},
        "task": "speaker_asr", "language": "en",
        "train": {"lr": 1e-3, "schedule": "cosine", "warmup_steps": min(30, steps // 4), "min_lr_ratio": 0.1,
                  "batch_size": 8, "max_steps": steps, "clip": 1.0},
    }
    variants = {run.name: {"freeze": KINDS[run.kind], "train": {"lr": run.lr, "seed": run.seed}} for run in runs}
    (out / "stage2.yaml").write_text(json.dumps(recipe))
    (out / "variants.yaml").write_text(json.dumps({"variants": variants}))
    tests = [str(data[k]) for k in ("dev", *SLICES)]
    return compare(out / "stage2.yaml", [], out / "compare", out / "variants.yaml", tests)
