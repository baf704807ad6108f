"""End of turn as the probability of `<|im_end|>` (the turn-detector seed): text conversations only.

Training is positive-only, as in the seed: complete conversations, rendered with the chat template,
learned as plain language modelling, so the model learns where `<|im_end|>` goes. Lines with
`ended: false` are test material (the scorer asks for P(<|im_end|>) after them) and are left out of
training. Manifest lines: {"messages": [{"role": "user", "content": ...}, ...], "ended": bool}.
"""

from __future__ import annotations

from adaptkit.data.manifest import Sample
from adaptkit.errors import AdaptkitError

REQUIRE: tuple[str, ...] = ("messages", "ended")
AUDIO = False
END = "<|im_end|>"


def check(sample: Sample) -> None:
    """`messages` must be a non-empty list of {role, content} with text, `ended` a boolean."""
    messages, ended = sample.fields.get("messages"), sample.fields.get("ended")
    if not isinstance(messages, list) or not messages:
        raise AdaptkitError(f"{sample.where}: 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not str(m.get("content", "")).strip():
            raise AdaptkitError(f"{sample.where}: messages[{i}] needs a role (system, user, assistant) and non-empty content")
    if not isinstance(ended, bool):
        raise AdaptkitError(f"{sample.where}: 'ended' must be true or false, got {ended!r}")


def render(messages: list[dict], close_last: bool = True) -> str:
    """Chat-template text; without `close_last` the last `<|im_end|>` is left off (the scoring prompt)."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}{END}\n" for m in messages)
    return text if close_last else text[: -len(END) - 1]


def target(sample: Sample, language: str | None = None) -> str:
    """The whole conversation, closed: every token is supervised."""
    return render(sample.fields["messages"])


def for_training(samples: list[Sample]) -> list[Sample]:
    """Positive-only training: the conversations that ended."""
    return [s for s in samples if s.fields.get("ended") is True]
