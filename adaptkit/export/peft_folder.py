"""An adaptkit adapter as a PEFT folder: `adapter_config.json` + `adapter_model.safetensors`.

The folder is written by peft itself: a fresh base is loaded, wrapped with `get_peft_model` under
a `LoraConfig` that says what the adapter trained, the trained values are copied in, and
`save_pretrained` writes it. LoRA matrices stay LoRA matrices; token rows (trained, and every row
added or grown for new tokens) become `trainable_token_indices` on the embedding and, when untied,
on the output layer; whole modules trained in full (the projector) become `modules_to_save`.

The PEFT base is the module that has a `forward` and `get_input_embeddings`: the thinker of
Qwen3-ASR (its outer class has neither), the plain causal LM of a composed model without an
encoder (a turn_end adapter on Qwen3 loads on `AutoModelForCausalLM`), else the model itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from adaptkit.atomic import atomic_dir
from adaptkit.errors import AdaptkitError
from adaptkit.freeze.tokens import embedding_modules, set_tie_flags

ADAPTER = "default"
VLLM_TOKENS = "https://github.com/vllm-project/vllm/issues/36501"


@dataclass
class PeftBase:
    """Where the PEFT base sits in an adaptkit model, and how a user builds it."""

    path: str
    """Module path of the PEFT base inside the adaptkit model ('' for the model itself)."""
    how: str
    """What to pass to `PeftModel.from_pretrained`, in words."""
    task_type: str | None = None


def peft_base(arch: str, model: nn.Module) -> PeftBase:
    """The module a PEFT folder of this architecture is loaded onto."""
    if arch == "qwen3_asr":
        return PeftBase("thinker", "the base's `thinker` (Qwen3-ASR's outer class has no forward)")
    if arch == "composed" and getattr(model, "encoder", None) is None:
        return PeftBase("llm", "the plain causal LM (AutoModelForCausalLM of the base LLM)", "CAUSAL_LM")
    return PeftBase("", "the base model itself")


def _rel(name: str, root: str) -> str:
    return name[len(root) + 1:] if root else name


def _whole_modules(model: nn.Module, names: list[str]) -> list[str]:
    """The modules trained in full that hold `names` (plain trained parameters), highest first.

    PEFT's `modules_to_save` copies whole modules, so a module with only some parameters trained
    cannot be written that way."""
    trained = set(names)
    params = dict(model.named_parameters())
    out: list[str] = []
    for name in sorted(names, key=lambda n: n.count(".")):
        if any(name.startswith(m + ".") for m in out):
            continue
        parts = name.split(".")[:-1]
        best = None
        for k in range(1, len(parts) + 1):  # highest ancestor whose parameters all train
            path = ".".join(parts[:k])
            owned = [f"{path}.{n}" for n, _ in model.get_submodule(path).named_parameters()]
            if owned and all(n in trained for n in owned) and all(params[n].requires_grad for n in owned):
                best = path
                break
        if best is None:
            raise AdaptkitError(f"export --to peft: {name} trains without the rest of its module; PEFT's modules_to_save "
                                "holds whole modules only: export --to merged")
        out.append(best)
    return out


def _row_ids(model: nn.Module, fresh: nn.Module, cmap, added: dict[str, int], rows: dict[str, int], fresh_tok) -> list[int]:
    """Rows the PEFT folder must carry: trained rows, rows of tokens new to the base, and grown rows."""
    ids = set(rows.values()) | {i for t, i in added.items() if t not in fresh_tok.get_vocab()}
    grown = embedding_modules(model, cmap)[0].weight.shape[0]
    base_rows = embedding_modules(fresh, cmap)[0].weight.shape[0]
    return sorted(ids | set(range(base_rows, grown)))


def _effective(module: nn.Module) -> torch.Tensor:
    """The weight the forward pass sees (token rows applied)."""
    if hasattr(module, "get_merged_weights"):
        return module.get_merged_weights([ADAPTER]).detach()
    return module.weight.detach()


def _config(model: nn.Module, base: PeftBase, cmap, ids: list[int], modules: list[str], tied: bool) -> LoraConfig:
    lora = model.adaptkit.spec.lora
    state = model.adaptkit
    tokens = None
    if ids:
        tokens = {_rel(cmap.embeddings, base.path): ids}
        if cmap.lm_head and not tied:
            tokens[_rel(cmap.lm_head, base.path)] = ids
    return LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias="none", task_type=base.task_type,
        target_modules=[_rel(n, base.path) for n in state.lora_modules],
        modules_to_save=[_rel(m, base.path) for m in modules] or None, trainable_token_indices=tokens,
    )


def _check(model: nn.Module, base: PeftBase) -> tuple[list[str], list[str]]:
    """Refuse what a PEFT folder cannot hold; returns the trained plain parameters and their modules."""
    state = getattr(model, "adaptkit", None)
    if state is None or state.spec.lora is None:
        raise no_lora(_kinds(model))
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    outside = [n for n in trained if base.path and not n.startswith(base.path + ".")]
    if outside:
        raise AdaptkitError(f"export --to peft: {outside[0]} trains outside the PEFT base {base.path}: export --to merged")
    tuner = {n for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)}
    plain = [n for n in trained if not any(n.startswith(t + ".") for t in tuner)]
    return plain, _whole_modules(model, plain)


def no_lora(kinds: list[str]) -> AdaptkitError:
    """The one-line refusal of an adapter without LoRA, naming what it trains."""
    return AdaptkitError(f"export --to peft: a PEFT folder holds a LoRA adapter and this one has no LoRA (it trains "
                         f"{', '.join(kinds) or 'nothing'}); export --to merged or --to hub-folder")


def spec_kinds(spec: dict) -> list[str]:
    """What a saved freezing spec trains, in words, without building the model."""
    train = spec.get("train") or []
    return (["token rows"] if any(isinstance(r, dict) for r in train) else []) + [f"{r} in full" for r in train if isinstance(r, str)]


def _kinds(model: nn.Module) -> list[str]:
    """What an adapted model trains, in words: LoRA, token rows, whole modules."""
    state = model.adaptkit
    out = ["LoRA"] if state.lora_modules else []
    out += ["token rows"] if state.token_rows else []
    tuner = {n for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)}
    plain = [n for n, p in model.named_parameters() if p.requires_grad and not any(n.startswith(t + ".") for t in tuner)]
    groups = sorted({state.cmap.group_of(n) for n in plain})
    return out + [f"{g} in full" for g in groups]


def _copy_trained(model: nn.Module, peft_model: nn.Module, base: PeftBase, modules: list[str], ids: list[int]) -> None:
    """Copy LoRA matrices, whole trained modules and token rows from the adaptkit model into peft's."""
    state = model.adaptkit
    params = dict(peft_model.named_parameters())
    inner = peft_model.base_model.model

    def put(name: str, value: torch.Tensor) -> None:
        if name not in params or tuple(params[name].shape) != tuple(value.shape):
            raise RuntimeError(f"peft export: no parameter {name} of shape {tuple(value.shape)} in the peft model")
        params[name].data.copy_(value)

    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".lora_A." in n or ".lora_B." in n:
                put(f"base_model.model.{_rel(n, base.path)}", p.detach())
        for m in modules:
            for pn, p in model.get_submodule(m).named_parameters():
                put(f"base_model.model.{_rel(m, base.path)}.modules_to_save.{ADAPTER}.{pn}", p.detach())
        if not ids:
            return
        paths = [state.cmap.embeddings] + ([state.cmap.lm_head] if state.cmap.lm_head and not state.tied else [])
        for path in paths:
            wrapper = inner.get_submodule(_rel(path, base.path))
            wrapper.token_adapter.trainable_tokens_delta[ADAPTER].data.copy_(_effective(model.get_submodule(path))[ids])


