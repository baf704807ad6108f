"""The training engine end to end on tiny models and synthetic calls."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from adaptkit.cli import main
from adaptkit.recipe import Recipe
from adaptkit.train import checkpoint, run

pytestmark = pytest.mark.qwen_asr_stack  # every run is the tiny qwen3_asr recipe (tests/train/conftest.py)


def test_train_writes_adapter_merged_checkpoint_and_summary(make_recipe):
    recipe = Recipe.load(make_recipe(train={"eval_every": 3, "save_every": 3, "eval_samples": 0}))  # scoring: test_dev_scoring.py
    summary = run(recipe)
    out = recipe.output_dir
    assert summary.steps == 6 and summary.dev_loss is not None and summary.trainable_parameters > 0
    saved = load_file(out / "adapter" / "adapter.safetensors")
    assert set(saved) == {
        "thinker.audio_tower.proj1.weight", "thinker.audio_tower.proj1.bias", "thinker.audio_tower.proj2.weight",
        "thinker.audio_tower.proj2.bias", "thinker.model.embed_tokens.trainable_tokens_delta.default",
        "thinker.lm_head.trainable_tokens_delta.default",
    }
    data = json.loads((out / "summary.json").read_text())
    assert data["steps"] == 6 and data["report"]["groups"]["llm"]["trainable"] == 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(1, 7))
    assert (out / "tensorboard").is_dir() and any((out / "tensorboard").iterdir())

    from qwen_asr.core.transformers_backend import Qwen3ASRForConditionalGeneration
    from transformers import AutoTokenizer, WhisperFeatureExtractor

    merged = Qwen3ASRForConditionalGeneration.from_pretrained(out / "merged")
    tok = AutoTokenizer.from_pretrained(out / "merged")
    WhisperFeatureExtractor.from_pretrained(out / "merged")
    ids = tok.convert_tokens_to_ids(["<|spk_0|>", "<|spk_1|>"])
    rows = merged.thinker.model.embed_tokens.weight[ids]
    assert torch.equal(rows, saved["thinker.model.embed_tokens.trainable_tokens_delta.default"])
    assert torch.equal(merged.thinker.audio_tower.proj2.weight, saved["thinker.audio_tower.proj2.weight"])


def test_loss_falls_by_half_with_only_the_projector_and_speaker_rows(make_recipe, calls, tmp_path):
    """Acceptance: gradients reach the projector through the frozen LLM (four short units learnt by heart)."""
    call = json.loads((calls / "train" / "train_00000.json").read_text())
    rows = [{"audio": str(calls / "train" / "train_00000.wav"), "start": u["start"], "end": u["end"], "language": "en",
             "text": f"<|{u['speaker']}|> {u['text']}"} for u in call["units"][:4]]
    manifest = tmp_path / "units.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = Recipe.load(make_recipe(train={"max_steps": 60, "batch_size": 4, "lr": 3e-2, "schedule": "constant"},
                                     data={"train": str(manifest), "dev": None}))
    summary = run(recipe)
    losses = [json.loads(x)["loss"] for x in (recipe.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 60
    assert summary.final_loss <= 0.5 * losses[0], (losses[0], summary.final_loss)


def test_an_existing_run_is_not_overwritten_and_resume_needs_a_checkpoint(make_recipe):
    path = make_recipe()
    assert CliRunner().invoke(main, ["train", str(path)]).exit_code == 0
    again = CliRunner().invoke(main, ["train", str(path)])
    assert again.exit_code == 2 and "already holds a run; pass --resume" in again.stderr
    fresh = make_recipe(output_dir=str(path.parent / "other"))
    result = CliRunner().invoke(main, ["train", str(fresh), "--resume"])
    assert result.exit_code == 2 and "--resume: no checkpoint in" in result.stderr


def test_encoder_outputs_are_reused_across_runs_from_disk(make_recipe, monkeypatch, tmp_path):
    from adaptkit.models.qwen3_asr import Qwen3ASR

    first = Recipe.load(make_recipe(train={"max_steps": 4, "encoder_cache_shared": str(tmp_path / "enc")}))
    run(first)
    stored = list((tmp_path / "enc").glob("*.safetensors"))
    assert len(stored) == 10  # 8 train + 2 dev calls
    second = Recipe.load(make_recipe(train={"max_steps": 4, "encoder_cache_shared": str(tmp_path / "enc")},
                                     output_dir=str(tmp_path / "again")))

    def no_encoder(*args, **kwargs):
        raise AssertionError("the encoder ran although every output was cached")

    monkeypatch.setattr(Qwen3ASR, "encode_audio", no_encoder)
    summary = run(second)
    assert summary.steps == 4
    a = load_file(first.output_dir / "adapter" / "adapter.safetensors")
    b = load_file(second.output_dir / "adapter" / "adapter.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # cached states give the same training


def test_auxiliary_ctc_trains_every_weight_but_is_never_saved(make_recipe):
    spec = {"train": ["encoder", "projector", "llm", "embeddings", "lm_head"]}
    recipe = Recipe.load(make_recipe(freeze=spec, train={"max_steps": 3, "ctc_weight": 0.5, "save_every": 2}))
    summary = run(recipe)
    assert summary.steps == 3
    saved = load_file(recipe.output_dir / "adapter" / "adapter.safetensors")
    assert not any("ctc" in k for k in saved) and any(k.startswith("thinker.audio_tower.layers.") for k in saved)
    state = checkpoint.load(checkpoint.latest(recipe.output_dir / "checkpoints"))
    assert state["ctc_head"]["weight"].shape[0] == saved["thinker.model.embed_tokens.weight"].shape[0] + 1


def test_ctc_adds_to_the_loss_and_reaches_the_head(calls):
    from adaptkit.data.batching import collate, encode
    from adaptkit.data.manifest import read_manifest
    from adaptkit.freeze import apply
    from adaptkit.models import architecture, build_tiny
    from adaptkit.models.qwen3_asr import tiny_feature_extractor
    from adaptkit.tasks import task
    from adaptkit.train.step import SpeechLMLoss

    fam = architecture("qwen3_asr")
    model, tok = build_tiny("qwen3_asr")
    model, _ = apply(model, {"train": ["projector"]}, tokenizer=tok)
    samples, _ = read_manifest(calls / "train" / "speaker_asr.jsonl", {"<|spk_0|>", "<|spk_1|>"})
    items = [encode(s, fam, tok, tiny_feature_extractor(), task("speaker_asr").target(s), "", 16000, ctc=True) for s in samples[:2]]
    assert "<|spk_0|>" not in tok.decode(items[0].ctc_ids) and len(items[0].ctc_ids) > 5
    batch = collate(items, tok.pad_token_id)
    batch["index"] = torch.arange(2)
    head = torch.nn.Linear(128, model.thinker.lm_head.weight.shape[0] + 1)
    with torch.no_grad():
        plain_sum, weight = SpeechLMLoss(model, fam, False)(batch)
    with_ctc, weight2 = SpeechLMLoss(model, fam, False, ctc_head=head, ctc_weight=0.5)(batch)
    assert torch.equal(weight, weight2) and with_ctc.item() > plain_sum.item()
    with_ctc.backward()
    assert head.weight.grad.abs().sum() > 0 and model.thinker.audio_tower.proj2.weight.grad.abs().sum() > 0
