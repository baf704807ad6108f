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
from adaptkit.freeze.spec import COMPONENTS
from adaptkit.validation import closest

ARCH_MAPS: dict[str, dict[str, str | list[str]]] = {}
"""Model class -> component -> module path(s), as in `model.named_modules()`. A class is named by its
module-qualified name (`transformers.models.qwen3_asr.modeling_qwen3_asr.Qwen3ASRForConditionalGeneration`)
or by its bare name (`type(model).__name__`); the qualified name wins, so two classes that share a
bare name (qwen_asr's Qwen3-ASR and transformers' native one) each get their own map. Filled by the
architectures of `adaptkit.models` (each declares its own map); this module knows no model."""


def register_map(class_name: str, mapping: dict[str, str | list[str]]) -> None:
    """Declare where the components of models of class `class_name` (bare or module-qualified) sit."""
    ARCH_MAPS[class_name] = dict(mapping)


def qualified_name(cls: type) -> str:
    """`module.Class`: the key that tells apart two classes of the same bare name."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _map_key(cls: type) -> str | None:
    """The key of the registered map of `cls` (qualified name first, then the bare one); the built-in
    architectures register when adaptkit.models can be imported (it needs transformers, which
    `import adaptkit.freeze` does not)."""
    keys = (qualified_name(cls), cls.__name__)
    if not any(k in ARCH_MAPS for k in keys):
        try:
            import adaptkit.models  # noqa: F401  (registers the built-in architectures' maps)
        except ImportError:
            pass
    return next((k for k in keys if k in ARCH_MAPS), None)


# sub-path aliases: `llm.attention` means every module under the LLM with one of these names
ALIASES: dict[str, tuple[str, ...]] = {
    "attention": ("self_attn", "attention", "attn", "self_attention"),
    "mlp": ("mlp", "feed_forward", "ffn"),
}

ENCODER_NAMES = re.compile(r"^((audio|speech|acoustic)_?(tower|enc|encoder|model)|encoder|whisper.*|wav2vec.*|hubert|wavlm|conformer)$", re.I)
"""Module names (the last part of the path) that the structural fallback takes for an audio encoder."""
OTHER_TOWERS = re.compile(r"(vision|visual|image|img|video)", re.I)
"""Module names of other modalities' towers and embedders: never the encoder, projector or LLM of a Speech-LLM."""


@dataclass
class ComponentMap:
    """Module paths of the five components of one model, and where each came from."""

    encoder: str
    projector: list[str]
    llm: str
    embeddings: str
    lm_head: str | None
    source: str = "architecture map"
    sources: dict[str, str] = field(default_factory=dict)
    """Component -> where its paths came from (architecture map, user map, structural fallback)."""
    towers: list[str] = field(default_factory=list)
    """Other modalities' towers inside the model (vision): group `other`, never part of the LLM."""
    excluded: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.excluded = {
            "encoder": list(self.projector) + list(self.towers),
            "llm": [self.embeddings] + ([self.lm_head] if self.lm_head else []) + list(self.projector)
                   + ([self.encoder] if self.encoder else []) + list(self.towers),
        }

    def paths(self, component: str) -> list[str]:
        """Module paths of `component`."""
        value = getattr(self, component)
        return list(value) if isinstance(value, list) else ([value] if value else [])

    def group_of(self, name: str) -> str:
        """The group a (parameter or module) name belongs to: a component, `lora` or `other`."""
        if ".lora_" in name:
            return "lora"
        if any(_under(name, t) for t in self.towers):
            return "other"
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


def _path_of(model: nn.Module, module: nn.Module | None) -> str | None:
    return next((n for n, m in model.named_modules() if m is module), None) if module is not None else None


