"""Acceptance 2 on generated data: silences, unit labels, frames, RTTM vs energy, transcripts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from adaptkit.synth.labels import FRAME_MS

TAG = re.compile(r"<\|(spk_\d)\|> ")


def conversations(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) | {"_path": p} for p in sorted(root.rglob("*.json"))]


def read_rttm(path: Path) -> list[tuple[str, float, float]]:
    rows = []
    for line in path.read_text().splitlines():
        f = line.split()
        assert f[0] == "SPEAKER" and f[1] == path.stem and len(f) == 10
        rows.append((f[7], float(f[3]), float(f[3]) + float(f[4])))
    return rows


def ms(t: float) -> int:
    return round(t * 1000)


def floor_units(conv: dict) -> list[dict]:
    return [u for u in conv["units"] if u["label"] != "backchannel"]


def test_every_language_and_split_is_there(synth_dir: Path) -> None:
    convs = conversations(synth_dir)
    assert sorted({c["language"] for c in convs}) == ["en", "ja", "ms", "ta", "zh"]
    assert [len(list((synth_dir / s).glob("*.json"))) for s in ("train", "test_id", "test_ood")] == [5, 1, 1]
    for c in convs:
        assert c["speakers"]["spk_0"]["voice"] != c["speakers"]["spk_1"]["voice"]
        assert abs(c["speakers"]["spk_0"]["pitch"] - c["speakers"]["spk_1"]["pitch"]) >= 20


def test_gap_is_followed_by_the_other_speaker_pause_by_the_same(synth_dir: Path) -> None:
    labels = set()
    for c in conversations(synth_dir):
        floor = floor_units(c)
        for s in c["silences"]:
            labels.add(s["label"])
            before = [u for u in floor if ms(u["start"]) < ms(s["start"])]
            after = [u for u in floor if ms(u["start"]) >= ms(s["end"])]
            if s["label"] == "Overlap":
                nxt = next(u for u in floor if ms(u["start"]) == ms(s["start"]))
                assert nxt["speaker"] != before[-1]["speaker"] and ms(before[-1]["end"]) > ms(s["start"])
                continue
            assert s["end"] > s["start"]
            if before and after:
                same = before[-1]["speaker"] == after[0]["speaker"]
                assert same == (s["label"] == "Pause"), (c["id"], s)
                assert (s["before"], s["after"]) == (before[-1]["speaker"], after[0]["speaker"])
            else:
                assert s["label"] == "Gap"  # the open floor at the start and the end
    assert {"Pause", "Gap"} <= labels


def test_silences_and_units_tile_the_timeline(synth_dir: Path) -> None:
    for c in conversations(synth_dir):
        speech = np.zeros(ms(c["duration"]), int)
        for u in c["units"]:
            speech[ms(u["start"]) : ms(u["end"])] = 1
        quiet = np.zeros_like(speech)
        for s in c["silences"]:
            if s["label"] != "Overlap":
                quiet[ms(s["start"]) : ms(s["end"])] += 1
        assert np.all(speech + quiet == 1), c["id"]


def test_unit_labels(synth_dir: Path) -> None:
    seen = set()
    for c in conversations(synth_dir):
        floor = floor_units(c)
        for i, u in enumerate(floor):
            seen.add(u["label"])
            nxt = floor[i + 1] if i + 1 < len(floor) else None
            if u["label"] == "incomplete":
                assert nxt is not None and nxt["speaker"] == u["speaker"] and nxt["turn"] == u["turn"]
                assert any(s["label"] == "Pause" and ms(s["start"]) == ms(u["end"]) for s in c["silences"])
            else:
                assert u["label"] == "complete" and (nxt is None or nxt["speaker"] != u["speaker"])
        for b in (u for u in c["units"] if u["label"] == "backchannel"):
            seen.add("backchannel")
            touching = [s for s in c["silences"] if ms(s["end"]) == ms(b["start"]) or ms(s["start"]) == ms(b["end"])]
            assert len(touching) == 2 and all(s["label"] == "Pause" and s["before"] != b["speaker"] for s in touching)
    assert seen == {"complete", "incomplete", "backchannel"}


def test_frame_labels_agree_with_rttm(synth_dir: Path) -> None:
    for c in conversations(synth_dir):
        segments = read_rttm(c["_path"].with_suffix(".rttm"))
        assert [(s, ms(a), ms(b)) for s, a, b in segments] == [(u["speaker"], ms(u["start"]), ms(u["end"])) for u in c["units"]]
        n = ms(c["duration"])
        speech = np.zeros(n, bool)
        for _, a, b in segments:
            speech[ms(a) : ms(b)] = True
        labels = c["frames"]["labels"]
        assert c["frames"]["hop"] == FRAME_MS / 1000 and len(labels) == -(-n // FRAME_MS)
        for k, label in enumerate(labels):
            a, b = k * FRAME_MS, min((k + 1) * FRAME_MS, n)
            if 2 * speech[a:b].sum() >= b - a:
                assert label == "SU"
            else:
                cover = {}
                for s in c["silences"]:
                    if s["label"] != "Overlap":
                        cover[s["label"]] = cover.get(s["label"], 0) + max(0, min(b, ms(s["end"])) - max(a, ms(s["start"])))
                assert label == max(cover, key=cover.get), (c["id"], k)


def test_rttm_agrees_with_signal_energy(synth_dir: Path) -> None:
    """Speech where the RTTM says speech and silence where it does not, within 50 ms of each boundary."""
    checked = 0
    for c in conversations(synth_dir):
        if c["channel"] != "wideband" or c["snr_db"] is not None:
            continue
        x, sr = sf.read(c["_path"].with_suffix(".wav"))
        hop = sr // 100  # 10 ms frames
        n = len(x) // hop
        rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))
        voiced = rms > rms.max() * 10 ** (-45 / 20)
        bridged = voiced.copy()  # close holes under 200 ms (stops, breaks between clauses)
        on = np.flatnonzero(voiced)
        for a, b in zip(on[:-1], on[1:]):
            if b - a < 20:
                bridged[a:b] = True
        ref = np.zeros(n, bool)
        edge = np.zeros(n, bool)
        for _, a, b in read_rttm(c["_path"].with_suffix(".rttm")):
            i, j = round(a * 100), round(b * 100)
            ref[i:j] = True
            for e in (i, j):
                edge[max(0, e - 5) : e + 5] = True
            assert voiced[i : i + 5].any() and voiced[max(i, j - 5) : j].any()  # onset and offset within 50 ms
        assert not np.any(ref & ~bridged & ~edge), c["id"]
        assert not np.any(~ref & voiced & ~edge), c["id"]
        checked += 1
    assert checked >= 5


def test_transcript_words_equal_the_units(synth_dir: Path) -> None:
    for c in conversations(synth_dir):
        units = sorted(c["units"], key=lambda u: u["start"])
        text = c["transcript"]
        assert text.startswith("<|spk_0|> ")
        speakers = TAG.findall(text)
        runs = [u["speaker"] for i, u in enumerate(units) if i == 0 or units[i - 1]["speaker"] != u["speaker"]]
        assert speakers == runs
        plain = TAG.sub(" ", text)
        if c["language"] in ("ja", "zh"):
            assert "".join(plain.split()) == "".join(u["text"] for u in units).replace(" ", "")
            assert not re.search(r"\S <\|", text)  # no space before a tag
        else:
            assert plain.split() == " ".join(u["text"] for u in units).split()


def test_japanese_keeps_kanji_and_speaks_kana(synth_dir: Path) -> None:
    ja = [c for c in conversations(synth_dir) if c["language"] == "ja"]
    assert ja and any(re.search(r"[\u4e00-\u9fff]", c["transcript"]) for c in ja)
    for c in ja:
        for u in c["units"]:
            assert not re.search(r"[\u4e00-\u9fff\u3040-\u309f]", u["reading"]), u["reading"]  # katakana only


def test_stereo_holds_one_speaker_per_channel(synth_dir: Path) -> None:
    c = conversations(synth_dir)[0]
    mono, _ = sf.read(c["_path"].with_suffix(".wav"))
    stereo, _ = sf.read(c["_path"].with_name(c["id"] + ".stereo.wav"))
    assert stereo.shape == (len(mono), 2)
    for ch, spk in enumerate(("spk_0", "spk_1")):
        for u in c["units"]:
            part = stereo[ms(u["start"]) * 16 : ms(u["end"]) * 16]
            loud, other = np.abs(part[:, ch]).max(), np.abs(part[:, 1 - ch]).max()
            if u["speaker"] == spk:
                assert loud > 0.01
            overlapped = any(v is not u and v["speaker"] != u["speaker"] and v["start"] < u["end"] and u["start"] < v["end"] for v in c["units"])
            if u["speaker"] == spk and not overlapped:
                assert other == 0


def test_out_of_domain_is_telephone_with_unseen_voices(synth_dir: Path) -> None:
    from adaptkit.synth.voices import VOICES

    unseen = {v.name for vs in VOICES.values() for v in vs if not v.seen}
    [ood] = conversations(synth_dir / "test_ood")
    assert ood["channel"] == "telephone"
    assert {s["voice"] for s in ood["speakers"].values()} <= unseen
    x, sr = sf.read(synth_dir / "test_ood" / ood["audio"])
    power = np.abs(np.fft.rfft(x)) ** 2
    freq = np.fft.rfftfreq(len(x), 1 / sr)
    assert power[freq > 3800].sum() < 0.01 * power.sum()
    for c in conversations(synth_dir / "train"):
        assert c["channel"] == "wideband"
        assert not {s["voice"] for s in c["speakers"].values()} & unseen
