"""A LiveKit end-of-turn detector around `adaptkit.end_of_turn.EndOfTurnScorer`.

It has the shape of LiveKit's turn detector plugins (`livekit.agents.voice.turn._TurnDetector`):
`predict_end_of_turn(chat_ctx)` returns P(end of turn) for the conversation so far,
`unlikely_threshold(language)` the probability under which the agent should wait longer (None for a
language it does not support), `supports_language(language)`. Pass it as `turn_detection=` of an
`AgentSession`. The chat context is read through `chat_ctx.items` (messages with a role and
`text_content`), so a LiveKit `ChatContext` is taken as it is.

Consecutive calls on a growing conversation (the same messages, the last one longer) feed only the
new text to the scorer's KV cache; anything else starts over.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

from torch import nn

from adaptkit.errors import AdaptkitError
from adaptkit.end_of_turn import EndOfTurnScorer

ROLES = ("user", "assistant")


def messages_of(chat_ctx: Any, max_messages: int | None = None) -> list[dict[str, str]]:
    """The user and assistant messages of a LiveKit chat context as {role, content} dicts."""
    out = []
    for item in getattr(chat_ctx, "items", chat_ctx):
        role, text = getattr(item, "role", None), getattr(item, "text_content", None)
        if getattr(item, "type", "message") == "message" and role in ROLES and text and text.strip():
            out.append({"role": role, "content": text})
    return out[-max_messages:] if max_messages else out


class EndOfTurnDetector:
    """LiveKit-shaped turn detector: P(`<|im_end|>`) from an adaptkit end-of-turn model."""

    def __init__(self, model: nn.Module, tokenizer, thresholds: Mapping[str, float], max_messages: int | None = 6,
                 name: str = "adaptkit-turn-end"):
        if not thresholds:
            raise AdaptkitError("livekit detector: give at least one language threshold, e.g. {'en': 0.5}")
        bad = {k: v for k, v in thresholds.items() if not 0.0 <= float(v) <= 1.0}
        if bad:
            raise AdaptkitError(f"livekit detector: thresholds must lie in [0, 1], got {bad}")
        self.scorer = EndOfTurnScorer(model, tokenizer)
        self.thresholds = {k.lower(): float(v) for k, v in thresholds.items()}
        self.max_messages, self._name = max_messages, name
        self._scored: list[dict[str, str]] = []
        self._last = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_adapter(cls, path: str, thresholds: Mapping[str, float], **kwargs) -> "EndOfTurnDetector":
        """A detector on a trained turn_end adapter (or recipe, or merged checkpoint)."""
        from adaptkit.eval.run import load_task_model
        from adaptkit.tasks import TurnEnd

        task_model = load_task_model(path, TurnEnd.name)
        return cls(task_model.loaded.architecture.text_model(task_model.loaded.model), task_model.loaded.tokenizer, thresholds, **kwargs)

    @property
    def model(self) -> str:
        """The model's name, as LiveKit's metrics report it."""
        return self._name

    @property
    def provider(self) -> str:
        """Who provides the model."""
        return "adaptkit"

    def _threshold(self, language: str | None) -> float | None:
        if language is None:
            return self.thresholds.get("*")
        code = str(language).lower().replace("_", "-")
        return self.thresholds.get(code, self.thresholds.get(code.split("-")[0], self.thresholds.get("*")))

    async def unlikely_threshold(self, language: str | None) -> float | None:
        """The probability below which the turn is unlikely to be over ('*' keys any language)."""
        return self._threshold(language)

    async def supports_language(self, language: str | None) -> bool:
        """Whether a threshold is known for `language`."""
        return self._threshold(language) is not None

    def probability(self, messages: list[dict[str, str]]) -> float:
        """P(end of turn) after `messages`, fed incrementally when they extend the last ones scored."""
        if not messages:
            raise AdaptkitError("livekit detector: the chat context has no user or assistant message")
        old = self._scored
        grows = (len(old) == len(messages) and old[:-1] == messages[:-1] and old[-1]["role"] == messages[-1]["role"]
                 and messages[-1]["content"].startswith(old[-1]["content"]))
        if grows and messages[-1]["content"] == old[-1]["content"]:
            return self._last
        if grows:
            self._last = self.scorer.add(messages[-1]["content"][len(old[-1]["content"]):])
        else:
            self._last = self.scorer.start(messages)
        self._scored = [dict(m) for m in messages]
        return self._last

    async def predict_end_of_turn(self, chat_ctx: Any, *, timeout: float | None = None) -> float:
        """P(end of turn) for a LiveKit chat context (run in a worker thread, one at a time)."""
        messages = messages_of(chat_ctx, self.max_messages)
        async with self._lock:
            return await asyncio.wait_for(asyncio.to_thread(self.probability, messages), timeout)
