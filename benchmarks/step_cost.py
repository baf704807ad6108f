"""Cost of one training step of the projector + speaker rows, against the naive step and a forward.

Tiny Qwen3-ASR at the real vocabulary size (151,936 rows), batch 4 x 2 s of audio. Prints, from
one run: our step / the naive step (the model's own forward with full logits and autograd, then
backward), target <= 0.5; and our step / a no-grad forward of the same batch, target <= 2.5; and
the memory the aten ops of one adaptkit step allocate, counted (not timed, so a loaded machine does
not move it). `--peft-forward` trains the token rows through peft's own forward (a full copy of
the embedding and output matrices per step), as adaptkit did before `SparseTokensLayer`.

    python benchmarks/step_cost.py [--repeats 10] [--peft-forward]

The output of the last run is committed beside this file (`step_cost.txt`).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from peft.tuners.trainable_tokens.layer import TrainableTokensLayer
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from adaptkit.data.batching import collate, encode
from adaptkit.data.manifest import Sample
from adaptkit.freeze import apply, train_mode, trainable_parameters
from adaptkit.freeze.token_layer import SparseTokensLayer
from adaptkit.models import architecture, build_tiny
from adaptkit.train.step import SpeechLMLoss

VOCAB = 151_936


def batch_of(tok, fam, n: int = 4, seconds: float = 2.0) -> dict:
    """n samples of `seconds` of noise, each with a 20-token speaker-tagged target per 2 s of audio
    (10 supervised tokens a second, more than speech has), as the engine builds them."""
    import soundfile as sf
    import tempfile

    rng = np.random.default_rng(0)
    text = " ".join(["<|spk_0|> hello order <|spk_1|> thank you one two three"] * max(1, round(seconds / 2)))
    items = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(n):
            path = f"{folder}/{i}.wav"
            sf.write(path, rng.standard_normal(int(16000 * seconds)).astype("float32") * 0.1, 16000)
            sample = Sample(id=str(i), where="bench", audio=path, text=text)
            items.append(encode(sample, fam, tok, fam.tiny_feature_extractor(), "language English<asr_text>" + text, "", 16000))
    batch = collate(items, tok.pad_token_id)
    batch["index"] = torch.arange(n)
    return batch


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class AllocatedBytes(TorchDispatchMode):
    """Sums the bytes of the new storage every aten op returns while active (views of inputs not counted)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        new = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)}
        self.total += sum(n for ptr, n in new.items() if ptr not in inputs)
        return out


def allocated_mb(fn) -> float:
    """MB the aten ops allocate in one call of `fn`."""
    with AllocatedBytes() as count:
        fn()
    return count.total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--peft-forward", action="store_true", help="token rows through peft's forward (full-matrix copies)")
    args = parser.parse_args()
    if args.peft_forward:
        SparseTokensLayer.forward_adapters = TrainableTokensLayer.forward_adapters
    torch.manual_seed(0)
    fam = architecture("qwen3_asr")
    model, tok = build_tiny("qwen3_asr", vocab_size=VOCAB)
    model, report = apply(model, {"add_tokens": ["<|spk_0|>", "<|spk_1|>"], "train": ["projector", {"tokens": "added"}]}, tokenizer=tok)
    train_mode(model)
    batch = batch_of(tok, fam)
    model_inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "input_features", "feature_attention_mask", "labels")}
    opt = torch.optim.AdamW(trainable_parameters(model), lr=1e-4)

    def naive():
        model.thinker(**model_inputs).loss.backward()
        opt.step()
        opt.zero_grad()

    def ours(cache):
        module = SpeechLMLoss(model, fam, encoder_trains=False, cache=cache)

        def step():
            loss_sum, weight = module(batch)
            (loss_sum / weight).backward()
            opt.step()
            opt.zero_grad()
        return step

    def forward():
        with torch.no_grad():
            model.thinker(**model_inputs)

    t_naive = timed(naive, args.repeats)
    t_ours = timed(ours(None), args.repeats)
    t_cached = timed(ours({}), args.repeats)
    t_fwd = timed(forward, args.repeats)
    cached_step = ours({})
    cached_step()  # fills the cache: the count is of a step as every epoch after the first runs it
    mb_step = allocated_mb(cached_step)
    tokens = int(batch["attention_mask"].sum())
    print(f"tiny Qwen3-ASR, vocab {VOCAB:,}, batch 4 x 2 s ({tokens} tokens), {report.trainable_total:,} trainable parameters, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}, token rows through "
          f"{'peft' if args.peft_forward else 'SparseTokensLayer'}")
    print(f"naive step (full logits, autograd):   {t_naive * 1000:8.1f} ms")
    print(f"adaptkit step (encoder no-grad):     {t_ours * 1000:8.1f} ms")
    print(f"adaptkit step (encoder cached):      {t_cached * 1000:8.1f} ms")
    print(f"no-grad forward (full logits):       {t_fwd * 1000:8.1f} ms")
    print(f"allocated by one adaptkit step (encoder cached): {mb_step:8.1f} MB")
    print(f"step / naive step:        {t_ours / t_naive:.3f}  (cached {t_cached / t_naive:.3f})  target <= 0.5")
    print(f"step / no-grad forward:   {t_ours / t_fwd:.3f}  (cached {t_cached / t_fwd:.3f})  target <= 2.5")


if __name__ == "__main__":
    main()
