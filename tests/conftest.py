"""The synthetic calls shared by every test that trains (one set per session)."""

from __future__ import annotations

import importlib.util
import os
import sys

# One intra-op thread, here and in the CLI subprocesses the tests start: the tiny models' ops are
# too small to split, and on a loaded 2-core machine two threads made tests/freeze/test_training.py
# 2.4x slower (64 s against 26 s). A value the caller sets wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Byte-code caching on, here and in the interpreters the tests start: the suite starts dozens of
# them, and where the machine sets PYTHONDONTWRITEBYTECODE (this one does) each of them compiled
# torch, transformers and peft from source again: 17 s of CPU an import of adaptkit.train against
# 7 s with the cache (scripts/install.sh installs with --no-compile).
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.utils._python_dispatch  # noqa: E402

from adaptkit.stack import CURRENT, has_qwen_asr  # noqa: E402
from adaptkit.synth import SynthConfig, generate  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

STACK_MARKERS = {
    "qwen_asr_stack": (has_qwen_asr(), "needs the qwen-asr stack (transformers 4.57.6 + qwen-asr): "
                                       "bash scripts/install.sh --stack qwen-asr"),
    "current_stack": (CURRENT, "needs the current stack (transformers 5): bash scripts/install.sh --stack current"),
}
"""Marker -> (whether this environment has that stack, the reason printed when a test is skipped)."""


def pytest_collection_modifyitems(config, items) -> None:
    """Skip the tests marked for the stack this environment does not have, saying why."""
    for item in items:
        for marker, (present, reason) in STACK_MARKERS.items():
            if item.get_closest_marker(marker) and not present:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def calls(tmp_path_factory) -> Path:
    """12 short two-speaker English calls: 8 train, 2 in-domain test, 2 out-of-domain test."""
    out = tmp_path_factory.mktemp("calls")
    generate(SynthConfig(out=out, langs=("en",), n=12, splits=(8, 2, 2), duration=8.0, telephone=True, seed=3, jobs=1))
    return out


