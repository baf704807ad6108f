"""transformers' audio-LLM classes through the one architecture interface: Qwen2-Audio, Voxtral,
Granite Speech and the Qwen2.5-Omni thinker (tiny models of the real config classes)."""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("arch", ARCHS)
def test_projector_and_token_rows_train_rest_frozen(arch, tied, adapter_check):
    impl, model, tok, fe = _tiny(arch, tied)
    adapter_check(impl, model, tok, fe, tied)


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
