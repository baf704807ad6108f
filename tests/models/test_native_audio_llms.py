"""transformers 5's native speech LLMs through the one architecture interface: Qwen3-ASR (-hf
layout), AudioFlamingo3 and GLM-ASR (tiny models of the real config classes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adaptkit.errors import AdaptkitError
from adaptkit.freeze import ARCH_MAPS, component_map
from adaptkit.freeze.components import qualified_name
from adaptkit.models import architecture, build_tiny

pytestmark = pytest.mark.current_stack

ARCHS = ["qwen3_asr_hf", "audioflamingo3", "glmasr"]
TIES = [(a, t) for a in ARCHS for t in (False, True) if architecture(a).ties or not t]
"""(architecture, tied) pairs the classes build: AudioFlamingo3 never ties."""


def _tiny(name, tied=False):
    model, tok = build_tiny(name, tied=tied)
    return architecture(name), model.eval(), tok, architecture(name).tiny_feature_extractor()


@pytest.mark.parametrize("arch", ARCHS)
def test_adaptkit_loss_equals_the_class_forward(arch, loss_check):
    """Encoder, projector and LLM in adaptkit's pieces give the loss of the class's own forward:
    placeholder counts, windows / chunk padding and positions agree with the model's code. The
    2.5 s clip spans two windows of the tiny AudioFlamingo3 and GLM-ASR, three chunks of Qwen3-ASR."""
    impl, model, tok, fe = _tiny(arch)
    loss_check(impl, model, tok, fe, seconds=(2.5, 1.0))


@pytest.mark.parametrize("arch", ARCHS)
def test_prompt_and_features_match_the_processor(arch):
    """The prompt adaptkit builds (placeholders included) and the features it gives the model equal
    what the class's own processor makes of the same chat template and the same 3.3 s of audio (two
    windows of the tiny AudioFlamingo3 and GLM-ASR): every real frame, the masks, and the padding
    but for the two frames after a window's last real one, whose STFT still reads real samples."""
    impl, model, tok, fe = _tiny(arch)
    processor = impl.processor_class()(feature_extractor=fe, tokenizer=tok, chat_template=tok.chat_template)
    wave = (0.1 * np.random.default_rng(0).standard_normal(int(16000 * 3.3))).astype(np.float32)
    wave[:8000] *= 0.01  # a quiet start, so the window maxima differ
    text = processor.apply_chat_template([{"role": "user", "content": impl.user_content()}], add_generation_prompt=True, tokenize=False)
    want = processor(text=[text], audio=[wave], sampling_rate=16000, return_tensors="pt")
    feats = impl.features(fe, wave)
    assert impl.prompt_ids(tok, impl.audio_token_count(feats.shape[-1], model)) == want["input_ids"][0].tolist()
    got = impl.model_inputs(model, feats[None], torch.ones(1, feats.shape[-1], dtype=torch.long))
    mask = want["input_features_mask"].bool()
    assert torch.equal(got["input_features_mask"].bool(), mask)
    near = mask.clone()
    for row, n in enumerate(mask.sum(dim=1).tolist()):
        near[row, n : n + 2] = True
    diff = (got["input_features"] - want["input_features"]).abs().amax(dim=1)
    assert diff[mask].max() == 0 and (diff[~near].max() <= 1e-5 if (~near).any() else True)


@pytest.mark.parametrize("arch", ARCHS)
def test_freezing_dsl_resolves_the_native_layout(arch):
    impl, model, _, _ = _tiny(arch)
    assert ARCH_MAPS[qualified_name(type(model))] == impl.components
    cmap = component_map(model)
    assert cmap.source == f"architecture map for {qualified_name(type(model))}"
    assert (cmap.encoder, cmap.projector, cmap.llm) == ("model.audio_tower", ["model.multi_modal_projector"], "model.language_model")
    assert model.get_submodule(cmap.embeddings) is model.get_input_embeddings()
    assert model.get_submodule(cmap.lm_head) is model.get_output_embeddings()
    groups = {cmap.group_of(n) for n, _ in model.named_parameters()}
    assert groups == {"encoder", "projector", "llm", "embeddings", "lm_head"} or (
        groups == {"encoder", "projector", "llm", "embeddings"} and model.config.tie_word_embeddings)


@pytest.mark.parametrize(("arch", "tied"), TIES)
def test_projector_and_token_rows_train_rest_frozen(arch, tied, adapter_check):
    impl, model, tok, fe = _tiny(arch, tied)
    adapter_check(impl, model, tok, fe, tied)


def test_audioflamingo3_refuses_tied_weights_in_one_line():
    assert not architecture("audioflamingo3").ties and architecture("qwen3_asr_hf").ties and architecture("glmasr").ties
    with pytest.raises(AdaptkitError, match=r"^audioflamingo3: tied=True, but transformers \S+'s \S+AudioFlamingo3ForConditionalGeneration "
                                            r"declares no tied weights; build it untied$"):
        build_tiny("audioflamingo3", tied=True)
