"""Composed Speech-LLMs: any encoder + projector + causal LM, tiny and offline."""

from __future__ import annotations

import pytest
import torch

from adaptkit.errors import AdaptkitError
from adaptkit.freeze import apply, fingerprint, merge, save_merged, train_mode, trainable_parameters
from adaptkit.freeze.spec import STRATEGIES
from adaptkit.models import architecture, build_tiny
from adaptkit.recipe import Recipe

fam = architecture("composed")


def _batch(speech_batch, model, tok, seconds=(2.0, 2.0), answers=("hello order",)):
    """Random audio through the composed architecture's own features and prompt."""
    encoder = model.config.encoder["model_type"] if model.config.encoder else None
    return speech_batch(fam, model, tok, fam.tiny_feature_extractor(encoder), answers=list(answers), seconds=seconds)
ENCODERS = ("whisper", "wav2vec2", "parakeet_encoder")


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("projector", ["linear", "conv_transformer"])
def test_a_batch_gives_each_samples_rows_and_the_counted_placeholders(encoder, projector, speech_batch, own_forward):
    model, tok = build_tiny("composed", encoder=encoder, llm="qwen2", projector={"type": projector, "heads": 4})
    model.eval()
    batch = _batch(speech_batch, model, tok, seconds=(3.0, 3.0))
    feats, mask = batch["input_features"], batch["feature_attention_mask"].clone()
    short = mask.shape[1] * 2 // 3
    mask[1, short:] = 0
    with torch.no_grad():
        both = fam.encode_audio(model, feats, mask)
        alone = fam.encode_audio(model, feats[1:2, :, :short], mask[1:2, :short])
        torch.testing.assert_close(both[1], alone[0], atol=1e-5, rtol=1e-5)
        rows_both, rows_alone = fam.project(model, both), fam.project(model, alone)
    n_long, n_short = (fam.audio_token_count(int(m.sum()), model) for m in mask)
    assert rows_both.shape[0] == n_long + n_short and rows_alone.shape[0] == n_short
    assert n_short < n_long
    if projector == "conv_transformer":  # stride 2
        assert n_short == (both[1].shape[0] - 1) // 2 + 1
    torch.testing.assert_close(rows_both[n_long:], rows_alone, atol=1e-5, rtol=1e-5)
    loss = own_forward(fam, model, batch).loss
    assert torch.isfinite(loss) and loss > 0


