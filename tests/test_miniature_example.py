"""The seed's experiment in miniature runs end to end at smoke size (examples/miniature/run.py --smoke)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest

pytestmark = pytest.mark.qwen_asr_stack  # the study trains the tiny qwen3_asr

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "miniature" / "run.py"


def test_the_miniature_study_runs_every_step(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--smoke"], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = [json.loads(x) for x in (tmp_path / "stage1" / "eval" / "decoded.jsonl").read_text().splitlines()]
    plain = [(r["reference"].split("<asr_text>")[-1].strip().lower(), r["hypothesis"].split("<asr_text>")[-1].strip().lower()) for r in rows]
    assert summary["stage1"]["steps"] == 2 and summary["stage1"]["utterances"] == len(rows) > 0
    assert summary["stage1"]["cer_in_domain"] == jiwer.cer([a for a, _ in plain], [b for _, b in plain])
    names = [v["name"] for v in summary["variants"]]
    assert names == ["base (no adapter)", "projector", "lora_r8"]
    for v in summary["variants"]:
        assert v["status"] == "ok", v
        assert set(v["scores"]) == {"all", "test_id", "test_ood_wideband_voices", "test_ood_noise_5db", "test_ood_malay"}
    assert summary["variants"][1]["trainable_parameters"] != summary["variants"][2]["trainable_parameters"]
    report = tmp_path / "compare" / "report"
    assert (report / "report.md").is_file() and (report / "report.html").is_file() and (report / "plots" / "loss.png").is_file()
