"""`adaptkit compare`: train and score freezing variants side by side on one base, data and budget.

Each variant is the base recipe with another freezing spec. It trains and is scored in a process
of its own, so a failing variant fails alone (its one-line error goes into the report) and the
peak memory its training reports is its own. When no variant trains the encoder, encoder outputs are cached on disk
once and shared by every variant (the cache key includes a digest of the encoder weights).
The base model is scored too, as the reference row.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adaptkit import child
from adaptkit.data.synthetic import synth_manifests
from adaptkit.errors import AdaptkitError
from adaptkit.recipe import Recipe
from adaptkit.tasks import task as task_of

# shipped variants: name -> freezing spec (new tokens come from the base recipe's `tokens`)
VARIANTS: dict[str, dict[str, Any]] = {
    "projector": {"train": ["projector", {"tokens": "added"}]},
    "lora": {"train": [{"tokens": "added"}], "lora": {"target": "llm.attention", "r": 8, "alpha": 16}},
    "lora_all": {"train": [{"tokens": "added"}], "lora": {"target": "llm", "r": 8, "alpha": 16}},
    "projector_lora": {"train": ["projector", {"tokens": "added"}], "lora": {"target": "llm.attention", "r": 8, "alpha": 16}},
    "tokens": {"train": [{"tokens": "added"}]},
}


@dataclass
class VariantResult:
    """What one variant cost and scored."""

    name: str
    status: str = "ok"
    """`ok`, or `failed: <one-line error>`."""
    trainable_parameters: int | None = None
    adapter_bytes: int | None = None
    seconds_per_step: float | None = None
    peak_memory_mb: float | None = None
    """Peak memory of the training process (CUDA allocations on a GPU, else resident set)."""
    wall_seconds: float = 0.0
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Test set (`all`, `test_id`, ...) -> metric -> value."""
    degeneration: dict[str, dict[str, Any]] = field(default_factory=dict)
    losses: list[tuple[int, float]] = field(default_factory=list)
    header: dict[str, Any] = field(default_factory=dict)
    """Its eval report's header: normalisation and DER timing source."""


