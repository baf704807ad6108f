"""`import adaptkit.freeze` must not pull in qwen_asr, gradio or the metric libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("qwen_asr", "gradio", "meeteval", "pyannote", "jiwer", "matplotlib")


def test_importing_the_freezing_api_loads_no_heavy_package():
    code = (
        "import sys, adaptkit.freeze\n"
        f"heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]\n"
        "print(','.join(sorted(heavy)))\n"
        "assert 'peft' in sys.modules and 'torch' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"adaptkit.freeze imported: {proc.stdout.strip()}"


@pytest.mark.qwen_asr_stack
def test_the_check_would_notice_a_heavy_import():
    code = "import sys, adaptkit.freeze, adaptkit.models.qwen3_asr as q; q._classes(); print('qwen_asr' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "True", proc.stderr
