"""End of turn as the probability of `<|im_end|>` (the turn-detector seed): text conversations only.

Training is positive-only, as in the seed: complete conversations, rendered with the chat template,
learned as plain language modelling, so the model learns where `<|im_end|>` goes. Lines with
`ended: false` are test material (the scorer asks for P(<|im_end|>) after them) and are left out of
training. Manifest lines: {"messages": [{"role": "user", "content": ...}, ...], "ended": bool}.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from adaptkit.data.manifest import Sample
from adaptkit.errors import AdaptkitError
from adaptkit.tasks.base import Task
from adaptkit.tasks.registry import register

if TYPE_CHECKING:
    from adaptkit.eval.report import EvalReport
    from adaptkit.eval.run import TaskModel
    from adaptkit.eval.score import Scores

END = "<|im_end|>"
"""The token whose probability is the end of turn."""


def render(messages: list[dict], close_last: bool = True) -> str:
    """Chat-template text; without `close_last` the last `<|im_end|>` is left off (the scoring prompt)."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}{END}\n" for m in messages)
    return text if close_last else text[: -len(END) - 1]


@register
class TurnEnd(Task):
    """P(<|im_end|>) after a conversation whose last message is left open, scored by F1."""

    name = "turn_end"
    title = "Turn end"
    require = ("messages", "ended")
    audio = False
    metrics = ("f1", "accuracy", "precision", "recall", "balanced_accuracy")
    headline_metric = "f1"

    def check(self, sample: Sample) -> None:
        """`messages` must be a non-empty list of {role, content} with text, `ended` a boolean."""
        messages, ended = sample.fields.get("messages"), sample.fields.get("ended")
        if not isinstance(messages, list) or not messages:
            raise AdaptkitError(f"{sample.where}: 'messages' must be a non-empty list")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not str(m.get("content", "")).strip():
                raise AdaptkitError(f"{sample.where}: messages[{i}] needs a role (system, user, assistant) and non-empty content")
        if not isinstance(ended, bool):
            raise AdaptkitError(f"{sample.where}: 'ended' must be true or false, got {ended!r}")

    def target(self, sample: Sample, language: str | None = None) -> str:
        """The whole conversation, closed: every token is supervised."""
        return render(sample.fields["messages"])

    def for_training(self, samples: list[Sample]) -> list[Sample]:
        """Positive-only training: the conversations that ended."""
        return [s for s in samples if s.fields.get("ended") is True]

    def decode(self, task_model: TaskModel, samples: list[Sample], batch_size: int = 8, progress: bool = True,
               force_language: bool = True) -> list[dict[str, Any]]:
        """P(<|im_end|>) after each conversation with its last message left open (the turn-detector seed)."""
        from adaptkit.eval.run import end_probabilities

        probabilities = end_probabilities(task_model, [s.fields["messages"] for s in samples])
        return [{"language_pair": s.fields.get("language_pair"), "reference": s.fields["ended"], "probability": p}
                for s, p in zip(samples, probabilities)]

    def score(self, rows: list[dict[str, Any]], source: str, known_tokens: Iterable[str] = ()) -> Scores:
        """`score.score_turn_end` (probabilities: no token can leak)."""
        from adaptkit.eval.score import score_turn_end

        return score_turn_end(rows, source=source)

    def report(self, scores: Scores, title: str, meta: dict[str, Any]) -> EvalReport:
        """Headline, threshold sweep, probability by true class, breakdowns."""
        from adaptkit.eval.score import turn_end_report

        return turn_end_report(scores, title, meta)

    def verifier(self, task_model: TaskModel, words: Any | None = None) -> Any:
        """`EndOfTurnVerifier`: P(<|im_end|>) on the words spoken before the silence (`words`: where
        they come from, `adaptkit.turn.words`; default the punctuated reference words)."""
        from adaptkit.turn.verifiers import EndOfTurnVerifier

        return EndOfTurnVerifier(task_model, words)


def read_turn_end(path: str | Path) -> list[Sample]:
    """The lines of a turn_end.jsonl, each checked as the task checks it (`fields`: the line as written)."""
    from adaptkit.data.manifest import read_manifest

    turn_end = TurnEnd()
    samples, _ = read_manifest(path, set(), require=turn_end.require, check=turn_end.check, audio=False)
    return samples
