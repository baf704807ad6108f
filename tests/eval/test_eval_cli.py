"""`adaptkit eval` end to end on a tiny trained adapter and synthetic calls, and its bad input."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from click.testing import CliRunner

from adaptkit.cli import main
from adaptkit.synth import SynthConfig, generate

pytestmark = pytest.mark.qwen_asr_stack  # the adapter is trained on the tiny qwen3_asr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny adapter trained 3 steps on 6 English calls, and its test manifests."""
    root = tmp_path_factory.mktemp("eval")
    generate(SynthConfig(out=root / "calls", langs=("en",), n=6, splits=(4, 1, 1), duration=8.0, telephone=True, seed=5, jobs=1))
    recipe = {
        "model": {"tiny": "qwen3_asr"}, "tokens": ["<|spk_0|>", "<|spk_1|>"],
        "freeze": {"train": ["projector", {"tokens": "added"}]},
        "data": {"train": str(root / "calls" / "train" / "speaker_asr.jsonl")},
        "task": "speaker_asr", "language": "en", "train": {"max_steps": 3, "batch_size": 2}, "output_dir": str(root / "run"),
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(main, ["train", str(root / "recipe.yaml")])
    assert result.exit_code == 0, result.output
    return root


def test_eval_writes_json_markdown_plots_and_decoded_outputs(trained):
    calls = trained / "calls"
    out = trained / "report"
    result = CliRunner().invoke(main, ["eval", str(trained / "run" / "adapter"), "--data", str(calls / "test_id" / "speaker_asr.jsonl"),
                                       "--data", str(calls / "test_ood" / "speaker_asr.jsonl"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    markdown = (out / "report.md").read_text().splitlines()
    assert markdown[0].startswith("# ") and markdown[2].startswith("- normalization: nfkc_lower_punct")
    assert markdown[3].startswith("- DER: times borrowed from the timed reference units")
    assert markdown[5].startswith("| subset |") and "cp_error_rate" in markdown[5]
    report = json.loads((out / "report.json").read_text())
    assert {r["subset"] for r in report["headline"]} == {"all", "test_id", "test_ood"}
    assert list((out / "plots").glob("*.png"))
    rows = [json.loads(x) for x in (out / "decoded.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(isinstance(r["ended_with_eos"], bool) and r["units"] for r in rows)
    assert all(set(r["control_tokens"]) <= {t for t in r["control_tokens"] if t in r["raw"]} for r in rows)
    assert all(r["task"] == "speaker_asr" for r in rows)
    again = CliRunner().invoke(main, ["eval", "--hypotheses", str(out / "decoded.jsonl"), "--out", str(trained / "rescored")])
    assert again.exit_code == 0, again.output
    assert json.loads((trained / "rescored" / "report.json").read_text())["headline"] == report["headline"]


def test_rows_that_do_not_name_their_task_need_task(trained):
    out = trained / "old"
    result = CliRunner().invoke(main, ["eval", str(trained / "run" / "adapter"), "--data",
                                       str(trained / "calls" / "test_id" / "speaker_asr.jsonl"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    old = trained / "old_decoded.jsonl"  # as adaptkit wrote it before rows named their task
    old.write_text("".join(json.dumps({k: v for k, v in json.loads(x).items() if k != "task"}) + "\n"
                           for x in (out / "decoded.jsonl").read_text().splitlines()))
    result = CliRunner().invoke(main, ["eval", "--hypotheses", str(old), "--out", str(trained / "old_r")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith(f"error: {old}: task: ") and "pass --task" in result.stderr, result.stderr
    result = CliRunner().invoke(main, ["eval", "--hypotheses", str(old), "--task", "speaker_asr", "--out", str(trained / "old_r")])
    assert result.exit_code == 0, result.output
    headline = json.loads((trained / "old_r" / "report.json").read_text())["headline"]
    assert headline == json.loads((out / "report.json").read_text())["headline"]


def test_the_recipe_names_its_adapter(trained):
    result = CliRunner().invoke(main, ["eval", str(trained / "recipe.yaml"), "--data",
                                       str(trained / "calls" / "test_id" / "speaker_asr.jsonl"), "--out", str(trained / "r2")])
    assert result.exit_code == 0, result.output


def test_bad_input_gets_one_line_and_exit_2(trained, tmp_path):
    calls = trained / "calls"
    adapter = str(trained / "run" / "adapter")
    no_text = tmp_path / "noref.jsonl"
    row = json.loads((calls / "test_id" / "speaker_asr.jsonl").read_text().splitlines()[0])
    row["audio"] = str(calls / "test_id" / row["audio"])
    del row["text"]
    no_text.write_text(json.dumps(row) + "\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    other = tmp_path / "other_adapter"
    shutil.copytree(adapter, other)
    config = json.loads((other / "adaptkit_adapter.json").read_text())
    config["token_rows"] = {"<|spk_0|>": 5, "<|spk_1|>": 6}
    (other / "adaptkit_adapter.json").write_text(json.dumps(config))
    cases = [
        (["eval", adapter, "--data", str(no_text)], f"{no_text}:1: missing key 'text'"),
        (["eval", "--hypotheses", str(empty)], f"{empty}: empty hypothesis file"),
        (["eval", str(other), "--data", str(no_text)], "adapter does not match its base: token rows"),
        (["eval", str(tmp_path), "--data", str(no_text)], "not a recipe, an adaptkit adapter or a checkpoint folder"),
    ]
    for args, expected in cases:
        result = CliRunner().invoke(main, args + ["--out", str(tmp_path / "r")])
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
