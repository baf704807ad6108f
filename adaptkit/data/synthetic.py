"""A recipe's `data.synth` section made into manifests: the one place training and compare
generate synthetic calls (adaptkit.synth is imported only when data must be made)."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def synth_manifests(section, folder: Path, task: str, make: bool = True) -> tuple[str, str]:
    """The train and in-domain test manifests of `task` under `folder`; with `make`, the calls are
    generated first when the train manifest is missing (synth overwrites `folder`)."""
    name = f"{task}.jsonl"
    if make and not (folder / "train" / name).is_file():
        from adaptkit.synth import SynthConfig, generate

        result = generate(SynthConfig(out=folder, langs=tuple(section.langs), n=section.n, duration=section.duration,
                                      telephone=section.telephone, seed=section.seed, force=True))
        log.info("generated %d conversations into %s (%.0fx real time)", result.conversations, folder, result.speed)
    return str(folder / "train" / name), str(folder / "test_id" / name)