def _speech_batch(arch, model, tokenizer, feature_extractor, answers=("thank you for calling",), seconds=(1.5, 1.0), seed=0,
                  system: str = "") -> dict:
    """A batch of random-noise audio in adaptkit's layout, built through the architecture's own
    interface (features, prompt, placeholder count) and collated as training collates it."""
    import numpy as np
    import torch

    from adaptkit.data.batching import IGNORE, Encoded, collate

    rng = np.random.default_rng(seed)
    items = []
    for i, sec in enumerate(seconds):
        answer = tokenizer(answers[i % len(answers)], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if feature_extractor is None:  # a text-only model: a short user turn, then the answer
            prompt = tokenizer("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
            items.append(Encoded(None, prompt + answer, [IGNORE] * len(prompt) + answer, None))
            continue
        wave = (0.1 * rng.standard_normal(int(16000 * sec))).astype(np.float32)
        feats = arch.features(feature_extractor, wave)
        prompt = arch.prompt_ids(tokenizer, arch.audio_token_count(feats.shape[-1], model), system)
        items.append(Encoded(None, prompt + answer, [IGNORE] * len(prompt) + answer, feats))
    batch = collate(items, tokenizer.pad_token_id)
    batch["index"] = torch.arange(len(items))
    return batch


def _own_inputs(arch, model, batch: dict) -> dict:
    """An adaptkit batch as the model class's own forward takes it (the names and shapes its
    processor gives), labels included."""
    keep = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    if "input_features" not in batch:
        return keep
    if hasattr(arch, "model_inputs"):  # transformers' audio-LLM classes
        return {**keep, **arch.model_inputs(model, batch["input_features"], batch["feature_attention_mask"])}
    return {**keep, "input_features": batch["input_features"], "feature_attention_mask": batch["feature_attention_mask"]}


def _own_forward(arch, model, batch: dict):
    """The model class's own forward on an adaptkit batch (loss over every supervised position), the
    way its users call it (Qwen3-ASR: through `thinker`, the outer class has no forward)."""
    return (model.thinker if arch.name == "qwen3_asr" else model)(**_own_inputs(arch, model, batch))


def _loss_check(arch, model, tokenizer, feature_extractor, seconds=(2.5, 1.0)) -> None:
    """Assert that adaptkit's pieces (encoder, projector, LLM with audio at the placeholders,
    supervised logits) give the loss of the class's own forward on one batch."""
    import torch

    from adaptkit.train.step import SpeechLMLoss

    batch = _speech_batch(arch, model, tokenizer, feature_extractor, answers=["thank you for calling", "order number one two"],
                          seconds=seconds)
    with torch.no_grad():
        want = _own_forward(arch, model, batch).loss
        loss_sum, weight = SpeechLMLoss(model, arch, encoder_trains=True)(batch)
    assert weight == (batch["labels"][:, 1:] != -100).sum()
    assert torch.allclose(loss_sum / weight, want, atol=1e-5), (float(loss_sum / weight), float(want))


@pytest.fixture(scope="session")
def loss_check():
    """`loss_check(arch, model, tokenizer, feature_extractor, seconds=...)`: adaptkit's loss is the class's."""
    return _loss_check


def _adapter_check(arch, model, tokenizer, feature_extractor, tied: bool) -> None:
    """Assert that one SGD step of projector + an added speaker row moves the projector and token
    rows and nothing else (`tied`: whether the model's embeddings and lm_head share their weight)."""
    import torch

    from adaptkit.freeze import apply
    from adaptkit.train.step import SpeechLMLoss

    assert (model.get_input_embeddings().weight is model.get_output_embeddings().weight) is tied
    model, _ = apply(model, {"add_tokens": ["<|spk_0|>"], "train": ["projector", {"tokens": "added"}]}, tokenizer=tokenizer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = _speech_batch(arch, model, tokenizer, feature_extractor, answers=["<|spk_0|> thank you"], seconds=(1.0, 1.0))
    loss_sum, weight = SpeechLMLoss(model, arch, encoder_trains=False, cache={})(batch)
    (loss_sum / weight).backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0).step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    cmap = model.adaptkit.cmap
    assert changed and all(cmap.group_of(n) in ("projector", "embeddings", "lm_head") for n in changed), sorted(changed)[:5]
    assert any(cmap.group_of(n) == "projector" for n in changed)


@pytest.fixture(scope="session")
def adapter_check():
    """`adapter_check(arch, model, tokenizer, feature_extractor, tied)`: only projector and token rows train."""
    return _adapter_check


def _fixture_script(name: str):
    """tests/fixtures/`name`.py (a golden fixture's maker) as a module: its reference run, its inputs."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "fixtures" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _raw_tensors(path: Path) -> dict[str, tuple[torch.dtype, bytes]]:
    """Every tensor of a safetensors file as (dtype, raw bytes)."""
    from safetensors import safe_open

    out = {}
    with safe_open(path, framework="pt") as f:
        for key in f.keys():
            t = f.get_tensor(key).contiguous()
            out[key] = (t.dtype, t.view(-1).view(torch.uint8).numpy().tobytes())
    return out


@pytest.fixture(scope="session")
def fixture_script():
    """`fixture_script(name)` -> tests/fixtures/`name`.py as a module."""
    return _fixture_script


@pytest.fixture(scope="session")
def raw_tensors():
    """`raw_tensors(path)` -> every tensor of a safetensors file as (dtype, raw bytes)."""
    return _raw_tensors


@pytest.fixture(scope="session")
def speech_batch():
    """`speech_batch(arch, model, tokenizer, feature_extractor, answers=..., seconds=...)` -> batch."""
    return _speech_batch


@pytest.fixture(scope="session")
def own_inputs():
    """`own_inputs(arch, model, batch)` -> the batch in the class's own input names."""
    return _own_inputs


@pytest.fixture(scope="session")
def own_forward():
    """`own_forward(arch, model, batch)` -> the class's own outputs (`.loss`, `.logits`)."""
    return _own_forward


@pytest.fixture(scope="session")
def short_calls(calls, tmp_path_factory) -> dict[str, Path]:
    """Manifests of the first two turns of each shared call: train (8 samples) and test_id (2)."""
    folder = tmp_path_factory.mktemp("short_calls")
    from adaptkit.data.synthetic import first_turns_manifest

    return {split: first_turns_manifest(calls / split, folder / f"{split}.jsonl") for split in ("train", "test_id")}


@pytest.fixture(scope="session")
def trained_gate(calls: Path):
    """A GRUGate trained for 60 steps on the 8 training calls of `calls` (seconds on one thread); tests/turn and tests/integrations share it."""
    from adaptkit.turn.gate import train_gate

    gate, _ = train_gate(sorted(p for p in (calls / "train").glob("*.wav") if not p.name.endswith(".stereo.wav")), steps=60, seed=0)
    return gate


@pytest.fixture(scope="session")
def call_waves(calls: Path) -> list[tuple[str, object, dict]]:
    """(name, 16 kHz wave, synth record) of every shared call, train and test splits."""
    import json

    from adaptkit.data.audio import load_audio

    out = []
    for split in ("train", "test_id", "test_ood"):
        for wav in sorted((calls / split).glob("*.wav")):
            if not wav.name.endswith(".stereo.wav"):
                out.append((f"{split}/{wav.stem}", load_audio(wav, 16000), json.loads(wav.with_suffix(".json").read_text())))
    return out


class _Allocations(torch.utils._python_dispatch.TorchDispatchMode):
    """While active, records (op, shape) of every tensor an aten op allocates, backward included:
    outputs on storage of their own, not views of an input (such as a weight's transpose)."""

    def __init__(self):
        super().__init__()
        self.made: list[tuple[str, tuple[int, ...]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        from torch.utils._pytree import tree_flatten

        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        self.made += [(str(func), tuple(t.shape)) for t in tree_flatten(out)[0]
                      if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs]
        return out


@pytest.fixture(scope="session")
def allocations():
    """`with allocations() as seen: ...` then `seen.made`: (op, shape) of each tensor allocated inside."""
    return _Allocations
