"""Where the encoder, projector, LLM, embeddings and lm_head sit in a model.

Three sources, in order: a user map from the spec, the architecture map for the model's class,
and a structural fallback that looks for the parts by name and type. The projector can sit
inside the encoder (Qwen3-ASR): the encoder's parameters are those under its path minus the
projector's, and the LLM's are those under its path minus the embeddings and lm_head.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from torch import nn

from adaptkit.errors import AdaptkitError
from adaptkit.freeze.spec import COMPONENTS, closest

# class name -> component -> module path(s), as in `model.named_modules()`
ARCH_MAPS: dict[str, dict[str, str | list[str]]] = {
    "Qwen3ASRForConditionalGeneration": {
        "encoder": "thinker.audio_tower",
        "projector": ["thinker.audio_tower.proj1", "thinker.audio_tower.proj2"],
        "llm": "thinker.model",
        "embeddings": "thinker.model.embed_tokens",
        "lm_head": "thinker.lm_head",
    },
    "Qwen2AudioForConditionalGeneration": {
        "encoder": "audio_tower",
        "projector": "multi_modal_projector",
        "llm": "language_model.model",
        "embeddings": "language_model.model.embed_tokens",
        "lm_head": "language_model.lm_head",
    },
    "VoxtralForConditionalGeneration": {
        "encoder": "audio_tower",
        "projector": "multi_modal_projector",
        "llm": "language_model.model",
        "embeddings": "language_model.model.embed_tokens",
        "lm_head": "language_model.lm_head",
    },
    "GraniteSpeechForConditionalGeneration": {
        "encoder": "encoder",
        "projector": "projector",
        "llm": "language_model.model",
        "embeddings": "language_model.model.embed_tokens",
        "lm_head": "language_model.lm_head",
    },
}

# sub-path aliases: `llm.attention` means every module under the LLM with one of these names
ALIASES: dict[str, tuple[str, ...]] = {
    "attention": ("self_attn", "attention", "attn", "self_attention"),
    "mlp": ("mlp", "feed_forward", "ffn"),
}

_FALLBACK_PATTERNS = {
    "encoder": r"(audio|speech|acoustic|encoder|whisper)",
    "projector": r"(projector|connector|aligner|adapter|proj)",
}


@dataclass
class ComponentMap:
    """Module paths of the five components of one model, and where the map came from."""

    encoder: str
    projector: list[str]
    llm: str
    embeddings: str
    lm_head: str | None
    source: str = "architecture map"
    excluded: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.excluded = {
            "encoder": list(self.projector),
            "llm": [self.embeddings] + ([self.lm_head] if self.lm_head else []) + list(self.projector),
        }

    def paths(self, component: str) -> list[str]:
        """Module paths of `component`."""
        value = getattr(self, component)
        return list(value) if isinstance(value, list) else ([value] if value else [])

    def group_of(self, name: str) -> str:
        """The group a (parameter or module) name belongs to: a component, `lora` or `other`."""
        if ".lora_" in name:
            return "lora"
        for component in ("projector", "embeddings", "lm_head", "encoder", "llm"):
            if any(_under(name, p) for p in self.paths(component)):
                return component
        return "other"


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _check_paths(model: nn.Module, mapping: dict, source: str) -> None:
    modules = dict(model.named_modules())
    for component, value in mapping.items():
        for path in [value] if isinstance(value, str) else value:
            if path not in modules:
                raise AdaptkitError(
                    f"{source}: {component} path {path!r} is not a module of {type(model).__name__}{closest(path, modules)}"
                )


def _fallback(model: nn.Module) -> dict[str, str | list[str]]:
    """Find the parts of an unknown model by name and type, or fail listing its top-level modules."""
    modules = dict(model.named_modules())
    found: dict[str, str | list[str]] = {}
    try:
        emb = model.get_input_embeddings()
        found["embeddings"] = next(n for n, m in modules.items() if m is emb)
    except (NotImplementedError, AttributeError, StopIteration):
        embeddings = [(m.num_embeddings, n) for n, m in modules.items() if isinstance(m, nn.Embedding)]
        if embeddings:
            found["embeddings"] = max(embeddings)[1]
    head = [n for n, m in modules.items() if n.split(".")[-1] == "lm_head" and isinstance(m, nn.Linear)]
    if head:
        found["lm_head"] = head[0]
    if "embeddings" in found:
        parents = [n for n in modules if n and _under(found["embeddings"], n) and n != found["embeddings"]]
        if parents:
            found["llm"] = max(parents, key=len)
    for component, pattern in _FALLBACK_PATTERNS.items():
        hits = [n for n in modules if n and re.search(pattern, n.split(".")[-1], re.I)
                and not (found.get("llm") and _under(n, found["llm"]))]
        if component == "projector":
            hits = [n for n in hits if not (found.get("encoder") and n == found["encoder"])]
        if hits:
            depth = min(n.count(".") for n in hits)
            shallow = [n for n in hits if n.count(".") == depth]
            found[component] = shallow[0] if component == "encoder" else shallow
    missing = [c for c in ("encoder", "projector", "llm", "embeddings") if c not in found]
    if missing:
        top = ", ".join(n for n, _ in model.named_children()) or "(none)"
        raise AdaptkitError(
            f"cannot find the {', '.join(missing)} of {type(model).__name__} (no architecture map); "
            f"its top-level modules are: {top}; name them in the spec under freeze.components"
        )
    return found


def component_map(model: nn.Module, user: dict[str, str | list[str]] | None = None) -> ComponentMap:
    """Resolve the components of `model`: user map, then architecture map, then structural fallback."""
    name = type(model).__name__
    base = ARCH_MAPS.get(name)
    source = f"architecture map for {name}"
    if base is None and hasattr(model, "component_paths"):  # a model that knows its parts (ComposedSpeechLM)
        base, source = model.component_paths(), f"{name}.component_paths()"
    if user:
        _check_paths(model, user, "freeze.components")
        if base is None and set(user) >= {"encoder", "projector", "llm", "embeddings"}:
            base, source = {}, "user map"
        else:
            source = f"user map over {source if base else 'structural fallback'}"
    if base is None:
        base, source = _fallback(model), "structural fallback"
    merged = {**{"lm_head": None}, **base, **(user or {})}
    if name in ARCH_MAPS:
        _check_paths(model, {k: v for k, v in merged.items() if v}, f"architecture map for {name}")
    projector = merged["projector"]
    return ComponentMap(
        encoder=merged["encoder"], projector=[projector] if isinstance(projector, str) else list(projector),
        llm=merged["llm"], embeddings=merged["embeddings"], lm_head=merged.get("lm_head"), source=source,
    )


def resolve_modules(model: nn.Module, path: str, cmap: ComponentMap, where: str) -> list[str]:
    """Module names for a component path such as `projector`, `llm.attention` or `encoder.layers.0`."""
    component, _, rest = path.partition(".")
    if component not in COMPONENTS:
        raise AdaptkitError(f"{where}: unknown component {component!r}{closest(component, COMPONENTS)}")
    roots = cmap.paths(component)
    if not roots:
        raise AdaptkitError(f"{where}: {type(model).__name__} has no {component} ({cmap.source})")
    if not rest:
        return roots
    excluded = cmap.excluded.get(component, [])
    names = [n for n, _ in model.named_modules()]
    inside = [n for n in names if any(n.startswith(r + ".") for r in roots) and not any(_under(n, e) for e in excluded)]
    relative = {n: n.split(".", roots[0].count(".") + 1)[-1] for n in inside}
    if rest in ALIASES:
        hits = [n for n in inside if n.split(".")[-1] in ALIASES[rest]]
    else:
        hits = [n for n, r in relative.items() if r == rest or r.endswith("." + rest)]
        hits = [n for n in hits if not any(_under(n, h) and n != h for h in hits)]
    if not hits:
        leaves = sorted(set(ALIASES) | {r.split(".")[-1] for r in relative.values()} | {r for r in relative.values() if r.count(".") < 2})
        raise AdaptkitError(f"{where}: {path!r} matches no module inside {component}{closest(rest, leaves) or ''}")
    return hits


def resolve_parameters(model: nn.Module, pattern: str, cmap: ComponentMap, where: str) -> list[str]:
    """Parameter names matched by a path rule: a component path, `re:<regex>` or a glob."""
    params = [n for n, _ in model.named_parameters()]
    if pattern.startswith("re:"):
        try:
            regex = re.compile(pattern[3:])
        except re.error as err:
            raise AdaptkitError(f"{where}: bad regex {pattern[3:]!r}: {err}")
        hits = [n for n in params if regex.search(n)]
    elif any(c in pattern for c in "*?["):
        hits = [n for n in params if fnmatch.fnmatchcase(n, pattern)]
    else:
        component = pattern.split(".")[0]
        excluded = cmap.excluded.get(component, [])
        modules = resolve_modules(model, pattern, cmap, where)
        hits = [n for n in params if any(_under(n, m) for m in modules) and not any(_under(n, e) for e in excluded)]
    if not hits:
        raise AdaptkitError(f"{where}: {pattern!r} matches no parameter{closest(pattern[3:] if pattern.startswith('re:') else pattern, params)}")
    return hits
