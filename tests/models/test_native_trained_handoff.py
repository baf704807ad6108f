"""The hand-back path: a Qwen3-ASR converted to the native layout, fine-tuned by adaptkit on the
current stack (projector + two new speaker-tag rows), and converted back for qwen_asr users.

The two stacks cannot be installed together, so a committed golden fixture carries the result across
(tests/fixtures/native_trained_golden, made by tests/fixtures/make_native_trained_golden.py on the
current stack): the current-stack tests re-derive its logits from the committed folder with the
native class; the qwen-asr-stack tests convert the folder and compare qwen_asr's logits with them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from adaptkit.cli import main
from adaptkit.convert import RECORD

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = FIXTURE / "native_trained_golden"
TAGS = ("<|spk_0|>", "<|spk_1|>")
GOLDEN_TOLERANCE = 1e-4
"""Against numbers committed from another machine. float32 kernels (matmuls, the FFT of the log-mel)
take other SIMD paths on another CPU: the fixture was made on one x86 CPU, and on an AMD EPYC the
same code differs from it by up to 1.1e-5 in logits and 4.9e-5 in features."""


@pytest.fixture(scope="module")
def script(fixture_script):
    """tests/fixtures/make_native_trained_golden.py as a module."""
    return fixture_script("make_native_trained_golden")


def _convert(src: Path, dst: Path, to: str) -> None:
    result = CliRunner().invoke(main, ["convert", str(src), str(dst), "--to", to])
    assert result.exit_code == 0, result.output


def _tag_ids(folder: Path) -> dict[str, int]:
    """The speaker tags' ids in the native tokenizer (tokenizer.json's added tokens)."""
    added = json.loads((folder / "tokenizer.json").read_text())["added_tokens"]
    return {t["content"]: t["id"] for t in added if t["content"] in TAGS}


def test_the_fixture_holds_a_trained_native_folder_with_the_record_and_the_tags_in_its_input():
    batch = load_file(GOLDEN / "inputs.safetensors")
    ids = _tag_ids(GOLDEN / "model")
    assert sorted(ids) == sorted(TAGS) and (GOLDEN / "model" / RECORD).is_file()
    assert all(int((batch["input_ids"] == i).sum()) >= 1 for i in ids.values())
    config = json.loads((GOLDEN / "model" / "config.json").read_text())
    assert "thinker_config" not in config and config["text_config"]["vocab_size"] > max(ids.values())


# ---- the golden numbers and a fresh training run (the current stack); the round trip (either) ----


@pytest.mark.current_stack
def test_the_native_class_reproduces_the_committed_logits(script):
    batch = load_file(GOLDEN / "inputs.safetensors")
    logits = script.native_logits(script.native_model(GOLDEN / "model"), batch)
    diff = float((logits - batch["logits"]).abs()[batch["attention_mask"].bool()].max())
    print(f"native class vs committed logits max |diff| {diff:.3g}")
    assert logits.shape == batch["logits"].shape and diff <= GOLDEN_TOLERANCE


def test_to_qwen_asr_and_back_gives_byte_identical_tensors(tmp_path, raw_tensors):
    _convert(GOLDEN / "model", tmp_path / "qwen_asr", "qwen_asr")
    _convert(tmp_path / "qwen_asr", tmp_path / "native", "native")
    assert raw_tensors(tmp_path / "native" / "model.safetensors") == raw_tensors(GOLDEN / "model" / "model.safetensors")
    restored = json.loads((tmp_path / "qwen_asr" / "tokenizer_config.json").read_text())["added_tokens_decoder"]
    recorded = json.loads(json.loads((GOLDEN / "model" / RECORD).read_text())["files"]["tokenizer_config.json"])
    assert {k: v for k, v in restored.items() if k in recorded["added_tokens_decoder"]} == recorded["added_tokens_decoder"]
    for tag, i in _tag_ids(GOLDEN / "model").items():
        assert restored[str(i)]["content"] == tag and restored[str(i)]["special"] is False


@pytest.mark.current_stack
def test_a_trained_merged_folder_carries_the_record_and_converts_to_qwen_asr(tmp_path, script):
    from adaptkit.convert import convert
    from adaptkit.export import export
    from adaptkit.recipe import Recipe
    from adaptkit.train import run

    convert(script.BASE, tmp_path / "native", "native")
    recipe = script.recipe(tmp_path / "native", tmp_path / "run")
    recipe["train"]["max_steps"] = 1
    run(Recipe.parse(recipe, "test", tmp_path))
    merged = tmp_path / "run" / "merged"
    assert (merged / RECORD).read_bytes() == (tmp_path / "native" / RECORD).read_bytes()
    _convert(merged, tmp_path / "back", "qwen_asr")
    config = json.loads((tmp_path / "back" / "config.json").read_text())
    native = json.loads((merged / "config.json").read_text())
    assert config["thinker_config"]["text_config"]["vocab_size"] == native["text_config"]["vocab_size"]
    added = json.loads((tmp_path / "back" / "tokenizer_config.json").read_text())["added_tokens_decoder"]
    assert {t["content"] for t in added.values()} >= set(TAGS)
    exported = export(tmp_path / "run" / "adapter", tmp_path / "exported", "merged")
    assert (exported.path / RECORD).read_bytes() == (tmp_path / "native" / RECORD).read_bytes()


def test_a_record_whose_tokens_disagree_with_the_folder_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "odd"
    shutil.copytree(GOLDEN / "model", folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {"330": {"content": "<|im_start|>", "special": True}}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["convert", str(folder), str(tmp_path / "back"), "--to", "qwen_asr"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "<|im_start|> has another id" in lines[0], result.output
    assert not (tmp_path / "back").exists()


# ---- the qwen-asr stack: qwen_asr's classes on the converted folder ----


@pytest.fixture(scope="module")
def handed_back(tmp_path_factory) -> Path:
    """The committed native folder converted to qwen_asr's layout by `adaptkit convert`."""
    out = tmp_path_factory.mktemp("handoff") / "back"
    _convert(GOLDEN / "model", out, "qwen_asr")
    return out


