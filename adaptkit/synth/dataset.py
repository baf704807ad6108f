"""Make the dataset: plan the splits, synthesise calls over processes, write manifests and README."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from adaptkit.errors import AdaptkitError
from adaptkit.synth.channel import noise_std, telephone
from adaptkit.synth.config import SPLITS, SynthConfig
from adaptkit.synth.conversation import MS, make_conversation, render
from adaptkit.synth.labels import record, rttm
from adaptkit.atomic import atomic_write
from adaptkit.synth.manifests import jsonl, label_weights, speaker_asr_row, turn_end_rows, turn_tag_rows, wav_bytes
from adaptkit.synth.voices import LANGUAGES, Voice, check_language, kana, pick_pair, require_tools, voice_pools

MANIFESTS = ("speaker_asr.jsonl", "turn_tags.jsonl", "turn_end.jsonl")
"""Manifest file names, written in every split folder."""
STEREO = ".stereo.wav"
"""The suffix of a conversation's stereo file (`SynthConfig.stereo`): `<id>.stereo.wav` beside `<id>.wav`."""


def stereo_path(wav: str | Path) -> Path:
    """The stereo file of the conversation whose mono file is `wav` (one channel per speaker, channel 0 spk_0)."""
    wav = Path(wav)
    return wav.with_name(wav.stem + STEREO)


@dataclass(frozen=True)
class Task:
    """One conversation to make."""

    split: str
    index: int
    lang: str
    pool: tuple[Voice, ...]
    telephone: bool


@dataclass
class SynthResult:
    """What `generate` made and how fast."""

    conversations: int
    audio_seconds: float
    wall_seconds: float

    @property
    def speed(self) -> float:
        """Seconds of audio made per second of wall time (x real time)."""
        return self.audio_seconds / max(self.wall_seconds, 1e-9)


def split_counts(cfg: SynthConfig) -> dict[str, int]:
    """Conversations per split: the counts given, or fractions of `cfg.n` (train takes the rounding)."""
    values = tuple(cfg.splits)
    if len(values) != 3 or any(v < 0 or not math.isfinite(v) for v in values) or sum(values) <= 0:
        raise AdaptkitError(f"--splits needs three non-negative numbers (train,test_id,test_ood), got {values}")
    if all(float(v).is_integer() for v in values):
        return dict(zip(SPLITS, (int(v) for v in values)))
    if cfg.n < 1:
        raise AdaptkitError(f"--n must be at least 1, got {cfg.n}")
    tests = [round(cfg.n * v / sum(values)) for v in values[1:]]
    return dict(zip(SPLITS, [cfg.n - sum(tests), *tests]))


def _check(cfg: SynthConfig) -> None:
    for lang in (*cfg.langs, *cfg.ood_langs):
        check_language(lang)
    if not cfg.langs:
        raise AdaptkitError("--lang needs at least one language")
    if cfg.duration < 2:
        raise AdaptkitError(f"--duration must be at least 2 seconds, got {cfg.duration}")
    if cfg.jobs < 0:
        raise AdaptkitError(f"--jobs must be 0 (all cores) or more, got {cfg.jobs}")
    for name in ("overlap_prob", "pause_prob", "filler_prob", "backchannel_prob"):
        if not 0 <= getattr(cfg, name) <= 1:
            raise AdaptkitError(f"{name} must lie in [0, 1], got {getattr(cfg, name)}")
    if not 0 < cfg.pause_min < cfg.pause_median or cfg.gap_median <= 0 or cfg.gap_shape <= 0:
        raise AdaptkitError("need 0 < pause_min < pause_median, gap_median > 0 and gap_shape > 0")
    if cfg.snr is not None and not math.isfinite(cfg.snr):
        raise AdaptkitError(f"--snr must be a finite number of dB, got {cfg.snr}")


