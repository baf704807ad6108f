"""The `Task` base class: what a model is asked to produce for a sample, and how eval decodes and scores it.

A task owns everything that differs between tasks: the manifest keys it needs, the target text,
the tokens it adds, how a test set is decoded, which scoring function and report section it uses,
its metric names and the one that ranks models. Nothing outside `adaptkit.tasks` looks at a task's
name. Task classes import eval code lazily inside their methods, so `adaptkit.tasks` stays light
(recipe validation and the CLI read it at import time).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Iterable

from adaptkit.data.manifest import Sample

if TYPE_CHECKING:
    from adaptkit.eval.decode import Decoded
    from adaptkit.eval.report import EvalReport
    from adaptkit.eval.run import TaskModel
    from adaptkit.eval.score import Scores


class Task(ABC):
    """One task; subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    """The task's name in recipes, adapters, decoded rows and `--task`."""
    title: ClassVar[str]
    """The title of its eval report."""
    require: ClassVar[tuple[str, ...]] = ()
    """Manifest keys it needs beyond audio and text."""
    audio: ClassVar[bool] = True
    """False for a text-only task (its manifest lines have no audio)."""
    allowed_tokens: ClassVar[tuple[str, ...]] = ()
    """The tokens its answers use that the recipe must add (empty when the recipe chooses them)."""
    metrics: ClassVar[tuple[str, ...]]
    """Its headline metrics: keys of `Scores.overall` that train.best_metric may name."""
    headline_metric: ClassVar[str]
    """The metric that ranks its models when none is named."""
    transcribes: ClassVar[bool] = False
    """True when its answer (`hypothesis`) is a transcript of the audio: an ASR in the loop may read it."""

    def check(self, sample: Sample) -> None:
        """Raise AdaptkitError for a sample the task cannot use (default: every sample is usable)."""

    @abstractmethod
    def target(self, sample: Sample, language: str | None = None) -> str:
        """The assistant text the model learns for `sample` (`language`: the recipe's, when the sample has none)."""

    def answer_prefix(self, language: str | None) -> str:
        """What the prompt forces before the answer in `language` (default: nothing)."""
        return ""

    def for_training(self, samples: list[Sample]) -> list[Sample]:
        """The samples that train (default: all of them)."""
        return samples

    @abstractmethod
    def decode(self, task_model: TaskModel, samples: list[Sample], batch_size: int = 8, progress: bool = True,
               force_language: bool = True) -> list[dict[str, Any]]:
        """One dict per sample with what scoring needs besides id, set and language (added by the caller)."""

    @abstractmethod
    def score(self, rows: list[dict[str, Any]], source: str, known_tokens: Iterable[str] = ()) -> Scores:
        """Score decoded rows; `known_tokens`: the tokenizer's control tokens (leaks when not allowed)."""

    @abstractmethod
    def report(self, scores: Scores, title: str, meta: dict[str, Any]) -> EvalReport:
        """The report of its scores: headline, breakdowns and its own sections."""

    def verifier(self, task_model: TaskModel, words: Any | None = None) -> Any | None:
        """An end-of-turn verifier on `task_model` for the streaming cascade, or None when the task gives
        none; `words` (`adaptkit.turn.words`) is what a verifier that reads words reads."""
        return None


class GeneratingTask(Task):
    """A task whose answers are generated text: eval decodes each sample and keeps the output."""

    def decode(self, task_model: TaskModel, samples: list[Sample], batch_size: int = 8, progress: bool = True,
               force_language: bool = True) -> list[dict[str, Any]]:
        """Generate an answer per sample (the answer prefix forced when `force_language` and the language is known)."""
        from adaptkit.eval.run import generate

        answers = [self.target(s, task_model.language) for s in samples]
        prefixes = [self.answer_prefix(s.language or task_model.language) if force_language and (s.language or task_model.language)
                    else "" for s in samples]
        out = generate(task_model, samples, answers, prefixes, list(self.allowed_tokens), batch_size, progress)
        return [{"hypothesis": d.text, "raw": d.raw, "ended_with_eos": d.ended_with_eos, "tokens": d.tokens,
                 **self.reference(s, d)} for s, d in zip(samples, out)]

    @abstractmethod
    def reference(self, sample: Sample, decoded: Decoded) -> dict[str, Any]:
        """The row's reference fields (and what else scoring reads from the decoded output)."""
