"""Cost of one training step of the projector + speaker rows, against the naive step and a forward.

Tiny Qwen3-ASR at the real vocabulary size (151,936 rows), batch 4 x 2 s of audio. Prints, from
one run: our step / the naive step (the model's own forward with full logits and autograd, then
backward), target <= 0.5; and our step / a no-grad forward of the same batch, target <= 2.5.

    python benchmarks/step_cost.py [--repeats 10]

The output of the last run is committed beside this file (`step_cost.txt`).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from adaptkit.data.batching import collate, encode
from adaptkit.data.manifest import Sample
from adaptkit.freeze import apply, train_mode, trainable_parameters
from adaptkit.models import architecture, build_tiny
from adaptkit.models.qwen3_asr import tiny_feature_extractor
from adaptkit.train.step import SpeechLMLoss

VOCAB = 151_936


def batch_of(tok, fam, n: int = 4) -> dict:
    """n samples of 2 s of noise with a 20-token speaker-tagged target, as the engine builds them."""
    import soundfile as sf
    import tempfile

    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        path = tempfile.mktemp(suffix=".wav")
        sf.write(path, rng.standard_normal(32000).astype("float32") * 0.1, 16000)
        sample = Sample(id=str(i), where="bench", audio=path, text="<|spk_0|> hello order <|spk_1|> thank you one two three")
        items.append(encode(sample, fam, tok, tiny_feature_extractor(), "language English<asr_text>" + sample.text, "", 16000))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
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
    tokens = int(batch["attention_mask"].sum())
    print(f"tiny Qwen3-ASR, vocab {VOCAB:,}, batch 4 x 2 s ({tokens} tokens), {report.trainable_total:,} trainable parameters, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"naive step (full logits, autograd):   {t_naive * 1000:8.1f} ms")
    print(f"adaptkit step (encoder no-grad):     {t_ours * 1000:8.1f} ms")
    print(f"adaptkit step (encoder cached):      {t_cached * 1000:8.1f} ms")
    print(f"no-grad forward (full logits):       {t_fwd * 1000:8.1f} ms")
    print(f"step / naive step:        {t_ours / t_naive:.3f}  (cached {t_cached / t_naive:.3f})  target <= 0.5")
    print(f"step / no-grad forward:   {t_ours / t_fwd:.3f}  (cached {t_cached / t_fwd:.3f})  target <= 2.5")


if __name__ == "__main__":
    main()
