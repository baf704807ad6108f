"""The core install admits both stacks' transformers; the stack checks refuse in one line."""

from __future__ import annotations

from importlib.metadata import requires, version

import pytest
from packaging.requirements import Requirement

from adaptkit.errors import AdaptkitError
from adaptkit.stack import CURRENT, has_qwen_asr, need_current, need_qwen_asr


def _core_requirement(name: str) -> Requirement:
    """adaptkit's own requirement on `name`, as installed (the extras' requirements excluded)."""
    found = [Requirement(r) for r in requires("adaptkit") if Requirement(r).name == name and not Requirement(r).marker]
    assert len(found) == 1, found
    return found[0]


def test_the_core_requirement_admits_transformers_4_57_6_and_every_5x_and_what_is_installed():
    spec = _core_requirement("transformers").specifier
    assert spec.contains("4.57.6") and spec.contains("5.0.0") and spec.contains("5.99.0")
    assert spec.contains(version("transformers"))


def test_only_the_qwen3_asr_extra_pins_qwen_asr():
    extra = [Requirement(r) for r in requires("adaptkit") if Requirement(r).name == "qwen-asr"]
    assert extra and all(r.marker and r.marker.evaluate({"extra": "qwen3-asr"}) for r in extra)
    assert not any(r.marker.evaluate({"extra": "current"}) for r in extra)


def test_each_stack_check_refuses_in_one_line_where_its_stack_is_missing():
    checks = [(CURRENT, need_current, "--stack current"), (has_qwen_asr(), need_qwen_asr, "adaptkit[qwen3-asr]")]
    for present, check, hint in checks:
        if present:
            check("model.tiny: x")
            continue
        with pytest.raises(AdaptkitError) as err:
            check("model.tiny: x")
        assert str(err.value).startswith("model.tiny: x needs") and hint in str(err.value) and "\n" not in str(err.value)


def test_every_architecture_that_needs_a_stack_refuses_in_one_line_without_it():
    from adaptkit.models import ARCHITECTURES, build_tiny

    present = {"qwen-asr": has_qwen_asr(), "current": CURRENT}
    for name, arch in sorted(ARCHITECTURES.items()):
        assert arch.stack in (None, *present), (name, arch.stack)
        if arch.stack is None or present[arch.stack]:
            continue
        with pytest.raises(AdaptkitError) as err:
            build_tiny(name)
        message = str(err.value)
        assert "\n" not in message and (f"--stack {arch.stack}" in message or "adaptkit[qwen3-asr]" in message), message
