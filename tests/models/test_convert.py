"""`adaptkit convert`: Qwen3-ASR between qwen_asr's layout and transformers 5's native one.

The two stacks cannot be installed together, so the current-stack tests compare against a committed
golden fixture (tests/fixtures/qwen3_asr_golden, made by tests/fixtures/make_qwen3_asr_golden.py on
the qwen-asr stack), whose logits a qwen-asr-stack test re-derives from qwen_asr's own classes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from adaptkit.cli import main
from adaptkit.convert import RECORD, convert
from adaptkit.errors import AdaptkitError
from adaptkit.models import qwen3_asr_layout as layout

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = FIXTURE / "qwen3_asr_golden"
TOLERANCE = 1e-5

GOLDEN_TOLERANCE = 1e-4
"""Against numbers committed from another machine. float32 kernels (matmuls, the FFT of the log-mel)
take other SIMD paths on another CPU: the fixture was made on one x86 CPU, and on an AMD EPYC the
same code differs from it by up to 1.1e-5 in logits and 4.9e-5 in features. Same-machine checks keep
TOLERANCE."""


@pytest.fixture(scope="module")
def script(fixture_script):
    """tests/fixtures/make_qwen3_asr_golden.py as a module."""
    return fixture_script("make_qwen3_asr_golden")


def _max_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """The largest |a - b| over the positions `mask` marks (the real tokens, not padding)."""
    return float((a - b)[mask.bool()].abs().max())


# ---- the qwen-asr stack: the golden numbers, the positions, a round trip of the hub-shaped checkpoint ----


@pytest.mark.qwen_asr_stack
def test_the_committed_golden_tensors_are_what_qwen_asr_computes(script):
    """inputs.safetensors re-derived from the committed checkpoint by qwen_asr's own processor and
    classes: the golden numbers the current-stack tests compare against are verified, not copied."""
    committed = load_file(GOLDEN / "inputs.safetensors")
    fresh = script.reference(GOLDEN / "model")
    assert sorted(fresh) == sorted(committed)
    for key, value in committed.items():
        assert value.shape == fresh[key].shape and value.dtype == fresh[key].dtype, key
        if value.is_floating_point():
            assert float((value - fresh[key]).abs().max()) <= GOLDEN_TOLERANCE, key
        else:
            assert torch.equal(value, fresh[key]), key


@pytest.mark.qwen_asr_stack
def test_qwen_asr_positions_are_three_identical_rows_counting_the_real_tokens():
    """qwen_asr's thinker feeds mrope three position rows; for an audio-only prompt they are the
    same 1-D count from 0 over the real tokens, which is what the native Qwen3's plain rope gets."""
    from adaptkit.models import qwen3_asr

    _, model_cls, _ = qwen3_asr._classes()
    model = model_cls.from_pretrained(GOLDEN / "model", dtype=torch.float32)
    mask = load_file(GOLDEN / "inputs.safetensors")["attention_mask"]
    positions, _ = model.thinker.get_rope_index(attention_mask=mask)
    assert positions.shape == (3, *mask.shape)
    assert torch.equal(positions[0], positions[1]) and torch.equal(positions[0], positions[2])
    assert torch.equal(positions[0][mask.bool()], (mask.cumsum(-1) - 1)[mask.bool()].to(positions.dtype))
    assert mask[0].all() and torch.equal(positions[0][0], torch.arange(mask.shape[1], dtype=positions.dtype))


@pytest.fixture(scope="module")
def hub_round_trip(tmp_path_factory):
    """The hub-shaped tiny Qwen3-ASR (real vocabulary and special tokens), converted to native and back."""
    from adaptkit.models.hub_checkpoint import save_qwen3_asr_checkpoint

    root = tmp_path_factory.mktemp("convert_hub")
    original = save_qwen3_asr_checkpoint(root / "original")
    first = convert(original, root / "native", "native")
    second = convert(root / "native", root / "back", "qwen_asr")
    return original, root / "native", root / "back", (first, second)