@pytest.mark.parametrize("name,trains,frozen", [
    ("all_trainable", {"encoder", "projector", "llm", "embeddings", "lm_head"}, set()),
    ("llm_and_projector", {"projector", "llm", "embeddings", "lm_head"}, {"encoder"}),
    ("projector_only", {"projector"}, {"encoder", "llm", "embeddings", "lm_head"}),
    ("projector_and_tokens", {"projector", "embeddings", "lm_head"}, {"encoder", "llm"}),
    ("llm_lora_and_projector", {"projector", "lora"}, {"encoder", "llm", "embeddings", "lm_head"}),
])
def test_the_seeds_freeze_strategies_are_plain_specs(name, trains, frozen, speech_batch, own_forward):
    model, tok = build_tiny("composed", encoder="parakeet_encoder", llm="qwen2", projector={"type": "conv_transformer", "heads": 4})
    spec = {"strategy": name} | ({"add_tokens": ["<COMPLETE>", "<INCOMPLETE>"]} if name == "projector_and_tokens" else {})
    model, report = apply(model, spec, tokenizer=tok)
    train_mode(model)  # as the training loop: a frozen encoder's BatchNorm keeps its statistics
    assert model.encoder.training == ("encoder" in trains)  # a frozen encoder runs without dropout
    before = fingerprint(model)
    batch = _batch(speech_batch, model, tok, answers=["<COMPLETE>" if "tokens" in name else "hello"])
    opt = torch.optim.AdamW(trainable_parameters(model), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        own_forward(fam, model, batch).loss.backward()
        opt.step()
    cmap = model.adaptkit.cmap
    groups = {cmap.group_of(n) for n, p in model.named_parameters() if p.requires_grad}
    assert groups == trains
    after = fingerprint(model)
    in_frozen = [k for k in before if cmap.group_of(k.split(":")[-1]) in frozen]
    assert len(in_frozen) > 0 or not frozen
    assert all(before[k] == after[k] for k in in_frozen)  # frozen weights and buffers (BatchNorm stats) bit-identical
    assert all(cmap.group_of(n) not in frozen or not p.requires_grad for n, p in model.named_parameters())


def test_unknown_strategy_is_one_line():
    model, tok = build_tiny("composed", encoder="whisper")
    with pytest.raises(AdaptkitError, match=r"freeze.strategy: unknown strategy 'all_trainabel' \(closest: all_trainable\); use one of all_trainable, "):
        apply(model, {"strategy": "all_trainabel"}, tokenizer=tok)
    assert set(STRATEGIES) >= {"all_trainable", "llm_and_projector"}


@pytest.mark.parametrize("tied", [False, True])
def test_merged_composition_reloads_with_the_same_logits(tied, tmp_path, speech_batch, own_forward):
    model, tok = build_tiny("composed", encoder="whisper", llm="qwen3", tied=tied, init_std=0.02)
    model, _ = apply(model, {"add_tokens": ["<COMPLETE>"], "train": ["projector", {"tokens": "added"}], "lora": {"target": "llm", "r": 4}},
                     tokenizer=tok)
    batch = _batch(speech_batch, model, tok)
    with torch.no_grad():
        for p in trainable_parameters(model):
            p.add_(0.05 * torch.randn_like(p))
        expected = own_forward(fam, model, batch).logits
    merged = merge(model)
    save_merged(merged, tmp_path / "m", tok, fam.tiny_feature_extractor("whisper"))
    reloaded, tok2, fe, _ = fam.load(str(tmp_path / "m"), torch.float32)
    with torch.no_grad():
        got = own_forward(fam, reloaded.eval(), batch).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert type(fe).__name__ == "WhisperFeatureExtractor" and len(tok2) == len(tok)


def test_generate_returns_the_prompt_then_new_tokens(speech_batch):
    model, tok = build_tiny("composed", encoder="wav2vec2")
    batch = _batch(speech_batch, model, tok, seconds=(2.0,))
    ids = batch["input_ids"][:, : (batch["labels"][0] == -100).nonzero().max() + 1]
    out = fam.generate(model.eval(), input_ids=ids, attention_mask=torch.ones_like(ids), input_features=batch["input_features"],
                       feature_attention_mask=batch["feature_attention_mask"], max_new_tokens=3, do_sample=False)
    assert out.shape == (1, ids.shape[1] + 3) and torch.equal(out[:, : ids.shape[1]], ids)


@pytest.mark.parametrize("model,message", [
    ({"tiny": "composed", "encoder": "conformer"}, "model.encoder: no tiny 'conformer' encoder"),
    ({"tiny": "composed", "encoder": "whisper", "projector": {"type": "mlp"}}, "model.projector.type: unknown projector 'mlp'"),
    ({"tiny": "composed", "encoder": "whisper", "projector": {"type": "conv_transformer", "heads": 3}}, "model.projector.heads: 3 does not divide"),
    ({"tiny": "composed", "encoder": "whisper", "projector": {"kernel": 3}}, "model.projector: unknown key(s) kernel"),
    ({"arch": "composed", "encoder": "openai/whisper-medium"}, "model.llm: a composed model needs an LLM"),
    ({"tiny": "qwen3_asr", "encoder": "whisper"}, "model: encoder, llm and projector are for composed models"),
])
def test_bad_composition_is_one_line(model, message, tmp_path):
    from adaptkit.models import load

    with pytest.raises(AdaptkitError) as err:
        recipe = Recipe.parse({"model": model, "freeze": {"train": ["projector"]}})
        load(recipe.model)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_compose_joins_checkpoints_by_path_as_by_hub_name(tmp_path, speech_batch, own_forward):
    """The by-name path (`arch: composed`, encoder + llm ids) on local folders of real classes."""
    from transformers import (ParakeetCTCConfig, ParakeetFeatureExtractor, ParakeetForCTC, Qwen2Config, Qwen2ForCausalLM,
                              WhisperConfig, WhisperFeatureExtractor, WhisperModel)

    from adaptkit.models import load
    from adaptkit.models.composed import TINY_ENCODERS
    from adaptkit.models.tokenizer import tiny_tokenizer

    WhisperModel(WhisperConfig(**TINY_ENCODERS["whisper"])).save_pretrained(tmp_path / "whisper")
    WhisperFeatureExtractor(feature_size=80).save_pretrained(tmp_path / "whisper")
    ParakeetForCTC(ParakeetCTCConfig(encoder_config=TINY_ENCODERS["parakeet_encoder"], vocab_size=32)).save_pretrained(tmp_path / "parakeet")
    ParakeetFeatureExtractor().save_pretrained(tmp_path / "parakeet")
    tok = tiny_tokenizer()
    Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                 num_attention_heads=4, num_key_value_heads=2)).save_pretrained(tmp_path / "llm")
    tok.save_pretrained(tmp_path / "llm")
    for name, cls in (("whisper", "WhisperEncoder"), ("parakeet", "ParakeetEncoder")):
        recipe = Recipe.parse({"model": {"arch": "composed", "encoder": str(tmp_path / name), "llm": str(tmp_path / "llm"),
                                         "projector": {"type": "conv_transformer", "heads": 4}}, "freeze": {"strategy": "projector_only"}})
        loaded = load(recipe.model)
        assert type(loaded.model.encoder).__name__ == cls and loaded.model.llm.config.hidden_size == 64
        batch = speech_batch(fam, loaded.model, loaded.tokenizer, loaded.feature_extractor, answers=["hello order"], seconds=(2.0, 2.0))
        assert torch.isfinite(own_forward(fam, loaded.model, batch).loss)
    with pytest.raises(AdaptkitError, match=r"model.llm: '.*nowhere' is not a folder \(a path, not a hub id\)"):
        load(Recipe.parse({"model": {"arch": "composed", "llm": str(tmp_path / "nowhere")}, "freeze": {"train": ["llm"]}}).model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdaptkitError, match=r"^model.encoder: cannot load '.*empty': "):  # the part that failed, by its key
        load(Recipe.parse({"model": {"arch": "composed", "encoder": str(tmp_path / "empty"), "llm": str(tmp_path / "llm")},
                           "freeze": {"train": ["projector"]}}).model)


@pytest.mark.parametrize("llm", ["llama", "mistral", "gemma", "gpt2"])
def test_any_causal_lm_type_joins_and_its_parts_are_found(llm, speech_batch, own_forward):
    model, tok = build_tiny("composed", encoder="wav2vec2", llm=llm)
    paths = model.component_paths()
    prefix = f"llm.{model.llm.base_model_prefix}"
    assert paths["llm"] == prefix and paths["embeddings"].startswith(prefix + ".") and paths["lm_head"] == "llm.lm_head"
    model, report = apply(model, {"add_tokens": ["<COMPLETE>"], "train": ["projector", {"tokens": "added"}]}, tokenizer=tok)
    batch = _batch(speech_batch, model, tok, answers=["<COMPLETE>"])
    own_forward(fam, model, batch).loss.backward()
    assert model.projector.linear.weight.grad is not None and all(
        p.grad is None for n, p in model.named_parameters() if n.startswith("encoder."))
