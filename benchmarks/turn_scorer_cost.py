"""Incremental end-of-turn scoring against full recomputation, measured in one run.

A causal LM of Qwen3 shape (hidden 512, 4 layers), a conversation of 256+ tokens, then words added
one at a time: prints the median time of one incremental update, of one full recomputation at the
same length, their ratio (target <= 0.3), and the largest probability difference (target <= 1e-5).

    python benchmarks/turn_scorer_cost.py [--context 256] [--updates 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from adaptkit.models.tokenizer import tiny_tokenizer
from adaptkit.end_of_turn import EndOfTurnScorer

WORDS = "thank you for calling customer support how can I help you with your order today".split()


SHAPES = {
    "512 x 4": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8,
                    num_key_value_heads=4, head_dim=64),
    "Qwen3-0.6B": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
}
"""Causal LM shapes the scorer is timed on: a small Qwen3 shape, and Qwen3-0.6B's own configuration
(the published config.json of Qwen/Qwen3-0.6B)."""


def qwen3_shape_model(vocab_size: int, shape: str = "512 x 4") -> Qwen3ForCausalLM:
    """A random causal LM of a `SHAPES` shape with `vocab_size` rows, in eval mode."""
    torch.manual_seed(0)
    return Qwen3ForCausalLM(Qwen3Config(vocab_size=vocab_size, **SHAPES[shape])).eval()


def conversation(tok, context: int) -> list[dict]:
    """Alternating assistant / user messages until the rendered conversation has `context` tokens or more."""
    history, text = [], ""
    while len(tok(text)["input_ids"]) < context:
        history.append({"role": "user" if len(history) % 2 else "assistant", "content": " ".join(WORDS)})
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in history)
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--updates", type=int, default=20)
    args = parser.parse_args()
    tok = tiny_tokenizer()
    model = qwen3_shape_model(len(tok) + 64)
    history = conversation(tok, args.context)
    scorer = EndOfTurnScorer(model, tok)
    scorer.start(history + [{"role": "user", "content": "I would"}])
    incremental, full, worst = [], [], 0.0
    for i in range(args.updates):
        start = time.perf_counter()
        p = scorer.add(" " + WORDS[i % len(WORDS)])
        incremental.append(time.perf_counter() - start)
        start = time.perf_counter()
        q = scorer.full()
        full.append(time.perf_counter() - start)
        worst = max(worst, abs(p - q))
    inc, rec = statistics.median(incremental), statistics.median(full)
    print(f"context {len(scorer.ids)} tokens after {args.updates} updates, {torch.get_num_threads()} threads")
    print(f"incremental update: {inc * 1000:.2f} ms   full recomputation: {rec * 1000:.2f} ms")
    print(f"update / recomputation: {inc / rec:.3f}  (target <= 0.3);  max |p_incremental - p_full| = {worst:.2e} (target <= 1e-5)")


if __name__ == "__main__":
    main()
