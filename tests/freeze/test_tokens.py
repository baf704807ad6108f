"""New tokens: where they go, how rows start, when matrices grow, and tying from the weights."""

from __future__ import annotations

import pytest
import torch

from adaptkit.errors import AdaptkitError
from adaptkit.freeze import apply, component_map
from adaptkit.freeze.tokens import is_tied
from adaptkit.models import build_tiny


ARCHS = [pytest.param("qwen3_asr", marks=pytest.mark.qwen_asr_stack), "qwen2_audio"]
"""The token logic on Qwen3-ASR (qwen-asr stack) and on a transformers class (either stack)."""


def matrices(model):
    """The embedding and lm_head weights of a model before `apply`."""
    cmap = component_map(model)
    return model.get_submodule(cmap.embeddings).weight, model.get_submodule(cmap.lm_head).weight


def embed_and_head(model):
    cmap = model.adaptkit.cmap
    emb, head = model.get_submodule(cmap.embeddings), model.get_submodule(cmap.lm_head)
    return emb.get_base_layer().weight, head.get_base_layer().weight


@pytest.mark.parametrize("arch", ARCHS)
def test_mean_init_sets_new_rows_to_the_mean_of_existing_rows_without_resizing(arch):
    model, tok = build_tiny(arch)
    emb0, head0 = matrices(model)
    rows = emb0.shape[0]
    old_len = len(tok)
    expected_emb = emb0[:old_len].mean(0)
    expected_head = head0[:old_len].mean(0)
    model, report = apply(model, {"add_tokens": ["<|spk_0|>", "<|spk_1|>"], "train": [{"tokens": "added"}]}, tokenizer=tok)
    emb, head = embed_and_head(model)
    assert emb.shape[0] == rows  # spare rows existed: no resize
    assert report.token_rows == {"<|spk_0|>": old_len, "<|spk_1|>": old_len + 1}
    for i in report.token_rows.values():
        torch.testing.assert_close(emb[i], expected_emb)
        torch.testing.assert_close(head[i], expected_head)
    assert tok.tokenize("a<|spk_1|>b") == ["a", "<|spk_1|>", "b"]


@pytest.mark.parametrize("arch", ARCHS)
def test_description_init_uses_the_mean_embedding_of_the_text(arch):
    model, tok = build_tiny(arch)
    ids = tok("order", add_special_tokens=False)["input_ids"]
    expected = matrices(model)[0][ids].mean(0)
    spec = {"add_tokens": {"tokens": ["<COMPLETE>"], "init": "description", "descriptions": {"<COMPLETE>": "order"}},
            "train": [{"tokens": ["<COMPLETE>"]}]}
    model, report = apply(model, spec, tokenizer=tok)
    emb, _ = embed_and_head(model)
    torch.testing.assert_close(emb[report.token_rows["<COMPLETE>"]], expected)


@pytest.mark.parametrize("arch", ARCHS)
def test_random_init_is_deterministic_and_differs_per_token(arch):
    rows = []
    for _ in range(2):
        model, tok = build_tiny(arch)
        model, report = apply(model, {"add_tokens": {"tokens": ["<a>", "<b>"], "init": "random"}, "train": [{"tokens": "added"}]}, tokenizer=tok)
        emb, _ = embed_and_head(model)
        rows.append(emb[list(report.token_rows.values())].clone())
    torch.testing.assert_close(rows[0], rows[1])
    assert not torch.equal(rows[0][0], rows[0][1])


@pytest.mark.parametrize("arch", ARCHS)
def test_matrices_grow_only_when_the_vocabulary_has_no_room(arch):
    model, tok = build_tiny(arch)
    rows = matrices(model)[0].shape[0]
    old_len = len(tok)
    spare = rows - old_len
    new = [f"<|spk_{i}|>" for i in range(spare + 1)]  # one more than fits
    before = matrices(model)[0].detach().clone()
    model, report = apply(model, {"add_tokens": new, "train": [{"tokens": "added"}]}, tokenizer=tok)
    emb, head = embed_and_head(model)
    grown = -(-(rows + 1) // 64) * 64  # one more row needed, padded to a multiple of 64
    assert emb.shape[0] == grown and head.shape[0] == grown
    text_config = model.config.thinker_config.text_config if arch == "qwen3_asr" else model.config.get_text_config()
    assert text_config.vocab_size == grown
    assert torch.equal(emb[:old_len], before[:old_len])  # old rows kept bit for bit
    assert max(report.token_rows.values()) == len(tok) - 1


@pytest.mark.parametrize("arch", ARCHS)
def test_existing_tokens_are_not_added_again_and_unknown_tokens_are_refused(arch):
    model, tok = build_tiny(arch)
    n = len(tok)
    model, report = apply(model, {"train": [{"tokens": ["<|im_end|>"]}]}, tokenizer=tok)
    assert len(tok) == n and report.token_rows == {"<|im_end|>": tok.convert_tokens_to_ids("<|im_end|>")}
    model, tok = build_tiny(arch)
    with pytest.raises(AdaptkitError, match=r"freeze.train.tokens: token '<\|im_ends\|>' is not in the vocabulary .*closest: <\|im_end\|>"):
        apply(model, {"train": [{"tokens": ["<|im_ends|>"]}]}, tokenizer=tok)
    assert len(tok) == n  # refused before the tokenizer was touched


@pytest.mark.qwen_asr_stack
def test_tying_comes_from_the_weights_and_the_flags_are_made_true():
    model, tok = build_tiny("qwen3_asr", tied=False)
    model.config.tie_word_embeddings = True  # a flag that lies, as on real Qwen3-ASR checkpoints
    assert not is_tied(model, component_map(model))
    model, report = apply(model, {"train": [{"tokens": ["<|im_end|>"]}]}, tokenizer=tok)
    assert report.tied is False and report.groups["lm_head"]["trainable"] > 0
    assert model.config.tie_word_embeddings is False
    assert model.config.thinker_config.text_config.tie_word_embeddings is False


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("tokens", [["<|spk_0|>", "<|spk_1|>"], ["<COMPLETE>", "<INCOMPLETE>", "<BACKCHANNEL>"]])
def test_new_tokens_are_never_split_and_survive_decoding_with_special_tokens_skipped(tokens, arch):
    """qwen_asr's transcribe and vLLM decode with skip_special_tokens=True: the tags must stay (on
    either stack's tokenizer classes)."""
    model, tok = build_tiny(arch)
    apply(model, {"add_tokens": tokens, "train": [{"tokens": "added"}]}, tokenizer=tok)
    text = f"{tokens[0]} hello {tokens[1]}order"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert [tok.convert_ids_to_tokens(i) for i in ids if tok.convert_ids_to_tokens(i) in tokens] == tokens[:2]
    assert not set(tok.convert_tokens_to_ids(tokens)) & set(tok.all_special_ids)
    assert tok.decode(ids + [tok.eos_token_id], skip_special_tokens=True) == text
