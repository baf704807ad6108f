"""The command: determinism, refusals, install hints, split arithmetic, timing draws."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from adaptkit.synth.cli import synth
from adaptkit.synth.config import SynthConfig
from adaptkit.synth.conversation import _gamma_ms
from adaptkit.synth.dataset import split_counts
from adaptkit.synth.templates import KINDS, SCRIPTS, draw_slots, turn_clauses

SMALL = ["--lang", "ja,en", "--splits", "2,1,1", "--duration", "4", "--telephone", "--snr", "20", "--stereo", "--seed", "7"]


def run(*args: str):
    return CliRunner().invoke(synth, list(args))


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_for_any_job_count(tmp_path: Path, tools) -> None:
    a, b, c = run(*SMALL, "--out", str(tmp_path / "a"), "--jobs", "1"), run(*SMALL, "--out", str(tmp_path / "b"), "--jobs", "2"), run(*SMALL[:-1], "8", "--out", str(tmp_path / "c"), "--jobs", "1")
    assert a.exit_code == b.exit_code == c.exit_code == 0, a.output + b.output + c.output
    assert "x real time" in a.output
    fa, fb = files(tmp_path / "a"), files(tmp_path / "b")
    assert len(fa) == 4 * 4 + 3 * 3 + 1 and fa == fb  # wav, stereo, rttm, json; manifests; README
    assert files(tmp_path / "c")["train/train_00000.wav"] != fa["train/train_00000.wav"]


def test_refuses_to_overwrite_without_force(tmp_path: Path, tools) -> None:
    (tmp_path / "old.txt").write_text("data")
    args = ["--n", "1", "--splits", "1,0,0", "--duration", "3", "--lang", "en", "--out", str(tmp_path)]
    refused = run(*args)
    assert refused.exit_code == 2 and "--force" in refused.output and "Traceback" not in refused.output
    assert not (tmp_path / "train").exists()
    forced = run(*args, "--force")
    assert forced.exit_code == 0 and (tmp_path / "train" / "train_00000.wav").exists()


def test_unknown_language_lists_the_supported_ones(tmp_path: Path) -> None:
    r = run("--lang", "xx", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2
    assert r.output.startswith("error: unknown language 'xx'") and all(k in r.output for k in ("ja", "en", "zh", "ms", "ta"))
    assert not (tmp_path / "o").exists()


def test_unknown_voice_lists_the_supported_ones(tmp_path: Path) -> None:
    r = run("--lang", "en", "--voice", "en-robot", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "unknown voice 'en-robot'" in r.output and "en-us-m1" in r.output


def test_missing_espeak_gives_a_one_line_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    r = run("--lang", "en", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "apt-get install espeak-ng" in r.output


def test_missing_pyopenjtalk_gives_a_one_line_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tools) -> None:
    monkeypatch.setitem(sys.modules, "pyopenjtalk", None)
    r = run("--lang", "ja", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "pip install pyopenjtalk-plus" in r.output


def test_bad_splits_and_probabilities_exit_2(tmp_path: Path) -> None:
    assert run("--splits", "1,2", "--out", str(tmp_path / "o")).exit_code == 2
    assert run("--splits", "a,b,c", "--out", str(tmp_path / "o")).exit_code == 2
    assert run("--pause-prob", "1.5", "--out", str(tmp_path / "o")).exit_code == 2


def test_split_counts() -> None:
    cfg = SynthConfig(out=Path("x"), n=50)
    assert split_counts(cfg) == {"train": 40, "test_id": 5, "test_ood": 5}
    cfg.splits = (40, 5, 0)
    assert split_counts(cfg) == {"train": 40, "test_id": 5, "test_ood": 0}
    cfg.n, cfg.splits = 3, (0.8, 0.1, 0.1)
    assert sum(split_counts(cfg).values()) == 3


def test_gaps_have_a_median_of_about_300_ms() -> None:
    rng = np.random.default_rng(0)
    gaps = [_gamma_ms(rng, 0.3, 2.0) for _ in range(4000)]
    assert 280 <= np.median(gaps) <= 320


def test_every_template_has_one_to_three_clauses(tools) -> None:
    rng = np.random.default_rng(0)
    for lang, script in SCRIPTS.items():
        slots = draw_slots(lang, rng)
        for kind in KINDS:
            for i in range(len(script.turns[kind])):
                used = {(kind, j) for j in range(len(script.turns[kind])) if j != i}
                clauses = turn_clauses(lang, kind, rng, slots, used)
                assert 1 <= len(clauses) <= 3, (lang, kind, i)
                assert all(c.text and c.speech for c in clauses)
