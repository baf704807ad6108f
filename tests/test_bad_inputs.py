"""Acceptance: every bad input through the CLI is one line `error: ...` and exit 2, never a traceback
or a silent acceptance. One table across recipe, overrides, freezing spec, manifest, audio, adapter,
eval, synth, cascade, output_dir and resume; each row names the words its message must hold."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf
import yaml
from click.testing import CliRunner

from adaptkit.cli import main

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    """One bad input: the command line it makes and a fragment its one-line message must contain."""

    area: str
    name: str
    argv: Callable[["World"], list[str]]
    expect: str


class World:
    """Files the cases point at, made on demand in one folder: recipes, manifests, audio, an adapter."""

    def __init__(self, root: Path, calls: Path, trained: Path):
        self.root, self.calls, self.trained = root, calls, trained
        self.count = 0

    def fresh(self, name: str) -> Path:
        self.count += 1
        path = self.root / f"{self.count:03d}_{name}"
        return path

    def recipe_dict(self, **sections) -> dict:
        recipe = {
            "model": {"tiny": "qwen3_asr"},
            "tokens": {"tokens": ["<|spk_0|>", "<|spk_1|>"]},
            "freeze": {"train": ["projector", {"tokens": "added"}]},
            "data": {"train": str(self.calls / "train" / "speaker_asr.jsonl"), "dev": None},
            "task": "speaker_asr",
            "train": {"lr": 1e-2, "max_steps": 2, "batch_size": 2},
            "output_dir": str(self.fresh("run")),
        }
        for key, value in sections.items():
            recipe[key] = {**recipe[key], **value} if isinstance(value, dict) and isinstance(recipe.get(key), dict) else value
        return recipe

    def recipe(self, text: str | bytes | None = None, **sections) -> str:
        path = self.fresh("recipe.yaml")
        if text is None:
            text = yaml.safe_dump(self.recipe_dict(**sections), allow_unicode=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return str(path)

    def train(self, *overrides: str, **sections) -> list[str]:
        return ["train", self.recipe(**sections), *overrides]

    def row(self) -> dict:
        row = json.loads((self.calls / "train" / "speaker_asr.jsonl").read_text().splitlines()[0])
        return {**row, "audio": str(self.calls / "train" / row["audio"])}

    def manifest(self, *bad, raw: bytes | None = None) -> str:
        path = self.fresh("m.jsonl")
        if raw is not None:
            path.write_bytes(raw)
        else:
            good = [self.row()]
            path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in good + list(bad)))
        return str(path)

    def train_on(self, *bad, **data) -> list[str]:
        return self.train(data={"train": self.manifest(*bad) if bad else data.pop("train"), **data})

    def wav(self, wave: np.ndarray | None = None, truncate: bool = False) -> str:
        path = self.fresh("a.wav")
        wave = np.zeros(16000, dtype=np.float32) if wave is None else wave
        sf.write(path, wave, 16000, subtype="FLOAT")
        if truncate:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        return str(path)

    def with_audio(self, audio) -> list[str]:
        return self.train_on({**self.row(), "audio": audio})

    def adapter_copy(self, change: Callable[[Path], None]) -> str:
        folder = self.fresh("adapter")
        shutil.copytree(self.trained / "adapter", folder)
        change(folder)
        return str(folder)


def _edit_config(key: str, value) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        path = folder / "adaptkit_adapter.json"
        config = json.loads(path.read_text())
        node = config
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
        path.write_text(json.dumps(config))
    return change


def _nan_wave(value: float) -> np.ndarray:
    wave = np.zeros(16000, dtype=np.float32)
    wave[100] = value
    return wave


def _a_file(w: World) -> str:
    path = w.fresh("file")
    path.write_text("x")
    return str(path)


def _untasked_rows(w: World) -> str:
    """A decoded.jsonl as an older adaptkit wrote it: rows that do not name their task."""
    path = w.fresh("decoded.jsonl")
    path.write_text(json.dumps({"id": "a", "language": "en", "reference": "hi", "hypothesis": "hi"}) + "\n")
    return str(path)


T = "train"
CASES = [
    # the recipe file
    Case("recipe", "missing file", lambda w: ["train", str(w.fresh("nope.yaml"))], "cannot read recipe (No such file or directory)"),
    Case("recipe", "a folder", lambda w: ["train", str(w.root)], "is a directory"),
    Case("recipe", "not UTF-8", lambda w: ["train", w.recipe(b"model:\n  tiny: qwen3_asr\nprompt: \"\xff\xfe\"\n")], ":3: not UTF-8 text (byte 0xff)"),
    Case("recipe", "YAML syntax", lambda w: ["train", w.recipe("model: {tiny: qwen3_asr\n")], "invalid YAML"),
    Case("recipe", "duplicate top key", lambda w: ["train", w.recipe("model: {tiny: qwen3_asr}\ntask: speaker_asr\ntask: turn_tags\n")], ":3: invalid YAML: duplicate key 'task'"),
    Case("recipe", "duplicate nested key", lambda w: ["train", w.recipe("model: {tiny: qwen3_asr}\ntrain:\n  lr: 1.0e-3\n  lr: 1.0\n")], ":4: invalid YAML: duplicate key 'lr'"),
    Case("recipe", "a list", lambda w: ["train", w.recipe("- model\n")], "a recipe is a mapping of sections, got list"),
    Case("recipe", "a list plus an override", lambda w: ["train", w.recipe("- model\n"), "train.lr=1"], "a recipe is a mapping of sections, got list"),
    Case("recipe", "a scalar", lambda w: ["train", w.recipe("5\n")], "a recipe is a mapping of sections, got int"),
    Case("recipe", "unknown section", lambda w: w.train(trainning={}), "unknown key 'trainning' (closest: train)"),
    Case("recipe", "no model", lambda w: ["train", w.recipe("task: speaker_asr\n")], "missing section 'model'"),
    Case("recipe", "tiny and name", lambda w: w.train(model={"tiny": "qwen3_asr", "name": "x"}), "give exactly one of 'tiny'"),
    Case("recipe", "unknown dtype", lambda w: w.train(model={"tiny": "qwen3_asr", "dtype": "float8"}), "model.dtype: unknown dtype 'float8'"),
    Case("recipe", "unknown task", lambda w: w.train(task="diarize"), "task: unknown task 'diarize'"),
    Case("recipe", "numeric prompt", lambda w: w.train(prompt=5), "prompt: expected str, got int 5"),
    Case("recipe", "unknown language code", lambda w: w.train(language="xx"), "language: unknown language 'xx'"),
    Case("recipe", "unknown language name", lambda w: w.train(language="klingon"), "language: unknown language 'klingon'"),
    Case("recipe", "numeric output_dir", lambda w: w.train(output_dir=5), "output_dir: expected str, got int 5"),
    Case("recipe", "no training data", lambda w: w.train(data={"train": None}), "data.train: a training manifest is required"),
    Case("recipe", "synth and manifests", lambda w: w.train(data={"synth": {"n": 6}}), "with data.synth the manifests are generated"),
    # the freezing spec and tokens
    Case("spec", "unknown component", lambda w: w.train(freeze={"train": ["projektor"]}), "freeze.train[0]: unknown component 'projektor' (closest: projector)"),
    Case("spec", "freeze is a list", lambda w: w.train(freeze=["projector"]), "freeze: expected dict, got list"),
    Case("spec", "tokens twice", lambda w: w.train(freeze={"train": ["projector"], "add_tokens": ["<a>"]}), "give new tokens either in 'tokens' or in 'freeze.add_tokens'"),
    Case("spec", "unknown spec key", lambda w: w.train(freeze={"train": ["projector"], "lorra": {}}), "lorra"),
    Case("spec", "unknown token init", lambda w: w.train(tokens={"tokens": ["<|spk_0|>"], "init": "zeros"}), "zeros"),
    Case("spec", "task tag missing", lambda w: w.train(task="turn_tags"), "answers with <COMPLETE>; add it under tokens"),
    Case("spec", "loss weight of an unknown token", lambda w: w.train(train={"token_loss_weights": {"<nope>": 2.0}}), "train.token_loss_weights: token '<nope>' is not in the vocabulary"),
    # overrides
    Case("override", "not a number", lambda w: w.train("train.lr=fast"), "train.lr: expected number, got str 'fast'"),
    Case("override", "misspelt key", lambda w: w.train("train.lrr=0.1"), "train.lrr: unknown key (closest: lr)"),
    Case("override", "misspelt section", lambda w: w.train("trian.lr=0.1"), "unknown key 'trian' (closest: train)"),
    Case("override", "no equals sign", lambda w: w.train("train.lr"), "expected KEY=VALUE"),
    Case("override", "no key", lambda w: w.train("=5"), "expected KEY=VALUE"),
    Case("override", "value is not a section", lambda w: w.train("train.lr.x=1"), "lr is not a section"),
    Case("override", "bad YAML value", lambda w: w.train("train.betas=[0.9"), "value is not valid YAML"),
    Case("override", "lr 1e308", lambda w: w.train("train.lr=1e308"), "train.lr: must be a finite number > 0 and <= 1e+10, got 1e+308"),
    Case("override", "lr 0", lambda w: w.train("train.lr=0"), "train.lr: must be a finite number > 0"),
    Case("override", "lr negative", lambda w: w.train("train.lr=-1"), "train.lr: must be a finite number > 0"),
    Case("override", "lr nan", lambda w: w.train("train.lr=.nan"), "train.lr: must be a finite number"),
    Case("override", "lr inf", lambda w: w.train("train.lr=.inf"), "train.lr: must be a finite number"),
    Case("override", "batch 0", lambda w: w.train("train.batch_size=0"), "train.batch_size: must be a finite number >= 1"),
    Case("override", "batch 1e12", lambda w: w.train("train.batch_size=1000000000000"), "train.batch_size: must be a finite number >= 1 and <= 65536"),
    Case("override", "batch 1e12 as exponent", lambda w: w.train("train.batch_size=1e12"), "train.batch_size: expected int, got str '1e12'"),
    Case("override", "batch fraction", lambda w: w.train("train.batch_size=2.5"), "train.batch_size: expected int, got float 2.5"),
    Case("override", "batch boolean", lambda w: w.train("train.batch_size=true"), "train.batch_size: expected int, got bool True"),
    Case("override", "grad_accum 0", lambda w: w.train("train.grad_accum=0"), "train.grad_accum: must be a finite number >= 1"),
    Case("override", "epochs 0", lambda w: w.train("train.epochs=0", "train.max_steps=null"), "train.epochs: must be a finite number > 0"),
    Case("override", "epochs negative", lambda w: w.train("train.epochs=-1"), "train.epochs: must be a finite number > 0"),
    Case("override", "epochs 1e-9", lambda w: w.train("train.epochs=1e-9", "train.max_steps=null"), "train.epochs: 1e-09 epochs of"),
    Case("override", "max_steps 0", lambda w: w.train("train.max_steps=0"), "train.max_steps: must be a finite number >= 1"),
    Case("override", "max_steps negative", lambda w: w.train("train.max_steps=-3"), "train.max_steps: must be a finite number >= 1"),
    Case("override", "clip negative", lambda w: w.train("train.clip=-1"), "train.clip: must be a finite number >= 0"),
    Case("override", "betas above 1", lambda w: w.train("train.betas=[2,3]"), "train.betas: expected two numbers in [0, 1), got [2.0, 3.0]"),
    Case("override", "one beta", lambda w: w.train("train.betas=[0.9]"), "train.betas: expected two numbers in [0, 1)"),
    Case("override", "beta of 1", lambda w: w.train("train.betas=[0.9,1.0]"), "train.betas: expected two numbers in [0, 1)"),
    Case("override", "negative weight decay", lambda w: w.train("train.weight_decay=-5"), "train.weight_decay: must be a finite number >= 0"),
    Case("override", "log_every 0", lambda w: w.train("train.log_every=0"), "train.log_every: must be a finite number >= 1"),
    Case("override", "data_workers negative", lambda w: w.train("train.data_workers=-1"), "train.data_workers: must be a finite number >= 0"),
    Case("override", "data_workers fraction", lambda w: w.train("train.data_workers=1.5"), "train.data_workers: expected int, got float 1.5"),
    Case("override", "eval_every negative", lambda w: w.train("train.eval_every=-1"), "train.eval_every: must be a finite number >= 0"),
    Case("override", "save_every negative", lambda w: w.train("train.save_every=-1"), "train.save_every: must be a finite number >= 0"),
    Case("override", "save minutes negative", lambda w: w.train("train.save_every_minutes=-1"), "train.save_every_minutes: must be a finite number >= 0"),
    Case("override", "warmup negative", lambda w: w.train("train.warmup_steps=-1"), "train.warmup_steps: must be a finite number >= 0"),
    Case("override", "min_lr_ratio 2", lambda w: w.train("train.min_lr_ratio=2"), "train.min_lr_ratio: must be a finite number >= 0 and <= 1"),
    Case("override", "unknown schedule", lambda w: w.train("train.schedule=cosinus"), "train.schedule: unknown value 'cosinus' (closest: cosine"),
    Case("override", "unknown optimizer", lambda w: w.train("train.optimizer=adam"), "train.optimizer: unknown value 'adam'"),
    Case("override", "precision yes", lambda w: w.train("train.precision=yes"), "train.precision: unknown value True"),
    Case("override", "precision fp32", lambda w: w.train("train.precision=fp32"), "train.precision: unknown value 'fp32'"),
    Case("override", "seed negative", lambda w: w.train("train.seed=-1"), "train.seed: must be a finite number >= 0"),
    Case("override", "ctc weight negative", lambda w: w.train("train.ctc_weight=-1"), "train.ctc_weight: must be a finite number >= 0"),
    Case("override", "negative token weight", lambda w: w.train("train.token_loss_weights={'<|spk_0|>': -1}"), "train.token_loss_weights.<|spk_0|>: must be a finite number >= 0"),
    Case("override", "cache dir upwards", lambda w: w.train("train.encoder_cache_dir=../cache"), "train.encoder_cache_dir: '../cache' must be a relative path inside output_dir"),
    Case("override", "cache dir absolute", lambda w: w.train("train.encoder_cache_dir=/tmp/cache"), "train.encoder_cache_dir: '/tmp/cache' must be a relative path inside output_dir"),
    Case("override", "sample rate 0", lambda w: w.train("data.sample_rate=0"), "data.sample_rate: must be a finite number >= 1000"),
    Case("override", "sample rate negative", lambda w: w.train("data.sample_rate=-16000"), "data.sample_rate: must be a finite number >= 1000"),
    Case("override", "max audio 0", lambda w: w.train("data.max_audio_seconds=0"), "data.max_audio_seconds: must be a finite number >= 0.1"),
    Case("override", "on_bad_sample", lambda w: w.train("data.on_bad_sample=ignore"), "data.on_bad_sample: use 'error' or 'skip'"),
    Case("override", "max weight 0", lambda w: w.train("data.max_weight=0"), "data.max_weight: must be a finite number"),
    Case("override", "filter not a number", lambda w: w.train("data.filters={x: abc}"), "data.filters.x: expected number, got str 'abc'"),
    Case("override", "downsample keys", lambda w: w.train("data.downsample={label: a}"), "data.downsample: expected {label, to, ratio}"),
    Case("override", "downsample ratio", lambda w: w.train("data.downsample={label: a, to: b, ratio: -1}"), "data.downsample.ratio: expected a finite number >= 0"),
    # synthetic data from a recipe
    Case("synth", "recipe synth out upwards", lambda w: w.train(data={"train": None, "synth": {"out": "../victim"}}), "data.synth.out: '../victim' must be a relative path inside output_dir"),
    Case("synth", "recipe synth out absolute", lambda w: w.train(data={"train": None, "synth": {"out": "/tmp/victim"}}), "data.synth.out: '/tmp/victim' must be a relative path"),
    Case("synth", "recipe synth n 0", lambda w: w.train(data={"train": None, "synth": {"n": 0}}), "data.synth.n: must be a finite number >= 1"),
    Case("synth", "recipe synth duration", lambda w: w.train(data={"train": None, "synth": {"duration": 0.5}}), "data.synth.duration: must be a finite number >= 2"),
    Case("synth", "n 0", lambda w: ["synth", "--out", str(w.fresh("s")), "--n", "0"], "--n must be at least 1"),
    Case("synth", "unknown language", lambda w: ["synth", "--out", str(w.fresh("s")), "--lang", "xx", "--n", "2"], "xx"),
    Case("synth", "bad splits", lambda w: ["synth", "--out", str(w.fresh("s")), "--splits", "a,b"], "--splits takes three numbers"),
    Case("synth", "out under a file", lambda w: ["synth", "--out", _a_file(w) + "/x", "--n", "2", "--lang", "en"], "Not a directory"),
    Case("synth", "out is a file", lambda w: ["synth", "--out", _a_file(w), "--n", "2"], "is a file"),
    Case("synth", "duration 1", lambda w: ["synth", "--out", str(w.fresh("s")), "--duration", "1"], "--duration must be at least 2 seconds"),
    Case("synth", "no --out", lambda w: ["synth"], "Missing option '--out'"),
    Case("synth", "--n not a number", lambda w: ["synth", "--out", str(w.fresh("s")), "--n", "many"], "'many' is not a valid integer"),
    # manifest lines
    Case("manifest", "not JSON", lambda w: w.train_on('{"audio": "x.wav", "text": '), ":2: not valid JSON"),
    Case("manifest", "a JSON list", lambda w: w.train_on([1, 2]), ":2: expected a JSON object, got list"),
    Case("manifest", "no audio key", lambda w: w.train_on({"text": "hello"}), ":2: missing key 'audio'"),
    Case("manifest", "no text key", lambda w: w.train_on({"audio": "x.wav"}), ":2: missing key 'text'"),
    Case("manifest", "audio a number", lambda w: w.with_audio(5), ":2: 'audio' must be a path to an audio file, got 5"),
    Case("manifest", "audio null", lambda w: w.with_audio(None), ":2: 'audio' must be a path to an audio file, got None"),
    Case("manifest", "text a number", lambda w: w.train_on({**w.row(), "text": 5}), ":2: 'text' must be a string, got int 5"),
    Case("manifest", "text blank", lambda w: w.train_on({**w.row(), "text": "  "}), ":2: empty text"),
    Case("manifest", "text only tags", lambda w: w.train_on({**w.row(), "text": "<|spk_0|> <|spk_1|>"}), ":2: the text holds only tags and no words"),
    Case("manifest", "unknown tag", lambda w: w.train_on({**w.row(), "text": "<|spk_7|> hi"}), ":2: token <|spk_7|> in the text is not among the recipe's tokens"),
    Case("manifest", "unknown language", lambda w: w.train_on({**w.row(), "language": "xx"}), ":2: unknown language 'xx'"),
    Case("manifest", "language a number", lambda w: w.train_on({**w.row(), "language": 5}), ":2: 'language' must be a language code or name, got 5"),
    Case("manifest", "language disagrees", lambda w: w.train_on({**w.row(), "language": "ja", "text": "language English<asr_text>hi"}), ":2: 'language' 'ja' disagrees"),
    Case("manifest", "prefix language unknown", lambda w: w.train_on({**{k: v for k, v in w.row().items() if k != "language"}, "text": "language Klingon<asr_text>hi"}), ":2: unknown language 'Klingon'"),
    Case("manifest", "start not a number", lambda w: w.train_on({**w.row(), "start": "a"}), ":2: 'start' must be a number of seconds >= 0, got 'a'"),
    Case("manifest", "start NaN", lambda w: w.train_on('{"audio": "%s", "text": "hi", "start": NaN}' % w.row()["audio"]), ":2: 'start' must be a number of seconds >= 0, got nan"),
    Case("manifest", "start negative", lambda w: w.train_on({**w.row(), "start": -1}), ":2: 'start' must be a number of seconds >= 0, got -1"),
    Case("manifest", "end before start", lambda w: w.train_on({**w.row(), "start": 2.0, "end": 1.0}), ":2: empty audio span (start 2.0, end 1.0)"),
    Case("manifest", "end past the file", lambda w: w.train_on({**w.row(), "end": 999.0}), ":2: 'end' 999.0 s is past the end of"),
    Case("manifest", "prompt a number", lambda w: w.train_on({**w.row(), "prompt": 5}), ":2: 'prompt' must be a string, got int 5"),
    Case("manifest", "not UTF-8", lambda w: w.train(data={"train": w.manifest(raw=b'{"audio": "a.wav", "text": "hi"}\n{"text": "\xff"}\n')}), ":2: not UTF-8 text (byte 0xff)"),
    Case("manifest", "a folder", lambda w: w.train(data={"train": str(w.root)}), "cannot read manifest (Is a directory)"),
    Case("manifest", "missing file", lambda w: w.train(data={"train": str(w.fresh("none.jsonl"))}), "cannot read manifest (No such file or directory)"),
    Case("manifest", "empty", lambda w: w.train(data={"train": w.manifest(raw=b"\n\n")}), "no usable sample"),
    Case("manifest", "audio too long", lambda w: w.train("data.max_audio_seconds=1"), "is longer than data.max_audio_seconds (1.0)"),
    Case("manifest", "every line skipped", lambda w: w.train(data={"train": w.manifest(raw=b"[1]\n"), "on_bad_sample": "skip"}), "no usable sample (1 skipped"),
    Case("manifest", "filters drop everything", lambda w: w.train("data.filters={tt_confidence: 0.9}"), "no sample left after data.filters"),
    # audio files
    Case("audio", "missing file", lambda w: w.with_audio(str(w.fresh("none.wav"))), ":2: audio file"),
    Case("audio", "a folder", lambda w: w.with_audio(str(w.root)), ":2: audio " + "{root} is a folder, not an audio file"),
    Case("audio", "garbage bytes", lambda w: w.with_audio(_a_file(w)), ":2: cannot read audio"),
    Case("audio", "truncated WAV", lambda w: w.with_audio(w.wav(truncate=True)), "is truncated: its header declares 64000 bytes of samples"),
    Case("audio", "NaN sample", lambda w: w.with_audio(w.wav(_nan_wave(float("nan")))), "has NaN or infinite samples"),
    Case("audio", "inf sample", lambda w: w.with_audio(w.wav(_nan_wave(float("inf")))), "has NaN or infinite samples"),
    Case("audio", "empty WAV", lambda w: w.with_audio(w.wav(np.zeros(0, dtype=np.float32))), "empty audio span"),
    # output_dir and resume
    Case("output_dir", "a file", lambda w: w.train(output_dir=_a_file(w)), "exists and is not a folder"),
    Case("output_dir", "under a file", lambda w: w.train(output_dir=_a_file(w) + "/run"), "cannot create it (Not a directory)"),
    Case("output_dir", "holds a run", lambda w: w.train(output_dir=str(w.trained)), "already holds a run; pass --resume"),
    Case("resume", "no checkpoint", lambda w: [*w.train(), "--resume"], "--resume: no checkpoint in"),
    Case("resume", "allow-change without resume", lambda w: [*w.train(), "--allow-change", "train.lr"], "--allow-change: only with --resume"),
    Case("resume", "resume and force", lambda w: [*w.train(), "--resume", "--force"], "--resume and --force contradict"),
    Case("resume", "allow an unchangeable key", lambda w: [*w.train(output_dir=str(w.trained)), "--resume", "--allow-change", "train.seed"], "--allow-change train.seed: only"),
    Case("resume", "changed batch size", lambda w: [*w.train("train.batch_size=4", output_dir=str(w.trained)), "--resume"], "train.batch_size (2 -> 4)"),
    Case("resume", "changed spec", lambda w: [*w.train(freeze={"train": ["projector"]}, output_dir=str(w.trained)), "--resume"], "freeze.train"),
    Case("resume", "unknown flag", lambda w: [*w.train(), "--resum"], "No such option '--resum'. Did you mean '--resume'?"),
    # adapters and eval
    Case("eval", "nothing to evaluate", lambda w: ["eval"], "give a TARGET"),
    Case("eval", "missing target", lambda w: ["eval", str(w.fresh("nothing")), "--data", "x"], "not a recipe, an adaptkit adapter or a checkpoint folder"),
    Case("eval", "a recipe never trained", lambda w: ["eval", w.recipe(), "--data", "x"], "no trained adapter in"),
    Case("eval", "batch size not a number", lambda w: ["eval", str(w.trained / "adapter"), "--batch-size", "x"], "'x' is not a valid integer"),
    Case("eval", "unknown task", lambda w: ["eval", str(w.trained / "adapter"), "--task", "bogus"], "'bogus' is not one of"),
    Case("eval", "hypotheses without a task", lambda w: ["eval", "--hypotheses", _untasked_rows(w)], "task: the rows do not name their task"),
    Case("eval", "missing manifest", lambda w: ["eval", str(w.trained / "adapter"), "--data", str(w.fresh("none.jsonl"))], "cannot read manifest"),
    Case("adapter", "config not JSON", lambda w: ["eval", w.adapter_copy(lambda f: (f / "adaptkit_adapter.json").write_text("{")), "--data", "x"], "adaptkit_adapter.json:1: not valid JSON"),
    Case("adapter", "config not UTF-8", lambda w: ["eval", w.adapter_copy(lambda f: (f / "adaptkit_adapter.json").write_bytes(b"\xff")), "--data", "x"], "adaptkit_adapter.json: not UTF-8 text"),
    Case("adapter", "config a list", lambda w: ["eval", w.adapter_copy(lambda f: (f / "adaptkit_adapter.json").write_text("[]")), "--data", "x"], "not an adaptkit adapter config"),
    Case("adapter", "weights missing", lambda w: ["eval", w.adapter_copy(lambda f: (f / "adapter.safetensors").unlink()), "--data", "x"], "adapter.safetensors: missing"),
    Case("adapter", "weights truncated", lambda w: ["eval", w.adapter_copy(lambda f: (f / "adapter.safetensors").write_bytes((f / "adapter.safetensors").read_bytes()[:100])), "--data", "x"], "adapter.safetensors: unreadable adapter weights"),
    Case("adapter", "another base", lambda w: ["eval", w.adapter_copy(_edit_config("model.init_std", 0.05)), "--data", "x"], "adapter was trained on another base"),
    Case("adapter", "another architecture", lambda w: ["eval", w.adapter_copy(_edit_config("model.tiny", "voxtral")), "--data", "x"], "adapter is for"),
    Case("adapter", "model section wrong", lambda w: ["eval", w.adapter_copy(_edit_config("model", {"tiny": "qwen3_asr", "colour": 1})), "--data", "x"], "model.colour: unknown key"),
    # cascade and plan
    Case("cascade", "missing recipe", lambda w: ["cascade", str(w.fresh("none.yaml"))], "cannot read recipe"),
    Case("cascade", "no turn models", lambda w: ["cascade", w.recipe("data: x\n")], "missing section 'turn_models'"),
    Case("cascade", "a list plus an override", lambda w: ["cascade", w.recipe("- a\n"), "gate.kind=gru"], "a recipe is a mapping of sections, got list"),
    Case("cascade", "unknown gate", lambda w: ["cascade", w.recipe("turn_models: {a: x.yaml}\ngate: {kind: lstm}\n")], "gate.kind: unknown gate 'lstm'"),
    Case("cascade", "unknown baseline", lambda w: ["cascade", w.recipe("turn_models: {a: x.yaml}\nbaselines: [magic]\n")], "baselines: unknown baseline 'magic'"),
    Case("cascade", "duplicate key", lambda w: ["cascade", w.recipe("turn_models: {a: x.yaml}\nturn_models: {b: y.yaml}\n")], "duplicate key 'turn_models'"),
    Case("plan", "bad override", lambda w: ["plan", "train.clip=-1"], "train.clip: must be a finite number >= 0"),
    Case("plan", "unknown command", lambda w: ["trian"], "No such command 'trian'"),
]


@pytest.fixture(scope="module")
def world(calls, tmp_path_factory) -> World:
    """The shared calls, and one tiny run trained for two steps (its adapter and checkpoint)."""
    root = tmp_path_factory.mktemp("bad")
    trained = root / "trained"
    w = World(root, calls, trained)
    result = CliRunner().invoke(main, ["train", w.recipe(output_dir=str(trained))])
    assert result.exit_code == 0, result.output
    return w


def test_the_table_is_large_and_spans_every_area():
    assert len(CASES) >= 100
    assert {c.area for c in CASES} >= {"recipe", "override", "spec", "manifest", "audio", "adapter", "eval", "synth", "cascade",
                                      "output_dir", "resume"}
    assert len({(c.area, c.name) for c in CASES}) == len(CASES)


@pytest.mark.qwen_asr_stack  # the world's run is the tiny qwen3_asr recipe
@pytest.mark.parametrize("case", CASES, ids=[f"{c.area}: {c.name}" for c in CASES])
def test_a_bad_input_is_one_line_and_exit_2(world, case):
    result = CliRunner().invoke(main, case.argv(world))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (result.exit_code, result.output)
    assert case.expect.replace("{root}", str(world.root)) in lines[0], lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def test_audio_that_vanishes_after_the_manifest_was_read_is_one_line(tmp_path):
    """A file deleted (or moved) between reading the manifest and loading it for a batch."""
    import numpy as np
    import soundfile as sf

    from adaptkit.data.audio import load_audio
    from adaptkit.errors import AdaptkitError

    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(1600, dtype="float32"), 16000)
    assert load_audio(path, 16000).shape == (1600,)
    path.unlink()
    with pytest.raises(AdaptkitError) as err:
        load_audio(path, 16000)
    assert str(err.value).startswith(f"{path}: cannot read audio (") and "\n" not in str(err.value)
