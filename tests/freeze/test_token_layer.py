"""`SparseTokensLayer`: the forward of peft's token-row layer without a full-matrix copy per step.

Its logits and gradients are peft's own `TrainableTokensLayer.forward_adapters` (the reference,
patched back in) within float32 rounding, on bare layers (padding row, scaled embedding, tied and
untied) and on tiny models with and without LoRA; and no tensor of the matrix's full shape is made
in a forward + backward, which the same count sees peft's forward make.
"""

from __future__ import annotations

import pytest
import torch
from peft import TrainableTokensConfig
from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
from torch import nn

from adaptkit.freeze import apply, train_mode
from adaptkit.freeze.token_layer import SparseTokensLayer
from adaptkit.models import architecture, build_tiny
from adaptkit.train.step import SpeechLMLoss

FLOAT32_REL = 1e-6
"""Relative tolerance: a few float32 roundings (eps 1.2e-7) of sums reordered by the split matmul."""
SPK = ["<|spk_0|>", "<|spk_1|>"]
SPECS = {
    "projector+tokens": {"add_tokens": SPK, "train": ["projector", {"tokens": "added"}]},
    "projector+lora+tokens": {"add_tokens": SPK, "train": ["projector", {"tokens": "added"}],
                              "lora": {"target": "llm.attention", "r": 4, "alpha": 8}},
}
MODEL_CASES = [pytest.param("qwen3_asr", tied, marks=pytest.mark.qwen_asr_stack, id=f"qwen3_asr-{'tied' if tied else 'untied'}")
               for tied in (False, True)]
MODEL_CASES += [pytest.param("qwen3_asr_hf", tied, marks=pytest.mark.current_stack, id=f"qwen3_asr_hf-{'tied' if tied else 'untied'}")
                for tied in (False, True)]
MODEL_CASES += [pytest.param("qwen2_audio", tied, id=f"qwen2_audio-{'tied' if tied else 'untied'}")
                for tied in (False, True) if architecture("qwen2_audio").ties or not tied]


@pytest.fixture
def peft_forward(monkeypatch):
    """Call it to make every `SparseTokensLayer` run peft's own forward (the full-matrix copy)."""
    return lambda: monkeypatch.setattr(SparseTokensLayer, "forward_adapters", TrainableTokensLayer.forward_adapters)


def assert_close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    """Equal within FLOAT32_REL of the reference's largest magnitude."""
    err, scale = (got - want).abs().max().item(), want.abs().max().item()
    assert err <= FLOAT32_REL * scale, f"{what}: max error {err:.3g} against scale {scale:.3g}"


