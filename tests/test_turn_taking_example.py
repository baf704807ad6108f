"""examples/turn_taking/run.py runs end to end at smoke size (tiny composed 3-tag model, one test call)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert len(report["systems"]) == 7 and (tmp_path / "cascade" / "test_ood" / "plots" / "tradeoff.png").is_file()
    for task in ("turn_tags", "turn_end"):
        assert (tmp_path / "cascade" / f"{task}_eval" / "report.md").is_file()