@pytest.mark.qwen_asr_stack
def test_qwen_asr_gives_the_committed_native_logits(handed_back):
    from adaptkit.models import qwen3_asr

    _, model_cls, _ = qwen3_asr._classes()
    model = model_cls.from_pretrained(handed_back, dtype=torch.float32).eval()
    batch = load_file(GOLDEN / "inputs.safetensors")
    with torch.no_grad():
        logits = model.thinker(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                               input_features=batch["input_features"],
                               feature_attention_mask=batch["input_features_mask"]).logits
    diff = float((logits - batch["logits"]).abs()[batch["attention_mask"].bool()].max())
    print(f"native-trained -> qwen_asr max |logit diff| {diff:.3g}")
    assert logits.shape == batch["logits"].shape and diff <= GOLDEN_TOLERANCE


@pytest.mark.qwen_asr_stack
def test_qwen_asr_client_loads_transcribes_and_keeps_the_tags(handed_back):
    from qwen_asr import Qwen3ASRModel

    client = Qwen3ASRModel.from_pretrained(str(handed_back), max_new_tokens=4)
    wave = (0.1 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 440)).astype(np.float32)
    results = client.transcribe(audio=(wave, 16000), language="English")
    assert len(results) == 1 and isinstance(results[0].text, str)
    tokenizer = client.processor.tokenizer
    for tag, i in _tag_ids(GOLDEN / "model").items():
        assert tokenizer.encode(tag, add_special_tokens=False) == [i], tag
        assert tokenizer.decode([i], skip_special_tokens=True) == tag
        assert tag in tokenizer.decode(tokenizer.encode(f"hi {tag} there", add_special_tokens=False), skip_special_tokens=True)
