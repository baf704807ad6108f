"""The seed's experiment in miniature runs end to end at smoke size (examples/miniature/run.py --smoke)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "miniature" / "run.py"


def test_the_miniature_study_runs_every_step(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--smoke"], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert 0.0 <= summary["stage1"]["cer_in_domain"] and summary["stage1"]["steps"] == 4
    names = [v["name"] for v in summary["variants"]]
    assert names == ["base (no adapter)", "projector", "projector_lr3x", "lora_r8", "lora_r32_lr3x", "lora_r32_lr10x"]
    for v in summary["variants"]:
        assert v["status"] == "ok", v
        assert set(v["scores"]) == {"all", "test_id", "test_ood_wideband_voices", "test_ood_noise_5db", "test_ood_malay"}
    report = tmp_path / "compare" / "report"
    assert (report / "report.md").is_file() and (report / "report.html").is_file() and (report / "plots" / "loss.png").is_file()
