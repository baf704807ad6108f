"""Incremental end-of-turn scoring equals full recomputation."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from adaptkit.errors import AdaptkitError
from adaptkit.models.tokenizer import tiny_tokenizer
from adaptkit.end_of_turn import EndOfTurnScorer


def tiny_lm(tok):
    torch.manual_seed(0)
    return Qwen3ForCausalLM(Qwen3Config(vocab_size=len(tok) + 64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, head_dim=16, initializer_range=0.2))


def test_incremental_probabilities_equal_full_recomputation():
    tok = tiny_tokenizer()
    scorer = EndOfTurnScorer(tiny_lm(tok), tok)
    messages = [{"role": "assistant", "content": "Thank you for calling, how can I help you today?"},
                {"role": "user", "content": "I would like to check"}]
    probs = [scorer.start(messages)]
    assert abs(probs[0] - scorer.full()) <= 1e-5
    for words in [" the status", " of my order,", " it has not arrived yet."]:
        probs.append(scorer.add(words))
        assert abs(probs[-1] - scorer.full()) <= 1e-5
    assert all(0.0 <= p <= 1.0 for p in probs) and len(set(probs)) == len(probs)
    text = tok.decode(scorer.ids)
    assert text.endswith("it has not arrived yet.") and not text.endswith("<|im_end|>")


def test_a_tokenizer_without_the_end_token_is_refused():
    tok = tiny_tokenizer(special_tokens=["<|endoftext|>"])
    with pytest.raises(AdaptkitError, match=r"<\|im_end\|> is not a token of this tokenizer"):
        EndOfTurnScorer(tiny_lm(tok), tok)


def test_only_the_last_position_goes_through_the_output_layer():
    """The update reads one row of logits: with 151,936 vocabulary rows the output layer is most of
    an update's cost, so the rows of the other new tokens must not be computed."""
    tok = tiny_tokenizer()
    model = tiny_lm(tok)
    rows = []
    model.lm_head.register_forward_hook(lambda module, args, out: rows.append(out.shape[1]))
    scorer = EndOfTurnScorer(model, tok)
    scorer.start([{"role": "user", "content": "I would like to"}])
    fed = len(tok(" check the status of my order", add_special_tokens=False)["input_ids"])
    p = scorer.add(" check the status of my order")
    assert fed > 1 and rows == [1, 1]
    assert abs(p - scorer.full()) <= 1e-5 and rows[-1] == 1