def load_variants(names: list[str], file: str | Path | None) -> dict[str, dict[str, Any]]:
    """Variant name -> raw spec: shipped ones plus those of a compare YAML (`variants: {name: spec}`).

    A variant may also be `{freeze: spec, train: {lr: ...}}` to change training settings too (a sweep)."""
    available = dict(VARIANTS)
    if file:
        try:
            data = yaml.safe_load(Path(file).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise AdaptkitError(f"{file}: cannot read variants ({err})")
        if not isinstance(data, dict) or not isinstance(data.get("variants"), dict):
            raise AdaptkitError(f"{file}: expected a mapping 'variants: {{name: freezing spec}}'")
        available.update(data["variants"])
        names = names or list(data["variants"])
    for name in names:
        if name not in available:
            raise AdaptkitError(f"--variant {name!r}: unknown{closest(name, available)}; available: {', '.join(available)}")
    if len(names) < 1:
        raise AdaptkitError("compare: name at least one --variant (or give --variants FILE)")
    return {n: available[n] for n in names}


def _run(args: list[str], log: Path) -> tuple[int, float, str]:
    """Run `adaptkit ARGS` in a child process (adaptkit.child: forked from this one where that is
    safe); returns (exit code, wall seconds, the error line or last stderr line)."""
    start = time.perf_counter()
    code = child.run(args, log)
    lines = [x for x in log.read_text().splitlines() if x.strip()]
    last = next((x for x in reversed(lines) if x.startswith("error: ")), lines[-1] if lines else "")
    return code, time.perf_counter() - start, last


def _eval_step(target: list[str], test_sets: list[str], folder: Path, options: list[str]) -> tuple[int, float, str]:
    """`adaptkit eval TARGET` on every test set into folder/eval, in a child process (`_run`)."""
    args = ["eval", *target, *sum((["--data", t] for t in test_sets), []), "--out", str(folder / "eval"), *options]
    return _run(args, folder / "eval.log")


def _read_scores(report: Path, metrics: tuple[str, ...]) -> tuple[dict, dict, dict]:
    """The task's `metrics` per set, degeneration rows per set, and the header (normalisation, DER source)."""
    data = json.loads((report / "report.json").read_text())
    scores = {row["subset"]: {k: row.get(k) for k in metrics} for row in data["headline"]}
    degeneration = next((s for s in data["sections"] if s["name"] == "Degeneration"), {"rows": []})
    return scores, {row.get("subset", "all"): row for row in degeneration["rows"]}, data.get("header", {})


def _test_sets(recipe: Recipe, data_dir: Path, tests: list[str]) -> list[str]:
    if tests:
        return tests
    found = []
    if recipe.data.synth:
        found = [str(data_dir / split / f"{recipe.task}.jsonl") for split in ("test_id", "test_ood")]
    elif recipe.data.dev:
        found = [recipe.data.dev]
        ood = Path(recipe.data.dev).parent.parent / "test_ood" / Path(recipe.data.dev).name
        found += [str(ood)] if ood.is_file() else []
    if not found:
        raise AdaptkitError("compare: no test set; give --test MANIFEST (in domain and out of domain)")
    return found


def compare(recipe_path: str | Path, names: list[str], out: str | Path, variants_file: str | Path | None = None,
            tests: list[str] = (), overrides: list[str] = (), share_encoder: bool = True, limit: int | None = None,
            base_row: bool = True, device: str | None = None) -> list[VariantResult]:
    """Train and score every variant; write out/report (Markdown, HTML, JSON, plots). Returns the results.

    `device` is where each eval step decodes (`adaptkit eval --device`; default: `cuda` when there is
    a GPU, else `cpu`); one this machine lacks is refused before anything trains."""
    from adaptkit.devices import resolve_device

    out = Path(out).resolve()
    options = (["--limit", str(limit)] if limit else []) + ["--device", str(resolve_device(device))]  # of each eval step
    base = Recipe.load(recipe_path, overrides)
    if base.data is None:
        raise AdaptkitError(f"{recipe_path}: compare needs a data section")
    variants = load_variants(list(names), variants_file)
    metrics = task_of(base.task).metrics
    out.mkdir(parents=True, exist_ok=True)
    raw = copy.deepcopy(base.raw)
    data_dir = out / "data"
    if base.data.synth:  # make the data once, for every variant
        train, dev = synth_manifests(base.data.synth, data_dir, base.task)
        raw["data"] = {**{k: v for k, v in raw["data"].items() if k != "synth"}, "train": train, "dev": dev}
    else:
        raw["data"] = {**raw["data"], "train": base.data.train, "dev": base.data.dev}
    test_sets = _test_sets(base, data_dir, list(tests))
    raw.setdefault("train", {})
    if share_encoder:
        raw["train"]["encoder_cache_shared"] = str(out / "encoder_cache")
    results = []
    for name, spec in variants.items():
        folder = out / "variants" / name
        folder.mkdir(parents=True, exist_ok=True)
        result = VariantResult(name)
        results.append(result)
        spec, train = (spec["freeze"], spec.get("train", {})) if "freeze" in spec else (spec, {})
        recipe = {**raw, "freeze": spec, "train": {**raw["train"], **train}, "output_dir": str(folder / "run")}
        if "freeze" in base.raw and "add_tokens" in (base.raw.get("freeze") or {}) and "add_tokens" not in spec:
            recipe["freeze"] = {**spec, "add_tokens": base.raw["freeze"]["add_tokens"]}
        try:
            Recipe.parse(recipe, f"variant {name}")
        except AdaptkitError as err:
            result.status = f"failed: {err}"
            continue
        path = folder / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe, allow_unicode=True, sort_keys=False))
        code, wall, last = _run(["train", str(path), "--force"], folder / "train.log")
        result.wall_seconds = round(wall, 2)
        if code != 0:
            result.status = f"failed: {last.removeprefix('error: ')}"
            continue
        summary = json.loads((folder / "run" / "summary.json").read_text())
        result.trainable_parameters = summary["trainable_parameters"]
        result.peak_memory_mb = summary.get("peak_memory_mb")
        result.seconds_per_step = round(summary["seconds"] / max(summary["steps"], 1), 4)
        result.adapter_bytes = sum(f.stat().st_size for f in (folder / "run" / "adapter").iterdir() if f.is_file())
        rows = map(json.loads, (folder / "run" / "metrics.jsonl").read_text().splitlines())
        result.losses = [(x["step"], x["loss"]) for x in rows if "loss" in x]  # dev_metrics rows have none
        code, _, last = _eval_step([str(folder / "run" / "adapter")], test_sets, folder, options)
        if code != 0:
            result.status = f"failed: {last.removeprefix('error: ')}"
            continue
        result.scores, result.degeneration, result.header = _read_scores(folder / "eval", metrics)
    if base_row:
        base_result = VariantResult("base (no adapter)")
        folder = out / "variants" / "base"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "recipe.yaml"
        path.write_text(yaml.safe_dump({**raw, "output_dir": str(folder / "run")}, allow_unicode=True, sort_keys=False))
        code, wall, last = _eval_step([str(path), "--no-adapter"], test_sets, folder, options)
        base_result.wall_seconds = round(wall, 2)
        if code == 0:
            base_result.scores, base_result.degeneration, base_result.header = _read_scores(folder / "eval", metrics)
        else:
            base_result.status = f"failed: {last.removeprefix('error: ')}"
        results.insert(0, base_result)
    write_report(results, out / "report", base.source, test_sets)
    return results


