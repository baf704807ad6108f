"""The freezing DSL: name what trains on any encoder -> projector -> LLM model.

    model, report = adaptkit.freeze.apply(model, {"train": ["projector", {"tokens": ["<|spk_0|>"]}]},
                                          tokenizer=tok)
    print(report)

Needs only torch and peft (and transformers, which peft brings): importing it never loads
qwen_asr, gradio or the metric libraries.
"""

from adaptkit.freeze.adapters import load_adapter, merge, read_adapter_config, save_adapter, save_merged
from adaptkit.freeze.apply import Applied, apply, report, train_mode, trainable_parameters
from adaptkit.freeze.components import ARCH_MAPS, ComponentMap, component_map, register_map
from adaptkit.freeze.fingerprint import fingerprint, moved
from adaptkit.freeze.report import FreezeReport
from adaptkit.freeze.spec import AddTokens, FreezeSpec, LoraSpec, PathRule, TokenRule, parse_spec

__all__ = [
    "ARCH_MAPS", "AddTokens", "Applied", "ComponentMap", "FreezeReport", "FreezeSpec", "LoraSpec", "PathRule",
    "TokenRule", "apply", "component_map", "register_map", "fingerprint", "load_adapter", "merge", "moved",
    "parse_spec", "read_adapter_config", "report", "save_adapter", "save_merged", "train_mode", "trainable_parameters",
]
