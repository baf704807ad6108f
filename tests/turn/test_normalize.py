"""LiveKit's text normalisation (`adaptkit.turn.normalize`): the same output as LiveKit's own function
where its plugin is installed, else on examples worked through its code; turn_end data written through it."""

from __future__ import annotations

import json

import pytest

from adaptkit.errors import AdaptkitError
from adaptkit.turn.normalize import normalize_messages, normalize_text, write_normalized_turn_end

CASES = {
    # (input, LiveKit's output): each output was produced by livekit-plugins-turn-detector 1.8.9's
    # _EUORunnerBase._normalize_text (base.py), which the test below compares with when it is installed.
    "Hello, World!": "hello world",
    "I don't know - maybe?": "i don't know - maybe",  # ASCII apostrophe and hyphen kept
    "don’t stop": "dont stop",  # the typographic apostrophe is punctuation: removed, not kept
    "e-mail me at bob@example.com.": "e-mail me at bobexamplecom",  # removed, not made a space
    "Well... um, I-I think so!": "well um i-i think so",
    "  Spaces\t\tand\nnewlines  ": "spaces and newlines",
    "3.5% of $100 + 2": "35 of $100 + 2",  # symbols ($, +) stay
    "«Quoted» “smart” ‘quotes’ — dash – en": "quoted smart quotes dash en",
    "¿Qué tal? ¡Bien!": "qué tal bien",
    "こんにちは。お元気ですか？": "こんにちはお元気ですか",
    "ＡＢＣ！１２３": "abc123",  # full width through NFKC
    "㎒ Ⅸ ﬁ": "MHz ix fi",  # lower case comes before NFKC: what NFKC makes upper case stays so
    "Straße İstanbul ΣΑΣ": "straße i̇stanbul σας",
    "你好，世界。": "你好世界",
    "안녕하세요!": "안녕하세요",
    "tab\u3000ideographic space": "tab ideographic space",
    "a_b c#d *e* (f) [g] {h}": "ab cd e f g h",
    "<|spk_0|> hi": "<|spk0|> hi",  # < | > are symbols; the underscore is punctuation
    "…": "",
    "": "",
}


@pytest.mark.parametrize("text,want", list(CASES.items()))
def test_normalize_text_follows_livekit(text, want):
    assert normalize_text(text) == want


def test_normalize_text_equals_livekits_own_function():
    turn_detector = pytest.importorskip("livekit.plugins.turn_detector.base")
    theirs = turn_detector._EUORunnerBase._normalize_text
    for text in list(CASES) + ["Mr. O'Neil's co-op, 9:30 a.m.!", "ｶﾀｶﾅ「かぎ」『二重』", "x\u00a0y\u2028z", "Tiếng Việt?"]:
        assert normalize_text(text) == theirs(None, text), text


def test_messages_and_a_turn_end_file_are_normalised(tmp_path):
    messages = [{"role": "assistant", "content": "Thank you for calling."}, {"role": "user", "content": "Hi, I'd like to"}]
    assert normalize_messages(messages) == [{"role": "assistant", "content": "thank you for calling"},
                                            {"role": "user", "content": "hi i'd like to"}]
    src = tmp_path / "turn_end.jsonl"
    rows = [{"messages": messages, "ended": False, "language": "en", "id": "a_e000"},
            {"messages": [{"role": "user", "content": "はい。"}], "ended": True, "language": "ja", "id": "a_e001"}]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    out = [json.loads(line) for line in write_normalized_turn_end(src, tmp_path / "n" / "turn_end.jsonl").read_text().splitlines()]
    assert out == [{**rows[0], "messages": normalize_messages(messages)}, {**rows[1], "messages": [{"role": "user", "content": "はい"}]}]
    src.write_text(json.dumps({"messages": [{"role": "user", "content": "?!"}], "ended": True}) + "\n")
    with pytest.raises(AdaptkitError, match=r"turn_end.jsonl:1: messages\[0\] holds no words once normalised like LiveKit"):
        write_normalized_turn_end(src, tmp_path / "bad.jsonl")
