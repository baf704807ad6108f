"""Two classes are called Qwen3ASRForConditionalGeneration with model_type qwen3_asr: qwen_asr's
(`thinker.*`, architecture qwen3_asr) and transformers 5's native one (`model.*`, qwen3_asr_hf).
The freezing DSL and config.json detection tell them apart exactly, on either stack."""

from __future__ import annotations

import json

import pytest
from torch import nn

from adaptkit.errors import AdaptkitError
from adaptkit.freeze import component_map
from adaptkit.models import _arch_of, architecture, build_tiny
from adaptkit.stack import CURRENT

MODULES = {"qwen3_asr": "qwen_asr.core.transformers_backend.modeling_qwen3_asr",
           "qwen3_asr_hf": "transformers.models.qwen3_asr.modeling_qwen3_asr"}


def _stand_in(module: str, paths: list[str]) -> nn.Module:
    """A module tree holding `paths`, of a class named Qwen3ASRForConditionalGeneration in `module`."""
    cls = type("Qwen3ASRForConditionalGeneration", (nn.Module,), {"__module__": module})
    root = cls()
    for path in paths:
        parent = root
        for part in path.split("."):
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
    for name, module in list(root.named_modules()):
        if name and not list(module.children()):
            module.add_module("weight_holder", nn.Linear(2, 2))
    return root


def _paths(arch: str) -> list[str]:
    return [p for v in architecture(arch).components.values() for p in ([v] if isinstance(v, str) else v)]


@pytest.mark.parametrize("arch", ["qwen3_asr", "qwen3_asr_hf"])
def test_each_class_resolves_its_own_layout(arch):
    model = _stand_in(MODULES[arch], _paths(arch))
    cmap = component_map(model)
    want = architecture(arch).components
    assert cmap.source == f"architecture map for {MODULES[arch]}.Qwen3ASRForConditionalGeneration"
    assert (cmap.encoder, cmap.llm, cmap.embeddings, cmap.lm_head) == (want["encoder"], want["llm"], want["embeddings"], want["lm_head"])
    assert cmap.projector == ([want["projector"]] if isinstance(want["projector"], str) else want["projector"])


def test_the_bare_class_name_selects_no_map():
    """A third class of the same bare name gets neither layout (its parts are not where either says)."""
    model = _stand_in("somewhere.else", _paths("qwen3_asr_hf"))
    with pytest.raises(AdaptkitError, match="cannot find the input embeddings"):
        component_map(model)


@pytest.mark.skipif(not CURRENT, reason="the native class ships with transformers 5")
def test_the_native_class_resolves_the_native_layout():
    model, _ = build_tiny("qwen3_asr_hf")
    assert component_map(model).projector == ["model.multi_modal_projector"]


def _folder(tmp_path, config: dict):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3_asr", **config}))
    return str(tmp_path)


def test_config_shape_picks_the_architecture(tmp_path):
    assert _arch_of(_folder(tmp_path / "a", {"thinker_config": {"audio_config": {}, "text_config": {}}})) == "qwen3_asr"
    assert _arch_of(_folder(tmp_path / "b", {"audio_config": {}, "text_config": {}})) == "qwen3_asr_hf"


@pytest.mark.parametrize(("config", "shape"), [
    ({"text_config": {}}, "neither a thinker_config"),
    ({"thinker_config": {}, "audio_config": {}, "text_config": {}}, "both a thinker_config"),
])
def test_config_shape_that_fits_neither_is_refused_in_one_line(tmp_path, config, shape):
    with pytest.raises(AdaptkitError) as err:
        _arch_of(_folder(tmp_path, config))
    assert shape in str(err.value) and "set model.arch to qwen3_asr or qwen3_asr_hf" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(CURRENT, reason="refused only before transformers 5")
@pytest.mark.parametrize("arch", ["qwen3_asr_hf", "audioflamingo3", "glmasr"])
def test_native_architectures_refuse_in_one_line_before_transformers_5(arch):
    with pytest.raises(AdaptkitError, match=rf"^model\.tiny: {arch} needs transformers 5 \(the current stack; [^\n]*$"):
        build_tiny(arch)
    with pytest.raises(AdaptkitError, match=rf"^model\.arch: {arch} needs transformers 5"):
        architecture(arch).load("/nowhere", None)