def save_peft(model: nn.Module, arch: str, fresh: nn.Module, fresh_tokenizer, out: str | Path, base_name: str) -> list[str]:
    """Write the adapter of `model` (prepared by adaptkit.freeze) as a PEFT folder built on `fresh`, an
    untouched copy of its base; `fresh_tokenizer` gets the adapter's tokens and is saved beside it.
    Returns notes for the user (how to load it, where vLLM cannot serve it)."""
    from transformers import AddedToken

    base = peft_base(arch, model)
    _, modules = _check(model, base)
    state = model.adaptkit
    ids = _row_ids(model, fresh, state.cmap, state.added_tokens, state.token_rows, fresh_tokenizer)
    new = [t for t in state.added_tokens if t not in fresh_tokenizer.get_vocab()]
    fresh_tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in new], special_tokens=False)
    if fresh_tokenizer.convert_tokens_to_ids(list(state.added_tokens)) != list(state.added_tokens.values()):
        raise AdaptkitError("export --to peft: the base's tokenizer gives the adapter's tokens other ids; was the base changed?")
    root = fresh.get_submodule(base.path) if base.path else fresh
    rows = embedding_modules(model, state.cmap)[0].weight.shape[0]
    grew = rows != embedding_modules(fresh, state.cmap)[0].weight.shape[0]
    if grew:
        root.resize_token_embeddings(rows, mean_resizing=False)
    if state.cmap.lm_head:
        set_tie_flags(fresh, state.tied)
    peft_model = get_peft_model(root, _config(model, base, state.cmap, ids, modules, state.tied))
    _copy_trained(model, peft_model, base, modules, ids)
    peft_model.peft_config[ADAPTER].base_model_name_or_path = base_name or None  # a tiny base has no name
    with atomic_dir(out) as tmp:
        peft_model.save_pretrained(tmp)
        fresh_tokenizer.save_pretrained(tmp)
    notes = [f"load with PeftModel.from_pretrained(<{base.how}>, {out})"
             + (f" after resize_token_embeddings({rows}) and adding the tokenizer's new tokens" if grew else "")]
    if ids or modules:
        notes.append(f"vLLM serves LoRA-only PEFT folders; this one has {'token rows' if ids else ''}"
                     f"{' and ' if ids and modules else ''}{'modules_to_save' if modules else ''}, which vLLM cannot load "
                     f"({VLLM_TOKENS}): serve the merged folder (adaptkit export --to merged) instead")
    if state.cmap.lm_head and not state.tied:
        notes.append("the base's config must say tie_word_embeddings=False (untied output layer), as adaptkit's merged checkpoints do")
    return notes
