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
                                      telephone=section.telephone, seed=section.seed, stereo=section.stereo, force=True))
        log.info("generated %d conversations into %s (%.0fx real time)", result.conversations, folder, result.speed)
    return str(folder / "train" / name), str(folder / "test_id" / name)


def first_turns_manifest(split: Path, out: Path, turns: int = 2) -> Path:
    """A speaker-ASR manifest of each synthetic call's first `turns` turns (start/end spans into the
    call's audio, tags from its units): short samples of the same calls, for quick training runs."""
    import json

    rows = []
    for line in (split / "speaker_asr.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        units = sorted(json.loads((split / f"{row['id']}.json").read_text(encoding="utf-8"))["units"], key=lambda u: u["start"])
        units = units[:turns]
        rows.append({"audio": str(split / row["audio"]), "language": row.get("language"), "id": row["id"],
                     "start": units[0]["start"], "end": max(u["end"] for u in units),
                     "text": " ".join(f"<|{u['speaker']}|> {u['text']}" for u in units)})
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return out
