"""Acceptance 1 and 2 of the freezing DSL on tiny random models of every supported class.

After 3 AdamW steps (weight decay 0.01): frozen tensors are bit-identical, the chosen rows moved
and no other row did, LoRA lives only inside the LLM. Then save, load on a fresh base, merge,
and reload with `from_pretrained`: the logits agree.
"""

from __future__ import annotations

import pytest
import torch
from peft.tuners.lora import LoraLayer
from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

from adaptkit.freeze import apply, fingerprint, load_adapter, moved, save_adapter, save_merged, train_mode, trainable_parameters
from adaptkit.models import ARCHITECTURES, architecture, build_tiny

SPK = ["<|spk_0|>", "<|spk_1|>"]
SPECS = {
    "projector+tokens": {"add_tokens": SPK, "train": ["projector", {"tokens": "added"}]},
    "lora+tokens": {"add_tokens": SPK, "train": [{"tokens": "added"}], "lora": {"target": "llm.attention", "r": 4, "alpha": 8}},
    "projector+lora+tokens": {
        "add_tokens": SPK, "train": ["projector", {"tokens": "added"}], "lora": {"target": "llm.attention", "r": 4, "alpha": 8},
    },
}
ANSWERS = ["<|spk_0|> thank you <|spk_1|> order", "<|spk_1|> hello <|spk_0|> one two"]


def effective_rows(model) -> dict[str, torch.Tensor]:
    """The embedding and lm_head matrices as the forward pass sees them (token rows applied)."""
    out = {}
    state = model.adaptkit
    for key, path in (("embeddings", state.cmap.embeddings), ("lm_head", state.cmap.lm_head)):
        module = model.get_submodule(path)
        weight = module.get_merged_weights(["default"]) if isinstance(module, TrainableTokensLayer) else module.weight
        out[key] = weight.detach().clone()
    return out


STACK_MARKS = {None: [], "qwen-asr": [pytest.mark.qwen_asr_stack], "current": [pytest.mark.current_stack]}
ARCH_TIED = [pytest.param(a, t, id=f"{a}-{'tied' if t else 'untied'}", marks=STACK_MARKS[architecture(a).stack])
             for a in sorted(ARCHITECTURES) for t in (False, True) if architecture(a).ties or not t]
"""(architecture, tied) pairs the installed classes build, each marked for the stack its architecture needs."""
STD = 0.02  # the usual init: logits stay small, so float32 merging rounds well under 1e-5


def prepared(arch: str, spec_name: str, tied: bool, speech_batch):
    model, tok = build_tiny(arch, tied=tied, init_std=STD)
    model, report = apply(model, SPECS[spec_name], tokenizer=tok)
    impl = architecture(arch)
    batch = speech_batch(impl, model, tok, impl.tiny_feature_extractor(), answers=ANSWERS, seconds=(1.2, 1.0))
    return model, tok, report, batch


def train_steps(arch: str, model, batch, own_forward, steps: int = 3) -> None:
    train_mode(model)
    opt = torch.optim.AdamW(trainable_parameters(model), lr=1e-2, weight_decay=0.01)
    for _ in range(steps):
        loss = own_forward(architecture(arch), model, batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("spec_name", list(SPECS))
@pytest.mark.parametrize(("arch", "tied"), ARCH_TIED)
def test_three_steps_move_exactly_what_the_spec_names(arch, spec_name, tied, speech_batch, own_forward):
    model, tok, report, batch = prepared(arch, spec_name, tied, speech_batch)
    ids = sorted(report.token_rows.values())
    assert [tok.convert_ids_to_tokens(i) for i in ids] == SPK
    assert report.tied == tied
    frozen = fingerprint(model)
    rows_before = effective_rows(model)
    trained_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    train_steps(arch, model, batch, own_forward)

    assert moved(model, frozen) == []
    rows_after = effective_rows(model)
    for key in ("embeddings", "lm_head"):
        changed = (rows_after[key] != rows_before[key]).any(dim=1).nonzero().flatten().tolist()
        assert changed == ids, f"{key}: rows {changed} moved, expected exactly {ids}"
    for name, before in trained_before.items():
        if ".lora_A." not in name:  # lora_B starts at zero; A moves only once B has
            assert not torch.equal(dict(model.named_parameters())[name], before), f"{name} did not train"
    lora_layers = [n for n, m in model.named_modules() if isinstance(m, LoraLayer)]
    assert bool(lora_layers) == ("lora" in spec_name)
    assert all(model.adaptkit.cmap.group_of(n) == "llm" for n in lora_layers), lora_layers
    groups = report.groups
    assert groups["encoder"]["trainable"] == 0 and groups["llm"]["trainable"] == 0
    assert (groups["projector"]["trainable"] == groups["projector"]["total"] > 0) == ("projector" in spec_name)
    assert groups["embeddings"]["trainable"] == len(ids) * rows_before["embeddings"].shape[1]
    assert report.total == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("arch", "tied"), ARCH_TIED)
def test_save_load_merge_reproduce_the_trained_logits(arch, tied, tmp_path, speech_batch, own_forward):
    spec_name = "projector+lora+tokens"
    model, tok, _, batch = prepared(arch, spec_name, tied, speech_batch)
    train_steps(arch, model, batch, own_forward)
    model.eval()
    with torch.no_grad():
        want = own_forward(architecture(arch), model, batch).logits

    save_adapter(model, tmp_path / "adapter", base=f"tiny:{arch}")
    saved = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert saved == {"adapter.safetensors", "adaptkit_adapter.json"}

    fresh, fresh_tok = build_tiny(arch, tied=tied, init_std=STD)
    fresh, _ = load_adapter(fresh, tmp_path / "adapter", tokenizer=fresh_tok)
    fresh.eval()
    with torch.no_grad():
        loaded = own_forward(architecture(arch), fresh, batch).logits
    assert (loaded - want).abs().max().item() <= 1e-5

    save_merged(fresh, tmp_path / "merged", fresh_tok)
    assert not any(isinstance(m, (LoraLayer, TrainableTokensLayer)) for m in fresh.modules())
    reloaded = type(fresh).from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        merged = own_forward(architecture(arch), reloaded, batch).logits
    assert (merged - want).abs().max().item() <= 1e-5
    emb = reloaded.get_submodule(model.adaptkit.cmap.embeddings).weight
    head = reloaded.get_submodule(model.adaptkit.cmap.lm_head).weight
    assert (emb is head) == tied

    from transformers import AutoTokenizer

    reloaded_tok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert reloaded_tok.convert_tokens_to_ids(SPK) == fresh_tok.convert_tokens_to_ids(SPK)
    assert reloaded_tok.tokenize("<|spk_0|> hi")[0] == "<|spk_0|>"
