"""The official Qwen3-ASR fine-tuning format and adaptkit's form give the same training, on a hub-shaped checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from adaptkit.cli import main

ROOT = Path(__file__).resolve().parents[2]
TOKENS = {"<|spk_0|>", "<|spk_1|>"}


def official_collator_ids(hub: Path, wave: np.ndarray, text: str) -> tuple[list[int], list[int]]:
    """Ids and labels exactly as QwenLM/Qwen3-ASR `finetuning/qwen3_asr_sft.py` builds them."""
    from transformers import AutoProcessor

    from adaptkit.models.qwen3_asr import _classes

    _classes()  # registers Qwen3-ASR with the Auto* factories, as qwen_asr's import does
    processor = AutoProcessor.from_pretrained(str(hub), fix_mistral_regex=True)  # as Qwen3ASRModel.from_pretrained
    from transformers import AddedToken

    processor.tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in sorted(TOKENS)])
    messages = [{"role": "system", "content": ""}, {"role": "user", "content": [{"type": "audio", "audio": None}]}]
    prefix = processor.apply_chat_template([messages], add_generation_prompt=True, tokenize=False)[0]
    full = processor(text=[prefix + text + processor.tokenizer.eos_token], audio=[wave], return_tensors="pt", padding=True)
    short = processor(text=[prefix], audio=[wave], return_tensors="pt", padding=True)
    ids = full["input_ids"][0].tolist()
    n = int(short["attention_mask"].sum())
    return ids, [-100] * n + ids[n:]


@pytest.mark.qwen_asr_stack
def test_both_forms_give_the_official_collators_ids_and_labels(hub_qwen3_asr, one_call):
    import soundfile as sf

    from adaptkit.data.batching import encode
    from adaptkit.data.manifest import read_manifest
    from adaptkit.freeze import apply
    from adaptkit.models import architecture, load
    from adaptkit.recipe import ModelSection
    from adaptkit.tasks import task

    loaded = load(ModelSection(name=str(hub_qwen3_asr)))
    model, _ = apply(loaded.model, {"add_tokens": {"tokens": sorted(TOKENS)}, "train": ["projector"]}, tokenizer=loaded.tokenizer)
    fam = loaded.architecture
    encoded = []
    for form in ("adaptkit", "official"):
        (sample,), _ = read_manifest(one_call / f"{form}.jsonl", TOKENS)
        encoded.append(encode(sample, fam, loaded.tokenizer, loaded.feature_extractor, task("speaker_asr").target(sample), "", 16000,
                              model=model))
    ours, theirs = encoded
    assert ours.input_ids == theirs.input_ids and ours.labels == theirs.labels
    wave, _ = sf.read(one_call / "call.wav", dtype="float32")
    ids, labels = official_collator_ids(hub_qwen3_asr, wave, "language Japanese<asr_text>" + theirs.sample.text)
    assert ours.input_ids == ids
    assert ours.labels == labels
    answer = loaded.tokenizer.decode([t for t in ours.labels if t != -100])
    assert answer.count("<asr_text>") == 1 and answer.startswith("language Japanese<asr_text><|spk_0|>")


@pytest.mark.qwen_asr_stack
def test_both_forms_train_bit_identical_adapters(hub_qwen3_asr, one_call, real, tmp_path):
    adapters = []
    for form in ("adaptkit", "official"):
        out = tmp_path / form
        result = CliRunner().invoke(main, ["train", str(ROOT / "recipes/ja_diarization.yaml"),
                                           *real.overrides(hub_qwen3_asr, one_call / f"{form}.jsonl", out, max_steps=3),
                                           "train.merged=false"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        adapters.append((out / "adapter" / "adapter.safetensors").read_bytes())
    assert adapters[0] == adapters[1]


@pytest.mark.parametrize("line, message", [
    ({"text": "language English<asr_text><|spk_0|> はい", "language": "ja"},
     "'language' 'ja' disagrees with the text's prefix 'language English<asr_text>'"),
    ({"text": "language Japanese<asr_text><|spk_0|> はい", "language": 3}, "'language' must be a language code or name"),
])
@pytest.mark.qwen_asr_stack
def test_a_line_whose_language_and_prefix_disagree_is_one_line_naming_it(hub_qwen3_asr, one_call, real, tmp_path, line, message):
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text(json.dumps({"audio": str(one_call / "call.wav"), **line}, ensure_ascii=False) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["train", str(ROOT / "recipes/ja_diarization.yaml"),
                                       *real.overrides(hub_qwen3_asr, manifest, tmp_path / "run", max_steps=1)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"{manifest}:1: {message}" in lines[0]


@pytest.mark.parametrize("text, language, body", [
    ("language Japanese<asr_text><|spk_0|> はい", "Japanese", "<|spk_0|> はい"),
    ("<asr_text><|spk_0|> はい", None, "<|spk_0|> はい"),  # a bare prefix is not trained on twice either
    ("<|spk_0|> はい", None, "<|spk_0|> はい"),
])
def test_the_answer_prefix_is_split_off_once(text, language, body):
    from adaptkit.data.manifest import split_answer_prefix
    from adaptkit.tasks import speaker_asr

    assert split_answer_prefix(text) == (language, body)
    assert speaker_asr.ANSWER_PREFIX.sub("", text) == body
