"""The supervised loss a chunk of positions at a time: the unchunked loss and gradients, bounded logits.

Each case compares chunks of a few positions against one pass over every position (the unchunked
loss); the tolerance is float32's, since only the order of the per-chunk sums differs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from peft import TrainableTokensConfig
from torch import nn

from adaptkit.freeze import apply, train_mode
from adaptkit.freeze.token_layer import SparseTokensLayer
from adaptkit.models import architecture, build_tiny
from adaptkit.train.chunked_loss import chunk_positions, fused_loss, output_rows, weighted_cross_entropy
from adaptkit.train.step import SpeechLMLoss

FLOAT32_REL = 1e-6
"""Relative tolerance: float32 (eps 1.2e-7) sums over a few dozen chunks in another order."""
VOCAB, WIDTH, POSITIONS = 301, 16, 37


def assert_close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    """Equal within FLOAT32_REL of the reference's largest magnitude."""
    err, scale = (got - want).abs().max().item(), want.abs().max().item()
    assert err <= FLOAT32_REL * scale, f"{what}: max error {err:.3g} against scale {scale:.3g}"


def heads() -> dict[str, nn.Module]:
    """A trained plain output layer, and a frozen one with two trained token rows."""
    torch.manual_seed(0)
    plain = nn.Linear(WIDTH, VOCAB, bias=False)
    frozen = nn.Linear(WIDTH, VOCAB, bias=False).requires_grad_(False)
    config = TrainableTokensConfig(token_indices=[5, 300], target_modules=["head"])
    rows = SparseTokensLayer(frozen, "default", config=config)
    rows.update_layer("default", config=config)
    return {"plain": plain, "token rows": rows}


def loss_and_grads(head: nn.Module, chunk: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    hidden = torch.randn(POSITIONS, WIDTH, requires_grad=True)
    targets = torch.randint(0, VOCAB, (POSITIONS,))
    targets[:4] = torch.tensor([5, 300, 5, 7])  # the trained rows are targets too
    weights = torch.where(targets == 5, 2.0, 1.0)
    total = weighted_cross_entropy(head, hidden, targets, weights, chunk)
    total.backward()
    out = {"loss": total.detach(), "hidden.grad": hidden.grad}
    out.update({f"{n}.grad": p.grad.clone() for n, p in head.named_parameters() if p.requires_grad})
    head.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("chunk", [1, 5, 36])
@pytest.mark.parametrize("kind", ["plain", "token rows"])
def test_chunks_give_the_unchunked_loss_and_gradients(kind, chunk):
    head = heads()[kind]
    want = loss_and_grads(head, POSITIONS)
    got = loss_and_grads(head, chunk)
    assert set(got) == set(want) and len(want) == 3
    for key in want:
        assert_close(got[key], want[key], key)
    torch.manual_seed(1)
    hidden, targets = torch.randn(POSITIONS, WIDTH), torch.randint(0, VOCAB, (POSITIONS,))
    with torch.no_grad():  # and the sum is the plain weighted cross-entropy
        plain = F.cross_entropy(head(hidden), targets, reduction="sum")
        assert_close(weighted_cross_entropy(head, hidden, targets, torch.ones(POSITIONS), chunk), plain, "no-grad loss")


@pytest.mark.parametrize("chunk", [4, POSITIONS])
def test_at_most_one_chunk_of_logits_is_made_in_forward_and_backward(chunk, allocations):
    head = heads()["token rows"]
    with allocations() as seen:
        loss_and_grads(head, chunk)
    logit_rows = [shape[0] for _, shape in seen.made if len(shape) == 2 and shape[1] == VOCAB]
    assert max(logit_rows) == chunk  # with one chunk, every position's logits at once: what the chunks avoid


@pytest.mark.parametrize("chunk", [4, POSITIONS])
def test_each_position_goes_through_the_output_layer_once(chunk):
    head = heads()["token rows"]
    rows: list[int] = []
    head.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    loss_and_grads(head, chunk)
    probe = [1] if chunk < POSITIONS else []  # one position finds the trainable tensors the chunks need
    assert sorted(rows) == sorted(probe + [min(chunk, POSITIONS - s) for s in range(0, POSITIONS, chunk)])


def test_a_trained_tensor_outside_the_output_layer_gets_its_gradient_in_chunks():
    head = heads()["plain"].requires_grad_(False)
    scale = nn.Parameter(torch.tensor(0.7))
    grads = []
    for chunk in (POSITIONS, 5):
        torch.manual_seed(1)
        hidden = torch.randn(POSITIONS, WIDTH, requires_grad=True)
        targets = torch.randint(0, VOCAB, (POSITIONS,))
        (2.0 * weighted_cross_entropy(lambda h: head(h) * scale, hidden, targets, torch.ones(POSITIONS), chunk)).backward()
        grads.append((scale.grad.clone(), hidden.grad))
        scale.grad = None
    assert grads[0][0].abs() > 0
    assert_close(grads[1][0], grads[0][0], "scale.grad")
    assert_close(grads[1][1], grads[0][1], "hidden.grad")


def test_the_chunk_size_follows_the_logit_budget_and_bad_sizes_are_refused():
    assert chunk_positions(151_936) == 441  # 256 MiB of float32 logits
    assert chunk_positions(151_936, budget=1) == 1
    assert output_rows(heads()["token rows"]) == output_rows(heads()["plain"]) == VOCAB
    with pytest.raises(ValueError, match="positive"):
        weighted_cross_entropy(heads()["plain"], torch.zeros(2, WIDTH), torch.zeros(2, dtype=torch.long), torch.ones(2), 0)


def test_liger_is_not_used_off_cuda_or_on_a_wrapped_output_layer():
    hidden, targets = torch.zeros(2, WIDTH), torch.zeros(2, dtype=torch.long)
    assert fused_loss(heads()["plain"], hidden, targets, {}) is None  # CPU tensors
    assert fused_loss(heads()["token rows"], hidden, targets, {}) is None


@pytest.mark.parametrize("arch", [pytest.param("qwen3_asr", marks=pytest.mark.qwen_asr_stack), "qwen2_audio"])
def test_the_training_loss_in_chunks_equals_it_in_one_pass(arch, speech_batch):
    model, tok = build_tiny(arch, init_std=0.02)
    spec = {"add_tokens": ["<|spk_0|>"], "train": ["projector", {"tokens": "added"}], "lora": {"target": "llm.attention", "r": 4}}
    model, _ = apply(model, spec, tokenizer=tok)
    train_mode(model)
    impl = architecture(arch)
    batch = speech_batch(impl, model, tok, impl.tiny_feature_extractor(), answers=["<|spk_0|> thank you for calling"],
                         seconds=(1.2, 1.0))
    results = []
    for chunk in (None, 3):
        loss_sum, weight = SpeechLMLoss(model, impl, encoder_trains=False, token_weights={tok.convert_tokens_to_ids("<|spk_0|>"): 3.0},
                                        logit_chunk=chunk)(batch)
        (loss_sum / weight).backward()
        results.append({"loss": loss_sum.detach(), **{n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}})
        model.zero_grad(set_to_none=True)
    assert int((batch["labels"][:, 1:] != -100).sum()) > 3  # several chunks did run
    for key in results[0]:
        assert_close(results[1][key], results[0][key], key)
