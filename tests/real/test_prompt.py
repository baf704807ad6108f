"""adaptkit's Qwen3-ASR prompt is the one qwen_asr's client builds: the checkpoint's chat template
rendered by its processor (messages as `Qwen3ASRModel` writes them), with the audio placeholder
expanded by the processor for the same audio."""

from __future__ import annotations

import pytest

from adaptkit.models import architecture

pytestmark = pytest.mark.qwen_asr_stack  # the hub-shaped Qwen3-ASR fixture and qwen_asr's processor


@pytest.mark.parametrize("context", ["", "通話の文字起こし"])
def test_the_prompt_is_what_the_processor_makes_of_the_chat_template(hub_qwen3_asr, real, context):
    from qwen_asr.core.transformers_backend import Qwen3ASRProcessor

    processor = Qwen3ASRProcessor.from_pretrained(hub_qwen3_asr)
    messages = [{"role": "system", "content": context}, {"role": "user", "content": [{"type": "audio", "audio": ""}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    wave = real.call_wave(3.0)
    want = processor(text=[text], audio=[wave], return_tensors="pt", padding=True)["input_ids"][0].tolist()
    impl = architecture("qwen3_asr")
    feats = impl.features(processor.feature_extractor, wave)
    assert impl.prompt_ids(processor.tokenizer, impl.audio_token_count(feats.shape[-1]), context) == want