def plan(cfg: SynthConfig) -> list[Task]:
    """Every conversation of every split, in file order."""
    tasks = []
    for split, count in split_counts(cfg).items():
        ood = split == "test_ood"
        langs = (cfg.ood_langs or cfg.langs) if ood else cfg.langs
        for i in range(count):
            lang = langs[i % len(langs)]
            seen, unseen = voice_pools(lang, cfg.voices)
            pool = unseen if ood else seen
            if len(pool) < 2:
                which = "unseen (out-of-domain)" if ood else "seen"
                raise AdaptkitError(f"{lang}: a conversation needs two {which} voices, there are {[v.name for v in pool]}")
            tasks.append(Task(split, i, lang, tuple(pool), cfg.telephone != ood))
    return tasks


def make_one(task: Task, cfg: SynthConfig) -> tuple[float, dict, list[dict], list[dict]]:
    """Synthesise one conversation, write its WAV, RTTM and JSON; return (seconds, manifest rows)."""
    code = SPLITS.index(task.split)
    rng = np.random.default_rng([cfg.seed, code, task.index])
    conv = make_conversation(task.lang, pick_pair(list(task.pool), rng), rng, cfg)
    tracks = render(conv)
    mono = tracks.sum(axis=0)
    gain = 0.8 / max(float(np.abs(mono).max()), 1e-6)
    tracks, mono = tracks * gain, mono * gain
    if cfg.snr is not None:
        speech = np.zeros(len(mono), bool)
        for u in conv.units:
            speech[u.start * MS : u.end * MS] = True
        std = noise_std(mono, speech, cfg.snr)
        noise = np.random.default_rng([cfg.seed, code, task.index, 1])
        mono = mono + noise.normal(0.0, std, mono.shape).astype(np.float32)
        if cfg.stereo:
            tracks = tracks + noise.normal(0.0, std, tracks.shape).astype(np.float32)
    if task.telephone:
        mono = telephone(mono)
        if cfg.stereo:
            tracks = np.stack([telephone(t) for t in tracks])
    folder = Path(cfg.out) / task.split
    file_id = f"{task.split}_{task.index:05d}"
    atomic_write(folder / f"{file_id}.wav", wav_bytes(np.clip(mono, -1, 1)))
    if cfg.stereo:
        atomic_write(stereo_path(folder / f"{file_id}.wav"), wav_bytes(np.clip(tracks.T, -1, 1)))
    atomic_write(folder / f"{file_id}.rttm", rttm(conv, file_id))
    channel = "telephone" if task.telephone else "wideband"
    atomic_write(folder / f"{file_id}.json", json.dumps(record(conv, file_id, channel, cfg.snr), ensure_ascii=False, indent=1) + "\n")
    return conv.length / 1000, speaker_asr_row(conv, file_id), turn_tag_rows(conv, file_id, cfg.tag_context), turn_end_rows(conv, file_id)


def _prepare(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise AdaptkitError(f"--out {out} is a file, not a folder")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise AdaptkitError(f"{out} already holds data; pass --force to overwrite it")
        for split in SPLITS:
            shutil.rmtree(out / split, ignore_errors=True)
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)


def generate(cfg: SynthConfig) -> SynthResult:
    """Write `cfg.out/<split>/` (WAV, RTTM, JSON per conversation, three manifests) and README.md."""
    _check(cfg)
    require_tools((*cfg.langs, *cfg.ood_langs))
    tasks = plan(cfg)
    _prepare(Path(cfg.out), cfg.force)
    if any(t.lang == "ja" for t in tasks):
        kana("はい")  # load the dictionary once, before the workers fork
    start = time.perf_counter()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    jobs = min(cfg.jobs or cores, max(len(tasks), 1))
    if jobs == 1:
        results = [make_one(t, cfg) for t in tasks]
    else:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(make_one, tasks, [cfg] * len(tasks)))
    for split in SPLITS:
        mine = [r for t, r in zip(tasks, results) if t.split == split]
        rows = ([r[1] for r in mine], label_weights([x for r in mine for x in r[2]]), [x for r in mine for x in r[3]])
        for name, lines in zip(MANIFESTS, rows):
            atomic_write(Path(cfg.out) / split / name, jsonl(lines))
    atomic_write(Path(cfg.out) / "README.md", readme(cfg, tasks, [r[0] for r in results]))
    return SynthResult(len(tasks), sum(r[0] for r in results), time.perf_counter() - start)