def _embedding_layers(model: nn.Module) -> tuple[str, str | None]:
    """Paths of the input and output embeddings, as the model itself answers `get_input_embeddings()` /
    `get_output_embeddings()`; an outer class without them (Qwen3-ASR's) is asked through its
    outermost sub-models that answer. Several sub-models with input embeddings: ambiguous, refused."""
    from transformers import PreTrainedModel

    answers: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if (name and not isinstance(module, PreTrainedModel)) or any(_under(name, a) for a, _ in answers):
            continue
        try:
            emb = module.get_input_embeddings()
        except (NotImplementedError, AttributeError, ValueError):
            continue
        if isinstance(emb, nn.Module) and not isinstance(emb, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            answers.append((name, module))
            if not name:
                break
    if not answers:
        raise AdaptkitError(f"cannot find the input embeddings of {type(model).__name__}: neither it nor a sub-model answers "
                            "get_input_embeddings(); name them under freeze.components, e.g. {embeddings: <path>}")
    if len(answers) > 1:
        found = ", ".join(f"{_path_of(model, m.get_input_embeddings())} (of {n})" for n, m in answers)
        raise AdaptkitError(f"{type(model).__name__} has several input embeddings: {found}; name the language model's under "
                            "freeze.components, e.g. {embeddings: <path>, lm_head: <path>}")
    owner = answers[0][1]
    try:
        head = owner.get_output_embeddings()
    except (NotImplementedError, AttributeError):
        head = None
    return _path_of(model, owner.get_input_embeddings()), _path_of(model, head)


def _language_model(model: nn.Module, embeddings: str) -> str:
    """The smallest sub-model (a PreTrainedModel) holding the input embeddings, else the top-level
    module that holds them: the language model, as the embeddings' owner, not a guess by name."""
    from transformers import PreTrainedModel

    modules = dict(model.named_modules())
    owners = [n for n, m in modules.items() if n and n != embeddings and _under(embeddings, n) and isinstance(m, PreTrainedModel)]
    if owners:
        return max(owners, key=len)
    top = embeddings.split(".")[0]
    if top == embeddings:
        raise AdaptkitError(f"cannot tell the language model of {type(model).__name__}: its embeddings {embeddings!r} sit at the "
                            "top level; name it under freeze.components, e.g. {llm: <path>}")
    return top


def _owner(model: nn.Module, paths: list[str]) -> str:
    """The smallest sub-model (a PreTrainedModel) holding every one of `paths` ("" for the model itself)."""
    from transformers import PreTrainedModel

    owners = [n for n, m in model.named_modules() if n and isinstance(m, PreTrainedModel) and all(_under(p, n) for p in paths)]
    return max(owners, key=len) if owners else ""


def _maximal(names: list[str]) -> list[str]:
    """The names not nested under another of them."""
    return [n for n in names if not any(o != n and _under(n, o) for o in names)]


def _towers(model: nn.Module) -> list[str]:
    """Other modalities' towers and embedders (vision), by name."""
    return _maximal([n for n, _ in model.named_modules() if n and OTHER_TOWERS.search(n.split(".")[-1])])


def _one(component: str, candidates: list[str], model: nn.Module, why: str) -> str:
    """The single candidate, or a one-line refusal listing the candidates and the line that settles it."""
    if len(candidates) == 1:
        return candidates[0]
    listed = ", ".join(candidates[:8]) + (", ..." if len(candidates) > 8 else "") if candidates else "none"
    example = candidates[0] if candidates else "<path>"
    raise AdaptkitError(f"cannot tell the {component} of {type(model).__name__} ({why}; candidates: {listed}); "
                        f"name it under freeze.components, e.g. {{{component}: {example}}}")


def _fallback(model: nn.Module, known: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
    """Resolve the components `known` does not give, each only when exactly one module fits.

    - embeddings / lm_head: what the model answers to get_input_embeddings / get_output_embeddings;
    - llm: the smallest sub-model holding the input embeddings;
    - encoder: the one module outside the LLM and other towers named like an audio encoder (ENCODER_NAMES);
    - projector: the one module left between them: outside the encoder, the LLM, its output layer and
      other towers, holding parameters, and not an ancestor of any of them.
    """
    found = dict(known)
    if "embeddings" not in found:
        found["embeddings"], head = _embedding_layers(model)
        found.setdefault("lm_head", head)
    if "lm_head" not in found:  # the user named the embeddings: the output layer the same owner answers
        try:
            emb, head = _embedding_layers(model)
        except AdaptkitError:
            emb, head = None, None
        found["lm_head"] = head if emb == found["embeddings"] else None
    if "llm" not in found:
        found["llm"] = _language_model(model, found["embeddings"])
    towers = _towers(model)
    modules = dict(model.named_modules())
    fixed = [found["llm"]] + ([found["lm_head"]] if found["lm_head"] else []) + towers

    def outside(n: str) -> bool:
        return bool(n) and not any(_under(n, f) for f in fixed) and not any(_under(f, n) for f in fixed)

    if "encoder" not in found:
        hits = _maximal([n for n in modules if outside(n) and ENCODER_NAMES.match(n.split(".")[-1])])
        found["encoder"] = _one("encoder", hits, model, "modules outside the language model named like an audio encoder")
    if "projector" not in found:
        encoder = found["encoder"]
        owner = _owner(model, [found["embeddings"]] + ([found["lm_head"]] if found["lm_head"] else []))
        if owner and not _under(encoder, owner):  # the rest of the language model's own class (BERT's head transform)
            fixed.append(owner)
        rest = [n for n in modules if outside(n) and not _under(n, encoder) and not _under(encoder, n)
                and any(True for _ in modules[n].parameters())]
        found["projector"] = [_one("projector", _maximal(rest), model,
                                   "modules between the encoder and the language model")]
    return found


def component_map(model: nn.Module, user: dict[str, str | list[str]] | None = None) -> ComponentMap:
    """Resolve the components of `model`: user map, then architecture map (or the model's own
    `component_paths()`), then the structural fallback for what neither gives; each component
    records where it came from."""
    name, key = type(model).__name__, _map_key(type(model))
    base, source, kind = ARCH_MAPS.get(key) if key else None, f"architecture map for {key}", "architecture map"
    if base is None and hasattr(model, "component_paths"):  # a model that knows its parts (ComposedSpeechLM)
        base, source, kind = model.component_paths(), f"{name}.component_paths()", "component_paths()"
    if key is not None:
        _check_paths(model, {k: v for k, v in base.items() if v}, source)
    user = dict(user or {})
    if user:
        _check_paths(model, user, "freeze.components")
    known = {**(base or {}), **user}
    sources = {c: ("user map" if c in user else kind) for c in known}
    if base is None and set(known) < set(COMPONENTS):
        known = _fallback(model, known)
        sources = {c: sources.get(c, "structural fallback") for c in known}
    known.setdefault("lm_head", None)
    sources.setdefault("lm_head", kind if base is not None else "structural fallback")
    kinds = set(sources.values())
    summary = ("user map" if kinds == {"user map"} else "structural fallback" if kinds == {"structural fallback"}
               else source if kinds == {kind} else "user map over " + (source if base is not None else "structural fallback"))
    projector = known["projector"]
    return ComponentMap(
        encoder=known["encoder"], projector=[projector] if isinstance(projector, str) else list(projector),
        llm=known["llm"], embeddings=known["embeddings"], lm_head=known.get("lm_head"), source=summary,
        sources={c: sources[c] for c in COMPONENTS if c in sources}, towers=_other_towers(model, known),
    )


def _other_towers(model: nn.Module, known: dict[str, str | list[str] | None]) -> list[str]:
    """Other modalities' towers that hold no component and sit inside none but the LLM (Phi-4's
    vision tower lives inside its language model)."""
    paths = [p for v in known.values() if v for p in ([v] if isinstance(v, str) else v)]
    inner = [p for c, v in known.items() if v and c != "llm" for p in ([v] if isinstance(v, str) else v)]
    return [t for t in _towers(model) if not any(_under(p, t) for p in paths) and not any(_under(t, p) for p in inner)]


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
