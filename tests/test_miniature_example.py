"""The seed's experiment in miniature runs end to end at smoke size (examples/miniature/run.py --smoke),
and its statistics (examples/miniature/report.py) compute what they say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import pytest

HERE = Path(__file__).resolve().parents[1] / "examples" / "miniature"
SCRIPT = HERE / "run.py"


def _report_module():
    sys.path.insert(0, str(HERE))
    import report

    return report


def _table(errors: list[int], lengths: list[int]) -> dict[str, np.ndarray]:
    cols = {"cer_e": errors, "cer_n": lengths, "degen": [0] * len(errors), "one": [1] * len(errors)}
    return {k: np.asarray(v, dtype=float) for k, v in cols.items()}


def test_a_rate_is_errors_over_reference_length_and_its_interval_holds_it():
    report = _report_module()
    table = _table([1, 0, 3, 2, 4, 0, 1, 5], [10, 12, 9, 11, 10, 8, 10, 10])
    e = report.estimate([table], "cer")
    assert e.value == pytest.approx(16 / 80) and e.calls == 8
    assert e.low < e.value < e.high and e.low >= 0 and e.high <= 1


def test_a_change_from_the_base_is_paired_over_the_same_calls():
    report = _report_module()
    base = _table([1, 0, 3, 2, 4, 0, 1, 5], [10, 12, 9, 11, 10, 8, 10, 10])
    same = report.estimate([base], "cer", [base])
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)  # paired: every resample cancels exactly
    worse = _table([2, 1, 4, 3, 5, 1, 2, 6], [10, 12, 9, 11, 10, 8, 10, 10])  # one more error on every call
    d = report.estimate([worse], "cer", [base])
    assert d.value == pytest.approx(8 / 80) and d.low > 0
    two_seeds = report.estimate([base, worse], "cer")
    assert two_seeds.value == pytest.approx((16 / 80 + 24 / 80) / 2)


@pytest.mark.qwen_asr_stack  # the study trains the tiny qwen3_asr
def test_the_miniature_study_runs_every_step(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--smoke"], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stage1"]["steps"] == 2 and summary["failed"] == {}
    assert set(summary["variants"]) == {"projector_lr0.001_s0", "lora_r8_lr0.001_s0"}
    slices = {"dev", "test_id", "ood_wideband", "ood_malay", "ood_noise_10db"}
    assert set(summary["base"]) == slices and all(set(v) == slices for v in summary["variants"].values())
    assert summary["trainable_parameters"]["projector_lr0.001_s0"] != summary["trainable_parameters"]["lora_r8_lr0.001_s0"]
    assert summary["verdict"] in {"holds", "not reproduced"} and set(summary["seconds"]) == {"data", "stage 1", "stage 2", "total"}
    # the base's CER on a slice is jiwer's over its calls, tags and answer prefix removed
    rows = [json.loads(x) for x in (tmp_path / "compare" / "variants" / "base" / "eval" / "decoded.jsonl").read_text().splitlines()]
    mine = [r for r in rows if r["set"] == "ood_malay"]
    plain = lambda t: " ".join(t.split("<asr_text>")[-1].replace("<|spk_0|>", " ").replace("<|spk_1|>", " ").split()).lower()  # noqa: E731
    refs, hyps = [plain(r["reference"]) for r in mine], [plain(r["hypothesis"]) or " " for r in mine]
    assert summary["base"]["ood_malay"]["value"] == pytest.approx(jiwer.cer(refs, hyps))
    assert all(r["language"] == "ms" for r in mine) and "<|spk_" in mine[0]["reference"]
    train = [json.loads(x) for x in (tmp_path / "data" / "base_train.jsonl").read_text().splitlines()]
    assert {r["language"] for r in train} == {"en", "ms"} and not any("<|spk_" in r["text"] for r in train)
    text = (tmp_path / "report.md").read_text()
    assert "The seed's claim at this size" in text and "| ood_malay |" in text and "Nothing reused" in text


@pytest.mark.qwen_asr_stack
def test_base_only_stops_after_stage_one_and_records_how(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--smoke", "--base-only"], capture_output=True,
                          text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    base = json.loads((tmp_path / "base.json").read_text())
    assert base["command"].endswith("--smoke --base-only") and set(base["seconds"]) == {"data", "stage 1", "total"}
    assert base["stage1"]["steps"] == 2 and (tmp_path / "stage1" / "merged" / "config.json").is_file()
    assert not (tmp_path / "compare").exists() and not (tmp_path / "summary.json").exists()
