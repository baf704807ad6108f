"""`adaptkit plan`: the table, the JSON contract, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from adaptkit.cli import main

GOOD = """
model: {tiny: qwen3_asr}
freeze:
  add_tokens: ["<|spk_0|>", "<|spk_1|>"]
  train: [projector, {tokens: added}]
  lora: {target: llm.attention, r: 4, alpha: 8}
"""


def write(tmp_path, text: str, name: str = "recipe.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.qwen_asr_stack
def test_plan_prints_one_row_per_component(tmp_path):
    result = CliRunner().invoke(main, ["plan", write(tmp_path, GOOD)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for component in ("encoder", "projector", "llm", "embeddings", "lm_head", "lora", "all"):
        assert any(line.strip("│ ").startswith(component) for line in lines), component
    assert "<|spk_0|>" in result.stdout


@pytest.mark.qwen_asr_stack
def test_plan_json_follows_the_contract(tmp_path):
    result = CliRunner().invoke(main, ["plan", write(tmp_path, GOOD), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["groups"]) >= {"encoder", "projector", "llm", "embeddings", "lm_head", "lora"}
    for group in data["groups"].values():
        assert set(group) == {"total", "trainable"} and all(isinstance(v, int) for v in group.values())
    assert data["trainable_total"] == sum(g["trainable"] for g in data["groups"].values())
    assert data["total"] == sum(g["total"] for g in data["groups"].values())
    assert data["groups"]["projector"]["trainable"] == data["groups"]["projector"]["total"] > 0
    assert data["groups"]["encoder"]["trainable"] == data["groups"]["llm"]["trainable"] == 0
    assert data["groups"]["lora"]["trainable"] > 0
    hidden = 128  # the tiny Qwen3-ASR's LLM width: two rows in embeddings and two in lm_head
    assert data["groups"]["embeddings"]["trainable"] == data["groups"]["lm_head"]["trainable"] == 2 * hidden


@pytest.mark.qwen_asr_stack
def test_overrides_change_the_spec(tmp_path):
    result = CliRunner().invoke(main, ["plan", write(tmp_path, GOOD), "freeze.lora.r=8", "--json"])
    low = json.loads(CliRunner().invoke(main, ["plan", write(tmp_path, GOOD), "--json"]).stdout)
    high = json.loads(result.stdout)
    assert high["groups"]["lora"]["trainable"] == 2 * low["groups"]["lora"]["trainable"]


BAD = {
    "unknown component": ("model: {tiny: qwen3_asr}\nfreeze: {train: [projektor]}\n",
                          "freeze.train[0]: unknown component 'projektor' (closest: projector)"),
    "zero-match regex": ("model: {tiny: qwen3_asr}\nfreeze: {train: ['re:no_such_param']}\n",
                         "freeze.train[0]: 're:no_such_param' matches no parameter"),
    "unknown token": ("model: {tiny: qwen3_asr}\nfreeze: {train: [{tokens: ['<|spk_9|>']}]}\n",
                      "token '<|spk_9|>' is not in the vocabulary and not in freeze.add_tokens"),
    "lora in the encoder": ("model: {tiny: qwen3_asr}\nfreeze: {lora: {target: encoder.attention}}\n",
                            "freeze.lora.target: 'encoder.attention' reaches outside llm"),
    "malformed yaml": ("model: {tiny: qwen3_asr}\nfreeze:\n  train: [projector\n  lora: 3\n", "recipe.yaml:4: invalid YAML"),
    "negative rank": ("model: {tiny: qwen3_asr}\nfreeze: {lora: {r: -4}}\n", "freeze.lora.r: must be a positive integer, got -4"),
    "wrong type": ("model: {tiny: qwen3_asr}\nfreeze: {lora: {r: eight}}\n", "freeze.lora.r: expected int, got str 'eight'"),
    "unknown key": ("model: {tiny: qwen3_asr}\nfreze: {train: [projector]}\n", "unknown key 'freze' (closest: freeze)"),
    "unknown spec key": ("model: {tiny: qwen3_asr}\nfreeze: {trian: [projector]}\n", "freeze.trian: unknown key (closest: train)"),
    "unknown architecture": ("model: {tiny: qwen9}\nfreeze: {train: [projector]}\n", "unknown architecture 'qwen9'; supported:"),
    "unknown init": ("model: {tiny: qwen3_asr}\nfreeze: {add_tokens: {tokens: [a], init: meen}, train: [projector]}\n",
                     "freeze.add_tokens.init: unknown init 'meen' (closest: mean)"),
    "missing model": ("freeze: {train: [projector]}\n", "missing section 'model'"),
}


BUILDS = {"zero-match regex", "unknown token", "lora in the encoder"}
"""The cases refused only once the tiny qwen3_asr is built (the others before any model)."""


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.qwen_asr_stack) if c in BUILDS else c for c in BAD])
def test_bad_recipes_get_one_line_and_exit_2(tmp_path, case):
    text, expected = BAD[case]
    result = CliRunner().invoke(main, ["plan", write(tmp_path, text)])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert expected in result.stderr, result.stderr
    assert "recipe.yaml" in result.stderr  # the file is named


def test_missing_recipe_file_and_bad_override(tmp_path):
    result = CliRunner().invoke(main, ["plan", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "nope.yaml" in result.stderr
    result = CliRunner().invoke(main, ["plan", write(tmp_path, GOOD), "freeze.lora.r"])
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.stderr


def test_a_real_process_exits_2_without_traceback(tmp_path):
    path = write(tmp_path, BAD["negative rank"][0])
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "adaptkit.cli", "plan", path], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.qwen_asr_stack
def test_overrides_without_a_recipe_apply_to_the_embedded_default():
    result = CliRunner().invoke(main, ["plan", "freeze.train=[projector]", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["groups"]["projector"]["trainable"] > 0 and data["groups"]["embeddings"]["trainable"] == 0
    assert data["architecture"] == "Qwen3ASRForConditionalGeneration"
