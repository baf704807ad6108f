"""adaptkit synth: two-speaker telephone-style calls with exact labels, made offline by espeak-ng.

`generate(SynthConfig(out=...))` writes train / test_id / test_ood folders with a WAV, an RTTM
and a JSON per conversation, three JSONL task manifests per split, and a README.md. The
command line is `adaptkit synth` (see `adaptkit.synth.cli`).
"""

from adaptkit.synth.config import SPLITS, SynthConfig

__all__ = ["SPLITS", "SynthConfig", "SynthResult", "generate"]


def __getattr__(name: str):
    # generate pulls in scipy.signal (half a second); load it on first use so `adaptkit --help` stays fast
    if name in ("generate", "SynthResult"):
        from adaptkit.synth import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'adaptkit.synth' has no attribute {name!r}")
