"""Turn tags: audio up to the end of a unit, answered by one of `<COMPLETE>`, `<INCOMPLETE>`, `<BACKCHANNEL>`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from adaptkit.data.manifest import Sample
from adaptkit.errors import AdaptkitError
from adaptkit.tasks.base import GeneratingTask
from adaptkit.tasks.registry import register

if TYPE_CHECKING:
    from adaptkit.eval.decode import Decoded
    from adaptkit.eval.report import EvalReport
    from adaptkit.eval.run import TaskModel
    from adaptkit.eval.score import Scores

TAGS = {"complete": "<COMPLETE>", "incomplete": "<INCOMPLETE>", "backchannel": "<BACKCHANNEL>"}
"""Manifest label -> the tag token that answers it."""


@register
class TurnTags(GeneratingTask):
    """One tag per sample, scored by macro-F1 over the three classes."""

    name = "turn_tags"
    title = "Turn tags"
    require = ("label",)
    allowed_tokens = tuple(TAGS.values())
    metrics = ("macro_f1", "accuracy", "other", "degenerate")
    headline_metric = "macro_f1"

    def check(self, sample: Sample) -> None:
        """The label must be one of the three tags."""
        if sample.label not in TAGS:
            raise AdaptkitError(f"{sample.where}: label {sample.label!r} is not one of {', '.join(TAGS)}")

    def target(self, sample: Sample, language: str | None = None) -> str:
        """The tag token for the sample's label."""
        return TAGS[sample.label]

    def reference(self, sample: Sample, decoded: Decoded) -> dict[str, Any]:
        """The label, and the three tags' probabilities at the answer's first token."""
        return {"reference": sample.label, "probabilities": decoded.first_scores}

    def score(self, rows: list[dict[str, Any]], source: str, known_tokens: Iterable[str] = ()) -> Scores:
        """`score.score_turn_tags`."""
        from adaptkit.eval.score import score_turn_tags

        return score_turn_tags(rows, source=source, known_tokens=known_tokens)

    def report(self, scores: Scores, title: str, meta: dict[str, Any]) -> EvalReport:
        """Headline, per-class table and confusion matrix, breakdowns, degeneration."""
        from adaptkit.eval.score import turn_tags_report

        return turn_tags_report(scores, title, meta)

    def verifier(self, task_model: TaskModel, words: Any | None = None) -> Any:
        """`TagVerifier`: 1 - P(<INCOMPLETE>) on the audio before the silence; it reads no words."""
        from adaptkit.turn.verifiers import TagVerifier

        if words is not None:
            raise AdaptkitError(f"words: {task_model.name} is a turn_tags model, which hears audio; words are for an end-of-turn LM (turn_end)")

        return TagVerifier(task_model)
