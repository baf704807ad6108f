"""The degeneration checks: the labelled catalogue (every planted case caught, no normal one flagged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptkit.eval import degeneration as dg

CATALOGUE = [json.loads(line) for line in
             (Path(__file__).with_name("degeneration_catalogue.jsonl")).read_text(encoding="utf-8").splitlines()]


def _check(case: dict) -> dg.Flags:
    return dg.check(case["output"], case["reference"], case["allowed"], case["ended_with_eos"], case["language"],
                    known_tokens=case.get("known", ()))


def test_catalogue_is_big_varied_and_labelled():
    assert len(CATALOGUE) >= 80
    assert len({c["id"] for c in CATALOGUE}) == len(CATALOGUE)
    planted = [c for c in CATALOGUE if c["kind"] == "planted"]
    normal = [c for c in CATALOGUE if c["kind"] == "normal"]
    assert len(planted) >= 20 and len(normal) >= 20
    assert {c["language"] for c in CATALOGUE} >= {"ja", "en", "zh"}
    assert all(set(c["expect"]) <= set(dg.FLAG_NAMES) and bool(c["expect"]) == (c["kind"] == "planted")
               for c in CATALOGUE)
    assert {f for c in planted for f in c["expect"]} == set(dg.FLAG_NAMES)  # every check has planted cases


def test_catalogue_full_recall_on_planted_cases():
    missed = {c["id"]: sorted(set(c["expect"]) - set(_check(c).fired()))
              for c in CATALOGUE if c["kind"] == "planted"}
    assert {k: v for k, v in missed.items() if v} == {}


def test_catalogue_no_false_positive_on_normal_cases():
    fired = {c["id"]: _check(c).fired() for c in CATALOGUE if c["kind"] == "normal"}
    assert {k: v for k, v in fired.items() if v} == {}


def test_measured_numbers():
    f = dg.check("<|spk_1|> はいはいはいはいはい", language="ja", allowed_tokens={"<|spk_1|>"})
    assert (f.repeated_unit, f.repeats, f.repeat_unit) == (True, 5, "は い")
    f = dg.check("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11", reference="call 1 2 3")
    assert f.counting and f.longest_count == 11 and f.length_ratio == pytest.approx(11 / 4)
    f = dg.check("<|spk_0|> hi <|im_start|><|spk_9|><|im_start|>", allowed_tokens=["<|spk_0|>"])
    assert f.leaked == ("<|im_start|>", "<|spk_9|>") and f.to_dict()["degenerate"] is True
    assert dg.check("ok", ended_with_eos=None).no_eos is False
    assert dg.check("ok", ended_with_eos=False).fired() == ["no_eos"]


def test_helpers():
    assert dg.integer_runs("1 2 3 then 7, 8 and 20. 21. 22") == [(1, 3), (7, 8), (20, 22)]
    assert dg.integer_runs("１、２、３") == [(1, 3)]
    assert dg.integer_runs("1 apple 2") == []
    assert dg.longest_repetition(list("abababx"), 3) == [(0, 2, 3)]
    assert dg.content_tokens("はい、OK123です<|spk_0|>", "ja") == ["は", "い", "ok123", "で", "す", "<|spk_0|>"]
    assert dg.compression_ratio("") == 0.0
    long_loop = "thank you for calling. " * 100
    assert dg.compression_ratio(long_loop, 512) > 2.4


def test_rates():
    flags = [_check(c) for c in CATALOGUE]
    r = dg.rates(flags)
    planted = sum(c["kind"] == "planted" for c in CATALOGUE)
    assert r["n"] == len(CATALOGUE) and r["any"] == pytest.approx(planted / len(CATALOGUE))
    assert set(r) == {"n", "any", *dg.FLAG_NAMES}
    assert dg.rates([]) == {"n": 0, "any": 0.0, **dict.fromkeys(dg.FLAG_NAMES, 0.0)}


def test_thresholds_are_configurable():
    text = "<|spk_1|> はいはいはい"
    assert not dg.check(text, language="ja").repeated_unit
    assert dg.check(text, language="ja", config=dg.DegenerationConfig(repeat_longer=3)).repeated_unit
    assert dg.check("<|spk_0|> x", config=dg.DegenerationConfig(control_token_pattern=r"<\|im_\w+\|>")).fired() == []


def test_counting_in_words_and_readings():
    from adaptkit.eval.numbers import counting_runs, digit_string

    def values(text, lang):
        return [[n.value for n in run] for run in counting_runs(text, lang)]

    assert values("nineteen twenty twenty one twenty-two", "en") == [[19, 20, 21, 22]]  # 20, 1 would break the run
    assert values("八九十十一", "ja") == [[8, 9, 10, 11]]  # 九十 read as 9, 10 here
    assert values("九十、九十一", "zh") == [[90, 91]]  # ... and as 90 here
    assert values("someone at ten, eleven", "en") == [[10, 11]]  # "one" inside a word is no number
    assert values("sembilan sepuluh sebelas dua belas", "ms") == [[9, 10, 11, 12]]
    assert values("ten nine eight", "en") == []
    assert digit_string("012-345-6789 and one", "en") == "01234567891"
    assert dg.integer_runs("one two three", "en") == [(1, 3)] and dg.integer_runs("one two three") == []


def test_repeats_are_judged_against_the_reference():
    no = "<|spk_1|> " + " ".join(["no"] * 5)
    assert dg.check(no, allowed_tokens=A).repeated_unit  # x5 with no reference
    assert not dg.check(no, "<|spk_1|> no no no", A).repeated_unit  # the reference has x3: x5 is 2 more
    assert dg.check(no + " no no", "<|spk_1|> no no no", A).repeated_unit  # x7 = threshold + 2
    assert not dg.check(no + " no no", "<|spk_1|> no no no", A, config=dg.DegenerationConfig(repeat_one_token=6)).repeated_unit
    assert dg.repeats_of(["い", "は"], list("ええはいはいはい")) == 3  # rotations count
    assert dg.repetition_runs(list("aaxbbbxaa"), 1) == [(0, 1, 2), (3, 1, 3), (7, 1, 2)]


A = ["<|spk_0|>", "<|spk_1|>"]


def test_answer_prefix_and_known_tokens():
    f = dg.check("language Japanese<asr_text><|spk_0|> はい", "<|spk_0|> はい", A, language="ja")
    assert f.fired() == [] and f.length_ratio == 1.0
    assert dg.check("language Japanese<asr_text><|spk_0|> はい", "<|spk_0|> はい", A, language="ja",
                    config=dg.DegenerationConfig(answer_prefix=None)).leaked == ("<asr_text>",)
    f = dg.check("<|spk_0|> hi[PAD]<think></think>", allowed_tokens=A, known_tokens=["[PAD]", "<|spk_0|>"])
    assert f.leaked == ("[PAD]", "<think>", "</think>")

    class Tok:
        all_special_tokens = ["<|im_end|>"]

        def get_added_vocab(self):
            return {"<asr_text>": 1, "<|spk_0|>": 2}

    assert dg.tokenizer_control_tokens(Tok()) == {"<|im_end|>", "<asr_text>", "<|spk_0|>"}
