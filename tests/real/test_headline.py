"""The headline path on a hub-shaped Qwen3-ASR, through qwen_asr's own client.

The README's two snippets run as written: `adaptkit train recipes/ja_diarization.yaml` (with the
model and data pointed at the hub-shaped folder and one call), then `Qwen3ASRModel.from_pretrained`
on the merged folder and `.transcribe(..., language="Japanese")`. Training memorises the call, so the
model emits a known tagged answer, and the user's client must show its speaker tags.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from adaptkit.cli import main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
HEADLINE = README[README.index("## The headline path"):]
TRAIN_LINE = re.search(r"```bash\n(adaptkit train recipes/ja_diarization\.yaml)", HEADLINE).group(1)
SNIPPET = re.search(r"```python\n(.*?)```", HEADLINE, re.S).group(1)
RECIPES = {"projector": ("recipes/ja_diarization.yaml", {"lr": 0.02, "max_steps": 100}),
           "lora": ("recipes/ja_diarization_lora.yaml", {"lr": 0.005, "max_steps": 60})}


def train(recipe: str, extra: list[str]) -> None:
    """Run `adaptkit train RECIPE KEY=VALUE...` in this process; fail with its output."""
    result = CliRunner().invoke(main, ["train", str(ROOT / recipe), *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def runs(hub_qwen3_asr, one_call, real, tmp_path_factory) -> dict[str, Path]:
    """Both seed recipes trained on the one call; the runs live where the README says, under runs/."""
    work = tmp_path_factory.mktemp("user")
    out = {}
    for name, (recipe, settings) in RECIPES.items():
        run = work / "runs" / Path(recipe).stem
        train(recipe, real.overrides(hub_qwen3_asr, one_call / "adaptkit.jsonl", run, **settings))
        out[name] = run
    sf.write(work / "call.wav", real.call_wave(), 16000)
    return out


def test_the_readme_train_line_is_the_seed_recipe():
    assert TRAIN_LINE.split() == ["adaptkit", "train", "recipes/ja_diarization.yaml"]


@pytest.mark.parametrize("name", list(RECIPES))
@pytest.mark.qwen_asr_stack
def test_qwen_asr_transcribe_shows_the_speaker_tags(runs, real, name):
    """The README snippet, run as written from the user's folder, prints the tagged call."""
    run = runs[name]
    snippet = SNIPPET.replace("runs/ja_diarization/merged", f"runs/{run.name}/merged")
    printed = io.StringIO()
    cwd = os.getcwd()
    os.chdir(run.parent.parent)
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(snippet, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    text = printed.getvalue().strip()
    assert "<|spk_0|>" in text and "<|spk_1|>" in text
    assert text == real.CALL_TEXT


@pytest.mark.parametrize("name", list(RECIPES))
@pytest.mark.qwen_asr_stack
def test_the_tags_are_not_special_in_the_merged_tokenizer(runs, real, name):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(runs[name] / "merged")
    ids = tok(real.CALL_TEXT, add_special_tokens=False)["input_ids"]
    spk = tok.convert_tokens_to_ids(["<|spk_0|>", "<|spk_1|>"])
    assert ids.count(spk[0]) == 1 and ids.count(spk[1]) == 1  # never split
    assert not set(spk) & set(tok.all_special_ids)
    assert tok.decode(ids, skip_special_tokens=True) == real.CALL_TEXT
    assert tok.convert_tokens_to_ids("<asr_text>") == 151704 and tok.convert_tokens_to_ids("<|audio_pad|>") == 151676


def evaluate(target: Path, manifest: Path, out: Path) -> dict:
    import json

    result = CliRunner().invoke(main, ["eval", str(target), "--data", str(manifest), "--out", str(out), "--device", "cpu"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads((out / "report.json").read_text())


@pytest.mark.qwen_asr_stack
def test_eval_of_the_adapter_and_of_the_merged_folder_agree(runs, one_call, tmp_path):
    """Same manifest, same decoding, same cpCER; the merged folder takes its tags from its tokenizer."""
    run = runs["projector"]
    by_adapter = evaluate(run / "adapter", one_call / "adaptkit.jsonl", tmp_path / "a")
    by_merged = evaluate(run / "merged", one_call / "official.jsonl", tmp_path / "m")
    cp_a, cp_m = by_adapter["headline"][0]["cp_error_rate"], by_merged["headline"][0]["cp_error_rate"]
    assert cp_a == cp_m == 0.0  # the memorised call, decoded as the client decodes it
    rows = [line for line in (tmp_path / "m" / "decoded.jsonl").read_text(encoding="utf-8").splitlines()]
    assert '"hypothesis": "<|spk_0|> はい' in rows[0]
