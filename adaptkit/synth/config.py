"""The options of `adaptkit synth`; each field's docstring is its documentation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "test_id", "test_ood")
"""Split names: training, in-domain test, out-of-domain test (unseen voices, the other channel)."""


@dataclass
class SynthConfig:
    """What to synthesise, where, and how conversations are timed."""

    out: Path
    """Output folder; one sub-folder per split and a README.md are written there."""
    langs: tuple[str, ...] = ("ja",)
    """Languages (ja, en, zh, ms, ta); conversation i of a split speaks langs[i % len(langs)]."""
    n: int = 50
    """Number of conversations over all splits (ignored when `splits` are counts)."""
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """train, test_id, test_ood: counts when all are whole numbers (40,5,5), else fractions of n."""
    seed: int = 0
    """Conversation i of split s is drawn from the seed (seed, s, i): the same for any job count."""
    jobs: int = 0
    """Worker processes; 0 means one per available core."""
    telephone: bool = False
    """Train and in-domain test go through the telephone channel (300-3400 Hz, 8 kHz mu-law)."""
    snr: float | None = None
    """Add white noise at this signal-to-noise ratio in dB (None: clean)."""
    stereo: bool = False
    """Also write `<id>.stereo.wav`, one channel per speaker (channel 0 is spk_0)."""
    force: bool = False
    """Overwrite an output folder that already holds data."""
    duration: float = 20.0
    """Target length of a conversation in seconds: the call starts closing when a turn ends past
    65% of it (at most 8 s before it); a call always has an opening, the customer's problem and
    a goodbye, so it lasts about 8 s or more."""
    voices: tuple[str, ...] = ()
    """Voice names for train and in-domain test (default: the presets marked seen); the rest are unseen."""
    ood_langs: tuple[str, ...] = ()
    """Languages of the out-of-domain test instead of `langs` (e.g. one not trained on)."""
    gap_median: float = 0.3
    """Median gap between turns in seconds; gaps follow a gamma distribution."""
    gap_shape: float = 2.0
    """Shape of the gap gamma distribution (2 = Erlang-2)."""
    overlap_prob: float = 0.15
    """Probability that a turn starts before the previous one ends (0.1-0.6 s, at most half of either unit)."""
    pause_prob: float = 0.35
    """Probability of a pause at each clause boundary inside a turn (OpenETD V2; 0 gives V1)."""
    pause_min: float = 0.25
    """Shortest within-turn pause in seconds."""
    pause_median: float = 0.6
    """Median within-turn pause in seconds (pause_min plus a gamma draw)."""
    filler_prob: float = 0.5
    """Probability that a filler word precedes a pause (OpenETD V3; 0 gives V2)."""
    backchannel_prob: float = 0.4
    """Probability that the listener says a backchannel inside a pause (0.2-0.5 s of silence each side)."""
    tag_context: float = 8.0
    """Turn-tag samples start this many seconds before the unit end (0: at the conversation start)."""
