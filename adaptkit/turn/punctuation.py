"""How often turn_end data gives its answer away by punctuation: the share of incomplete turns, and
of complete ones, whose last message ends with final punctuation. An end-of-turn LM that reads
punctuated reference words can learn "ends with a full stop" instead of the end of a turn; these
rates say how much that cue is worth on a split."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

FINAL_PUNCTUATION = frozenset(".?!。？！．｡")
"""Marks that end a sentence: ASCII . ? !, the ideographic full stop 。, the full-width ？ ！ ．
and the half-width ｡."""
CLOSING = frozenset("\"'”’»」』）)]")
"""Closing quotes and brackets looked through to the mark before them ('He said "yes."')."""


def ends_with_final_punctuation(text: str) -> bool:
    """Whether `text` ends (white space and closing quotes or brackets aside) with a FINAL_PUNCTUATION mark."""
    text = text.rstrip()
    while text and text[-1] in CLOSING:
        text = text[:-1].rstrip()
    return bool(text) and text[-1] in FINAL_PUNCTUATION


def final_punctuation_rates(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For turn_end rows ({"messages": [...], "ended": bool}), per class (`incomplete`: ended False,
    `complete`: ended True): how many turns, how many of them end (their last message) with final
    punctuation, and the share (None for a class with no turn)."""
    counts = {"incomplete": [0, 0], "complete": [0, 0]}
    for row in rows:
        c = counts["complete" if row["ended"] else "incomplete"]
        c[0] += 1
        c[1] += ends_with_final_punctuation(row["messages"][-1]["content"])
    return {name: {"turns": n, "final_punctuation": k, "rate": round(k / n, 4) if n else None} for name, (n, k) in counts.items()}


def split_final_punctuation(path: str | Path) -> dict[str, Any]:
    """`final_punctuation_rates` of a turn_end.jsonl (lines checked as the turn_end task checks them), with its path."""
    from adaptkit.tasks.turn_end import read_turn_end

    return {"data": str(path), **final_punctuation_rates(s.fields for s in read_turn_end(path))}


def describe(rates: dict[str, Any]) -> str:
    """One line: 'final punctuation: 5 of 26 incomplete turns (0.192), 30 of 31 complete (0.968)'."""
    def part(name: str, noun: str) -> str:
        r = rates[name]
        return f"{r['final_punctuation']} of {r['turns']} {name}{noun}" + (f" ({r['rate']:.3g})" if r["rate"] is not None else "")

    return f"final punctuation: {part('incomplete', ' turns')}, {part('complete', '')}"
