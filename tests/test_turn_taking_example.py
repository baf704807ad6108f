"""examples/turn_taking/run.py runs end to end at smoke size (tiny composed 3-tag model and ASR, one
test call): every system, what each hears, the final punctuation rates, the normalised training text."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "turn_taking" / "run.py"

pytestmark = pytest.mark.current_stack
"""On one stack: the study's models are tiny composed ones (a Qwen2 / Qwen3 LLM from config classes
both stacks have, no Qwen3-ASR), so the stacks run the same code; tests/turn covers the cascade's
parts on both. The current stack's suite is the shorter one."""


def test_the_turn_taking_study_runs_every_system(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    pytest.importorskip("onnxruntime")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--calls", "10", "--tag-steps", "3", "--text-steps", "3",
                           "--splits", "test_ood", "--limit", "1"], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "cascade" / "test_ood" / "report.json").read_text())
    assert report["base"] == "tiny random composed" and report["conversations"] == 1
    assert len(report["systems"]) == 11 and (tmp_path / "cascade" / "test_ood" / "plots" / "tradeoff.png").is_file()
    for task in ("turn_tags", "turn_end", "turn_end_normalised"):
        assert (tmp_path / "cascade" / f"{task}_eval" / "report.md").is_file()
    hears = {name: s["hears"] for name, s in report["systems"].items()}  # what each system hears
    assert hears["cascade: end-of-turn LM (reference words, punctuated)"] == "reference words, punctuated"
    assert hears["cascade: end-of-turn LM (reference words, normalised)"] == "reference words, normalised like LiveKit"
    assert report["asr"] == str(tmp_path / "tiny_base") and hears["every chunk: end-of-turn LM (ASR words, normalised)"].startswith(
        f"ASR words ({tmp_path / 'tiny_base'}) of the judged speaker")
    heard = report["asr_words"]["end-of-turn LM (ASR words, normalised)"]  # how well the ASR heard the LM's input
    assert heard["units"] > 0 and heard["words"] > 0
    assert heard["wer"] == round((heard["substitutions"] + heard["deletions"] + heard["insertions"]) / heard["words"], 4)
    assert f"test_ood ASR words read by end-of-turn LM (ASR words, normalised): WER {heard['wer']:.3f}" in proc.stdout
    assert "ASR words read by end-of-turn LM (ASR words, normalised): WER" in (tmp_path / "cascade" / "test_ood" / "report.md").read_text()
    assert hears["baseline: Smart Turn v3.2"] == "the judged speaker's own channel, last 8 s"
    assert len(list((tmp_path / "data" / "test_ood").glob("*.stereo.wav"))) > 0
    rates = report["final_punctuation"]  # printed, and in report.json and report.md
    assert rates["data"] == str(tmp_path / "data" / "test_ood" / "turn_end.jsonl") and rates["incomplete"]["turns"] > 0
    assert "test_ood turn_end data, final punctuation: " in proc.stdout
    assert "final punctuation: " in (tmp_path / "cascade" / "test_ood" / "report.md").read_text()
    from adaptkit.turn.normalize import normalize_text

    normalised = [json.loads(line) for line in (tmp_path / "data_normalised" / "train" / "turn_end.jsonl").read_text().splitlines()]
    original = [json.loads(line) for line in (tmp_path / "data" / "train" / "turn_end.jsonl").read_text().splitlines()]
    assert [[normalize_text(m["content"]) for m in r["messages"]] for r in original] == [[m["content"] for m in r["messages"]] for r in normalised]
    trained = yaml.safe_load((tmp_path / "turn_end_normalised.yaml").read_text())  # the normalised LM learns normalised text
    assert trained["data"]["train"] == str(tmp_path / "data_normalised" / "train" / "turn_end.jsonl")
    record = json.loads((tmp_path / "cascade" / "run.json").read_text())  # the command and wall time of the run
    assert record["command"].startswith("python examples/turn_taking/run.py --out ") and record["wall_seconds"] > 0
    assert record["reused_data"] is False