def readme(cfg: SynthConfig, tasks: list[Task], seconds: list[float]) -> str:
    """The README written next to the data: the splits, the files and the labels."""
    lines = ["# Synthetic two-speaker calls (adaptkit synth)", "", "Made by espeak-ng (Japanese readings by pyopenjtalk); every label is exact.", ""]
    for split, title in zip(SPLITS, ("train", "in-domain test", "out-of-domain test")):
        mine = [(t, s) for t, s in zip(tasks, seconds) if t.split == split]
        if not mine:
            lines += [f"## {split} ({title}): empty", ""]
            continue
        langs = sorted({t.lang for t, _ in mine})
        voices = sorted({v.name for t, _ in mine for v in t.pool})
        channel = "telephone (300-3400 Hz, 8 kHz mu-law)" if mine[0][0].telephone else "wideband 16 kHz"
        lines += [
            f"## {split} ({title})",
            f"- {len(mine)} conversations, {sum(s for _, s in mine) / 60:.1f} minutes",
            f"- languages: {', '.join(f'{k} ({LANGUAGES[k]})' for k in langs)}",
            f"- voice pool: {', '.join(voices)}",
            f"- channel: {channel}; noise: {'none' if cfg.snr is None else f'white, SNR {cfg.snr:g} dB'}",
            "",
        ]
    lines += [
        "The out-of-domain test uses voices unseen in train and the other channel (wideband where",
        "train is telephone and the reverse), and the `ood_langs` languages when they are given.",
        "",
        "## Files in each split folder",
        "- `<id>.wav`: 16 kHz mono, 16-bit (`<id>.stereo.wav`: one channel per speaker, when asked).",
        "- `<id>.rttm`: one SPEAKER line per inter-pausal unit, from the voiced audio placed (silence trimmed).",
        "- `<id>.json`: speakers and voices, `transcript` (`<|spk_0|> ... <|spk_1|> ...`), `units` (speaker,",
        "  start, end, label `complete`/`incomplete`/`backchannel`, text, reading), `silences` (label",
        "  `Pause`/`Gap`/`Overlap`, floor holder before and after) and `frames` (one label per 100 ms:",
        "  `SU` when speech covers half the frame or more, else `Pause` or `Gap`).",
        "- `speaker_asr.jsonl`: `audio`, `text` (speaker-tagged transcript), `language`, `id`, `duration`.",
        "- `turn_tags.jsonl`: `audio`, `start`, `end` (seconds in the WAV, ending at a unit end), `label`, `text`, `language`, `id`.",
        "- `turn_end.jsonl`: `messages` (role `user` is the speaker judged, last), `ended`, `language`, `id`.",
        "",
        "## Labels",
        "- spk_0 is the agent and speaks first; spk_1 is the customer.",
        "- Pause: silence inside a turn (the same speaker goes on); Gap: silence before the other speaker",
        "  takes the turn (also the silence at the start and end); Overlap: the next turn starts before",
        "  the last one ends. Backchannels sit inside pauses and never take the floor.",
        "- Clauses inside a unit are joined by 60-140 ms breaks; a within-turn Pause lasts at least",
        f"  {cfg.pause_min:g} s; gaps follow a gamma distribution (median {cfg.gap_median:g} s, shape {cfg.gap_shape:g}).",
        "",
        "## Configuration",
        "```json",
        json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items() if k not in ("out", "force", "jobs")}, indent=1, ensure_ascii=False),
        "```",
        "",
    ]
    return "\n".join(lines)
