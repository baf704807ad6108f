"""transformers 5's native speech LLMs train through the generic path: each tiny recipe (projector +
speaker rows) lowers the loss in a few steps, the merged checkpoint reloads with the class's own
`from_pretrained` and gives the trained model's logits, and `adaptkit eval` runs on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from adaptkit.cli import main
from adaptkit.freeze import load_adapter
from adaptkit.models import _arch_of, architecture, build_tiny
from adaptkit.recipe import Recipe
from adaptkit.train import run

pytestmark = pytest.mark.current_stack

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "tiny"
ARCHS = ["qwen3_asr_hf", "audioflamingo3", "glmasr"]
STEPS = 30


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_recipe_trains_merges_and_evaluates(arch, short_calls, tmp_path, speech_batch, own_forward):
    out = tmp_path / "run"
    recipe = Recipe.load(RECIPES / f"{arch}_diarization.yaml", [
        f"data.train={short_calls['train']}", f"data.dev={short_calls['test_id']}", "data.synth=null",
        f"train.max_steps={STEPS}", "train.eval_every=0", "train.save_every=0", f"output_dir={out}"])
    assert recipe.model.tiny == arch and recipe.freeze.train[0].pattern == "projector"
    summary = run(recipe)
    losses = [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert summary.steps == STEPS and len(losses) == STEPS
    assert losses[-1] < 0.9 * losses[0], (losses[0], losses[-1])

    impl = architecture(arch)
    assert _arch_of(str(out / "merged")) == arch  # qwen3_asr_hf: told from qwen_asr's layout by the config's shape
    base, tok = build_tiny(arch)
    trained, _ = load_adapter(base, out / "adapter", tokenizer=tok)
    batch = speech_batch(impl, trained, tok, impl.tiny_feature_extractor(), answers=["<|spk_0|> hello <|spk_1|> thank you"],
                         seconds=(2.5, 1.0))
    merged = impl.model_class().from_pretrained(out / "merged").eval()
    with torch.no_grad():
        want = own_forward(impl, trained.eval(), batch).logits
        got = own_forward(impl, merged, batch).logits
    assert (got - want).abs().max().item() <= 1e-4

    result = CliRunner().invoke(main, ["eval", str(out / "merged"), "--data", str(short_calls["test_id"]), "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (tmp_path / "eval" / "decoded.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["tokens"] > 0 for r in rows)
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["headline"][0]["n"] == 2
