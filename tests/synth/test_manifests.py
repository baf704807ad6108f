"""Schema of the three task manifests (what the recipes' data loader will read)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import soundfile as sf

SPLITS = ("train", "test_id", "test_ood")
LABELS = {"complete", "incomplete", "backchannel"}


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def units_of(folder: Path, conv_id: str) -> list[dict]:
    return json.loads((folder / f"{conv_id}.json").read_text())["units"]


def test_speaker_asr(synth_dir: Path) -> None:
    for split in SPLITS:
        folder = synth_dir / split
        rows = load(folder / "speaker_asr.jsonl")
        assert len(rows) == len(list(folder.glob("*.json")))
        for r in rows:
            assert set(r) <= {"audio", "text", "language", "prompt", "id", "duration"}
            assert {"audio", "text", "language", "id", "duration"} <= set(r)
            info = sf.info(folder / r["audio"])  # path relative to the manifest
            assert (info.samplerate, info.channels) == (16000, 1)
            assert abs(info.frames / 16000 - r["duration"]) < 1e-3
            assert r["text"].startswith("<|spk_0|> ") and "<|spk_1|> " in r["text"]
            if r["language"] == "ja":
                assert " " not in re.sub(r"<\|spk_\d\|> ", "", r["text"])


def test_turn_tags(synth_dir: Path) -> None:
    for split in SPLITS:
        folder = synth_dir / split
        rows = load(folder / "turn_tags.jsonl")
        assert {r["label"] for r in rows} <= LABELS
        counts = {label: sum(r["label"] == label for r in rows) for label in {r["label"] for r in rows}}
        for r in rows:
            assert set(r) == {"audio", "start", "end", "label", "text", "language", "id", "confidence", "weight"}
            # inverse label frequency, mean 1: every label carries the same total weight
            assert r["weight"] == pytest.approx(len(rows) / (len(counts) * counts[r["label"]]), abs=1e-4)
            assert 0.0 <= r["confidence"] <= 1.0
            silence = [s for s in json.loads((folder / r["audio"].replace(".wav", ".json")).read_text())["silences"]
                       if s["start"] == r["end"] and s["label"] != "Overlap"]
            if r["label"] != "backchannel" and silence:
                expected = "Gap" if r["label"] == "complete" else "Pause"
                length = silence[0]["end"] - silence[0]["start"]
                assert r["confidence"] == (pytest.approx(min(1.0, length / 0.5), abs=2e-3) if silence[0]["label"] == expected else 0.0)
            duration = sf.info(folder / r["audio"]).duration
            assert 0 <= r["start"] < r["end"] <= duration
            assert r["end"] - r["start"] <= 8.0 + 1e-9
            conv_id = r["audio"].removesuffix(".wav")
            assert any(u["end"] == r["end"] and u["label"] == r["label"] and u["text"] == r["text"] for u in units_of(folder, conv_id))
        assert len({r["id"] for r in rows}) == len(rows)


def test_turn_end(synth_dir: Path) -> None:
    for split in SPLITS:
        folder = synth_dir / split
        rows = load(folder / "turn_end.jsonl")
        assert {r["ended"] for r in rows} == {True, False} or split != "train"
        for r in rows:
            assert set(r) == {"messages", "ended", "language", "id"} and isinstance(r["ended"], bool)
            assert r["messages"] and all(set(m) == {"role", "content"} and m["role"] in ("user", "assistant") and m["content"] for m in r["messages"])
            assert r["messages"][-1]["role"] == "user"
            roles = [m["role"] for m in r["messages"]]
            assert all(a != b for a, b in zip(roles, roles[1:]))  # turns alternate
        conv_ids = sorted(p.stem for p in folder.glob("*.json"))
        for conv_id in conv_ids:
            mine = [r for r in rows if r["id"].startswith(conv_id + "_")]
            units = [u for u in units_of(folder, conv_id) if u["label"] != "backchannel"]
            assert [r["ended"] for r in mine] == [u["label"] == "complete" for u in units]
            for r, u in zip(mine, units):
                assert r["messages"][-1]["content"].endswith(u["text"])


def test_the_cascades_text_verifier_sees_the_conversation_as_turn_end_jsonl_writes_it(synth_dir: Path) -> None:
    """Both build their chat messages with `chat_messages`: at each unit's end, the units said by
    then (from the synth JSON, by time) give exactly the row's messages."""
    from adaptkit.synth.manifests import chat_messages
    from adaptkit.synth.templates import SCRIPTS

    for split in SPLITS:
        folder = synth_dir / split
        rows = load(folder / "turn_end.jsonl")
        for conv_id in sorted(p.stem for p in folder.glob("*.json")):
            record = json.loads((folder / f"{conv_id}.json").read_text())
            units = [u for u in record["units"] if u["label"] != "backchannel"]
            sep = " " if SCRIPTS[record["language"]].spaced else ""
            mine = [r for r in rows if r["id"].startswith(conv_id + "_")]
            for r, u in zip(mine, units, strict=True):
                said = [(x["speaker"], x["text"]) for x in units if x["end"] <= u["end"]]
                assert chat_messages(said, sep) == r["messages"]


def test_chat_messages_joins_a_speakers_units_and_judges_the_last_speaker() -> None:
    from adaptkit.synth.manifests import chat_messages

    said = [("a", "hello"), ("a", "there"), ("b", "hi"), ("a", "so"), ("a", "well")]
    assert chat_messages(said, " ") == [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "hi"},
                                        {"role": "user", "content": "so well"}]
    assert chat_messages(said[:3], "") == [{"role": "assistant", "content": "hellothere"}, {"role": "user", "content": "hi"}]
    assert chat_messages([], " ") == []
