"""The every-chunk end-of-turn verifier scores incrementally: the probabilities of recomputing the
whole conversation at every chunk, for a fraction of the token forwards."""

from __future__ import annotations

import numpy as np
import pytest

from adaptkit.end_of_turn import EndOfTurnScorer
from adaptkit.eval.run import TaskModel
from adaptkit.models import load
from adaptkit.recipe import ModelSection
from adaptkit.synth.manifests import chat_messages
from adaptkit.turn.cascade import HOP
from adaptkit.turn.verifiers import EndOfTurnVerifier


def test_every_chunk_probabilities_equal_recomputation_with_fewer_token_forwards(call_waves):
    loaded = load(ModelSection(tiny="composed", llm="qwen3"))
    verifier = EndOfTurnVerifier(TaskModel(loaded, "turn_end", "en", "", set(), "tiny text"))
    lm = verifier.scorer.model
    fed: list[int] = []  # tokens of every forward of the model, both scorers
    lm.register_forward_pre_hook(lambda _m, args, kwargs: fed.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    full = EndOfTurnScorer(lm, loaded.tokenizer)  # the recomputation: the whole conversation at every call
    tests = [(name, wave, record) for name, wave, record in call_waves if not name.startswith("train/")]
    incremental_tokens = full_tokens = calls = changed = 0
    for _, wave, record in tests:
        verifier.reset(record)
        units = [u for u in record["units"] if u.get("label") != "backchannel"]
        previous = None
        for k in range(1, int(len(wave) / 16000 / HOP) + 1):  # every chunk's end, as `every_chunk` asks
            end = round(k * HOP, 6)
            done = [(u["speaker"], u["text"]) for u in units if u["end"] <= end + 0.05]
            if not done:
                assert verifier(wave[: int(end * 16000)], end) == 0.0
                continue
            before = len(fed)
            p = verifier(wave[: int(end * 16000)], end)
            mine = sum(fed[before:])
            messages = chat_messages(done, verifier.sep)
            before = len(fed)
            reference = full.start(messages)
            theirs = sum(fed[before:])
            assert abs(p - reference) <= 1e-5
            if messages == previous:
                assert mine == 0  # no word ended since the last chunk: nothing runs
            elif previous is not None:
                assert 0 < mine < theirs  # only what is new since the last call
                changed += 1
            previous = messages
            incremental_tokens += mine
            full_tokens += theirs
            calls += 1
    assert calls > 4 * len(tests) and changed >= len(tests)
    assert incremental_tokens < full_tokens
    assert incremental_tokens == verifier.scorer.tokens_fed


def test_the_scorer_crops_its_cache_where_the_conversation_changed():
    loaded = load(ModelSection(tiny="composed", llm="qwen3"))
    scorer = EndOfTurnScorer(loaded.architecture.text_model(loaded.model), loaded.tokenizer)
    first = [{"role": "user", "content": "I would like to"}]
    grown = [{"role": "user", "content": "I would like to check"}]
    flipped = [{"role": "assistant", "content": "I would like to check"}, {"role": "user", "content": "yes"}]
    for messages in (first, grown, flipped, grown, grown):
        fed = scorer.tokens_fed
        p = scorer.score(messages)
        assert scorer.ids == scorer._prompt(messages)
        assert p == pytest.approx(scorer.full(), abs=1e-5)
        assert scorer.tokens_fed - fed < len(scorer.ids) or fed == 0
    assert scorer.tokens_fed - fed == 0  # the same conversation again: nothing runs
    assert np.isfinite(p)
