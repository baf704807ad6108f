"""The LiveKit detector, fed livekit-agents' own ChatContext, returns EndOfTurnScorer's probabilities."""

from __future__ import annotations

import asyncio

import pytest
from adaptkit.errors import AdaptkitError
from adaptkit.integrations.livekit import EndOfTurnDetector
from adaptkit.models import build_tiny
from adaptkit.models.tokenizer import tiny_tokenizer
from adaptkit.end_of_turn import EndOfTurnScorer

llm = pytest.importorskip("livekit.agents.llm", reason="needs livekit-agents (pip install adaptkit[livekit])")


def tiny_lm(tok):
    """A tiny random Qwen3 causal LM (the LLM of a text-only composed model) for `tok`."""
    return build_tiny("composed", encoder=None, llm="qwen3", init_std=0.2)[0].llm


def test_probabilities_equal_the_scorers_on_a_growing_livekit_chat_context():
    tok = tiny_tokenizer()
    model = tiny_lm(tok)
    detector = EndOfTurnDetector(model, tok, {"en": 0.3, "ja": 0.1})
    reference = EndOfTurnScorer(model, tok)
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="system", content="You are a helpful agent.")  # not scored, as in LiveKit's plugin
    ctx.add_message(role="assistant", content="Thank you for calling, how can I help you today?")
    user = ctx.add_message(role="user", content="I would like to check")
    history = [{"role": "assistant", "content": "Thank you for calling, how can I help you today?"}]

    got = [asyncio.run(detector.predict_end_of_turn(ctx))]
    want = [reference.start(history + [{"role": "user", "content": "I would like to check"}])]
    for words in [" the status", " of my order,", " it has not arrived yet."]:
        user.content = [user.text_content + words]
        got.append(asyncio.run(detector.predict_end_of_turn(ctx)))
        want.append(reference.add(words))
    assert len(set(got)) == len(got)
    assert max(abs(g - w) for g, w in zip(got, want)) <= 1e-5
    assert abs(got[-1] - reference.full()) <= 1e-5  # the cache path equals recomputation

    ctx.add_message(role="assistant", content="Let me look that up.")  # not an extension: starts over
    fresh = EndOfTurnScorer(model, tok).start(history + [{"role": "user", "content": user.text_content},
                                                         {"role": "assistant", "content": "Let me look that up."}])
    assert abs(asyncio.run(detector.predict_end_of_turn(ctx)) - fresh) <= 1e-5


def test_thresholds_per_language_and_refusals():
    tok = tiny_tokenizer()
    detector = EndOfTurnDetector(tiny_lm(tok), tok, {"en": 0.3, "ja": 0.1})
    from livekit.agents.language import LanguageCode

    assert asyncio.run(detector.unlikely_threshold(LanguageCode("en-US"))) == 0.3
    assert asyncio.run(detector.unlikely_threshold("ja")) == 0.1
    assert asyncio.run(detector.unlikely_threshold("de")) is None and not asyncio.run(detector.supports_language("de"))
    assert asyncio.run(detector.supports_language(LanguageCode("english")))
    with pytest.raises(AdaptkitError, match=r"^livekit detector: thresholds must lie in \[0, 1\], got \{'en': 1.5\}$"):
        EndOfTurnDetector(tiny_lm(tok), tok, {"en": 1.5})
    with pytest.raises(AdaptkitError, match="no user or assistant message"):
        asyncio.run(detector.predict_end_of_turn(llm.ChatContext.empty()))
