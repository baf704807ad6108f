"""Tiny Qwen2Audio, Voxtral and GraniteSpeech models: build, batch, train step, components."""

from __future__ import annotations

import pytest
import torch

from adaptkit.errors import AdaptkitError
from adaptkit.freeze import ARCH_MAPS
from adaptkit.models import hf_speech
from adaptkit.models.tokenizer import tiny_tokenizer

ARCHS = ["qwen2_audio", "voxtral", "granite_speech"]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def _components(model: torch.nn.Module) -> dict[str, str | list[str]]:
    return ARCH_MAPS[type(model).__name__]


def _paths(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("arch", ARCHS)
def test_train_step_reaches_projector(arch, tied, tokenizer):
    model = hf_speech.build_tiny(arch, tokenizer, tied=tied)
    batch = hf_speech.example_batch(arch, model, tokenizer)
    loss = hf_speech.forward(model, batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    projector = [model.get_submodule(p) for p in _paths(_components(model)["projector"])]
    grads = [p.grad for m in projector for p in m.parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0, "no gradient reached the projector"
    same = model.get_input_embeddings().weight is model.get_output_embeddings().weight
    assert same is tied
    assert model.config.tie_word_embeddings is tied
    assert model.config.get_text_config().tie_word_embeddings is tied


@pytest.mark.parametrize("arch", ARCHS)
def test_components_resolve(arch, tokenizer):
    model = hf_speech.build_tiny(arch, tokenizer)
    parts = _components(model)
    assert set(parts) == {"encoder", "projector", "llm", "embeddings", "lm_head"}
    for value in parts.values():
        for path in _paths(value):
            model.get_submodule(path)
    assert model.get_submodule(parts["embeddings"]) is model.get_input_embeddings()
    assert model.get_submodule(parts["lm_head"]) is model.get_output_embeddings()
    # GraniteSpeech does not override get_decoder() (it returns the whole model), so ask the LLM.
    assert model.get_submodule(parts["llm"]) is model.language_model.get_decoder()
    for path in _paths(parts["projector"]):
        assert not path.startswith(parts["encoder"] + "."), "projector listed inside the encoder"


def _move_placeholder(batch: dict, audio_id: int, src: int, dst: int | None) -> dict:
    """Turn the last placeholder of sample `src` into text and, if `dst`, add one after sample `dst`'s."""
    ids = batch["input_ids"].clone()
    ids[src, (ids[src] == audio_id).nonzero()[-1]] = 100
    if dst is not None:
        ids[dst, (ids[dst] == audio_id).nonzero()[-1] + 1] = audio_id
    return {**batch, "input_ids": ids}


@pytest.mark.parametrize("arch", ARCHS)
def test_wrong_placeholder_count_is_caught(arch, tokenizer):
    model = hf_speech.build_tiny(arch, tokenizer)
    batch = hf_speech.example_batch(arch, model, tokenizer)
    hf_speech._check_placeholders(arch, model, batch)
    audio_id = model.config.audio_token_id
    for bad in (_move_placeholder(batch, audio_id, 0, None), _move_placeholder(batch, audio_id, 0, 1)):
        with pytest.raises(ValueError, match="audio placeholders"):
            hf_speech._check_placeholders(arch, model, bad)


@pytest.mark.parametrize("arch, model_raises", [("qwen2_audio", True), ("voxtral", False), ("granite_speech", False)])
def test_model_own_check_on_one_missing_placeholder(arch, model_raises, tokenizer):
    """Documents why `_check_placeholders` exists: two of the classes accept one missing placeholder."""
    model = hf_speech.build_tiny(arch, tokenizer)
    bad = _move_placeholder(hf_speech.example_batch(arch, model, tokenizer), model.config.audio_token_id, 0, None)
    if model_raises:
        with pytest.raises(ValueError):
            hf_speech.forward(model, bad).loss
    else:
        assert torch.isfinite(hf_speech.forward(model, bad).loss)


def test_seed_makes_build_and_batch_repeatable(tokenizer):
    a, b = (hf_speech.build_tiny("voxtral", tokenizer, seed=3) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    ba, bb = (hf_speech.example_batch("voxtral", a, tokenizer, seed=5) for _ in range(2))
    assert all(torch.equal(ba[k], bb[k]) for k in ba)


def test_unknown_arch_is_a_user_error(tokenizer):
    with pytest.raises(AdaptkitError, match="qwen2_audio"):
        hf_speech.build_tiny("whisper", tokenizer)


def test_family_registry_builds_it():
    from adaptkit.models import build_tiny

    model, tokenizer = build_tiny("granite_speech", tied=True)
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer) + 64
