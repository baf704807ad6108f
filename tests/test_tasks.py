"""Tasks as objects: one registry, what each task owns, `--hypotheses` rows naming their task, and no
task-name branch outside `adaptkit.tasks`."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from adaptkit.cli import eval_, main
from adaptkit.data.manifest import Sample
from adaptkit.errors import AdaptkitError
from adaptkit.eval.metric_names import HIGHER_IS_BETTER
from adaptkit.recipe import Recipe
from adaptkit.tasks import DEFAULT_TASK, TASKS, Task, task

PACKAGE = Path(__file__).resolve().parents[1] / "adaptkit"
TASK_NAME = re.compile(r"\b(speaker_asr|turn_tags|turn_end)\b(?!\.jsonl|\.yaml)")
"""A task name in a string, other than in a manifest or recipe file name (synth writes `turn_tags.jsonl`)."""
RECIPE = {"model": {"tiny": "qwen3_asr"}, "freeze": {"train": ["projector"]}}


def _sample(**kw) -> Sample:
    return Sample(**{"id": "a", "where": "m.jsonl:1", "audio": None, "text": "", **kw})


def test_the_registry_holds_exactly_the_three_tasks():
    assert sorted(TASKS) == ["speaker_asr", "turn_end", "turn_tags"]
    assert all(isinstance(t, Task) and t.name == name for name, t in TASKS.items())
    assert DEFAULT_TASK == "speaker_asr" and Recipe.parse(RECIPE).task == DEFAULT_TASK
    choice = next(p for p in eval_.params if p.name == "task").type
    assert list(choice.choices) == sorted(TASKS)


def test_an_unknown_task_names_the_supported_ones():
    with pytest.raises(AdaptkitError) as err:
        task("nope")
    assert str(err.value) == "unknown task 'nope'; supported: speaker_asr, turn_end, turn_tags"
    with pytest.raises(AdaptkitError, match=r"task: unknown task 'turn_tag' \(closest: turn_tags"):
        Recipe.parse({**RECIPE, "task": "turn_tag"})


def test_speaker_asr_targets_the_answer_prefix_then_the_transcript():
    t = task("speaker_asr")
    assert t.audio and t.require == () and t.allowed_tokens == ()
    assert t.target(_sample(text="<|spk_0|> hi", language="ja")) == "language Japanese<asr_text><|spk_0|> hi"
    assert t.target(_sample(text="hi"), "en") == "language English<asr_text>hi"
    assert t.target(_sample(text="hi")) == "<asr_text>hi"
    assert t.metrics[0] == t.headline_metric == "cp_error_rate" and "wder" in t.metrics
    assert t.verifier(None) is None


def test_turn_tags_answer_with_one_tag():
    t = task("turn_tags")
    assert t.audio and t.require == ("label",)
    assert t.allowed_tokens == ("<COMPLETE>", "<INCOMPLETE>", "<BACKCHANNEL>")
    assert t.target(_sample(label="backchannel")) == "<BACKCHANNEL>" and t.answer_prefix("ja") == ""
    with pytest.raises(AdaptkitError, match="label 'done' is not one of complete, incomplete, backchannel"):
        t.check(_sample(label="done"))
    assert t.headline_metric == "macro_f1" and t.metrics == ("macro_f1", "accuracy", "other", "degenerate")


def test_turn_end_is_text_only_and_trains_on_ended_conversations():
    t = task("turn_end")
    messages = [{"role": "user", "content": "hi"}]
    ended, open_ = _sample(fields={"messages": messages, "ended": True}), _sample(fields={"messages": messages, "ended": False})
    assert not t.audio and t.require == ("messages", "ended") and t.allowed_tokens == ()
    assert t.target(ended) == "<|im_start|>user\nhi<|im_end|>\n" and t.answer_prefix("en") == ""
    assert t.for_training([ended, open_]) == [ended] and task("speaker_asr").for_training([open_]) == [open_]
    with pytest.raises(AdaptkitError, match="'ended' must be true or false"):
        t.check(_sample(fields={"messages": messages, "ended": "yes"}))
    assert t.headline_metric == "f1" and "balanced_accuracy" in t.metrics


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_has_a_headline_among_its_metrics_and_a_title(name):
    t = task(name)
    assert t.headline_metric in t.metrics and t.title
    assert (t.headline_metric in HIGHER_IS_BETTER) == (name != "speaker_asr")


ROWS = {
    "speaker_asr": [{"id": "a", "language": "en", "reference": "<|spk_0|> hi", "hypothesis": "<|spk_0|> hi"}],
    "turn_tags": [{"id": "a", "language": "en", "reference": "complete", "hypothesis": "<COMPLETE>"}],
    "turn_end": [{"id": "a", "language": "en", "reference": True, "probability": 0.9},
                 {"id": "b", "language": "en", "reference": False, "probability": 0.2}],
}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_each_task_scores_and_reports_its_rows(name):
    t = task(name)
    scores = t.score(ROWS[name], "rows.jsonl")
    assert scores.task == name and scores.overall[t.headline_metric] is not None
    assert scores.report().title == t.title


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("name", sorted(TASKS))
def test_decoded_rows_that_name_their_task_are_scored_as_it(name, tmp_path):
    path = _write(tmp_path / "decoded.jsonl", [{"task": name, **r} for r in ROWS[name]])
    result = CliRunner().invoke(main, ["eval", "--hypotheses", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r" / "report.json").read_text())["title"] == task(name).title


def test_decoded_rows_without_a_task_need_task(tmp_path):
    path = _write(tmp_path / "decoded.jsonl", ROWS["turn_end"])  # probabilities: once guessed as turn_end
    result = CliRunner().invoke(main, ["eval", "--hypotheses", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith(f"error: {path}: task: the rows do not name their task"), result.stderr
    assert "pass --task (speaker_asr, turn_end, turn_tags)" in result.stderr
    result = CliRunner().invoke(main, ["eval", "--hypotheses", str(path), "--task", "turn_end", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("rows, expected", [
    ([{"task": "turn_end"}, {"task": "turn_tags"}], "task: the rows name several tasks (turn_end, turn_tags)"),
    ([{"task": "diarize"}], "task: unknown task 'diarize'; supported: "),
])
def test_decoded_rows_must_name_one_known_task(rows, expected, tmp_path):
    path = _write(tmp_path / "decoded.jsonl", rows)
    result = CliRunner().invoke(main, ["eval", "--hypotheses", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {path}: {expected}"), result.stderr


def _task_names_in_code(path: Path) -> list[str]:
    """String constants (docstrings aside) of `path` that name a task."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    return [f"{path.relative_to(PACKAGE.parent)}:{n.lineno}: {n.value!r}" for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs and TASK_NAME.search(n.value)]


def test_no_task_name_outside_the_tasks_package():
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) if "tasks" not in path.relative_to(PACKAGE).parts[:1]
             for hit in _task_names_in_code(path)]
    assert found == []
