"""`adaptkit synth`: a thin click wrapper around `adaptkit.synth.generate`."""

from __future__ import annotations

from pathlib import Path

import click

from adaptkit.errors import AdaptkitError
from adaptkit.synth.config import SynthConfig


def _names(values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeated options and comma lists alike: ("ja,en", "zh") -> ("ja", "en", "zh")."""
    return tuple(x.strip() for v in values for x in v.split(",") if x.strip())


@click.command("synth")
@click.option("--lang", "langs", multiple=True, default=("ja",), show_default=True, help="Language(s): ja, en, zh, ms, ta; repeat or give a comma list.")
@click.option("--n", type=int, default=50, show_default=True, help="Conversations over all splits.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="Output folder.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes, for any --jobs.")
@click.option("--jobs", type=int, default=0, help="Worker processes [default: one per core].")
@click.option("--telephone/--wideband", default=False, show_default=True, help="Channel of train and in-domain test (out-of-domain gets the other).")
@click.option("--snr", type=float, default=None, help="Add white noise at this SNR in dB.")
@click.option("--stereo", is_flag=True, help="Also write <id>.stereo.wav, one channel per speaker.")
@click.option("--force", is_flag=True, help="Overwrite an output folder that already holds data.")
@click.option("--duration", type=float, default=20.0, show_default=True, help="Target seconds per conversation.")
@click.option("--splits", default="0.8,0.1,0.1", show_default=True, help="train,test_id,test_ood as counts (40,5,5) or fractions of --n.")
@click.option("--voice", "voices", multiple=True, help="Voices for train and in-domain test (repeat or comma list); the others stay unseen.")
@click.option("--ood-lang", "ood_langs", multiple=True, help="Language(s) of the out-of-domain test instead of --lang.")
@click.option("--pause-prob", type=float, default=SynthConfig.pause_prob, show_default=True, help="Pause at a clause boundary inside a turn (0: OpenETD V1).")
@click.option("--filler-prob", type=float, default=SynthConfig.filler_prob, show_default=True, help="Filler before a pause (0: OpenETD V2).")
@click.option("--backchannel-prob", type=float, default=SynthConfig.backchannel_prob, show_default=True, help="Listener backchannel inside a pause.")
@click.option("--overlap-prob", type=float, default=SynthConfig.overlap_prob, show_default=True, help="Next turn starts before the last one ends.")
def synth(langs, n, out, seed, jobs, telephone, snr, stereo, force, duration, splits, voices, ood_langs, pause_prob, filler_prob, backchannel_prob, overlap_prob) -> None:
    """Make two-speaker call-centre conversations with exact labels (espeak-ng, offline)."""
    try:
        try:
            split_values = tuple(float(x) for x in splits.split(","))
        except ValueError:
            raise AdaptkitError(f"--splits takes three numbers like 40,5,5 or 0.8,0.1,0.1, got {splits!r}") from None
        cfg = SynthConfig(
            out=out, langs=_names(langs), n=n, splits=split_values, seed=seed, jobs=jobs, telephone=telephone, snr=snr,
            stereo=stereo, force=force, duration=duration, voices=_names(voices), ood_langs=_names(ood_langs),
            pause_prob=pause_prob, filler_prob=filler_prob, backchannel_prob=backchannel_prob, overlap_prob=overlap_prob,
        )
        from adaptkit.synth.dataset import generate  # scipy loads only when the command runs

        result = generate(cfg)
    except AdaptkitError as e:
        click.echo(f"error: {e}", err=True)
        raise click.exceptions.Exit(2) from None
    except OSError as e:  # read-only, not a folder, disk full: one line naming the path
        click.echo(f"error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", err=True)
        raise click.exceptions.Exit(2) from None
    click.echo(
        f"wrote {result.conversations} conversations ({result.audio_seconds / 60:.1f} min of audio) to {out} "
        f"in {result.wall_seconds:.1f} s: {result.speed:.0f}x real time"
    )


if __name__ == "__main__":
    synth()