@pytest.mark.qwen_asr_stack
def test_hub_checkpoint_round_trip_gives_the_same_logits_through_qwen_asr(hub_round_trip, script):
    from transformers import AutoTokenizer

    original, _, back, _ = hub_round_trip
    batch = script.inputs(AutoTokenizer.from_pretrained(original))
    before, after = script.qwen_asr_logits(original, batch), script.qwen_asr_logits(back, batch)
    diff = _max_diff(before, after, batch["attention_mask"])
    print(f"round trip max |logit diff| {diff:.3g}")
    assert diff <= TOLERANCE


@pytest.mark.qwen_asr_stack
def test_hub_checkpoint_round_trip_is_byte_identical_and_transcribes(hub_round_trip, raw_tensors):
    from qwen_asr import Qwen3ASRModel

    original, native, back, (first, second) = hub_round_trip
    assert (first.source_layout, first.target_layout, second.target_layout) == ("qwen_asr", "native", "qwen_asr")
    assert raw_tensors(back / "model.safetensors") == raw_tensors(original / "model.safetensors")
    for name in ("config.json", "preprocessor_config.json", "chat_template.jinja", "tokenizer_config.json", "tokenizer.json"):
        assert (back / name).read_bytes() == (original / name).read_bytes(), name
    assert not (back / RECORD).exists() and (native / RECORD).is_file()
    client = Qwen3ASRModel.from_pretrained(str(back), max_new_tokens=4)
    wave = (0.1 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 440)).astype(np.float32)
    results = client.transcribe(audio=(wave, 16000), language="Japanese")
    assert len(results) == 1 and isinstance(results[0].text, str)


@pytest.mark.qwen_asr_stack
def test_a_tied_lm_head_stays_tied_both_ways(tmp_path, script, raw_tensors):
    from adaptkit.models import qwen3_asr

    original = script.build(tmp_path / "tied", tied=True)
    convert(original, tmp_path / "native")
    convert(tmp_path / "native", tmp_path / "back")
    assert "lm_head.weight" not in raw_tensors(tmp_path / "native" / "model.safetensors")
    native = json.loads((tmp_path / "native" / "config.json").read_text())
    assert native["tie_word_embeddings"] is True and native["text_config"]["tie_word_embeddings"] is True
    _, model_cls, _ = qwen3_asr._classes()
    thinker = model_cls.from_pretrained(tmp_path / "back").thinker
    assert thinker.lm_head.weight.data_ptr() == thinker.model.embed_tokens.weight.data_ptr()
    assert raw_tensors(tmp_path / "back" / "model.safetensors") == raw_tensors(original / "model.safetensors")


@pytest.mark.qwen_asr_stack
def test_a_transformers_5_tokenizer_config_is_made_readable_by_transformers_4(tmp_path):
    """transformers 5 writes extra_special_tokens as a list and the audio tokens at the top level;
    transformers 4 fails on the list (a native folder without a record brings such a file)."""
    from transformers import AutoTokenizer

    folder = tmp_path / "tok"
    shutil.copytree(GOLDEN / "model", folder)
    v4 = json.loads((folder / "tokenizer_config.json").read_text())
    v5 = {**{k: v for k, v in v4.items() if k not in ("additional_special_tokens", "extra_special_tokens")},
          **layout.AUDIO_TOKENS, "extra_special_tokens": v4["additional_special_tokens"],
          "model_specific_special_tokens": dict(layout.AUDIO_TOKENS), "backend": "tokenizers"}
    (folder / "tokenizer_config.json").write_text(json.dumps(v5))
    with pytest.raises(AttributeError):
        AutoTokenizer.from_pretrained(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps(layout.qwen_asr_tokenizer_config(v5)))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (tokenizer.audio_token, tokenizer.audio_bos_token, tokenizer.audio_eos_token) == tuple(layout.AUDIO_TOKENS.values())
    assert set(v4["additional_special_tokens"]) <= set(tokenizer.additional_special_tokens)


# ---- the current stack: the native class against the committed qwen_asr logits ----


@pytest.fixture(scope="module")
def golden_native(tmp_path_factory) -> Path:
    """The committed qwen_asr-layout fixture converted to the native layout."""
    out = tmp_path_factory.mktemp("golden") / "native"
    convert(GOLDEN / "model", out, "native")
    return out