class ScaledEmbedding(nn.Embedding):
    """An embedding that scales its output, as Gemma's does (peft reads `embed_scale`)."""

    def __init__(self, *args, scale: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("embed_scale", torch.tensor(scale), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.embed_scale


def bare_layers(tied: bool, padding_idx: int | None, scale: float | None, ids: list[int]):
    """An embedding and an output layer (50 x 8) wrapped for rows `ids`, their trained rows moved off the base."""
    torch.manual_seed(0)
    emb = ScaledEmbedding(50, 8, padding_idx=padding_idx, scale=scale) if scale else nn.Embedding(50, 8, padding_idx=padding_idx)
    head = nn.Linear(8, 50, bias=False)
    if tied:
        head.weight = emb.weight
    for p in (*emb.parameters(), *head.parameters()):
        p.requires_grad_(False)
    config = TrainableTokensConfig(token_indices=ids, target_modules=["emb"])
    emb_layer = SparseTokensLayer(emb, "default", config=config)
    emb_layer.update_layer("default", config=config)
    head_layer = SparseTokensLayer(head, "default", config=config, tied_adapter=emb_layer if tied else None)
    head_layer.update_layer("default", config=config, tied_adapter=emb_layer if tied else None)
    with torch.no_grad():
        for layer in (emb_layer, head_layer):
            layer.trainable_tokens_delta["default"].add_(torch.randn_like(layer.trainable_tokens_delta["default"]))
    return emb_layer, head_layer


def bare_step(emb_layer, head_layer, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Logits and gradients (trained rows, the output layer's input) of one forward + backward."""
    torch.manual_seed(1)
    extra = torch.randn(*x.shape, 8, requires_grad=True)
    logits = head_layer(emb_layer(x) + extra)
    (logits * torch.randn_like(logits)).sum().backward()
    out = {"logits": logits.detach(), "extra.grad": extra.grad}
    layers = {"embedding": emb_layer, "output": head_layer}
    params = {f"{key}.{n}": p for key, layer in layers.items() for n, p in layer.named_parameters() if p.requires_grad}
    out.update({f"{name}.grad": p.grad.clone() for name, p in params.items()})  # a tied row's gradient, under both names
    for p in params.values():
        p.grad = None
    return out


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize(("padding_idx", "scale"), [(None, None), (7, None), (None, 3.0)], ids=["plain", "padding-row", "scaled"])
def test_bare_layers_give_peft_logits_and_gradients(tied, padding_idx, scale, peft_forward):
    ids = [7, 41, 3]  # unsorted, one of them the padding row in that case
    x = torch.tensor([[1, 7, 41, 2, 7], [3, 0, 49, 41, 3]])
    emb_layer, head_layer = bare_layers(tied, padding_idx, scale, ids)
    got = bare_step(emb_layer, head_layer, x)
    with torch.no_grad():
        assert torch.equal(emb_layer(x.int()), emb_layer(x))  # int32 ids find the same trained rows
    peft_forward()
    want = bare_step(emb_layer, head_layer, x)
    assert set(got) == set(want) and any(k.endswith("trainable_tokens_delta.default.grad") for k in got)
    for key in want:
        assert_close(got[key], want[key], key)
    rows = got["embedding.trainable_tokens_delta.default.grad"]
    assert (rows.abs().sum(dim=1) > 0).sum() >= 2  # the trained rows do get a gradient


def model_step(arch: str, model, batch, own_forward) -> dict[str, torch.Tensor]:
    """The class's own logits and the gradient of every trained tensor after one backward of its loss."""
    out = own_forward(architecture(arch), model, batch)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return {"logits": out.logits.detach(), **grads}


@pytest.mark.parametrize("spec_name", list(SPECS))
@pytest.mark.parametrize(("arch", "tied"), MODEL_CASES)
def test_tiny_models_give_peft_logits_and_gradients(arch, tied, spec_name, speech_batch, own_forward, peft_forward):
    model, tok = build_tiny(arch, tied=tied, init_std=0.02)
    model, report = apply(model, SPECS[spec_name], tokenizer=tok)
    assert report.tied == tied
    train_mode(model)
    impl = architecture(arch)
    batch = speech_batch(impl, model, tok, impl.tiny_feature_extractor(), answers=["<|spk_0|> thank you <|spk_1|> order"],
                         seconds=(1.2, 1.0))
    got = model_step(arch, model, batch, own_forward)
    peft_forward()
    want = model_step(arch, model, batch, own_forward)
    assert set(got) == set(want) and any("trainable_tokens_delta" in k for k in got)
    assert any("lora_B" in k for k in got) == ("lora" in spec_name)
    for key in want:
        assert_close(got[key], want[key], key)


def full_matrix_ops(arch: str, tied: bool, speech_batch, allocations) -> list[str]:
    """The ops that return a tensor of the embedding's full shape in one training forward + backward."""
    model, tok = build_tiny(arch, tied=tied, vocab_size=997, init_std=0.02)  # a row count no other tensor has
    model, _ = apply(model, SPECS["projector+lora+tokens"], tokenizer=tok)
    train_mode(model)
    impl = architecture(arch)
    batch = speech_batch(impl, model, tok, impl.tiny_feature_extractor(), answers=["<|spk_0|> hi <|spk_1|> yes"], seconds=(1.0,))
    weight = model.get_submodule(model.adaptkit.cmap.embeddings).get_base_layer().weight
    full = {tuple(weight.shape), tuple(weight.shape[::-1])}
    loss = SpeechLMLoss(model, impl, encoder_trains=False)
    with allocations() as shapes:
        loss_sum, weight_sum = loss(batch)
        (loss_sum / weight_sum).backward()
    return [op for op, shape in shapes.made if shape in full]


@pytest.mark.parametrize(("arch", "tied"), MODEL_CASES)
def test_a_training_step_makes_no_tensor_of_the_full_matrix_shape(arch, tied, speech_batch, peft_forward, allocations):
    assert full_matrix_ops(arch, tied, speech_batch, allocations) == []
    peft_forward()
    copies = full_matrix_ops(arch, tied, speech_batch, allocations)
    assert any("index_copy" in op for op in copies), copies  # the count sees peft's per-step copies
