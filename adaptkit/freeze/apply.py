"""Apply a freezing spec: freeze everything, then open exactly what the spec names.

Token rows train through `SparseTokensLayer` (peft's `TrainableTokensLayer` with a forward that
never rebuilds the full matrix, `adaptkit.freeze.token_layer`) and LoRA through peft's LoRA layers. The
layers are placed by hand on resolved module paths instead of through `get_peft_model`, because
`PeftModel` needs a `forward` and `get_input_embeddings` on the outer model (Qwen3-ASR's outer
class has neither) and decides weight tying from a config flag; here tying comes from the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from peft import LoraConfig, TrainableTokensConfig, inject_adapter_in_model
from torch import nn

from adaptkit.errors import AdaptkitError
from adaptkit.freeze.components import ComponentMap, component_map, resolve_modules, resolve_parameters
from adaptkit.freeze.report import FreezeReport, components, count
from adaptkit.freeze.spec import FreezeSpec, PathRule, parse_spec
from adaptkit.freeze.token_layer import SparseTokensLayer
from adaptkit.freeze.tokens import add_tokens, check_token_layers, embedding_modules, is_tied, set_tie_flags, token_ids
from adaptkit.validation import closest

ADAPTER_NAME = "default"


@dataclass
class Applied:
    """What `apply` did to a model, kept on it as `model.adaptkit` for saving and reporting."""

    spec: FreezeSpec
    cmap: ComponentMap
    tied: bool
    token_rows: dict[str, int] = field(default_factory=dict)
    added_tokens: dict[str, int] = field(default_factory=dict)
    lora_modules: list[str] = field(default_factory=list)


def _lora_targets(model: nn.Module, spec: FreezeSpec, cmap: ComponentMap) -> list[str]:
    """Names of the Linear modules LoRA adapts; every one must lie inside `lora.within`."""
    lora = spec.lora
    where = "freeze.lora.target"
    if lora.target.startswith("re:"):
        import re

        try:
            regex = re.compile(lora.target[3:])
        except re.error as err:
            raise AdaptkitError(f"{where}: bad regex {lora.target[3:]!r}: {err}")
        roots = [n for n, _ in model.named_modules() if n and regex.search(n)]
        if not roots:
            raise AdaptkitError(f"{where}: {lora.target!r} matches no module{closest(lora.target[3:], [n for n, _ in model.named_modules()])}")
        excluded = []
    else:  # a component path means the component's own modules: not the towers or parts excluded from it
        roots = resolve_modules(model, lora.target, cmap, where)
        excluded = cmap.excluded.get(lora.target.split(".")[0], [])
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and any(n == r or n.startswith(r + ".") for r in roots)
               and not any(n == e or n.startswith(e + ".") for e in excluded)]
    if not linears:
        raise AdaptkitError(f"{where}: {lora.target!r} holds no Linear module for LoRA")
    outside = [n for n in linears if cmap.group_of(n) != lora.within]
    if outside:
        raise AdaptkitError(
            f"{where}: {lora.target!r} reaches outside {lora.within} ({len(outside)} modules, e.g. {outside[0]} in "
            f"{cmap.group_of(outside[0])}); narrow it or set freeze.lora.within"
        )
    return linears


def _wrap_token_rows(model: nn.Module, cmap: ComponentMap, ids: list[int], tied: bool) -> None:
    """Train only rows `ids` of the embedding, and of lm_head (its own rows, or tied to the embedding's)."""
    config = TrainableTokensConfig(token_indices=ids, target_modules=[cmap.embeddings])
    emb, head = embedding_modules(model, cmap)
    emb_layer = SparseTokensLayer(emb, ADAPTER_NAME, config=config)
    emb_layer.update_layer(ADAPTER_NAME, config=config)
    model.set_submodule(cmap.embeddings, emb_layer)
    if head is not None:
        head_layer = SparseTokensLayer(head, ADAPTER_NAME, config=config, tied_adapter=emb_layer if tied else None)
        head_layer.update_layer(ADAPTER_NAME, config=config, tied_adapter=emb_layer if tied else None)
        model.set_submodule(cmap.lm_head, head_layer)


def apply(model: nn.Module, spec: FreezeSpec | Mapping[str, Any], tokenizer=None) -> tuple[nn.Module, FreezeReport]:
    """Freeze `model` except what `spec` names; returns the (adapted, in place) model and its report.

    Order: resolve the components and every rule and check the token layers (failing before
    anything changes: a failed `apply` leaves model and tokenizer as they were), then add tokens,
    freeze all, inject LoRA, wrap token rows, open the named parameters.
    """
    spec = parse_spec(spec)
    if getattr(model, "adaptkit", None) is not None:
        raise AdaptkitError("this model already has a freezing spec applied; start from a fresh base")
    cmap = component_map(model, spec.components)
    tied = is_tied(model, cmap)
    rows_spec = spec.token_rows()
    if rows_spec or spec.add_tokens:  # every check before the tokenizer or the model is touched
        check_token_layers(model, cmap, tokenizer, spec.add_tokens)
    emb, _ = embedding_modules(model, cmap)
    if rows_spec:
        known = set(spec.add_tokens.tokens) if spec.add_tokens else set()
        token_ids(tokenizer, [t for t in rows_spec if t not in known], emb.weight.shape[0], adding=known)

    rule_params = {}
    for i, rule in enumerate(spec.train):
        if isinstance(rule, PathRule):
            rule_params[rule.pattern] = resolve_parameters(model, rule.pattern, cmap, f"freeze.train[{i}]")
    trains_embeddings = [p for p, names in rule_params.items() if any(cmap.group_of(n) == "embeddings" for n in names)]
    if rows_spec and trains_embeddings:
        raise AdaptkitError(f"freeze.train: {trains_embeddings[0]!r} trains whole embedding rows, so the token rule adds nothing; drop one")
    lora_modules = _lora_targets(model, spec, cmap) if spec.lora else []
    opened = {n for names in rule_params.values() for n in names}
    both = [m for m in lora_modules if any(n.startswith(m + ".") for n in opened)]
    if both:
        raise AdaptkitError(f"freeze: {both[0]} is both trained in full (freeze.train) and adapted by LoRA; pick one")

    if cmap.lm_head is not None:  # a flag is written only where the output layer is known: never against shared weights
        set_tie_flags(model, tied)
    added = add_tokens(model, tokenizer, spec.add_tokens, cmap) if spec.add_tokens else {}
    emb, _ = embedding_modules(model, cmap)
    rows = token_ids(tokenizer, rows_spec, emb.weight.shape[0]) if rows_spec else {}

    params = dict(model.named_parameters())
    to_open = [params[n] for n in sorted(opened)]
    for p in model.parameters():
        p.requires_grad_(False)
    if lora_modules:
        lora = spec.lora
        config = LoraConfig(target_modules=lora_modules, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias="none")
        inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
    if rows:
        _wrap_token_rows(model, cmap, sorted(set(rows.values())), tied)
    for p in to_open:
        p.requires_grad_(True)

    model.adaptkit = Applied(spec=spec, cmap=cmap, tied=tied, token_rows=rows, added_tokens=added, lora_modules=lora_modules)
    return model, report(model)


def report(model: nn.Module) -> FreezeReport:
    """The report of a model that `apply` has prepared."""
    state: Applied = model.adaptkit
    return FreezeReport(
        architecture=type(model).__name__, component_source=state.cmap.source, groups=count(model, state.cmap),
        token_rows=dict(state.token_rows), tied=state.tied, lora_modules=list(state.lora_modules),
        components=components(state.cmap),
    )


def train_mode(model: nn.Module) -> nn.Module:
    """`model.train()`, except normalisation layers whose weights are all frozen stay in eval mode,
    so their running statistics (a frozen encoder's BatchNorm) do not drift during training, and a
    frozen encoder stays in eval mode (no dropout or layer drop: its outputs can be cached), also when
    a trained projector sits inside it."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in module.parameters()):
            module.eval()
    cmap = getattr(getattr(model, "adaptkit", None), "cmap", None)
    if cmap is None:
        return model
    encoder_params = [p for n, p in model.named_parameters() if cmap.group_of(n) == "encoder"]
    if any(p.requires_grad for p in encoder_params):
        return model
    for path in cmap.paths("encoder"):  # the projector may sit inside the encoder (Qwen3-ASR): it alone trains
        model.get_submodule(path).eval()
    for path in cmap.paths("projector"):
        projector = model.get_submodule(path)
        if any(p.requires_grad for p in projector.parameters()):
            projector.train()
    return model


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimizer should get: exactly those with requires_grad."""
    return [p for p in model.parameters() if p.requires_grad]
