"""How fast `score_speaker_asr` scores 1,000 utterances (no decoding): the target is under 10 s.

    python benchmarks/score_speed.py [--n 1000] [--no-der] [--seed 0]

Generates two-speaker calls (about 40 words per speaker, in alternating turns with timed units),
hypotheses with word errors and occasional speaker slips, then times scoring (cpWER, WER, WDER,
speaker count, borrowed-time DER, degeneration checks) and prints seconds and utterances per second.
"""

from __future__ import annotations

import argparse
import random
import time

VOCAB = ("account bank card charge refund order number please thank you calling help today month bill plan "
         "data roaming week check status cancel payment address name phone email confirm transfer balance fee "
         "branch morning afternoon problem sorry sure okay yes no maybe I we they it this that these those "
         "would could should will can might need want like have has had get got make made send sent receive "
         "received pay paid open close closed new old last next first second third every another same other "
         "delivery package parcel tracking courier store online website app password login code security "
         "limit credit debit savings interest loan mortgage insurance claim policy premium renewal contract "
         "internet router signal network outage engineer visit appointment schedule monday tuesday friday "
         "weekend evening minute hour day year again still already just only really quite very much many "
         "because since while before after during until about around between through into onto from with").split()


def make_sample(rng: random.Random, k: int, with_units: bool) -> dict:
    """One two-speaker call: ~40 words per speaker, 3-5 turns each, ~15 % word errors."""
    turns = rng.randint(3, 5)
    units, t = [], 0.0
    for i in range(2 * turns):
        words = [rng.choice(VOCAB) for _ in range(rng.randint(6, 12))]
        dur = 0.35 * len(words)
        units.append({"speaker": f"spk_{i % 2}", "start": round(t, 3), "end": round(t + dur, 3),
                      "text": " ".join(words)})
        t += dur + rng.uniform(0.1, 0.8)
    reference = " ".join(f"<|{u['speaker']}|> {u['text']}" for u in units)
    hyp_turns = []
    for u in units:
        words = []
        for w in u["text"].split():
            r = rng.random()
            if r < 0.05:
                continue                                   # deletion
            words.append(rng.choice(VOCAB) if r < 0.10 else w)  # substitution
            if r > 0.95:
                words.append(rng.choice(VOCAB))            # insertion
        speaker = u["speaker"] if rng.random() > 0.1 else ("spk_1" if u["speaker"] == "spk_0" else "spk_0")
        hyp_turns.append(f"<|{speaker}|> " + " ".join(words))
    sample = {"id": f"bench_{k:05d}", "reference": reference, "hypothesis": " ".join(hyp_turns),
              "language": "en", "set": "test_id" if k % 2 else "test_ood", "ended_with_eos": True}
    if with_units:
        sample["units"] = units
    return sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-der", action="store_true", help="leave out the timed units (no DER)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    from adaptkit.eval.score import score_speaker_asr  # imports meeteval, pyannote, jiwer, sklearn

    t_import = time.perf_counter() - t0
    rng = random.Random(args.seed)
    samples = [make_sample(rng, k, not args.no_der) for k in range(args.n)]
    t1 = time.perf_counter()
    scores = score_speaker_asr(samples)
    seconds = time.perf_counter() - t1
    o = scores.overall
    print(f"scored {args.n} utterances in {seconds:.2f} s ({args.n / seconds:.0f} utterances/s; "
          f"imports {t_import:.2f} s, not counted)")
    print(f"cpWER {o['cp_error_rate']:.3f}  WER {o['error_rate']:.3f}  WDER {o['wder']:.3f}  "
          f"DER {o['der'] if o['der'] is None else round(o['der'], 3)}  degenerate {o['degenerate']:.3f}")


if __name__ == "__main__":
    main()
