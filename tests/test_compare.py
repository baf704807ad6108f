"""`adaptkit compare` in smoke size: a trained variant beside the base row, a broken variant failing alone.

One trained variant is enough here: the projector path is trained by every other test, and the
miniature example compares a projector and a LoRA variant end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from adaptkit.cli import main

pytestmark = pytest.mark.qwen_asr_stack  # the recipe is the tiny qwen3_asr's

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "ja_diarization.yaml"


def test_compare_trains_scores_and_reports_every_variant(tmp_path):
    variants = tmp_path / "variants.yaml"
    variants.write_text(yaml.safe_dump({"variants": {"broken": {"train": ["projektor"]}}}))
    out = tmp_path / "cmp"
    result = CliRunner().invoke(main, [
        "compare", str(RECIPE), "train.max_steps=3", "train.eval_every=0", "train.save_every=0", "data.synth.n=6",
        "--variant", "lora", "--variant", "broken", "--variants", str(variants),
        "--out", str(out), "--limit", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report" / "report.json").read_text())
    rows = {(r["variant"], r["set"]): r for r in report["headline"]}
    for variant in ("base (no adapter)", "lora"):
        for split in ("all", "test_id", "test_ood"):
            assert rows[(variant, split)]["status"] == "ok" and rows[(variant, split)]["cp_error_rate"] is not None
    assert rows[("broken", "-")]["status"] == "failed"
    failures = next(s for s in report["sections"] if s["name"] == "Failed variants")["rows"]
    assert failures == [{"variant": "broken", "error": "variant broken: freeze.train[0]: unknown component 'projektor' (closest: projector); "
                         "use one of encoder, projector, llm, embeddings, lm_head, a 're:<regex>' or a glob on parameter names"}]
    costs = {r["variant"]: r for r in next(s for s in report["sections"] if s["name"] == "Cost")["rows"]}
    from adaptkit.compare import VARIANTS
    from adaptkit.plan import plan
    from adaptkit.recipe import Recipe

    base = yaml.safe_load(RECIPE.read_text())
    for name in ("lora",):
        expected = plan(Recipe.parse({"model": base["model"], "tokens": base["tokens"], "freeze": VARIANTS[name]})).trainable_total
        assert costs[name]["trainable_parameters"] == expected
    assert all(costs[v]["adapter_bytes"] > 0 and costs[v]["seconds_per_step"] > 0 and costs[v]["peak_memory_mb"] > 0 for v in ("lora",))
    for name in ("report.md", "report.html", "plots/cp_error_rate.png", "plots/loss.png"):
        assert (out / "report" / name).is_file(), name
    markdown = (out / "report" / "report.md").read_text().splitlines()
    assert markdown[2].startswith("- normalization: nfkc_lower_punct") and markdown[3].startswith("- DER: ")
    assert markdown[5].startswith("| variant | set | status |")
    assert len(list((out / "encoder_cache").glob("*.safetensors"))) > 0  # encoder outputs shared through the disk cache
