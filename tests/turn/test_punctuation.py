"""Final punctuation rates of turn_end data (`adaptkit.turn.punctuation`), on hand-made rows."""

from __future__ import annotations

import json

import pytest

from adaptkit.turn.punctuation import describe, ends_with_final_punctuation, final_punctuation_rates, split_final_punctuation


@pytest.mark.parametrize("text,ends", [
    ("I see.", True), ("Really?", True), ("Stop!", True), ("はい。", True), ("本当？", True), ("えっ！", True), ("ｰ｡", True),
    ('He said "yes."  ', True), ("「そうです。」", True), ("well, I", False), ("so -", False), ("wait...", True), ("", False),
    ("um,", False), ("ok 3.5", False),
])
def test_ends_with_final_punctuation(text, ends):
    assert ends_with_final_punctuation(text) is ends


def _row(last: str, ended: bool) -> dict:
    return {"messages": [{"role": "assistant", "content": "Hello."}, {"role": "user", "content": last}], "ended": ended}


def test_rates_per_class_from_hand_made_rows(tmp_path):
    rows = [_row("I want to", False), _row("My number is.", False), _row("so um,", False), _row("Yes.", True),
            _row("Thanks!", True), _row("ok", True), _row("はい。", True)]
    rates = final_punctuation_rates(rows)
    assert rates == {"incomplete": {"turns": 3, "final_punctuation": 1, "rate": 0.3333},
                     "complete": {"turns": 4, "final_punctuation": 3, "rate": 0.75}}
    assert final_punctuation_rates(rows[3:])["incomplete"] == {"turns": 0, "final_punctuation": 0, "rate": None}
    path = tmp_path / "turn_end.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    assert split_final_punctuation(path) == {"data": str(path), **rates}
    assert describe(rates) == "final punctuation: 1 of 3 incomplete turns (0.333), 3 of 4 complete (0.75)"
