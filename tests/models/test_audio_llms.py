"""transformers' audio-LLM classes through the one architecture interface: Qwen2-Audio, Voxtral,
Granite Speech and the Qwen2.5-Omni thinker (tiny models of the real config classes)."""

from __future__ import annotations

import pytest
import torch

from adaptkit.errors import AdaptkitError
from adaptkit.freeze import ARCH_MAPS
from adaptkit.models import architecture, build_tiny
from adaptkit.train.step import SpeechLMLoss

ARCHS = ["qwen2_audio", "voxtral", "granite_speech", "qwen2_5_omni_thinker"]


def _paths(value):
    return [value] if isinstance(value, str) else list(value)


def _tiny(name, tied=False):
    model, tok = build_tiny(name, tied=tied)
    return architecture(name), model.eval(), tok, architecture(name).tiny_feature_extractor()


@pytest.mark.parametrize("arch", ARCHS)
def test_adaptkit_loss_equals_the_class_forward(arch, loss_check):
    """The pieces (encoder, projector, LLM with audio at the placeholders, supervised logits) give
    the loss the class's own forward gives on the same batch: placeholders, feature layout and
    positions agree with the model's code."""
    impl, model, tok, fe = _tiny(arch)
    loss_check(impl, model, tok, fe, seconds=(2.5, 1.0) if arch != "granite_speech" else (1.0, 1.0))


@pytest.mark.parametrize("arch", ARCHS)
def test_placeholder_count_is_checked_per_sample(arch, speech_batch):
    impl, model, tok, fe = _tiny(arch)
    batch = speech_batch(impl, model, tok, fe, seconds=(1.0, 1.0))
    audio = impl.audio_token_id(model)
    row = batch["input_ids"][0]
    first = int((row == audio).nonzero()[0])
    batch["input_ids"][0, first] = tok.pad_token_id  # one placeholder fewer in sample 0
    with pytest.raises(AdaptkitError, match=r"sample 0: \d+ audio placeholders but the encoder and projector give \d+"):
        SpeechLMLoss(model, impl, encoder_trains=True)(batch)


@pytest.mark.parametrize(("arch", "tied"), [(a, t) for a in ARCHS for t in (False, True) if architecture(a).ties or not t])
def test_projector_and_token_rows_train_rest_frozen(arch, tied, adapter_check):
    impl, model, tok, fe = _tiny(arch, tied)
    adapter_check(impl, model, tok, fe, tied)


@pytest.mark.current_stack
@pytest.mark.parametrize("arch", ["qwen2_audio", "voxtral"])
def test_tied_is_refused_where_the_class_never_ties(arch):
    assert not architecture(arch).ties
    with pytest.raises(AdaptkitError, match=rf"^{arch}: tied=True, but transformers 5\S*'s \w+ declares no tied weights; build it untied$"):
        build_tiny(arch, tied=True)


@pytest.mark.parametrize("arch", ARCHS)
def test_component_map_is_the_architectures(arch):
    impl, model, _, _ = _tiny(arch)
    parts = ARCH_MAPS[type(model).__name__]
    assert parts == impl.components
    for value in parts.values():
        for path in _paths(value):
            model.get_submodule(path)
    assert model.get_submodule(parts["embeddings"]) is model.get_input_embeddings()
    assert model.get_submodule(parts["lm_head"]) is model.get_output_embeddings()


@pytest.mark.parametrize("arch", ARCHS)
def test_the_text_model_reads_text_as_the_pieces_do_and_scores_turn_ends(arch):
    """The text model (the end-of-turn scorer's) gives on text alone the logits of adaptkit's
    pieces without audio, and its KV cache gives what full recomputation gives."""
    from adaptkit.end_of_turn import EndOfTurnScorer

    impl, model, tok, _ = _tiny(arch)
    ids = torch.tensor([tok("thank you for calling, order number", add_special_tokens=False)["input_ids"]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        want = impl.logits(model, impl.llm_hidden(model, ids, mask, None))
        got = impl.text_model(model)(input_ids=ids, attention_mask=mask).logits
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)
    scorer = EndOfTurnScorer(impl.text_model(model), tok)
    first = scorer.start([{"role": "user", "content": "I would like to check"}])
    assert abs(first - scorer.full()) <= 1e-5 and abs(scorer.add(" my order") - scorer.full()) <= 1e-5


def test_qwen2_audio_prompt_matches_its_processor():
    """The prompt adaptkit builds equals what Qwen2AudioProcessor makes of its own chat template
    and the same audio (placeholder expansion included)."""
    import numpy as np
    from transformers import Qwen2AudioProcessor

    impl, model, tok, fe = _tiny("qwen2_audio")
    processor = Qwen2AudioProcessor(feature_extractor=fe, tokenizer=tok)
    wave = (0.1 * np.random.default_rng(0).standard_normal(16000 * 3)).astype(np.float32)
    conversation = [{"role": "user", "content": [{"type": "audio", "audio": "x"}]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    want = processor(text=text, audio=[wave], sampling_rate=16000, return_tensors="pt")["input_ids"][0].tolist()
    feats = impl.features(fe, wave)
    assert impl.prompt_ids(tok, impl.audio_token_count(feats.shape[-1], model)) == want


def test_unknown_architecture_lists_the_registry():
    with pytest.raises(AdaptkitError, match=r"unknown architecture 'whisper'; supported: audioflamingo3, composed, glmasr, "
                                            r"granite_speech, qwen2_5_omni_thinker, qwen2_audio, qwen3_asr, qwen3_asr_hf, voxtral"):
        build_tiny("whisper")


def test_granite_logits_are_scaled_as_the_installed_class_scales_them(speech_batch, own_forward):
    """A text config with logits_scaling != 1: adaptkit's loss still equals the class's own (4.57's
    Granite causal LM divides by it, transformers 5's GraniteSpeech head does not)."""
    impl, model, tok, fe = _tiny("granite_speech")
    for module in model.modules():
        if hasattr(getattr(module, "config", None), "logits_scaling"):
            module.config.logits_scaling = 4.0
    assert model.config.text_config.logits_scaling == 4.0
    batch = speech_batch(impl, model, tok, fe, seconds=(1.0, 1.0))
    with torch.no_grad():
        want = own_forward(impl, model, batch).loss
        loss_sum, weight = SpeechLMLoss(model, impl, encoder_trains=True)(batch)
    assert torch.allclose(loss_sum / weight, want, atol=1e-5), (float(loss_sum / weight), float(want))
