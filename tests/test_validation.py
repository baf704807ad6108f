"""adaptkit.validation: the one checker behind recipes, the freezing spec and the cascade recipe."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from adaptkit.errors import AdaptkitError
from adaptkit.freeze.spec import parse_spec
from adaptkit.validation import check_choice, check_keys, closest, coerce, from_dict, typed


@dataclass
class Section:
    name: str
    rate: float = 1.0
    sizes: list[int] = field(default_factory=list)
    mode: str | None = None


def test_imports_nothing_outside_the_standard_library():
    code = ("import sys; before = set(sys.modules); import adaptkit.validation\n"
            "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
            "print(sorted(new - set(sys.stdlib_module_names) - {'adaptkit'}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_unknown_keys_name_the_key_the_closest_and_the_allowed_ones():
    with pytest.raises(AdaptkitError, match=r"^train\.lrr: unknown key \(closest: lr\); allowed: lr, epochs$"):
        check_keys({"lrr": 1}, ["lr", "epochs"], "train")
    with pytest.raises(AdaptkitError, match=r"^unknown key 'trian' \(closest: train\); allowed: model, train$"):
        check_keys({"trian": {}}, ["model", "train"])
    assert closest("zzz", ["lr"]) == ""


def test_choices_suggest_and_list_and_an_unhashable_value_is_an_error_not_a_crash():
    assert check_choice("gru", ("gru", "silero"), "gate.kind", "gate") == "gru"
    with pytest.raises(AdaptkitError, match=r"^gate.kind: unknown gate 'gur' \(closest: gru\); use one of gru, silero$"):
        check_choice("gur", ("gru", "silero"), "gate.kind", "gate")
    with pytest.raises(AdaptkitError, match=r"freeze.strategy: unknown strategy \['x'\]"):
        parse_spec({"strategy": ["x"]})  # before: TypeError (a list is no dict key)


def test_types_a_bool_is_no_number_and_ints_count_as_floats():
    with pytest.raises(AdaptkitError, match=r"^x: expected int, got bool True$"):
        typed(True, int, "x")
    with pytest.raises(AdaptkitError, match=r"^x: expected number, got str 'a'$"):
        coerce("a", float, "x")
    assert coerce(3, float, "x") == 3.0 and isinstance(coerce(3, float, "x"), float)
    assert coerce("3e-3", float, "x") == 0.003  # YAML 1.1 reads 3e-3 as a string
    assert coerce("a", list[str], "x") == ["a"]
    with pytest.raises(AdaptkitError, match=r"^x: expected str or list, got int 5$"):
        coerce(5, str | list[str], "x")


def test_from_dict_checks_every_field_and_wants_the_required_ones():
    assert from_dict(Section, {"name": "a", "rate": 2, "sizes": [1, 2]}, "s") == Section("a", 2.0, [1, 2])
    with pytest.raises(AdaptkitError, match=r"^s: missing key 'name'$"):
        from_dict(Section, {"rate": 2.0}, "s")
    with pytest.raises(AdaptkitError, match=r"^s\.sizes\[1\]: expected int, got str 'b'$"):
        from_dict(Section, {"name": "a", "sizes": [1, "b"]}, "s")
    with pytest.raises(AdaptkitError, match=r"^s: expected dict, got list \[1\]$"):
        from_dict(Section, [1], "s")


@pytest.mark.parametrize("spec,message", [
    ({"train": [{}]}, r"^freeze\.train\[0\]: missing key 'tokens'$"),  # before: KeyError
    ({"train": [{"tokenz": ["a"]}]}, r"^freeze\.train\[0\]\.tokenz: unknown key \(closest: tokens\); allowed: tokens$"),
    ({"lora": {"alpha": "big"}}, r"^freeze\.lora\.alpha: expected number, got str 'big'$"),
    ({"lora": {"r": 4, "within": "lmm"}}, r"^freeze\.lora\.within: unknown component 'lmm' \(closest: llm\); use one of "),
    ({"add_tokens": {"tokens": 5}, "train": ["projector"]}, r"^freeze\.add_tokens\.tokens\[0\]: expected str, got int 5$"),
    ({"components": {"llm": 3}, "train": ["projector"]}, r"^freeze\.components\.llm: expected str or list, got int 3$"),
    (["projector"], r"^freeze: expected mapping, got list"),
])
def test_the_freezing_spec_checks_through_it(spec, message):
    with pytest.raises(AdaptkitError, match=message):
        parse_spec(spec)


def test_the_freezing_spec_still_parses_what_it_did():
    spec = parse_spec({"add_tokens": "<a>", "train": [{"tokens": "added"}, "projector"],
                       "lora": "llm.mlp", "components": {"llm": "m", "projector": ["p", "q"]}})
    assert spec.add_tokens.tokens == ["<a>"] and spec.token_rows() == ["<a>"]
    assert (spec.lora.target, spec.lora.r, spec.lora.alpha) == ("llm.mlp", 8, 16.0)
    assert spec.components == {"llm": "m", "projector": ["p", "q"]}
    assert parse_spec(spec.to_dict()) == spec
