"""The GRU gate exported to ONNX (fp32 and int8) decides speech / non-speech as the PyTorch gate does,
chunk by chunk with the streaming state carried, on the shared calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript", reason="the ONNX export needs onnx and onnxscript (pip install 'adaptkit[turn]')")

from adaptkit.errors import AdaptkitError  # noqa: E402
from adaptkit.turn.gate import GRUGate, StreamingGate, log_mel_chunks, save_gate  # noqa: E402
from adaptkit.turn.gate_onnx import GateStep, OnnxStreamingGate, export_gate  # noqa: E402

THRESHOLD = 0.5


def _stream(gate, wave: np.ndarray) -> np.ndarray:
    gate.reset()
    return np.array([gate(wave[i : i + 1600]) for i in range(0, len(wave), 1600)])


@pytest.fixture(scope="module")
def exported(trained_gate, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("onnx")
    return {"fp32": export_gate(trained_gate, out / "gate.onnx"), "int8": export_gate(trained_gate, out / "gate.int8.onnx", int8=True)}


def test_the_step_module_is_the_gru_gate():
    torch.manual_seed(0)
    gate = GRUGate().eval()
    chunks = log_mel_chunks(np.random.default_rng(0).standard_normal(8000).astype(np.float32))
    with torch.no_grad():
        logits, _ = gate(chunks[None])
        state, probs = torch.zeros(1, 64), []
        for c in chunks:
            p, state = GateStep(gate)(c[None], state)
            probs.append(float(p))
    np.testing.assert_allclose(probs, torch.softmax(logits[0], -1)[:, 1].numpy(), atol=1e-6)


@pytest.mark.parametrize("kind,min_agreement,max_diff", [("fp32", 0.999, 1e-4), ("int8", 0.999, 0.05)])
def test_onnx_gate_agrees_with_the_pytorch_gate_on_the_calls(trained_gate, exported, call_waves, kind, min_agreement, max_diff):
    torch_gate, onnx_gate = StreamingGate(trained_gate), OnnxStreamingGate(exported[kind])
    agree = total = 0
    worst = 0.0
    for _, wave, _ in call_waves:  # one stream per call, reset between calls, as the cascade runs them
        want, got = _stream(torch_gate, wave), _stream(onnx_gate, wave)
        agree += int(((want >= THRESHOLD) == (got >= THRESHOLD)).sum())
        total += len(want)
        worst = max(worst, float(np.abs(want - got).max()))
    agreement = agree / total
    print(f"ONNX {kind} gate: {agree}/{total} chunks agree ({100 * agreement:.2f}%), largest P(speech) difference {worst:.2e}")
    assert total >= 900 and agreement >= min_agreement and worst <= max_diff
    both = _stream(torch_gate, call_waves[0][1])
    assert 0.1 < (both >= THRESHOLD).mean() < 0.95  # the trained gate says both speech and non-speech


def test_int8_is_smaller_and_the_state_carries(exported, call_waves):
    assert exported["int8"].stat().st_size < 0.4 * exported["fp32"].stat().st_size
    gate, wave = OnnxStreamingGate(exported["fp32"]), call_waves[0][1]
    first = _stream(gate, wave)
    np.testing.assert_array_equal(_stream(gate, wave), first)  # reset gives a fresh stream
    gate.reset()
    gate(wave[-16000:-14400])  # another chunk first: the state carries, so the answers move
    assert not np.allclose([gate(wave[i : i + 1600]) for i in range(0, 16000, 1600)], first[:10], atol=1e-4)


def test_export_gate_command_and_bad_inputs(trained_gate, tmp_path):
    from click.testing import CliRunner

    from adaptkit.cli import main

    save_gate(trained_gate, tmp_path / "gate.safetensors")
    result = CliRunner().invoke(main, ["turn", "export-gate", str(tmp_path / "gate.safetensors"), str(tmp_path / "g.onnx"), "--int8"])
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'g.onnx'}" in result.output and "int8" in result.output
    assert OnnxStreamingGate(tmp_path / "g.onnx").hidden == 64
    (tmp_path / "junk.safetensors").write_text("not a gate")
    result = CliRunner().invoke(main, ["turn", "export-gate", str(tmp_path / "junk.safetensors"), str(tmp_path / "j.onnx")])
    assert result.exit_code == 2 and result.output.startswith(f"error: {tmp_path / 'junk.safetensors'}: not a gate")
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "j.onnx").exists()
    with pytest.raises(AdaptkitError, match=r"junk.safetensors: not an ONNX gate"):
        OnnxStreamingGate(tmp_path / "junk.safetensors")


def test_a_cascade_recipe_runs_the_onnx_gate(exported, tmp_path):
    from adaptkit.turn.study import CascadeRecipe, _gate

    recipes = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "cascade.yaml"
    gate, info = _gate(CascadeRecipe.load(recipes, (f"gate.path={exported['int8']}",)), tmp_path, tmp_path)
    assert isinstance(gate, OnnxStreamingGate) and info == {"kind": "gru", "loaded": str(exported["int8"]), "runtime": "onnxruntime"}