@pytest.mark.current_stack
def test_native_logits_equal_qwen_asr_logits_of_the_original(golden_native):
    from transformers import Qwen3ASRForConditionalGeneration

    model = Qwen3ASRForConditionalGeneration.from_pretrained(golden_native, dtype=torch.float32).eval()
    batch = load_file(GOLDEN / "inputs.safetensors")
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
              "input_features": batch["input_features"], "input_features_mask": batch["feature_attention_mask"]}
    positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # qwen_asr's row, see the qwen-asr test
    with torch.no_grad():
        counted = model(**inputs, position_ids=positions).logits
        default = model(**inputs).logits  # the native's own 0..n-1: the same on the unpadded sample
    diff = _max_diff(counted, batch["logits"], batch["attention_mask"])
    print(f"qwen_asr -> native max |logit diff| {diff:.3g}")
    assert diff <= GOLDEN_TOLERANCE
    assert batch["attention_mask"][0].all() and float((default[0] - batch["logits"][0]).abs().max()) <= GOLDEN_TOLERANCE
    assert counted.argmax(-1)[batch["attention_mask"].bool()].tolist() == batch["logits"].argmax(-1)[batch["attention_mask"].bool()].tolist()


@pytest.mark.current_stack
def test_audio_shorter_than_one_chunk_is_where_the_two_implementations_part(golden_native):
    """Not a conversion matter but the encoders': under 100 mel frames (1 s) qwen_asr convolves the
    frames as they are and the native encoder the zero-padded 100-frame chunk, so the last audio
    positions (and what attends to them) move; everything before the audio is untouched."""
    from transformers import Qwen3ASRForConditionalGeneration

    model = Qwen3ASRForConditionalGeneration.from_pretrained(golden_native, dtype=torch.float32).eval()
    golden = load_file(GOLDEN / "inputs.safetensors")
    with torch.no_grad():
        logits = model(input_ids=golden["short_input_ids"], attention_mask=golden["short_attention_mask"],
                       input_features=golden["short_input_features"],
                       input_features_mask=golden["short_feature_attention_mask"]).logits
    per_position = (logits - golden["short_logits"]).abs().amax(-1)[0]
    first_audio = int((golden["short_input_ids"][0] == model.config.audio_token_id).nonzero()[0])
    assert float(per_position[:first_audio].max()) <= GOLDEN_TOLERANCE
    assert float(per_position[first_audio:].max()) > 10 * GOLDEN_TOLERANCE
    print(f"short audio: max |logit diff| {float(per_position.max()):.3g} from the audio on")


