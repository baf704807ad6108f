"""Bad data and recipes: one line naming file and line or key, exit 2; skip mode reports what it dropped."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from adaptkit.cli import main
from adaptkit.recipe import Recipe
from adaptkit.train import run


def write_manifest(path, rows: list):
    """A JSONL file; a str row is written as it is (to plant a broken line)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows))
    return path


def good_rows(calls, n=4):
    rows = [json.loads(x) for x in (calls / "train" / "speaker_asr.jsonl").read_text().splitlines()[:n]]
    for r in rows:
        r["audio"] = str(calls / "train" / r["audio"])
    return rows


def bad_cases(calls, tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really audio")
    row = good_rows(calls, 1)[0]
    return {
        "missing audio": ({**row, "audio": str(tmp_path / "nope.wav")}, "audio file"),
        "unreadable audio": ({**row, "audio": str(garbage)}, "cannot read audio"),
        "empty text": ({**row, "text": "  "}, "empty text"),
        "unknown speaker tag": ({**row, "text": "<|spk_0|> hello <|spk_7|> hi"}, "token <|spk_7|> in the text is not among the recipe's tokens"),
        "not json": ('{"audio": "x.wav", "text": ', "not valid JSON"),
        "missing key": ({"text": "hello"}, "missing key 'audio'"),
    }


@pytest.mark.parametrize("case", ["missing audio", "unreadable audio", "empty text", "unknown speaker tag", "not json", "missing key"])
def test_a_bad_manifest_line_names_file_and_line(calls, tmp_path, make_recipe, case):
    bad, expected = bad_cases(calls, tmp_path)[case]
    manifest = write_manifest(tmp_path / "m.jsonl", good_rows(calls, 2) + [bad])
    result = CliRunner().invoke(main, ["train", str(make_recipe(data={"train": str(manifest), "dev": None}))])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert f"{manifest}:3: " in result.stderr and expected in result.stderr, result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("override,expected", [
    ("train.lrr=0.1", "train.lrr: unknown key (closest: lr)"),
    ("train.lr=fast", "train.lr: expected number, got str 'fast'"),
    ("trian.lr=0.1", "unknown key 'trian' (closest: train)"),
    ("train.schedule=cosinus", "train.schedule: unknown value 'cosinus' (closest: cosine"),
    ("task=diarize", "task: unknown task 'diarize'"),
    ("data.on_bad_sample=ignore", "data.on_bad_sample: use 'error' or 'skip'"),
])
def test_bad_recipe_values_name_the_key(make_recipe, override, expected):
    result = CliRunner().invoke(main, ["train", str(make_recipe()), override])
    assert result.exit_code == 2 and expected in result.stderr, result.stderr
    assert "recipe.yaml: " in result.stderr


def test_skip_mode_drops_bad_samples_and_reports_which(calls, tmp_path, make_recipe):
    cases = bad_cases(calls, tmp_path)
    manifest = write_manifest(tmp_path / "m.jsonl", good_rows(calls, 4) + [cases["empty text"][0], cases["not json"][0]])
    recipe = Recipe.load(make_recipe(data={"train": str(manifest), "dev": None, "on_bad_sample": "skip"}, train={"max_steps": 2}))
    summary = run(recipe)
    assert len(summary.skipped) == 2
    assert f"{manifest}:5: empty text" in summary.skipped[0] and f"{manifest}:6: not valid JSON" in summary.skipped[1]
    assert json.loads((recipe.output_dir / "summary.json").read_text())["skipped"] == summary.skipped


def test_audio_at_another_rate_is_resampled_and_noted_once(calls, tmp_path, make_recipe, caplog):
    import adaptkit.data.audio as audio

    rows = good_rows(calls, 4)
    for i, r in enumerate(rows):
        wave, rate = sf.read(r["audio"])
        t = np.arange(int(len(wave) * 44100 / rate)) / 44100
        path = tmp_path / f"hi{i}.wav"
        sf.write(path, np.interp(t, np.arange(len(wave)) / rate, wave), 44100)
        r["audio"] = str(path)
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    audio._noted.clear()
    with caplog.at_level(logging.WARNING, logger="adaptkit"):
        run(Recipe.load(make_recipe(data={"train": str(manifest), "dev": None}, train={"max_steps": 2})))
    notes = [r for r in caplog.records if "resampling audio from 44100 Hz to 16000 Hz" in r.getMessage()]
    assert len(notes) == 1


@pytest.mark.parametrize("text,value", [("3e-3", 3e-3), ("1E4", 1e4), ("+2.5e-1", 0.25)])
def test_exponents_without_a_dot_are_numbers(make_recipe, text, value):
    from adaptkit.recipe import Recipe

    assert Recipe.load(make_recipe(), [f"train.lr={text}"]).train.lr == value  # YAML 1.1 would give a string
    assert Recipe.load(make_recipe(train={"lr": text})).train.lr == value
