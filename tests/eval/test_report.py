"""The report writer: JSON parses, Markdown opens with the headline table, PNGs are PNGs."""

from __future__ import annotations

import json

import pytest

from adaptkit.errors import AdaptkitError
from adaptkit.eval.report import EvalReport, Plot, markdown_table

PNG = b"\x89PNG\r\n\x1a\n"


def _report() -> EvalReport:
    r = EvalReport("Turn end", headline=[{"subset": "all", "f1": 0.8123456, "n": 10}, {"subset": "ood", "f1": None, "n": 4}],
               meta={"run": "a|b"})
    sweep = [{"threshold": t / 10, "f1": t / 10, "recall": 1 - t / 10} for t in range(1, 10)]
    r.add("Sweep", sweep, text="Higher is better.", plots=[Plot("sweep", "line", "Sweep", sweep, x="threshold",
                                                                y=["f1", "recall"])])
    r.add("By language", [{"language": "ja", "f1": 0.7}, {"language": "en", "f1": float("nan")}],
          plots=[Plot("by_language", "bar", "By language", [{"language": "ja", "f1": 0.7}, {"language": "en", "f1": 0.5}],
                      x="language", y=["f1"])])
    r.add("Confusion", plots=[Plot("confusion", "matrix", matrix=[[3, 1], [0, 4]], row_labels=["a", "b"],
                                   col_labels=["a", "b"])])
    r.add("Samples", [{"id": "x"}], markdown=False)
    return r


def test_write_json_markdown_and_pngs(tmp_path):
    out = _report().write(tmp_path / "report")
    data = json.loads((out / "report.json").read_text())
    assert data["title"] == "Turn end" and data["headline"][1]["f1"] is None
    assert data["sections"][1]["rows"][1]["f1"] is None  # NaN is written as null
    assert data["sections"][0]["plots"] == ["plots/sweep.png"]
    md = (out / "report.md").read_text().splitlines()
    assert md[0] == "# Turn end"
    body = [line for line in md[1:] if line.strip()]
    assert body[0] == "| subset | f1 | n |" and body[1] == "|---|---|---|"
    assert body[2] == "| all | 0.8123 | 10 |" and body[3] == "| ood | - | 4 |"
    assert "- run: a\\|b" not in md and "- run: a|b" in md
    assert "![Sweep](plots/sweep.png)" in md and "1 rows, in report.json." in md
    pngs = sorted(p.name for p in (out / "plots").iterdir())
    assert pngs == ["by_language.png", "confusion.png", "sweep.png"]
    assert all((out / "plots" / p).read_bytes().startswith(PNG) for p in pngs)


def test_rewrite_replaces_and_refuses_foreign_folders(tmp_path):
    folder = tmp_path / "rep"
    _report().write(folder)
    EvalReport("Second").write(folder)
    assert json.loads((folder / "report.json").read_text())["title"] == "Second"
    assert not (folder / "plots").exists()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(AdaptkitError, match="other files"):
        EvalReport("x").write(tmp_path / "run")
    assert (tmp_path / "run" / "checkpoint.pt").exists()


def test_markdown_table_escapes_and_unions_columns():
    t = markdown_table([{"a": 1, "b": "x|y"}, {"c": True, "a": [0.5, None]}])
    assert t.splitlines() == ["| a | b | c |", "|---|---|---|", "| 1 | x\\|y | - |", "| 0.5, - | - | yes |"]
