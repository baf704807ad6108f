"""Scoring whole sets: pooled metrics, breakdowns, degeneration, reports, and one-line errors."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from adaptkit.errors import AdaptkitError
from adaptkit.eval import speaker_metrics as sm
from adaptkit.eval.score import parse_turn_tag, score_speaker_asr, score_turn_end, score_turn_tags

JA_REF = "<|spk_0|> お電話ありがとうございます。<|spk_1|> はい<|spk_0|> ご用件をどうぞ。"
JA_UNITS = [
    {"speaker": "spk_0", "start": 0.2, "end": 1.8, "text": "お電話ありがとうございます。"},
    {"speaker": "spk_1", "start": 2.0, "end": 2.4, "text": "はい"},
    {"speaker": "spk_0", "start": 2.6, "end": 3.8, "text": "ご用件をどうぞ。"},
]
SAMPLES = [
    {"id": "ja1", "language": "ja", "set": "test_id", "reference": JA_REF, "units": JA_UNITS, "ended_with_eos": True,
     "hypothesis": "<|spk_0|> お電話ありがとうございます。<|spk_1|> はい<|spk_0|> ご用件をどうぞ。"},
    {"id": "ja2", "language": "ja", "set": "test_ood", "reference": JA_REF, "units": JA_UNITS,
     "hypothesis": "<|spk_0|> お電話ありがとうございます。はい<|spk_5|> ご用件をどうぞ。"},
    {"id": "en1", "language": "en", "set": "test_id", "reference": "<|spk_0|> can I help you <|spk_1|> yes please",
     "hypothesis": "<|spk_1|> can I help <|spk_0|> yes please please"},
    {"id": "en2", "language": "en", "set": "test_ood", "reference": "<|spk_0|> hello <|spk_1|> hi there",
     "hypothesis": "<|spk_0|> hello <|spk_1|> " + "hi there " * 6, "ended_with_eos": False},
]


def test_speaker_asr_pools_and_breaks_down():
    s = score_speaker_asr(SAMPLES, source="dec.jsonl")
    assert s.task == "speaker_asr" and len(s.rows) == 4
    pairs = [sm.score_pair(x["reference"], x["hypothesis"], x["language"]) for x in SAMPLES]
    assert s.overall["cp_errors"] == sum(p.cp.errors for p in pairs)
    assert s.overall["cp_error_rate"] == pytest.approx(sum(p.cp.errors for p in pairs) / sum(p.cp.length for p in pairs))
    assert s.overall["unit"] == "mixed"
    assert set(s.breakdowns) == {"language", "set"}
    assert s.breakdowns["language"]["ja"]["unit"] == "char" and s.breakdowns["language"]["en"]["unit"] == "word"
    assert s.breakdowns["set"]["test_id"]["n"] == 2
    assert s.rows[0]["cp_error_rate"] == 0.0 and s.rows[0]["der"] == pytest.approx(0.0)
    assert s.overall["der_n"] == 2 and s.rows[2]["der"] is None
    # en1: speakers swapped (no cp penalty), "you" deleted, "please" inserted.
    assert (s.rows[2]["cp_errors"], s.rows[2]["cp_length"]) == (2, 6)
    # Default allowed tokens come from the references: <|spk_5|> is a leak; en2 loops and hit the limit.
    assert s.extra["allowed_tokens"] == ["<|spk_0|>", "<|spk_1|>"]
    assert s.rows[1]["flags"] == ["leaked_token"]
    assert {"repeated_unit", "too_long", "no_eos"} <= set(s.rows[3]["flags"])
    assert s.degeneration["overall"]["any"] == 0.5 and s.degeneration["set"]["test_ood"]["any"] == 1.0
    json.dumps(s.to_dict())  # plain JSON


def test_speaker_asr_strips_the_qwen3_asr_prefix():
    s = score_speaker_asr([{"id": "q", "language": "en", "reference": "<|spk_0|> hello",
                            "hypothesis": "language English<asr_text><|spk_0|> hello"}])
    assert s.rows[0]["cp_errors"] == 0 and s.rows[0]["flags"] == []


def test_speaker_asr_allowed_tokens_override():
    s = score_speaker_asr(SAMPLES[1:2], allowed_tokens=["<|spk_0|>", "<|spk_1|>", "<|spk_5|>"])
    assert s.rows[0]["flags"] == []


def test_turn_tags():
    samples = [
        {"id": "u1", "label": "complete", "hypothesis": "<COMPLETE>", "language": "ja", "group": "ja-ja"},
        {"id": "u2", "label": "incomplete", "hypothesis": "<COMPLETE>", "language": "ja", "group": "ja-en"},
        {"id": "u3", "reference": "BACKCHANNEL", "hypothesis": "backchannel", "language": "en", "group": "ja-en"},
        {"id": "u4", "reference": "<COMPLETE>", "hypothesis": "<|im_start|>", "language": "en", "group": "ja-ja"},
    ]
    s = score_turn_tags(samples)
    assert [r["prediction"] for r in s.rows] == ["COMPLETE", "COMPLETE", "BACKCHANNEL", "OTHER"]
    assert s.overall["accuracy"] == 0.5 and s.overall["other"] == 1
    assert set(s.breakdowns) == {"language", "group"}
    assert s.breakdowns["group"]["ja-en"]["accuracy"] == 0.5
    assert s.rows[3]["flags"] == ["leaked_token"]
    assert parse_turn_tag("<COMPLETE><INCOMPLETE>") == "OTHER" and parse_turn_tag(None) == "OTHER"


def test_turn_end():
    samples = [{"id": f"e{k}", "ended": k % 2 == 0, "probability": p, "language": "ja" if k < 4 else "en",
                "set": "test_id"} for k, p in enumerate([0.9, 0.2, 0.6, 0.7, 0.3, 0.1])]
    s = score_turn_end(samples, threshold=0.5)
    # truth [T F T F T F], predicted [T F T T F F] -> tp 2, fp 1, fn 1, tn 2.
    assert (s.overall["tp"], s.overall["fp"], s.overall["fn"], s.overall["tn"]) == (2, 1, 1, 2)
    assert len(s.extra["sweep"]) == 9 and s.extra["distribution"]["complete"]["n"] == 3
    assert s.breakdowns["language"]["en"]["n"] == 2


def test_reports_from_scores(tmp_path):
    turn_tags = score_turn_tags([{"id": "a", "reference": "COMPLETE", "hypothesis": "<COMPLETE>", "language": "ja"}])
    turn_end = score_turn_end([{"id": "a", "reference": True, "probability": 0.8, "language": "ja"},
                               {"id": "b", "reference": False, "probability": 0.4, "language": "en"}])
    for scores, plots in ((score_speaker_asr(SAMPLES), {"by_language.png"}),
                          (turn_tags, {"confusion.png", "by_language.png"}),
                          (turn_end, {"threshold_sweep.png", "by_language.png"})):
        out = scores.report(meta={"checkpoint": "step-100"}).write(tmp_path / scores.task)
        md = (out / "report.md").read_text().splitlines()
        # The header, right under the title: normalisation and DER timing source, then the headline.
        assert md[0].startswith("# ") and md[2].startswith("- normalization: ") and md[3].startswith("- DER: ")
        assert md[5].startswith("| subset |")
        data = json.loads((out / "report.json").read_text())
        assert data["meta"]["checkpoint"] == "step-100" and set(data["header"]) == {"normalization", "DER"}
        assert {p.name for p in (out / "plots").iterdir()} == plots
        assert "normalization: " in (out / "report.html").read_text() if (out / "report.html").exists() else True


def test_speaker_header_names_normalisation_and_der_source():
    timed = score_speaker_asr(SAMPLES).header
    assert timed["normalization"].startswith("nfkc_lower_punct: NFKC, lower case")
    assert timed["DER"].startswith("times borrowed from the timed reference units")
    assert "md-eval speaker mapping" in timed["DER"] and "collar 0 s each side" in timed["DER"]
    config = sm.SpeakerMetricsConfig(normalization="none", der_mode="pyannote", collar=0.25, skip_overlap=True)
    raw = score_speaker_asr(SAMPLES, config=config).header
    assert raw["normalization"].startswith("none: ") and "pyannote speaker mapping" in raw["DER"]
    assert "collar 0.25 s each side, overlap skipped" in raw["DER"]
    untimed = score_speaker_asr([{k: v for k, v in x.items() if k != "units"} for x in SAMPLES]).header
    assert untimed["DER"].startswith("not computed: no timed reference units")


def test_known_tokens_are_leaks_whatever_their_shape():
    sample = {"id": "k", "language": "en", "reference": "<|spk_0|> hello", "hypothesis": "<|spk_0|> hello [PAD]"}
    assert score_speaker_asr([sample]).rows[0]["flags"] == []
    assert score_speaker_asr([sample], known_tokens=["[PAD]"]).rows[0]["flags"] == ["leaked_token"]


@pytest.mark.parametrize("call, samples, message", [
    (score_speaker_asr, [], "dec.jsonl: no samples to score"),
    (score_speaker_asr, [{"id": "x1", "hypothesis": "a", "language": "en"}], "dec.jsonl: sample 'x1' has no 'reference'"),
    (score_speaker_asr, [{"id": "x1", "reference": "a", "language": "en"}], "sample 'x1' has no 'hypothesis'"),
    (score_speaker_asr, [{"id": "x1", "reference": "a", "hypothesis": "a"}], "sample 'x1' has no 'language'"),
    (score_speaker_asr, [{"id": "x1", "reference": 3, "hypothesis": "a", "language": "en"}], "'reference' must be text"),
    (score_speaker_asr, [{"id": "d", "reference": "a", "hypothesis": "a", "language": "en"}] * 2, "'d' appears twice"),
    (score_speaker_asr, ["text"], "sample #0 is a str"),
    (score_turn_tags, [{"id": "t1", "hypothesis": "<COMPLETE>"}], "sample 't1' has no 'reference' or 'label'"),
    (score_turn_tags, [{"id": "t1", "label": "maybe", "hypothesis": "x"}], "reference label 'maybe' is not one of"),
    (score_turn_end, [{"id": "e1", "ended": True, "probability": 1.5}], "sample 'e1': probability must be"),
    (score_turn_end, [{"id": "e1", "ended": "yes", "probability": 0.5}], "reference must be true/false"),
    (score_turn_end, [{"id": "e1", "ended": True}], "sample 'e1' has no 'probability'"),
])
def test_bad_input_is_one_line_error(call, samples, message):
    with pytest.raises(AdaptkitError) as e:
        call(samples, source="dec.jsonl")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_benchmark_script_runs(monkeypatch, capsys):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "score_speed.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--n", "40", "--repeats", "1"])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "cpWER on 40 utterances" in out and "adaptkit / meeteval = " in out and "same errors: True" in out
    assert "full scoring of 40 utterances" in out