def write_report(results: list[VariantResult], folder: Path, source: str, test_sets: list[str]) -> Path:
    """Markdown, HTML and JSON side by side, with a bar plot per metric and the loss curves."""
    from adaptkit.eval.report import EvalReport, Plot

    sets = sorted({s for r in results for s in r.scores}, key=lambda s: (s != "all", s))
    headline = []
    for r in results:
        short = r.status.split(":")[0]
        for s in (sets or ["all"]) if r.scores else ["-"]:
            headline.append({"variant": r.name, "set": s, "status": short, **r.scores.get(s, {})})
    report = EvalReport(f"Compare: {Path(source).name}", headline, meta={"recipe": source, "test sets": ", ".join(test_sets)},
                    header=next((r.header for r in results if r.header), {}))
    failures = [{"variant": r.name, "error": r.status.removeprefix("failed: ")} for r in results if r.status != "ok"]
    if failures:
        report.add("Failed variants", failures)
    costs = [{"variant": r.name, "status": r.status.split(":")[0], "trainable_parameters": r.trainable_parameters,
              "adapter_bytes": r.adapter_bytes, "seconds_per_step": r.seconds_per_step,
              "peak_memory_mb": r.peak_memory_mb, "wall_seconds": r.wall_seconds} for r in results]
    report.add("Cost", costs)
    for metric in ("cp_error_rate", "wder", "degenerate"):
        rows = [{"variant": r.name, **{s: r.scores.get(s, {}).get(metric) for s in sets}} for r in results]
        report.add(f"{metric} per set", rows, plots=[Plot(f"{metric}", "bar", f"{metric} per set", rows, x="variant", y=sets)])
    degeneration = [{"variant": r.name, "set": s, **{k: v for k, v in row.items() if k != "subset"}}
                    for r in results for s, row in r.degeneration.items()]
    report.add("Degeneration rates", degeneration)
    steps = sorted({step for r in results for step, _ in r.losses})
    curves = [{"step": step, **{r.name: dict(r.losses).get(step) for r in results if r.losses}} for step in steps]
    if curves:
        report.add("Loss curves", [], plots=[Plot("loss", "line", "training loss", curves, x="step", y=[r.name for r in results if r.losses])])
    report.write(folder, {"report.html": report.to_html()})
    return folder
