"""Package layering: turn builds on eval, eval never imports turn (no cycle between the two)."""

from __future__ import annotations

import ast
from pathlib import Path

import adaptkit

ROOT = Path(adaptkit.__file__).parent


def imported(path: Path) -> set[str]:
    """Every module that `path` imports, at the top or inside a function (lazy imports count too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def imports_of(package: str) -> dict[str, set[str]]:
    return {p.name: imported(p) for p in (ROOT / package).glob("*.py")}


def test_eval_never_imports_turn():
    bad = {name: sorted(m for m in mods if m == "adaptkit.turn" or m.startswith("adaptkit.turn."))
           for name, mods in imports_of("eval").items()}
    assert not {k: v for k, v in bad.items() if v}


def test_the_check_sees_turns_imports_of_eval_lazy_ones_included():
    turn = imports_of("turn")
    assert "adaptkit.eval.frame_metrics" in turn["cascade.py"] | turn["study.py"]
    assert "adaptkit.eval.run" in turn["study.py"]  # imported inside a function
