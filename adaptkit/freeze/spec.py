"""The freezing spec: what trains, parsed from one mapping (YAML, CLI overrides or Python).

Grammar (everything not named stays frozen)::

    freeze:
      add_tokens:                        # optional: new tokens for the tokenizer and the model
        tokens: ["<|spk_0|>", "<|spk_1|>"]
        init: mean                       # mean | description | random
        descriptions: {"<|spk_0|>": "first speaker"}   # for init: description
      train:
        - projector                      # a component path: encoder, projector, llm, embeddings,
        - llm.mlp                        #   lm_head, with dotted sub-paths (llm.attention, ...)
        - "re:audio_tower\\.ln_post\\."    # a regex searched in parameter names
        - "*.norm.weight"                # a glob matched against parameter names
        - tokens: ["<|spk_0|>", "<|spk_1|>"]   # only these rows of embeddings (and lm_head)
      lora:                              # optional: LoRA through peft, LLM modules only
        target: llm.attention            # a component path, or "re:<regex>" on module names
        r: 8
        alpha: 16
      components:                        # optional: a user map for a custom stack
        encoder: audio_encoder
        projector: [audio_encoder.proj]
        llm: decoder.model
        embeddings: decoder.model.embed_tokens
        lm_head: decoder.lm_head

`add_tokens` also accepts a plain list (init: mean), and `tokens: added` in `train` means every
token of `add_tokens`. `strategy: NAME` starts from a named spec of STRATEGIES (its `train` rules
first, then any given here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from adaptkit.errors import AdaptkitError
from adaptkit.validation import check_choice, check_keys, closest, coerce, from_dict, typed

COMPONENTS = ("encoder", "projector", "llm", "embeddings", "lm_head")
TOKEN_INITS = ("mean", "description", "random")


@dataclass
class AddTokens:
    """New tokens to add to the tokenizer and initialise in the embedding (and lm_head) rows."""

    tokens: list[str] = field(default_factory=list)
    """The new tokens, e.g. ["<|spk_0|>", "<|spk_1|>"]; ones already in the vocabulary are kept as they are."""
    init: str = "mean"
    """How new rows start: `mean` of the existing rows, `description` (mean embedding of a text
    per token, from `descriptions`), or `random` (normal with the existing rows' std)."""
    descriptions: dict[str, str] = field(default_factory=dict)
    """Token -> text whose mean embedding initialises that token's row (init: description)."""


@dataclass
class TokenRule:
    """Train only the embedding rows (and the lm_head rows, when untied) of these tokens."""

    tokens: list[str]
    """Tokens to train; the string `added` means every token of `add_tokens`."""


@dataclass
class PathRule:
    """Train every parameter of a component path, a regex (`re:`) or a glob on parameter names."""

    pattern: str
    """`projector`, `llm.attention`, `encoder.layers.0`, `re:<regex>` or a glob such as `*.norm.*`."""


@dataclass
class LoraSpec:
    """LoRA through peft on chosen Linear modules of the LLM (never of the encoder)."""

    target: str = "llm.attention"
    """A component path (`llm`, `llm.attention`, `llm.mlp`) or `re:<regex>` on module names."""
    r: int = 8
    """Rank of the low-rank update."""
    alpha: float = 16.0
    """Scaling numerator: the update is scaled by alpha / r."""
    dropout: float = 0.0
    """Dropout on the LoRA input during training."""
    within: str = "llm"
    """The component LoRA must stay inside; a target that reaches outside it is an error."""


@dataclass
class FreezeSpec:
    """What trains. Everything the spec does not name stays frozen."""

    train: list[TokenRule | PathRule] = field(default_factory=list)
    """Rules that mark parameters (or token rows) trainable."""
    lora: LoraSpec | None = None
    """Optional LoRA on LLM modules."""
    add_tokens: AddTokens | None = None
    """Optional new tokens to add before training."""
    components: dict[str, str | list[str]] = field(default_factory=dict)
    """Optional user map of component -> module path(s), overriding the architecture's map."""

    def to_dict(self) -> dict[str, Any]:
        """The mapping this spec parses from (round-trips through `parse_spec`)."""
        out: dict[str, Any] = {"train": [{"tokens": r.tokens} if isinstance(r, TokenRule) else r.pattern for r in self.train]}
        if self.lora:
            out["lora"] = {f.name: getattr(self.lora, f.name) for f in fields(LoraSpec)}
        if self.add_tokens:
            out["add_tokens"] = {f.name: getattr(self.add_tokens, f.name) for f in fields(AddTokens)}
        if self.components:
            out["components"] = dict(self.components)
        return out

    def token_rows(self) -> list[str]:
        """Every token whose rows the `train` rules ask for, in order, `added` expanded."""
        out: list[str] = []
        for rule in self.train:
            if isinstance(rule, TokenRule):
                for tok in rule.tokens:
                    names = self.add_tokens.tokens if tok == "added" and self.add_tokens else [tok]
                    out += [t for t in names if t not in out]
        return out


def _parse_rule(item: Any, where: str) -> TokenRule | PathRule:
    if isinstance(item, str):
        head = item.split(".")[0]
        if not item.startswith("re:") and not any(c in item for c in "*?[") and head not in COMPONENTS:
            raise AdaptkitError(
                f"{where}: unknown component {head!r}{closest(head, COMPONENTS)}; use one of {', '.join(COMPONENTS)}, "
                "a 're:<regex>' or a glob on parameter names"
            )
        return PathRule(item)
    if isinstance(item, dict):
        return from_dict(TokenRule, item, where)
    raise AdaptkitError(f"{where}: expected a component name or {{tokens: [...]}}, got {type(item).__name__} {item!r}")


def _parse_lora(data: Any, where: str) -> LoraSpec:
    lora = from_dict(LoraSpec, {"target": data} if isinstance(data, str) else data, where)
    if lora.r <= 0:
        raise AdaptkitError(f"{where}.r: must be a positive integer, got {lora.r}")
    if not 0.0 <= lora.dropout < 1.0:
        raise AdaptkitError(f"{where}.dropout: must be in [0, 1), got {lora.dropout}")
    check_choice(lora.within, COMPONENTS, f"{where}.within", "component")
    return lora


def _parse_add_tokens(data: Any, where: str) -> AddTokens:
    add = from_dict(AddTokens, {"tokens": data} if isinstance(data, (list, str)) else data, where)
    check_choice(add.init, TOKEN_INITS, f"{where}.init", "init")
    if add.init == "description":
        missing = [t for t in add.tokens if not add.descriptions.get(t, "").strip()]
        if missing:
            raise AdaptkitError(f"{where}.descriptions: init 'description' needs a text for {', '.join(missing)}")
    return add


def _parse_components(data: Any, where: str) -> dict[str, str | list[str]]:
    typed(data, dict, where)
    check_keys(data, COMPONENTS, where)
    return {k: coerce(v, str | list[str], f"{where}.{k}") for k, v in data.items()}


STRATEGIES: dict[str, dict[str, Any]] = {
    "all_trainable": {"train": ["encoder", "projector", "llm", "embeddings", "lm_head"]},
    "llm_and_projector": {"train": ["projector", "llm", "embeddings", "lm_head"]},
    "projector_only": {"train": ["projector"]},
    "projector_and_tokens": {"train": ["projector", {"tokens": "added"}]},
    "llm_lora_and_projector": {"train": ["projector"], "lora": {"target": "llm"}},
}
"""Named freezing strategies as plain specs. `all_trainable` and `llm_and_projector` are the 3-tag
turn-taking seed's names: its stage 1 trains everything; `llm_and_projector` trains the LLM and the
projector with the encoder frozen (the seed's card also calls it "LLM and projector frozen", which
would leave nothing to train; we read the name as what trains). `projector_and_tokens` is
adaptkit's central recipe: the projector and the new tokens' rows, encoder and LLM frozen."""


def parse_spec(data: FreezeSpec | Mapping | None, where: str = "freeze") -> FreezeSpec:
    """Parse and validate a spec mapping; errors name the key, e.g. `freeze.lora.r`."""
    if isinstance(data, FreezeSpec):
        return data
    if data is None:
        data = {}
    typed(data, Mapping, where)
    if "strategy" in data:
        name = check_choice(data["strategy"], STRATEGIES, f"{where}.strategy", "strategy")
        preset, extra = STRATEGIES[name], {k: v for k, v in data.items() if k != "strategy"}
        train = extra.get("train") or []
        data = {**preset, **extra, "train": list(preset["train"]) + (list(train) if isinstance(train, list) else [train])}
    check_keys(data, ("train", "lora", "add_tokens", "components"), where)
    train = data.get("train") or []
    if isinstance(train, (str, Mapping)):
        train = [train]
    typed(train, list, f"{where}.train")
    spec = FreezeSpec(
        train=[_parse_rule(item, f"{where}.train[{i}]") for i, item in enumerate(train)],
        lora=_parse_lora(data["lora"], f"{where}.lora") if data.get("lora") is not None else None,
        add_tokens=_parse_add_tokens(data["add_tokens"], f"{where}.add_tokens") if data.get("add_tokens") is not None else None,
        components=_parse_components(data["components"], f"{where}.components") if data.get("components") else {},
    )
    if "added" in [t for r in spec.train if isinstance(r, TokenRule) for t in r.tokens] and not spec.add_tokens:
        raise AdaptkitError(f"{where}.train: 'tokens: added' needs an add_tokens section")
    if not spec.train and not spec.lora:
        raise AdaptkitError(f"{where}: nothing to train; add rules under {where}.train or a {where}.lora section")
    return spec
