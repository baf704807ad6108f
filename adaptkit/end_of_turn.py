"""P(`<|im_end|>`) for a conversation so far, scored incrementally as words arrive.

The turn-detector seed scores the chat-templated conversation with the last `<|im_end|>` removed
and reads the probability of `<|im_end|>` as the next token. Re-running the whole prefix for each
new word costs O(context) per update; this scorer keeps the model's KV cache and feeds only the new
tokens. Works with any transformers causal LM whose forward takes `past_key_values`. `score(messages)`
takes the whole conversation each time and feeds only the tokens after the ones it shares with the
last call (a cropped cache where the last tokens changed), so a caller that re-renders the
conversation on every chunk pays only for what is new. The ids go to the model's own device.

`adaptkit eval` scores the turn_end task with it, the cascade's `EndOfTurnVerifier` and the LiveKit
detector ask it. It sits beside `adaptkit.eval` and `adaptkit.turn`, not in either, so that eval
never imports turn (turn builds on eval's metrics and model loading).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from transformers import DynamicCache

from adaptkit.devices import model_place
from adaptkit.errors import AdaptkitError
from adaptkit.tasks.turn_end import END, render


def shared_prefix(a: list[int], b: list[int]) -> int:
    """How many leading ids `a` and `b` have in common."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class EndOfTurnScorer:
    """Incremental end-of-turn probabilities: `start(messages)` then `add(words)` as they arrive."""

    def __init__(self, model: nn.Module, tokenizer, end_token: str = END):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.end_id = tokenizer.convert_tokens_to_ids(end_token)
        if self.end_id is None or self.end_id == tokenizer.unk_token_id:
            raise AdaptkitError(f"end-of-turn scorer: {end_token} is not a token of this tokenizer")
        self.cache: DynamicCache | None = None
        self.ids: list[int] = []
        self.last: float | None = None
        """The probability after `ids`."""
        self.tokens_fed = 0
        """Tokens run through the model so far (what the cache saves shows here)."""
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
        """Only the last position's logits are read: where the model can, only that row of the output layer runs."""

    def _tensor(self, ids: list[int]) -> torch.Tensor:
        return torch.tensor([ids], device=model_place(self.model)[0])

    def _feed(self, ids: list[int]) -> float:
        if not ids:
            raise AdaptkitError("end-of-turn scorer: nothing to add")
        with torch.no_grad():
            out = self.model(input_ids=self._tensor(ids), past_key_values=self.cache, use_cache=True, **self._last_only)
        self.cache = out.past_key_values
        self.ids += ids
        self.tokens_fed += len(ids)
        self.last = float(torch.softmax(out.logits[0, -1].float(), dim=-1)[self.end_id])
        return self.last

    def _prompt(self, messages: list[dict]) -> list[int]:
        return self.tokenizer(render(messages, close_last=False), add_special_tokens=False)["input_ids"]

    def reset(self) -> None:
        """Forget the cached conversation."""
        self.cache, self.ids, self.last = None, [], None

    def start(self, messages: list[dict]) -> float:
        """Score a conversation whose last message is still open (its `<|im_end|>` left off)."""
        self.cache, self.ids = DynamicCache(), []
        return self._feed(self._prompt(messages))

    def score(self, messages: list[dict]) -> float:
        """`start(messages)`'s probability, computed from the cache: only the tokens after those the
        conversation shares with the last one scored run through the model (none when it is the same)."""
        ids = self._prompt(messages)
        if ids == self.ids and self.last is not None:
            return self.last
        keep = min(shared_prefix(self.ids, ids), len(ids) - 1)  # at least one token to read the next-token logits
        if self.cache is None or keep <= 0:
            self.cache, self.ids = DynamicCache(), []
            return self._feed(ids)
        if keep < len(self.ids):  # the last tokens changed (a word merged into a longer token): drop them
            self.cache.crop(keep - len(self.ids))  # a negative count removes that many on transformers 4.57 and 5
            self.ids = self.ids[:keep]
        return self._feed(ids[keep:])

    def add(self, text: str) -> float:
        """Append `text` (e.g. " next words") to the open message and return the new probability."""
        return self._feed(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def full(self) -> float:
        """The same probability recomputed over every token so far, without the cache (for checks)."""
        with torch.no_grad():
            logits = self.model(input_ids=self._tensor(self.ids), use_cache=False, **self._last_only).logits
        return float(torch.softmax(logits[0, -1].float(), dim=-1)[self.end_id])
