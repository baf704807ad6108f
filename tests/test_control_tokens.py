"""One control-token shape: manifest reading and the scorers agree on what is a tag and what is text.

They used to disagree: manifests only knew `<|...|>` (spaces allowed inside), the scorers also knew
one-word tags (`<COMPLETE>`, `<asr_text>`), so a tag the recipe never trained passed the manifest
check and was then scored as a leak."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from adaptkit.control_tokens import CONTROL_TOKEN
from adaptkit.data.manifest import parse_line
from adaptkit.errors import AdaptkitError
from adaptkit.eval import degeneration as dg
from adaptkit.eval.text import tokens

TOKENS = ["<|spk_0|>", "<|im_end|>", "<COMPLETE>", "<INCOMPLETE>", "<BACKCHANNEL>", "<asr_text>", "</think>", "</s>"]
TEXT = ["a < b > c", "x <= y", "I <3 you", "<|a b|>", "< spk >", "<|" + "x" * 65 + "|>", "<1abc>", "<>", "<||>"]


@pytest.mark.parametrize("token", TOKENS)
def test_control_tokens_are_one_match_and_one_scoring_token(token):
    assert CONTROL_TOKEN.fullmatch(token)
    assert tokens(f"hello {token} world", "word") == ["hello", token, "world"]
    assert dg.content_tokens(f"はい{token}です", "ja") == ["は", "い", token, "で", "す"]


@pytest.mark.parametrize("text", TEXT)
def test_text_with_angle_brackets_is_no_control_token(text):
    assert CONTROL_TOKEN.search(text) is None
    assert not dg.check(f"ok {text}", f"ok {text}").leaked_token


@pytest.fixture
def audio(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
    return tmp_path


def _parse(folder, text, allowed=frozenset({"<|spk_0|>", "<|spk_1|>"})):
    return parse_line(json.dumps({"audio": "a.wav", "text": text}), "m.jsonl:1", folder, set(allowed), ())


@pytest.mark.parametrize("token", ["<COMPLETE>", "<asr_text>", "<think>", "</s>"])
def test_manifest_refuses_a_one_word_tag_the_recipe_does_not_train(audio, token):
    # before: only <|...|> was checked, so these reached training as text and scoring as leaks
    with pytest.raises(AdaptkitError, match=f"m.jsonl:1: token {token} in the text is not among the recipe's tokens"):
        _parse(audio, f"<|spk_0|> hello {token} there")
    assert _parse(audio, f"<|spk_0|> hello {token}", {"<|spk_0|>", token}).text == f"<|spk_0|> hello {token}"


def test_manifest_keeps_text_with_angle_brackets_and_spaced_pipes(audio):
    for text in TEXT:
        assert _parse(audio, f"<|spk_0|> {text}").text == f"<|spk_0|> {text}"  # before: '<|a b|>' was refused as a token


def test_a_text_of_one_word_tags_only_holds_no_words(audio):
    with pytest.raises(AdaptkitError, match="the text holds only tags and no words"):
        _parse(audio, "<|spk_0|> <COMPLETE>", {"<|spk_0|>", "<COMPLETE>"})


def test_what_the_manifest_refuses_is_what_the_scorer_calls_a_leak(audio):
    for text in [f"<|spk_0|> w {t}" for t in TOKENS + TEXT]:
        try:
            _parse(audio, text)
            refused = False
        except AdaptkitError:
            refused = True
        leaked = dg.check(text, "<|spk_0|> w", allowed_tokens={"<|spk_0|>", "<|spk_1|>"}).leaked_token
        assert refused == leaked, text
