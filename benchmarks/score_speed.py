"""How fast adaptkit scores 1,000 utterances (no decoding), against meeteval's own cpWER time.

    python benchmarks/score_speed.py [--n 1000] [--no-der] [--seed 0] [--repeats 5]

Generates two-speaker calls (about 40 words per speaker, in alternating turns with timed units),
hypotheses with word errors and occasional speaker slips, then times

- cpWER alone: meeteval's `cp_word_error_rate` on speaker -> text dicts prepared beforehand (its
  own time), against adaptkit's `speaker_metrics.cp_error` on the tagged transcripts (parsing the
  tags, normalising, tokenising and the same meeteval call); the ratio adaptkit / meeteval is
  the target (<= 1.5). Each side is timed `--repeats` times, interleaved, and its fastest run kept,
  so that load from other processes does not decide the ratio.
- full scoring (`score_speaker_asr`: cpWER, WER, WDER, speaker count, borrowed-time DER,
  degeneration checks), once, in seconds and as a ratio to meeteval's cpWER time.

The output of the last run is committed beside this file (`score_speed.txt`).
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


def speaker_texts(tagged: str) -> dict[str, str]:
    """speaker -> its words joined, as meeteval takes them (the generated texts need no normalisation)."""
    out: dict[str, list[str]] = {}
    for part in tagged.split("<|")[1:]:
        speaker, _, text = part.partition("|>")
        out.setdefault(speaker, []).extend(text.split())
    return {k: " ".join(v) for k, v in out.items()}


def cp_times(samples: list[dict], repeats: int) -> tuple[float, float, bool]:
    """(adaptkit seconds, meeteval seconds, whether both count the same errors) for cpWER of every sample."""
    from meeteval.wer import cp_word_error_rate

    from adaptkit.eval.speaker_metrics import cp_error

    pairs = [(speaker_texts(s["reference"]), speaker_texts(s["hypothesis"])) for s in samples]
    ours, theirs = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        mine = [cp_error(s["reference"], s["hypothesis"], s["language"]).errors for s in samples]
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        other = [cp_word_error_rate(r, h, reference_sort=False, hypothesis_sort=False).errors for r, h in pairs]
        theirs.append(time.perf_counter() - t)
    return min(ours), min(theirs), mine == other


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-der", action="store_true", help="leave out the timed units (no DER)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per side for cpWER (the fastest counts)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    from adaptkit.eval.score import score_speaker_asr  # imports meeteval, pyannote, jiwer, sklearn

    t_import = time.perf_counter() - t0
    rng = random.Random(args.seed)
    samples = [make_sample(rng, k, not args.no_der) for k in range(args.n)]
    ours, theirs, errors = cp_times(samples, args.repeats)
    print(f"cpWER on {args.n} utterances: meeteval {theirs:.3f} s, adaptkit {ours:.3f} s, "
          f"adaptkit / meeteval = {ours / theirs:.2f} (fastest of {args.repeats}; same errors: {errors})")
    t1 = time.perf_counter()
    scores = score_speaker_asr(samples)
    seconds = time.perf_counter() - t1
    o = scores.overall
    print(f"full scoring of {args.n} utterances in {seconds:.2f} s ({args.n / seconds:.0f} utterances/s; "
          f"{seconds / theirs:.1f}x meeteval's cpWER time; imports {t_import:.2f} s, not counted)")
    print(f"cpWER {o['cp_error_rate']:.3f}  WER {o['error_rate']:.3f}  WDER {o['wder']:.3f}  "
          f"DER {o['der'] if o['der'] is None else round(o['der'], 3)}  degenerate {o['degenerate']:.3f}")


if __name__ == "__main__":
    main()
