"""P(`<|im_end|>`) for a conversation so far, scored incrementally as words arrive.

The turn-detector seed scores the chat-templated conversation with the last `<|im_end|>` removed
and reads the probability of `<|im_end|>` as the next token. Re-running the whole prefix for each
new word costs O(context) per update; this scorer keeps the model's KV cache and feeds only the new
tokens. Works with any transformers causal LM whose forward takes `past_key_values`.

`adaptkit eval` scores the turn_end task with it, the cascade's `EndOfTurnVerifier` and the LiveKit
detector ask it. It sits beside `adaptkit.eval` and `adaptkit.turn`, not in either, so that eval
never imports turn (turn builds on eval's metrics and model loading).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import DynamicCache

from adaptkit.errors import AdaptkitError
from adaptkit.tasks.turn_end import END, render


class EndOfTurnScorer:
    """Incremental end-of-turn probabilities: `start(messages)` then `add(words)` as they arrive."""

    def __init__(self, model: nn.Module, tokenizer, end_token: str = END):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.end_id = tokenizer.convert_tokens_to_ids(end_token)
        if self.end_id is None or self.end_id == tokenizer.unk_token_id:
            raise AdaptkitError(f"end-of-turn scorer: {end_token} is not a token of this tokenizer")
        self.cache: DynamicCache | None = None
        self.ids: list[int] = []

    def _feed(self, ids: list[int]) -> float:
        if not ids:
            raise AdaptkitError("end-of-turn scorer: nothing to add")
        with torch.no_grad():
            out = self.model(input_ids=torch.tensor([ids]), past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        self.ids += ids
        return float(torch.softmax(out.logits[0, -1].float(), dim=-1)[self.end_id])

    def start(self, messages: list[dict]) -> float:
        """Score a conversation whose last message is still open (its `<|im_end|>` left off)."""
        self.cache, self.ids = DynamicCache(), []
        return self._feed(self.tokenizer(render(messages, close_last=False), add_special_tokens=False)["input_ids"])

    def add(self, text: str) -> float:
        """Append `text` (e.g. " next words") to the open message and return the new probability."""
        return self._feed(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def full(self) -> float:
        """The same probability recomputed over every token so far, without the cache (for checks)."""
        with torch.no_grad():
            logits = self.model(input_ids=torch.tensor([self.ids]), use_cache=False).logits
        return float(torch.softmax(logits[0, -1].float(), dim=-1)[self.end_id])
