"""`--device` of eval, cascade and compare: the model goes to the device named, every tensor it is
handed is on the model's device (floating inputs in its dtype), and a device this machine lacks is one
line, exit 2, before anything loads or trains.

This suite runs on CPUs: the placement is checked with `cpu` named explicitly (a move recorded, every
module's inputs recorded by forward pre-hooks), and on the `meta` device, where a tensor left on the
CPU would show (the model is moved there and the call that receives the inputs is stopped once it
has seen them: nothing can run on meta weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from adaptkit.cli import main
from adaptkit.devices import cuda_count, default_device, resolve_device
from adaptkit.errors import AdaptkitError
from adaptkit.eval.run import TaskModel
from adaptkit.models import load
from adaptkit.recipe import ModelSection
from adaptkit.stack import has_qwen_asr
from adaptkit.tasks.turn_tags import TAGS

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
SPEECH = "qwen3_asr" if has_qwen_asr() else "qwen3_asr_hf"
ABSENT = f"cuda:{cuda_count()}"
"""One GPU more than torch sees: absent on every machine."""
CPU = torch.device("cpu")


class Stop(Exception):
    """Raised by a recorder once it has seen the inputs."""


def _tensors(args, kwargs) -> list[torch.Tensor]:
    flat = [*args, *kwargs.values()]
    flat += [x for v in flat if isinstance(v, (list, tuple)) for x in v]
    return [x for x in flat if isinstance(x, torch.Tensor)]


def record_inputs(model: torch.nn.Module) -> list[torch.Tensor]:
    """Every tensor handed to any module of `model` (forward pre-hooks)."""
    seen: list[torch.Tensor] = []
    for module in model.modules():
        module.register_forward_pre_hook(lambda _m, args, kwargs: seen.extend(_tensors(args, kwargs)), with_kwargs=True)
    return seen


def record_moves(monkeypatch, model: torch.nn.Module) -> list[tuple]:
    """The arguments of every `model.to(...)` call."""
    moves: list[tuple] = []
    original = model.to
    monkeypatch.setattr(model, "to", lambda *a, **k: moves.append(a + tuple(k.values())) or original(*a, **k))
    return moves


def speech_model() -> TaskModel:
    return TaskModel(load(ModelSection(tiny=SPEECH)), "speaker_asr", "en", "", {"<|spk_0|>", "<|spk_1|>"}, "tiny")


def tags_model() -> TaskModel:
    loaded = load(ModelSection(tiny="composed", encoder="parakeet_encoder", llm="qwen2",
                               projector={"type": "conv_transformer", "layers": 1, "heads": 4}))
    loaded.tokenizer.add_tokens(list(TAGS.values()))  # into the tiny model's spare rows
    return TaskModel(loaded, "turn_tags", "en", "", set(TAGS.values()), "tiny tags")


def text_model() -> TaskModel:
    return TaskModel(load(ModelSection(tiny="composed", llm="qwen3")), "turn_end", "en", "", set(), "tiny text")


def test_a_device_is_resolved_or_refused_in_one_line():
    assert resolve_device("cpu") == CPU and resolve_device(None) == torch.device(default_device())
    absent = [ABSENT] + (["cuda"] if cuda_count() == 0 else [])
    for name in absent:
        with pytest.raises(AdaptkitError) as err:
            resolve_device(name)
        assert str(err.value).startswith(f"--device: {name!r} asked for, but torch sees") and "\n" not in str(err.value)
    with pytest.raises(AdaptkitError, match=r"^--device: 'gpu' is not a device"):
        resolve_device("gpu")
    if not torch.backends.mps.is_available():
        with pytest.raises(AdaptkitError, match=r"^--device: 'mps' asked for, but torch sees no Apple MPS device"):
            resolve_device("mps")


@pytest.mark.parametrize("command", ["eval", "cascade", "compare"])
def test_an_absent_device_is_one_line_and_exit_2_before_anything_runs(command, tmp_path):
    out = tmp_path / "out"
    args = {"eval": ["eval", str(tmp_path), "--data", str(tmp_path / "none.jsonl"), "--out", str(out)],
            "cascade": ["cascade", str(RECIPES / "tiny" / "cascade.yaml"), f"output_dir={out}"],
            "compare": ["compare", str(RECIPES / "tiny" / "ja_diarization.yaml"), "--variant", "projector", "--out", str(out)]}[command]
    for name in [ABSENT] + (["cuda"] if cuda_count() == 0 else []):
        result = CliRunner().invoke(main, [*args, "--device", name])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
        assert result.stderr.startswith(f"error: --device: {name!r} asked for, but torch sees"), result.stderr
    assert not out.exists()  # nothing was loaded, trained or written


def test_eval_moves_the_model_to_the_device_and_hands_it_only_tensors_there(calls, tmp_path, monkeypatch):
    import adaptkit.eval.run as run

    t = speech_model()
    dtypes = {p.dtype for p in t.loaded.model.parameters()}
    moves, seen = record_moves(monkeypatch, t.loaded.model), record_inputs(t.loaded.model)
    monkeypatch.setattr(run, "load_task_model", lambda *args, **kwargs: t)
    run.evaluate("tiny", [str(calls / "test_id" / "speaker_asr.jsonl")], tmp_path / "report", limit=1, device="cpu")
    assert moves == [(CPU,)]
    assert seen and {x.device for x in seen} == {CPU}
    assert {p.dtype for p in t.loaded.model.parameters()} == dtypes  # moved in its own dtype
    assert (tmp_path / "report" / "decoded.jsonl").is_file()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decoding_hands_generate_its_inputs_on_the_models_device_in_its_dtype(calls, monkeypatch, dtype):
    from adaptkit.eval.run import decode_task_model

    t = speech_model()
    t.loaded.model.to(device="meta", dtype=dtype)
    seen: dict[str, torch.Tensor] = {}

    def generate(model, **inputs):
        seen.update({k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)})
        raise Stop

    monkeypatch.setattr(t.loaded.architecture, "generate", generate)
    with pytest.raises(Stop):
        decode_task_model(t, [str(calls / "test_id" / "speaker_asr.jsonl")], limit=1, progress=False)
    assert {"input_ids", "attention_mask", "input_features", "feature_attention_mask"} <= set(seen)
    assert {x.device.type for x in seen.values()} == {"meta"}
    assert seen["input_features"].dtype == dtype and seen["input_ids"].dtype == torch.long


def test_the_cascade_places_each_turn_model_and_its_inputs_on_the_device(call_waves, monkeypatch):
    import adaptkit.eval.run as run
    from adaptkit.turn.study import TurnModel, _verifier

    _, wave, record = call_waves[-1]
    end = float(record["units"][0]["end"]) + 0.05
    for t in (tags_model(), text_model()):
        moves, seen = record_moves(monkeypatch, t.loaded.model), record_inputs(t.loaded.model)
        monkeypatch.setattr(run, "load_task_model", lambda *args, t=t, **kwargs: t)
        verifier = _verifier("a turn model", TurnModel("a turn model"), CPU)
        verifier.reset(record)
        assert 0.0 <= verifier(wave[: int(end * 16000)], end) <= 1.0
        assert moves == [(CPU,)], t.name
        assert seen and {x.device for x in seen} == {CPU}, t.name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_tag_verifier_hands_the_model_its_inputs_on_its_device_in_its_dtype(monkeypatch, dtype):
    from adaptkit.turn.verifiers import TagVerifier

    t = tags_model()
    t.loaded.model.to(device="meta", dtype=dtype)
    arch, seen = t.loaded.architecture, []
    monkeypatch.setattr(arch, "encode_audio", lambda model, feats, mask: seen.extend([feats, mask]) or ["states"])
    monkeypatch.setattr(arch, "project", lambda model, states: None)

    def llm_hidden(model, ids, mask, audio):
        seen.extend([ids, mask])
        raise Stop

    monkeypatch.setattr(arch, "llm_hidden", llm_hidden)
    with pytest.raises(Stop):
        TagVerifier(t)(np.zeros(16000, np.float32), 1.0)
    assert len(seen) == 4 and {x.device.type for x in seen} == {"meta"}
    assert seen[0].dtype == dtype and seen[2].dtype == torch.long


def test_the_end_of_turn_scorer_feeds_its_ids_on_the_models_device(monkeypatch):
    from adaptkit.end_of_turn import EndOfTurnScorer

    t = text_model()
    lm = t.loaded.architecture.text_model(t.loaded.model).to("meta")
    seen = []

    def stop(_module, args, kwargs):
        seen.extend(_tensors(args, kwargs))
        raise Stop

    lm.register_forward_pre_hook(stop, with_kwargs=True)
    scorer = EndOfTurnScorer(lm, t.loaded.tokenizer)
    messages = [{"role": "user", "content": "hello there"}]
    for ask in (scorer.start, scorer.score):
        seen.clear()
        with pytest.raises(Stop):
            ask(messages)
        assert seen and {x.device.type for x in seen} == {"meta"}
