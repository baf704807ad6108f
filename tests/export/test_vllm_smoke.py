"""vLLM serves a merged tag model and keeps the tags with its default `skip_special_tokens=True`.

Runs only where vllm is installed and torch sees a CUDA GPU; skipped with the reason otherwise.
The model is a tiny Qwen3 causal LM whose new tokens went through adaptkit (added, trained rows,
merged); its output layer is set so that every next token is a speaker tag, so the text vLLM
returns shows whether the tags survive decoding.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch


def _why_not() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "needs vllm (not installed here)"
    if not torch.cuda.is_available():
        return "needs a CUDA GPU (torch sees none)"
    return None


SPK = ["<|spk_0|>", "<|spk_1|>"]
PROMPT = "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"


def tag_model(folder):
    """A merged tiny Qwen3 whose every next token is a speaker tag, saved to `folder`; returns the tag ids."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from adaptkit.freeze import apply, merge
    from adaptkit.models.composed import ComposedConfig, ComposedSpeechLM
    from adaptkit.models.tokenizer import tiny_tokenizer

    tok = tiny_tokenizer()
    lm = Qwen3ForCausalLM(Qwen3Config(vocab_size=len(tok) + 64, hidden_size=128, intermediate_size=256, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1, head_dim=64, tie_word_embeddings=False))
    text_only = ComposedSpeechLM(ComposedConfig(encoder=None, llm=lm.config.to_dict()), llm=lm)  # as a turn_end recipe builds it
    text_only, _ = apply(text_only, {"add_tokens": SPK, "train": [{"tokens": "added"}]}, tokenizer=tok)
    merge(text_only)
    ids = tok.convert_tokens_to_ids(SPK)
    with torch.no_grad():  # the final hidden state is +-1 on dimension 0 only: the next token is always a tag
        lm.model.norm.weight.zero_()
        lm.model.norm.weight[0] = 1.0
        lm.lm_head.weight.zero_()
        lm.lm_head.weight[ids[0], 0], lm.lm_head.weight[ids[1], 0] = 10.0, -10.0
    lm.save_pretrained(folder)
    tok.save_pretrained(folder)
    return ids


def test_the_tag_model_speaks_tags_that_survive_skip_special_tokens(tmp_path):
    """The same check through transformers, everywhere: the fixture does what the vLLM test needs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = tag_model(tmp_path / "merged")
    tok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    lm = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    prompt = tok(PROMPT, return_tensors="pt", return_token_type_ids=False)
    out = lm.generate(**prompt, max_new_tokens=6, do_sample=False)[0, prompt["input_ids"].shape[1]:].tolist()
    assert out and set(out) <= set(ids)
    assert tok.decode(out, skip_special_tokens=True).replace(" ", "") == "".join(tok.convert_ids_to_tokens(out))


@pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")
def test_vllm_keeps_the_speaker_tags_of_a_merged_model(tmp_path):
    from vllm import LLM, SamplingParams

    ids = tag_model(tmp_path / "merged")

    params = SamplingParams(temperature=0.0, max_tokens=6)
    assert params.skip_special_tokens  # vLLM's default, which qwen_asr's vLLM backend keeps
    llm = LLM(model=str(tmp_path / "merged"), dtype="float16", enforce_eager=True, gpu_memory_utilization=0.2, max_model_len=128)
    out = llm.generate([PROMPT], params)[0].outputs[0]
    assert out.token_ids and set(out.token_ids) <= set(ids)
    assert out.text.replace(" ", "") == "".join(SPK[ids.index(i)] for i in out.token_ids)
