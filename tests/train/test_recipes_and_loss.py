"""Shipped recipes validate and the tiny ones train; the sparse loss equals the model's own loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adaptkit.data.batching import collate, encode
from adaptkit.data.manifest import read_manifest
from adaptkit.freeze import apply
from adaptkit.models import architecture, build_tiny
from adaptkit.recipe import Recipe
from adaptkit.tasks import task
from adaptkit.train import run
from adaptkit.train.step import SpeechLMLoss

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("name", ["ja_diarization.yaml", "ja_diarization_lora.yaml"])
def test_real_size_recipes_validate(name):
    recipe = Recipe.load(RECIPES / name)
    assert recipe.model.name == "neosophie/Qwen3-ASR-1.7B-JA" and recipe.train.lr == 2e-4 and recipe.train.precision == "bf16"
    assert recipe.new_tokens.tokens == [f"<|spk_{i}|>" for i in range(8)]
    assert ("projector" in [getattr(r, "pattern", None) for r in recipe.freeze.train]) == (recipe.freeze.lora is None)


@pytest.mark.parametrize("name", ["ja_diarization.yaml", "ja_diarization_lora.yaml"])
def test_tiny_recipes_train_on_synthetic_calls(name, tmp_path, stack_qwen3):
    """The shipped recipes name qwen_asr's qwen3_asr; on the current stack they train its -hf counterpart."""
    recipe = Recipe.load(RECIPES / "tiny" / name, [f"model.tiny={stack_qwen3}", "train.max_steps=3", "train.eval_every=0", "train.save_every=0",
                                                   f"output_dir={tmp_path / 'run'}", "data.synth.n=6"])
    summary = run(recipe)
    assert summary.steps == 3 and summary.dev_loss is not None
    assert (tmp_path / "run" / "adapter" / "adapter.safetensors").is_file()
    assert (tmp_path / "run" / "merged" / "config.json").is_file()


def test_sparse_loss_equals_the_models_own_loss_and_weights_tags(calls, stack_qwen3, own_forward):
    fam = architecture(stack_qwen3)
    model, tok = build_tiny(stack_qwen3)
    model, _ = apply(model, {"add_tokens": ["<|spk_0|>", "<|spk_1|>"], "train": ["projector", {"tokens": "added"}]}, tokenizer=tok)
    samples, _ = read_manifest(calls / "train" / "speaker_asr.jsonl", {"<|spk_0|>", "<|spk_1|>"})
    items = [encode(s, fam, tok, fam.tiny_feature_extractor(), task("speaker_asr").target(s), "", 16000) for s in samples[:3]]
    batch = collate(items, tok.pad_token_id)
    batch["index"] = torch.arange(3)
    with torch.no_grad():
        reference = own_forward(fam, model, batch).loss
        loss_sum, weight = SpeechLMLoss(model, fam, encoder_trains=False)(batch)
        torch.testing.assert_close(loss_sum / weight, reference, rtol=1e-5, atol=1e-5)
        spk = tok.convert_tokens_to_ids("<|spk_0|>")
        w_sum, w = SpeechLMLoss(model, fam, encoder_trains=False, token_weights={spk: 5.0})(batch)
    targets = batch["labels"][:, 1:]
    n_spk = int((targets == spk).sum())
    assert n_spk > 0 and float(w) == pytest.approx(float(weight) + 4 * n_spk)
    assert float(w_sum) > float(loss_sum)


