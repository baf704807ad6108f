"""What the end-of-turn LM reads in the cascade (`adaptkit.turn.words`): reference words as written or
normalised like LiveKit, or an ASR's words for the judged speaker (transcribed once per unit, as
`adaptkit eval` decodes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from adaptkit.errors import AdaptkitError
from adaptkit.turn.words import AsrWords, ReferenceWords, words_for

UNITS = [{"speaker": "spk_0", "start": 0.1, "end": 0.9, "text": "Thank you for calling.", "label": "complete"},
         {"speaker": "spk_1", "start": 1.2, "end": 1.8, "text": "Hi, I'd like", "label": "incomplete"},
         {"speaker": "spk_0", "start": 1.9, "end": 2.1, "text": "Mm-hm.", "label": "backchannel"},
         {"speaker": "spk_1", "start": 2.3, "end": 2.9, "text": "to check my order!", "label": "complete"}]


@pytest.fixture(scope="module")
def text_model():
    from adaptkit.eval.run import TaskModel
    from adaptkit.models import Loaded, build_tiny

    model, tok = build_tiny("composed", encoder=None, llm="qwen3")
    return TaskModel(Loaded("composed", model, tok, None), "turn_end", "en", "", set(), "tiny")


@pytest.fixture
def call(tmp_path) -> dict:
    wav = tmp_path / "c.wav"
    sf.write(wav, (0.05 * np.random.default_rng(0).standard_normal(3 * 16000)).astype(np.float32), 16000)
    return {"id": "c", "audio": str(wav), "language": "en", "units": UNITS}


def _asked(verifier, record: dict, end: float) -> list[dict]:
    seen = []
    verifier.scorer.score = lambda messages: seen.append(messages) or 0.5
    verifier.reset(record)
    verifier(np.zeros(1), end)
    return seen[-1]


class FakeAsr(AsrWords):
    """AsrWords with a stand-in for the decoder: 'ASR, unit K!' for unit K, each call recorded."""

    def __init__(self):
        self.record, self.cache, self.calls, self.heard = {}, {}, [], {}
        self.hears = "fake ASR"

    def transcribe(self, index: int, unit: dict) -> str:
        self.calls.append(index)
        return f"ASR, unit {index}!"


def test_reference_words_as_written_or_normalised(text_model, call):
    from adaptkit.turn.verifiers import EndOfTurnVerifier

    assert _asked(EndOfTurnVerifier(text_model), call, 2.9) == [
        {"role": "assistant", "content": "Thank you for calling."}, {"role": "user", "content": "Hi, I'd like to check my order!"}]
    normalised = EndOfTurnVerifier(text_model, words_for("oracle_normalised"))
    assert normalised.hears == "reference words, normalised like LiveKit"
    assert _asked(normalised, call, 2.9) == [
        {"role": "assistant", "content": "thank you for calling"}, {"role": "user", "content": "hi i'd like to check my order"}]
    assert EndOfTurnVerifier(text_model, ReferenceWords()).hears == "reference words, punctuated"


def test_asr_words_for_the_judged_speaker_once_per_unit_reference_words_for_the_other(text_model, call):
    from adaptkit.turn.verifiers import EndOfTurnVerifier

    asr = FakeAsr()
    verifier = EndOfTurnVerifier(text_model, asr)
    assert _asked(verifier, call, 1.8) == [{"role": "assistant", "content": "thank you for calling"},
                                           {"role": "user", "content": "asr unit 1"}]
    seen = []
    verifier.scorer.score = lambda messages: seen.append(messages) or 0.5
    for end in (2.0, 2.9, 3.0):  # unit 1 again (cached), then unit 3; the backchannel (2) is never read
        verifier(np.zeros(1), end)
    assert asr.calls == [1, 3] and seen[-1][-1] == {"role": "user", "content": "asr unit 1 asr unit 3"}
    assert _asked(verifier, {**call, "units": UNITS[:1]}, 1.0) == [{"role": "user", "content": "asr unit 0"}]  # spk_0 judged now
    assert asr.calls == [1, 3, 0]  # a new conversation starts a new cache


class DroppingAsr(FakeAsr):
    """Hears each unit but its last word."""

    def transcribe(self, index: int, unit: dict) -> str:
        return " ".join(unit["text"].split()[:-1])


def test_the_asr_word_error_rate_counts_each_unit_once_on_livekit_normalised_words(text_model, call):
    from adaptkit.turn.verifiers import EndOfTurnVerifier

    asr = DroppingAsr()
    assert asr.word_errors() is None  # nothing transcribed yet
    verifier = EndOfTurnVerifier(text_model, asr)
    verifier.scorer.score = lambda messages: 0.5
    for _ in range(2):  # the same conversation twice (as the cascade and every chunk read it): counted once
        verifier.reset(call)
        for end in (1.8, 2.9):
            verifier(np.zeros(1), end)
    # units 1 and 3 are the judged speaker's: "hi i'd like" heard as "hi i'd", "to check my order" as "to check my"
    assert asr.word_errors() == {"units": 2, "words": 7, "wer": round(2 / 7, 4), "substitutions": 0, "deletions": 2,
                                 "insertions": 0, "empty_units": 0}


@pytest.fixture(scope="module")
def tiny_asr(tmp_path_factory) -> Path:
    """A tiny random composed Speech-LLM saved as a merged checkpoint (what the example uses without --base)."""
    from adaptkit.freeze import save_merged
    from adaptkit.models import load
    from adaptkit.recipe import ModelSection
    from adaptkit.validation import from_dict

    loaded = load(from_dict(ModelSection, {"tiny": "composed", "encoder": "parakeet_encoder", "llm": "qwen2",
                                           "projector": {"type": "conv_transformer", "layers": 1, "heads": 4}}, "model"))
    return save_merged(loaded.model, tmp_path_factory.mktemp("asr") / "merged", *loaded.save_pretrained_objects())


def test_a_checkpoint_transcribes_each_unit_as_eval_decodes_it(tiny_asr, call, tmp_path, monkeypatch):
    from adaptkit.control_tokens import CONTROL_TOKEN
    from adaptkit.eval.run import decode_sets

    asr = AsrWords(tiny_asr)
    assert asr.hears.startswith(f"ASR words ({tiny_asr})")
    decoded = []
    original = asr.task.decode
    monkeypatch.setattr(asr.task, "decode", lambda *a, **k: decoded.append(a[1][0]) or original(*a, **k))
    asr.reset(call)
    words = asr.text(1, UNITS[1], "spk_1")
    assert asr.text(1, UNITS[1], "spk_1") == words and len(decoded) == 1  # cached
    assert (decoded[0].start, decoded[0].end, decoded[0].audio) == (1.2, 1.8, Path(call["audio"]))
    assert asr.text(0, UNITS[0], "spk_1") == "Thank you for calling." and len(decoded) == 1  # the other speaker: reference
    manifest = tmp_path / "unit.jsonl"  # the same unit through adaptkit eval's decoding
    manifest.write_text(json.dumps({"audio": call["audio"], "start": 1.2, "end": 1.8, "text": UNITS[1]["text"], "language": "en"}) + "\n")
    (row,) = decode_sets(asr.model, [str(manifest)], progress=False)
    assert words == " ".join(CONTROL_TOKEN.sub(" ", row["hypothesis"]).split())


def test_asr_words_refuse_a_model_that_does_not_transcribe_and_a_record_without_audio(tiny_asr, text_model, monkeypatch):
    import adaptkit.eval.run

    monkeypatch.setattr(adaptkit.eval.run, "load_task_model", lambda path: text_model)
    with pytest.raises(AdaptkitError, match=r"^asr: x is a turn_end model, which does not transcribe"):
        AsrWords("x")
    monkeypatch.undo()
    with pytest.raises(AdaptkitError, match=r"asr: the conversation 'c' needs its audio file as an absolute path"):
        AsrWords(tiny_asr).reset({"id": "c", "audio": "c.wav"})


def test_words_are_refused_for_a_tag_model():
    from adaptkit.tasks import task

    class Named:
        name = "tags/adapter"

    with pytest.raises(AdaptkitError, match=r"^words: tags/adapter is a turn_tags model, which hears audio"):
        task("turn_tags").verifier(Named(), words_for("oracle"))
