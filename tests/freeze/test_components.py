"""Component maps: architecture maps, sub-paths, patterns, user maps and the structural fallback."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM

from adaptkit.errors import AdaptkitError
from adaptkit.freeze import apply, component_map
from adaptkit.freeze.components import resolve_modules, resolve_parameters
from adaptkit.models import build_tiny
from adaptkit.models.tokenizer import tiny_tokenizer


@pytest.fixture(scope="module")
def qwen3():
    return build_tiny("qwen3_asr")


@pytest.mark.qwen_asr_stack
def test_projector_inside_the_encoder_is_kept_apart(qwen3):
    model, _ = qwen3
    cmap = component_map(model)
    assert cmap.group_of("thinker.audio_tower.proj1.weight") == "projector"
    assert cmap.group_of("thinker.audio_tower.layers.0.fc1.weight") == "encoder"
    assert cmap.group_of("thinker.model.embed_tokens.weight") == "embeddings"
    assert cmap.group_of("thinker.model.layers.1.mlp.up_proj.weight") == "llm"
    encoder_params = resolve_parameters(model, "encoder", cmap, "t")
    assert encoder_params and not any(".proj1." in n or ".proj2." in n for n in encoder_params)
    assert sorted(resolve_parameters(model, "projector", cmap, "t")) == [
        "thinker.audio_tower.proj1.bias", "thinker.audio_tower.proj1.weight",
        "thinker.audio_tower.proj2.bias", "thinker.audio_tower.proj2.weight",
    ]
    assert not any("embed_tokens" in n for n in resolve_parameters(model, "llm", cmap, "t"))


@pytest.mark.qwen_asr_stack
def test_sub_paths_resolve_inside_their_component_only(qwen3):
    model, _ = qwen3
    cmap = component_map(model)
    attention = resolve_modules(model, "llm.attention", cmap, "t")
    assert attention == ["thinker.model.layers.0.self_attn", "thinker.model.layers.1.self_attn"]
    assert resolve_modules(model, "encoder.attention", cmap, "t")[0].startswith("thinker.audio_tower.layers.0.")
    assert resolve_modules(model, "llm.mlp", cmap, "t") == ["thinker.model.layers.0.mlp", "thinker.model.layers.1.mlp"]
    assert resolve_modules(model, "encoder.layers.1", cmap, "t") == ["thinker.audio_tower.layers.1"]
    q = resolve_modules(model, "llm.q_proj", cmap, "t")
    assert q == ["thinker.model.layers.0.self_attn.q_proj", "thinker.model.layers.1.self_attn.q_proj"]
    with pytest.raises(AdaptkitError, match=r"'encoder.proj1' matches no module inside encoder"):
        resolve_modules(model, "encoder.proj1", cmap, "freeze.train[0]")
    with pytest.raises(AdaptkitError, match=r"'llm.atention' matches no module inside llm \(closest: attention"):
        resolve_modules(model, "llm.atention", cmap, "freeze.train[0]")


@pytest.mark.qwen_asr_stack
def test_regex_and_glob_rules(qwen3):
    model, _ = qwen3
    cmap = component_map(model)
    norms = resolve_parameters(model, "*.input_layernorm.weight", cmap, "t")
    assert norms == ["thinker.model.layers.0.input_layernorm.weight", "thinker.model.layers.1.input_layernorm.weight"]
    assert resolve_parameters(model, r"re:audio_tower\.ln_post\.", cmap, "t") == [
        "thinker.audio_tower.ln_post.weight", "thinker.audio_tower.ln_post.bias"]
    with pytest.raises(AdaptkitError, match="matches no parameter"):
        resolve_parameters(model, "re:nothing_like_this", cmap, "freeze.train[1]")


class CustomStack(nn.Module):
    """An encoder-projector-LLM of a user's own: no architecture map knows it."""

    def __init__(self, vocab: int):
        super().__init__()
        self.speech_encoder = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 32))
        self.projector = nn.Linear(32, 64)
        self.decoder = Qwen2ForCausalLM(Qwen2Config(
            vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False))


def test_structural_fallback_finds_a_custom_stack_and_trains_it():
    tok = tiny_tokenizer()
    torch.manual_seed(0)
    model = CustomStack(len(tok) + 64)
    cmap = component_map(model)
    assert cmap.source == "structural fallback"
    assert (cmap.encoder, cmap.projector, cmap.llm) == ("speech_encoder", ["projector"], "decoder.model")
    assert (cmap.embeddings, cmap.lm_head) == ("decoder.model.embed_tokens", "decoder.lm_head")
    model, report = apply(model, {"add_tokens": ["<COMPLETE>"], "train": ["projector", {"tokens": "added"}],
                                  "lora": {"target": "llm.attention", "r": 2}}, tokenizer=tok)
    assert report.groups["projector"] == {"total": 32 * 64 + 64, "trainable": 32 * 64 + 64}
    assert report.groups["lm_head"]["trainable"] == 64  # untied: the new row of lm_head trains too
    assert report.groups["encoder"]["trainable"] == 0 and report.groups["lora"]["trainable"] > 0


def test_user_map_names_the_parts_and_bad_paths_are_refused():
    tok = tiny_tokenizer()
    model = CustomStack(len(tok) + 64)
    user = {"encoder": "speech_encoder", "projector": ["speech_encoder.2", "projector"], "llm": "decoder.model",
            "embeddings": "decoder.model.embed_tokens", "lm_head": "decoder.lm_head"}
    cmap = component_map(model, user)
    assert cmap.source == "user map"
    assert cmap.group_of("speech_encoder.2.weight") == "projector"
    assert cmap.group_of("speech_encoder.0.weight") == "encoder"
    with pytest.raises(AdaptkitError, match=r"freeze.components: projector path 'projektor' is not a module of CustomStack \(closest: projector"):
        component_map(model, {**user, "projector": "projektor"})


def test_unknown_model_without_embeddings_is_refused_in_one_line():
    class Mystery(nn.Module):
        def __init__(self):
            super().__init__()
            self.alpha = nn.Linear(4, 4)
            self.beta = nn.Embedding(10, 4)

    with pytest.raises(AdaptkitError, match=r"cannot find the input embeddings of Mystery: neither it nor a sub-model answers"):
        component_map(Mystery())


def test_spec_round_trips_and_python_objects_are_accepted():
    from adaptkit.freeze import parse_spec

    data = {"add_tokens": {"tokens": ["<a>"], "init": "description", "descriptions": {"<a>": "order"}},
            "train": ["projector", "*.norm.weight", {"tokens": ["added"]}],
            "lora": {"target": "llm.mlp", "r": 4, "alpha": 8.0, "dropout": 0.1, "within": "llm"}}
    spec = parse_spec(data)
    assert parse_spec(spec.to_dict()) == spec
    assert parse_spec(spec) is spec
    assert spec.token_rows() == ["<a>"]
    with pytest.raises(AdaptkitError, match=r"freeze: nothing to train"):
        parse_spec({"train": []})
    with pytest.raises(AdaptkitError, match=r"freeze.add_tokens.descriptions: init 'description' needs a text for <b>"):
        parse_spec({"add_tokens": {"tokens": ["<b>"], "init": "description"}, "train": ["projector"]})