def test_turn_tags_train_with_weights_downsampling_and_filters(calls, tmp_path):
    import json

    rows = [json.loads(x) for x in (calls / "train" / "turn_tags.jsonl").read_text().splitlines()]
    for i, r in enumerate(rows):
        r["audio"] = str(calls / "train" / r["audio"])
        r["conf"] = 0.5 if i % 5 == 0 else 0.95
        r["weight"] = 1.0 + (r["label"] == "backchannel") * 100
    manifest = tmp_path / "tags.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = Recipe.load(RECIPES / "tiny" / "turn_tags.yaml", [
        "data.synth=null", f"data.train={manifest}", "data.filters={conf: 0.9}", "data.weight_field=weight",
        "data.max_weight=50", "train.max_steps=3", "train.eval_every=0", f"output_dir={tmp_path / 'run'}"])
    summary = run(recipe)
    assert summary.steps == 3
    adapter = json.loads((tmp_path / "run" / "adapter" / "adaptkit_adapter.json").read_text())
    assert list(adapter["token_rows"]) == ["<COMPLETE>", "<INCOMPLETE>", "<BACKCHANNEL>"]
    assert adapter["model"]["tiny"] == "composed" and adapter["model"]["encoder"] == "parakeet_encoder"
    from adaptkit.eval.run import evaluate

    test = calls / "test_ood" / "turn_tags.jsonl"
    scores = evaluate(tmp_path / "run" / "adapter", [str(test)], tmp_path / "eval")
    n = len(test.read_text().splitlines())
    assert scores.overall["n"] == n and 0 <= scores.overall["accuracy"] <= 1
    rows = [json.loads(x) for x in (tmp_path / "eval" / "decoded.jsonl").read_text().splitlines()]
    assert all(set(r["probabilities"]) == {"<COMPLETE>", "<INCOMPLETE>", "<BACKCHANNEL>"} for r in rows)


def test_turn_end_trains_on_complete_conversations_only(calls, tmp_path):
    import json

    manifest = calls / "train" / "turn_end.jsonl"
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    assert {x["ended"] for x in lines} == {True, False}
    recipe = Recipe.load(RECIPES / "tiny" / "turn_end.yaml", [
        "data.synth=null", f"data.train={manifest}", "train.max_steps=3", "train.eval_every=0", f"output_dir={tmp_path / 'run'}"])
    summary = run(recipe)
    assert summary.steps == 3 and summary.final_loss > 0
    from adaptkit.tasks import turn_end

    end = task("turn_end")
    samples, _ = read_manifest(manifest, set(), require=end.require, check=end.check, audio=end.audio)
    kept = end.for_training(samples)
    assert 0 < len(kept) < len(samples) and all(s.fields["ended"] for s in kept)
    assert turn_end.render([{"role": "user", "content": "hi"}], close_last=False) == "<|im_start|>user\nhi"
    from adaptkit.eval.run import evaluate

    test = calls / "test_ood" / "turn_end.jsonl"
    scores = evaluate(tmp_path / "run" / "adapter", [str(test)], tmp_path / "eval")
    assert scores.overall["n"] == len(test.read_text().splitlines())
    assert {r["threshold"] for r in scores.extra["sweep"]} >= {0.1, 0.5, 0.9} and set(scores.extra["distribution"]) == {"complete", "incomplete"}
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "## Threshold sweep" in report and "## Probability by true class" in report


def test_real_size_turn_recipes_validate():
    from adaptkit.turn.study import CascadeRecipe

    tags = Recipe.load(RECIPES / "turn_tags.yaml")
    assert (tags.model.arch, tags.model.encoder, tags.model.llm) == ("composed", "nvidia/parakeet-ctc-0.6b", "Qwen/Qwen2.5-0.5B")
    assert tags.model.projector["type"] == "conv_transformer" and tags.data.filters == {"tt_confidence": 0.9}
    assert tags.train.token_loss_weights == {t: 5.0 for t in ("<COMPLETE>", "<INCOMPLETE>", "<BACKCHANNEL>")}
    assert (tags.data.max_weight, tags.train.batch_size * tags.train.grad_accum, tags.train.clip) == (50.0, 512, 20.0)
    assert [getattr(r, "pattern", None) for r in tags.freeze.train][0] == "projector"
    end = Recipe.load(RECIPES / "turn_end.yaml")
    assert end.model.llm == "Qwen/Qwen3-4B" and end.model.encoder is None and end.task == "turn_end" and end.freeze.lora
    cascade = CascadeRecipe.load(RECIPES / "cascade.yaml")
    assert {m.model for m in cascade.turn_models.values()} == {str(RECIPES / "turn_tags.yaml"), str(RECIPES / "turn_end.yaml")}
    assert cascade.asks == [0.2] and cascade.gate.kind == "gru"
