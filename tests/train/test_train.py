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



def test_train_writes_adapter_merged_checkpoint_and_summary(make_recipe, stack_qwen3, qwen3_layout):
    from adaptkit.models import architecture, build_tiny

    cmap, projector = qwen3_layout
    recipe = Recipe.load(make_recipe(train={"eval_every": 3, "save_every": 3, "eval_samples": 0}))  # scoring: test_dev_scoring.py
    summary = run(recipe)
    out = recipe.output_dir
    assert summary.steps == 6 and summary.dev_loss is not None and summary.trainable_parameters > 0
    saved = load_file(out / "adapter" / "adapter.safetensors")
    rows_key = f"{cmap.embeddings}.trainable_tokens_delta.default"
    assert len(projector) == 4 and set(saved) == {*projector, rows_key, f"{cmap.lm_head}.trainable_tokens_delta.default"}
    data = json.loads((out / "summary.json").read_text())
    assert data["steps"] == 6 and data["report"]["groups"]["llm"]["trainable"] == 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(1, 7))
    assert (out / "tensorboard").is_dir() and any((out / "tensorboard").iterdir())

    from transformers import AutoTokenizer

    impl = architecture(stack_qwen3)  # the merged folder loads with the class's own from_pretrained
    merged = type(build_tiny(stack_qwen3)[0]).from_pretrained(out / "merged")
    tok = AutoTokenizer.from_pretrained(out / "merged")
    type(impl.tiny_feature_extractor()).from_pretrained(out / "merged")
    ids = tok.convert_tokens_to_ids(["<|spk_0|>", "<|spk_1|>"])
    assert torch.equal(merged.get_submodule(cmap.embeddings).weight[ids], saved[rows_key])
    for name in projector:
        assert torch.equal(merged.get_parameter(name), saved[name]), name


def test_loss_falls_by_half_with_only_the_projector_and_speaker_rows(make_recipe, calls, tmp_path):
    """Acceptance: gradients reach the projector through the frozen LLM (four short units learnt by heart)."""
    call = json.loads((calls / "train" / "train_00000.json").read_text())
    rows = [{"audio": str(calls / "train" / "train_00000.wav"), "start": u["start"], "end": u["end"], "language": "en",
             "text": f"<|{u['speaker']}|> {u['text']}"} for u in call["units"][:4]]
    manifest = tmp_path / "units.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # 150 steps: the native tiny Qwen3-ASR (qwen3_asr_hf) has a quarter of qwen_asr's trainable
    # parameters (3,424 against 12,992) and halves its loss in about 120 steps, qwen_asr's in under 60
    recipe = Recipe.load(make_recipe(train={"max_steps": 150, "batch_size": 4, "lr": 3e-2, "schedule": "constant"},
                                     data={"train": str(manifest), "dev": None}))
    summary = run(recipe)
    losses = [json.loads(x)["loss"] for x in (recipe.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 150
    assert summary.final_loss <= 0.5 * losses[0], (losses[0], summary.final_loss)


def test_an_existing_run_is_not_overwritten_and_resume_needs_a_checkpoint(make_recipe):
    path = make_recipe()
    assert CliRunner().invoke(main, ["train", str(path)]).exit_code == 0
    again = CliRunner().invoke(main, ["train", str(path)])
    assert again.exit_code == 2 and "already holds a run; pass --resume" in again.stderr
    fresh = make_recipe(output_dir=str(path.parent / "other"))
    result = CliRunner().invoke(main, ["train", str(fresh), "--resume"])
    assert result.exit_code == 2 and "--resume: no checkpoint in" in result.stderr


def test_encoder_outputs_are_reused_across_runs_from_disk(make_recipe, monkeypatch, tmp_path, stack_qwen3):
    from adaptkit.models import architecture

    first = Recipe.load(make_recipe(train={"max_steps": 4, "encoder_cache_shared": str(tmp_path / "enc")}))
    run(first)
    stored = list((tmp_path / "enc").glob("*.safetensors"))
    assert len(stored) == 10  # 8 train + 2 dev calls
    second = Recipe.load(make_recipe(train={"max_steps": 4, "encoder_cache_shared": str(tmp_path / "enc")},
                                     output_dir=str(tmp_path / "again")))

    def no_encoder(*args, **kwargs):
        raise AssertionError("the encoder ran although every output was cached")

    monkeypatch.setattr(type(architecture(stack_qwen3)), "encode_audio", no_encoder)
    summary = run(second)
    assert summary.steps == 4
    a = load_file(first.output_dir / "adapter" / "adapter.safetensors")
    b = load_file(second.output_dir / "adapter" / "adapter.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # cached states give the same training


def test_auxiliary_ctc_trains_every_weight_but_is_never_saved(make_recipe, qwen3_layout):
    cmap, _ = qwen3_layout
    spec = {"train": ["encoder", "projector", "llm", "embeddings", "lm_head"]}
    recipe = Recipe.load(make_recipe(freeze=spec, train={"max_steps": 3, "ctc_weight": 0.5, "save_every": 2}))
    summary = run(recipe)
    assert summary.steps == 3
    saved = load_file(recipe.output_dir / "adapter" / "adapter.safetensors")
    assert not any("ctc" in k for k in saved) and any(k.startswith(f"{cmap.encoder}.layers.") for k in saved)
    state = checkpoint.load(checkpoint.latest(recipe.output_dir / "checkpoints"))
    assert state["ctc_head"]["weight"].shape[0] == saved[f"{cmap.embeddings}.weight"].shape[0] + 1


def test_ctc_adds_to_the_loss_and_reaches_the_head(calls, stack_qwen3, qwen3_layout):
    from adaptkit.data.batching import collate, encode
    from adaptkit.data.manifest import read_manifest
    from adaptkit.freeze import apply
    from adaptkit.models import architecture, build_tiny
    from adaptkit.tasks import task
    from adaptkit.train.step import SpeechLMLoss

    cmap, projector = qwen3_layout
    fam = architecture(stack_qwen3)
    model, tok = build_tiny(stack_qwen3)
    model, _ = apply(model, {"train": ["projector"]}, tokenizer=tok)
    samples, _ = read_manifest(calls / "train" / "speaker_asr.jsonl", {"<|spk_0|>", "<|spk_1|>"})
    items = [encode(s, fam, tok, fam.tiny_feature_extractor(), task("speaker_asr").target(s), "", 16000, ctc=True) for s in samples[:2]]
    assert "<|spk_0|>" not in tok.decode(items[0].ctc_ids) and len(items[0].ctc_ids) > 5
    batch = collate(items, tok.pad_token_id)
    batch["index"] = torch.arange(2)
    rows, width = model.get_submodule(cmap.embeddings).weight.shape
    head = torch.nn.Linear(width, rows + 1)  # as the training loop builds it: one more class, the blank
    with torch.no_grad():
        plain_sum, weight = SpeechLMLoss(model, fam, False)(batch)
    with_ctc, weight2 = SpeechLMLoss(model, fam, False, ctc_head=head, ctc_weight=0.5)(batch)
    assert torch.equal(weight, weight2) and with_ctc.item() > plain_sum.item()
    with_ctc.backward()
    assert head.weight.grad.abs().sum() > 0
    assert all(model.get_parameter(n).grad.abs().sum() > 0 for n in projector)