@pytest.mark.current_stack
def test_a_wave_through_the_native_processor_and_class_gives_qwen_asr_s_inputs_and_logits(golden_native, script):
    """The whole native path (processor, prompt, features, placeholders, model) on the wave qwen_asr's
    own processor and thinker turned into the committed wave_* tensors."""
    from transformers import AutoProcessor, Qwen3ASRForConditionalGeneration

    golden = load_file(GOLDEN / "inputs.safetensors")
    processor = AutoProcessor.from_pretrained(golden_native)
    inputs = processor.apply_transcription_request(script.wave(), language="en", prompt="hello")
    assert torch.equal(inputs["input_ids"], golden["wave_input_ids"])
    assert torch.equal(inputs["attention_mask"], golden["wave_attention_mask"])
    frames = int(golden["wave_feature_attention_mask"].sum())
    assert int(inputs["input_features_mask"].sum()) == frames and inputs["input_features"].shape[-1] % 100 == 0
    feature_diff = float((inputs["input_features"][..., :frames] - golden["wave_input_features"]).abs().max())
    model = Qwen3ASRForConditionalGeneration.from_pretrained(golden_native, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(**inputs).logits
    diff = float((logits - golden["wave_logits"]).abs().max())
    print(f"wave: feature diff {feature_diff:.3g}, native processor + class vs qwen_asr max |logit diff| {diff:.3g}")
    assert feature_diff <= GOLDEN_TOLERANCE and diff <= GOLDEN_TOLERANCE


@pytest.mark.current_stack
def test_the_native_processor_loads_and_renders_the_asr_prompt(golden_native):
    from transformers import AutoProcessor, Qwen3ASRFeatureExtractor

    processor = AutoProcessor.from_pretrained(golden_native)
    assert type(processor).__name__ == "Qwen3ASRProcessor"
    assert isinstance(processor.feature_extractor, Qwen3ASRFeatureExtractor)
    assert processor.audio_token == "<|audio_pad|>" and processor.audio_bos_token == "<|audio_start|>"
    wave = np.zeros(16000, dtype=np.float32)
    [prompt] = processor.apply_transcription_request(wave, language="en", prompt="hello", tokenize=False)
    assert prompt == ("<|im_start|>system\nhello<|im_end|>\n<|im_start|>user\n<|audio_start|><|audio_pad|><|audio_end|>"
                      "<|im_end|>\n<|im_start|>assistant\nlanguage English<asr_text>")
    inputs = processor.apply_transcription_request(wave, language="en")
    assert int((inputs["input_ids"] == processor.audio_token_id).sum()) == 13  # 1 s: one 100-frame chunk
    assert inputs["input_features"].shape[-1] % 100 == 0


@pytest.mark.current_stack
def test_a_tied_checkpoint_loads_tied_in_the_native_class(tmp_path):
    """A tied qwen_asr checkpoint as its save_pretrained writes it: no lm_head in the file, tie flags set."""
    from transformers import Qwen3ASRForConditionalGeneration

    src = tmp_path / "tied"
    shutil.copytree(GOLDEN / "model", src)
    tensors = load_file(src / "model.safetensors")
    del tensors["thinker.lm_head.weight"]
    save_file(tensors, src / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((src / "config.json").read_text())
    config["tie_word_embeddings"] = config["thinker_config"]["tie_word_embeddings"] = True
    config["thinker_config"]["text_config"]["tie_word_embeddings"] = True
    (src / "config.json").write_text(json.dumps(config))
    assert convert(src, tmp_path / "native").tied
    model = Qwen3ASRForConditionalGeneration.from_pretrained(tmp_path / "native", dtype=torch.float32)
    assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr()
    assert torch.equal(model.lm_head.weight, tensors["thinker.model.embed_tokens.weight"].float())


@pytest.mark.current_stack
def test_native_back_to_qwen_asr_is_byte_identical(golden_native, tmp_path, raw_tensors):
    convert(golden_native, tmp_path / "back")
    assert raw_tensors(tmp_path / "back" / "model.safetensors") == raw_tensors(GOLDEN / "model" / "model.safetensors")
    assert {dtype for dtype, _ in raw_tensors(tmp_path / "back" / "model.safetensors").values()} == {torch.bfloat16}
    for name in ("config.json", "preprocessor_config.json", "chat_template.jinja", "tokenizer_config.json"):
        assert (tmp_path / "back" / name).read_bytes() == (GOLDEN / "model" / name).read_bytes(), name


# ---- either stack: the file-level rules ----


def test_the_weight_names_map_both_ways(raw_tensors):
    keys = list(raw_tensors(GOLDEN / "model" / "model.safetensors"))
    native = [layout.rename(k, layout.TO_NATIVE, "x") for k in keys]
    assert "model.multi_modal_projector.linear_2.bias" in native and "lm_head.weight" in native
    assert "model.language_model.layers.0.self_attn.q_proj.weight" in native
    assert "model.audio_tower.conv2d1.weight" in native and not any("proj1" in k for k in native)
    assert [layout.rename(k, layout.TO_QWEN_ASR, "x") for k in native] == keys


def test_sharded_weights_are_converted_shard_by_shard(tmp_path, raw_tensors):
    src = tmp_path / "sharded"
    shutil.copytree(GOLDEN / "model", src)
    tensors = load_file(src / "model.safetensors")
    (src / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, src / file, metadata={"format": "pt"})
    index = {"metadata": {"total_size": 1}, "weight_map": {k: f for f, ks in shards.items() for k in ks}}
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    convert(src, tmp_path / "native")
    native_index = json.loads((tmp_path / "native" / "model.safetensors.index.json").read_text())
    assert native_index["metadata"] == {"total_size": 1} and "lm_head.weight" in native_index["weight_map"]
    for file in shards:
        assert set(raw_tensors(tmp_path / "native" / file)) == {k for k, f in native_index["weight_map"].items() if f == file}
    convert(tmp_path / "native", tmp_path / "back")
    for file in shards:
        assert raw_tensors(tmp_path / "back" / file) == raw_tensors(src / file)


def test_without_the_record_the_published_mrope_is_restored_or_refused():
    native = layout.config_to_native(json.loads((GOLDEN / "model" / "config.json").read_text()), tied=False)
    with pytest.raises(AdaptkitError, match=r"text_config.head_dim: 32"):
        layout.config_to_qwen_asr(native, False, None, 3)
    native["text_config"]["head_dim"] = 128
    config = layout.config_to_qwen_asr(native, False, None, 3)
    thinker = config["thinker_config"]
    assert thinker["text_config"]["rope_scaling"]["mrope_section"] == [24, 20, 20]
    assert thinker["text_config"]["rope_theta"] == 5000000.0 and thinker["audio_start_token_id"] == 3
    assert thinker["audio_config"]["encoder_attention_heads"] == 4 and "max_position_embeddings" not in thinker["audio_config"]


def _cli(*args: str):
    return CliRunner().invoke(main, ["convert", *map(str, args)])


def test_cli_converts_says_so_in_one_line_and_leaves_no_temporary_folder(tmp_path):
    result = _cli(GOLDEN / "model", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1 and "(qwen_asr layout)" in result.output and "(native layout)" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["audio_config"]["model_type"] == "qwen3_asr_encoder"


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_cli_refuses_a_folder_in_neither_layout(tmp_path):
    src = tmp_path / "odd"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"model_type": "qwen3_asr", "hidden_size": 8}))
    _one_line_error(_cli(src, tmp_path / "out"), "config.json: thinker_config:", "neither")
    (src / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    _one_line_error(_cli(src, tmp_path / "out"), "config.json: model_type: 'whisper'")
    _one_line_error(_cli(tmp_path, tmp_path / "out"), "config.json: not found")
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_destination_that_is_or_holds_the_source(tmp_path):
    src = tmp_path / "model"
    shutil.copytree(GOLDEN / "model", src)
    _one_line_error(_cli(src, tmp_path, "--force"), "holds the source folder")
    _one_line_error(_cli(src, src / "native"), "inside the source folder")
    assert (src / "model.safetensors").is_file() and not (src / "native").exists()


def test_cli_refuses_an_existing_destination_unless_forced(tmp_path):
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    _one_line_error(_cli(GOLDEN / "model", dst), "exists and is not empty", "--force")
    assert (dst / "keep.txt").read_text() == "mine"
    result = CliRunner().invoke(main, ["convert", str(GOLDEN / "model"), str(dst), "--force"])
    assert result.exit_code == 0, result.output
    assert not (dst / "keep.txt").exists() and (dst / "config.json").is_file()


def test_cli_refuses_the_wrong_direction_an_aligner_and_pickled_weights(tmp_path):
    _one_line_error(_cli(GOLDEN / "model", tmp_path / "o1", "--to", "qwen_asr"), "already in the qwen_asr layout")
    aligner = tmp_path / "aligner"
    shutil.copytree(GOLDEN / "model", aligner)
    config = json.loads((aligner / "config.json").read_text())
    config["thinker_config"]["classify_num"] = 5000
    (aligner / "config.json").write_text(json.dumps(config))
    _one_line_error(_cli(aligner, tmp_path / "o2"), "thinker_config.classify_num", "forced aligner")
    pickled = tmp_path / "pickled"
    shutil.copytree(GOLDEN / "model", pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    _one_line_error(_cli(pickled, tmp_path / "o3"), "model.safetensors: not found", ".bin")
    assert not any((tmp_path / o).exists() for o in ("o1", "o2", "o3"))


def test_a_failure_midway_leaves_no_destination_and_no_temporary_folder(tmp_path):
    src = tmp_path / "extra"
    shutil.copytree(GOLDEN / "model", src)
    tensors = load_file(src / "model.safetensors")
    save_file({**tensors, "speaker_head.weight": torch.zeros(2)}, src / "model.safetensors", metadata={"format": "pt"})
    _one_line_error(_cli(src, tmp_path / "out"), "model.safetensors: speaker_head.weight: not a Qwen3-ASR weight")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["extra"]
