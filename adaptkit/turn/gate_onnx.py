"""The GRU gate as ONNX, fp32 or int8, streaming on onnxruntime alone.

The exported graph is one streaming step: a batch of 100 ms log-mel chunks `chunk` (B, 10, 40) and
the GRU state `state_in` (B, hidden) give P(speech) `speech` (B,) and `state_out`. The GRU cell is
written out as two MatMuls and its gates (PyTorch's GRU equations, torch.nn.GRU's documentation:
r = σ(W_ir x + b_ir + W_hr h + b_hr), z likewise, n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),
h' = (1 - z) ⊙ n + z ⊙ h), not as ONNX's GRU operator: onnxruntime's dynamic quantization turns
MatMul into MatMulInteger and Conv into ConvInteger, and has no quantized GRU
(`onnxruntime/quantization/registry.py`, IntegerOpsRegistry), so with a GRU operator the int8 model
would keep 98% of its weights (the GRU's 960 x 192 input matrix) in fp32.

`OnnxStreamingGate` computes the features exactly as `StreamingGate` does (the same causal STFT
context across chunks) and starts each stream from a zero state, as torch's GRU does with
`state=None`, so it is a drop-in gate for `adaptkit.turn.cascade.stream` and the pipecat analyzer.
Optional dependencies: onnxruntime (`adaptkit[turn]`), onnx and onnxscript for the export.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from adaptkit.atomic import atomic_write
from adaptkit.errors import AdaptkitError
from adaptkit.turn.gate import FRAMES, N_MELS, GRUGate, StreamingGate

INSTALL = "pip install 'adaptkit[turn]'"
INPUTS, OUTPUTS = ("chunk", "state_in"), ("speech", "state_out")


class GateStep(nn.Module):
    """One streaming step of a `GRUGate` in ops that onnxruntime can quantize: (B, 10, 40) chunk,
    (B, hidden) state -> (B,) P(speech), (B, hidden) state; equal to `GRUGate.forward` on T = 1."""

    def __init__(self, gate: GRUGate):
        super().__init__()
        self.gate = gate.eval()

    def forward(self, chunk: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gru = self.gate.gru
        x = self.gate.features(chunk[:, None])[:, 0]
        gi = torch.matmul(x, gru.weight_ih_l0.t()) + gru.bias_ih_l0
        gh = torch.matmul(state, gru.weight_hh_l0.t()) + gru.bias_hh_l0
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        new = (1 - z) * n + z * state
        return torch.softmax(self.gate.head(new), dim=-1)[:, 1], new


def _export_fp32(gate: GRUGate, path: Path) -> None:
    """torch.onnx.export of one GateStep with a dynamic batch (the dynamo exporter, torch >= 2.9's default)."""
    step = GateStep(gate)
    hidden = gate.config["hidden"]
    args = (torch.zeros(1, FRAMES, N_MELS), torch.zeros(1, hidden))
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with torch.no_grad(), warnings.catch_warnings():  # the exporter's own deprecation and axis-name notes
            warnings.simplefilter("ignore")
            program = torch.onnx.export(step, args, input_names=list(INPUTS), output_names=list(OUTPUTS),
                                        dynamic_shapes=({0: batch}, {0: batch}), dynamo=True, optimize=True, verbose=False)
    except ImportError as err:
        raise AdaptkitError(f"export-gate: the ONNX export needs onnx and onnxscript ({err.name} is missing): {INSTALL}") from None
    program.save(str(path))


def export_gate(gate: GRUGate, out: str | Path, int8: bool = False) -> Path:
    """Write `gate` to `out` as an ONNX streaming step (see the module doc), atomically; with `int8`,
    weights quantized by onnxruntime's dynamic quantization (`quantize_dynamic`, int8 weights,
    activations quantized per call: onnxruntime.ai/docs/performance/model-optimizations/quantization.html)."""
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "gate.onnx"
        _export_fp32(gate, fp32)
        final = fp32
        if int8:
            try:
                from onnxruntime.quantization import QuantType, quantize_dynamic
            except ImportError:
                raise AdaptkitError(f"export-gate --int8: needs onnxruntime's quantization (and onnx): {INSTALL}") from None
            final = Path(tmp) / "gate.int8.onnx"
            # ConvInteger has CPU kernels for uint8 weights only, so the int8 (signed) MatMuls are
            # the GRU's and the convolutions quantize to uint8 (onnxruntime's default weight type).
            quantize_dynamic(fp32, final, weight_type=QuantType.QUInt8)
        atomic_write(out, final.read_bytes())
    return out


class OnnxStreamingGate(StreamingGate):
    """A gate exported by `export_gate`, fed one 100 ms chunk at a time on onnxruntime (one thread);
    returns P(speech) per chunk, like `StreamingGate`."""

    def __init__(self, path: str | Path, threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError:
            raise AdaptkitError(f"ONNX gate needs onnxruntime: {INSTALL}") from None
        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail / InvalidGraph / NoSuchFile types
            raise AdaptkitError(f"{self.path}: not an ONNX gate ({type(err).__name__}: {' '.join(str(err).split())[:200]})") from None
        names = [i.name for i in self.session.get_inputs()]
        if names != list(INPUTS):
            raise AdaptkitError(f"{self.path}: not an ONNX gate written by export-gate (inputs {names}, expected {list(INPUTS)})")
        self.hidden = int(self.session.get_inputs()[1].shape[-1])
        self.reset()

    def __call__(self, chunk: np.ndarray) -> float:
        state = np.zeros((1, self.hidden), np.float32) if self.state is None else self.state
        feats = self.features(chunk).numpy()[None]
        speech, self.state = self.session.run(list(OUTPUTS), {INPUTS[0]: feats, INPUTS[1]: state})
        return float(speech[0])
