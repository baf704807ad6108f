"""Recipes: YAML files that name a model, new tokens, a freezing spec, data, a task and training.

    model: {tiny: qwen3_asr}           # or {name: neosophie/Qwen3-ASR-1.7B-JA, arch: qwen3_asr}
    tokens: {tokens: ["<|spk_0|>", "<|spk_1|>"], init: mean}
    freeze: {train: [projector, {tokens: added}]}
    data: {train: data/train/speaker_asr.jsonl, dev: data/test_id/speaker_asr.jsonl}
    task: speaker_asr
    train: {lr: 2.0e-4, epochs: 1, batch_size: 4}
    output_dir: runs/ja_diarization

Loading validates every key (through `adaptkit.validation`): an unknown one gets a did-you-mean,
a wrong type names the key and the expected type, a YAML syntax error names the file and line. `KEY=VALUE` overrides from the
command line (`train.lr=1e-4`) are applied before validation, their values parsed as YAML.
Relative paths in `data` and `output_dir` resolve against the recipe's folder.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from adaptkit.data.manifest import check_language
from adaptkit.data.spec_augment import SpecAugment
from adaptkit.errors import AdaptkitError
from adaptkit.freeze.spec import AddTokens, FreezeSpec, parse_spec
from adaptkit.tasks import DEFAULT_TASK, TASKS, task as task_of
from adaptkit.validation import check_choice, check_keys, check_range, closest, from_dict, typed

DEFAULT = "default"  # the embedded tiny recipe, used when no file is given


@dataclass
class ModelSection:
    """Which model to build."""

    tiny: str | None = None
    """Architecture of a tiny random model built offline (a registered name: qwen3_asr, qwen2_audio, voxtral,
    granite_speech, qwen2_5_omni_thinker, composed, or one registered with `adaptkit.models.register`)."""
    name: str | None = None
    """Hub id or local path of a real checkpoint."""
    arch: str | None = None
    """Architecture of `name`; read from its config.json when left out."""
    tied: bool = False
    """Tiny models only: tie the input embeddings and lm_head."""
    vocab_size: int | None = None
    """Tiny models only: rows of the embedding and lm_head (default: the tiny tokenizer plus 64)."""
    size: str = "tiny"
    """Tiny models only: `tiny`, or for Qwen3-ASR `small` (about 3 M parameters, trainable from scratch on CPU) or
    `proportional` (encoder 256 x 4, LLM 512 x 4 with the FLOP proportions of Qwen3-ASR-1.7B; see qwen3_asr.SIZES)."""
    init_std: float | None = None
    """Tiny models only: init std of the random weights (default: the architecture's, 0.2)."""
    dtype: str = "float32"
    """Weights dtype: float32, bfloat16 or float16 (a checkpoint is loaded in it, a tiny model cast to it)."""
    encoder: str | None = None
    """Composed models (arch or tiny `composed`): the audio encoder, a hub id or path (tiny: a model
    type, whisper, wav2vec2 or parakeet_encoder); left out, the model is text only."""
    llm: str | None = None
    """Composed models: the causal LM, a hub id or path (tiny: a model type such as qwen2 or qwen3)."""
    projector: dict[str, Any] = field(default_factory=dict)
    """Composed models: {type: linear (frame stacking) or conv_transformer (stride 2), stack, layers, heads}."""


@dataclass
class SynthSection:
    """Make the data with `adaptkit synth` when the manifests are missing (demos, smoke tests)."""

    out: str = "data"
    """Folder for the generated data, relative to output_dir."""
    langs: list[str] = field(default_factory=lambda: ["ja"])
    """Languages of the conversations."""
    n: int = 24
    """Conversations over all splits."""
    duration: float = 12.0
    """Target seconds per conversation."""
    telephone: bool = True
    """Telephone channel for train and in-domain test (out of domain gets wideband)."""
    seed: int = 0
    """Seed of the generator."""
    stereo: bool = False
    """Also write `<id>.stereo.wav`, one channel per speaker (for Smart Turn on the own channel in a cascade)."""


@dataclass
class DataSection:
    """Where the samples come from and how they are drawn."""

    train: str | None = None
    """Training manifest (JSONL); relative paths resolve against the recipe's folder."""
    dev: str | None = None
    """Dev manifest scored for loss every `train.eval_every` steps (optional)."""
    synth: SynthSection | None = None
    """Generate the data first with adaptkit synth; train and dev are then its train and test_id splits."""
    sample_rate: int = 16000
    """Rate the audio is resampled to (the processor's rate)."""
    max_audio_seconds: float = 40.0
    """Longer audio is an error (or skipped with on_bad_sample: skip)."""
    on_bad_sample: str = "error"
    """`error`: stop at the first bad sample with its file and line; `skip`: drop it and report."""
    weight_field: str | None = None
    """Manifest field holding a sampling weight: samples are drawn with replacement in proportion to it."""
    max_weight: float = 50.0
    """Weights above this are clipped (with weight_field)."""
    downsample: dict[str, Any] = field(default_factory=dict)
    """Training split only: {label: complete, to: incomplete, ratio: 1.0} keeps ratio x count(to) of label."""
    filters: dict[str, float] = field(default_factory=dict)
    """Keep only samples whose field is at least this value, e.g. {tt_confidence: 0.9}; a missing field drops the sample."""


@dataclass
class TrainSection:
    """Optimisation settings."""

    optimizer: str = "adamw"
    """adamw or sgd."""
    lr: float = 2e-4
    """Peak learning rate."""
    weight_decay: float = 0.01
    """Decoupled weight decay (AdamW); it only reaches parameters that train."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW betas."""
    schedule: str = "constant"
    """constant, linear (to zero) or cosine (to min_lr_ratio x lr); all after warmup_steps."""
    warmup_steps: int = 0
    """Linear warm-up from zero."""
    min_lr_ratio: float = 0.0
    """Floor of the cosine schedule as a fraction of lr."""
    epochs: float = 1.0
    """Passes over the training data (ignored when max_steps is set)."""
    max_steps: int | None = None
    """Optimizer steps to run; overrides epochs."""
    batch_size: int = 4
    """Samples per optimizer step per gradient-accumulation micro-step, over all processes (the
    global batch): each of N processes trains on batch_size / N of it, so it must divide by N."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step."""
    clip: float | None = 1.0
    """Clip the gradient norm to this (None: no clipping)."""
    precision: str | bool = "no"
    """Mixed precision through accelerate: no, bf16 or fp16 (`false`, and YAML's unquoted `no`, mean no).
    Under bf16 or fp16 what trains is kept in float32 (and so is the optimizer state) while frozen
    weights stay in model.dtype; the merged checkpoint is written in model.dtype."""
    gradient_checkpointing: bool = False
    """Recompute the LLM's decoder layers in the backward instead of keeping their activations
    (transformers' gradient checkpointing, non-reentrant): much less activation memory for LoRA
    on a large LLM for about one more LLM forward per step; loss and gradients are unchanged."""
    seed: int = 0
    """Seed of sampling, initialisation and dropout."""
    eval_every: int = 0
    """Dev loss, and dev scores (eval_samples), every N steps (0: dev loss only at the end, when data.dev is set)."""
    eval_samples: int = 0
    """Dev samples (the first N of data.dev; 0, the default, none: decoding is slow on CPU) decoded at each eval_every and scored with the task's
    own metrics by `adaptkit eval`'s code: cpCER / cpWER, WDER, degenerate rate (speaker_asr),
    macro-F1 (turn_tags), F1 (turn_end); logged to metrics.jsonl (`dev_metrics` rows) and
    TensorBoard (`dev/...`). 0: dev loss only. Under several processes the main process decodes
    (not with FSDP or DeepSpeed ZeRO-3, whose weights are sharded) while the others wait."""
    best_metric: str | None = None
    """Metric that keeps `adapter_best/` (the adapter of the best evaluation): a key of the task's
    scores (speaker_asr: cp_error_rate, error_rate, wder, der, speaker_count_abs, degenerate;
    turn_tags: macro_f1, accuracy, other, degenerate; turn_end: f1, accuracy, precision, recall,
    balanced_accuracy). F1, accuracy, precision and recall improve upwards, the rest downwards.
    Default: cp_error_rate, macro_f1 or f1."""
    early_stopping_patience: int | None = None
    """Stop after this many evaluations in a row without improving best_metric (None: never);
    every process stops at the same step."""
    save_every: int = 200
    """Checkpoint every N steps (0: by time only, see save_every_minutes); the end always writes one."""
    save_every_minutes: float = 10.0
    """Also checkpoint when this many minutes have passed since the last one (0: off), so a
    preempted or killed run loses at most this much."""
    log_every: int = 1
    """Log loss and learning rate every N steps."""
    log_with: str | None = None
    """Also log to an experiment tracker through accelerate: tensorboard, wandb or mlflow (its package
    installed; None: only the run's own `tensorboard/` and metrics.jsonl). It logs the hyperparameters,
    train/loss, train/lr and the dev figures; its files go to `output_dir/logs` (wandb honours
    WANDB_MODE=offline, mlflow MLFLOW_TRACKING_URI, else `logs/mlruns`)."""
    token_loss_weights: dict[str, float] = field(default_factory=dict)
    """Loss weight per target token, e.g. {"<COMPLETE>": 5.0}; other supervised tokens weigh 1."""
    ctc_weight: float = 0.0
    """Weight of an auxiliary CTC loss of a linear head on the audio embeddings (0: off). The head
    trains with the model but is never saved in the adapter or the merged checkpoint."""
    data_workers: int = 2
    """DataLoader worker processes that read audio, compute features and tokenise ahead of the step
    (each prepares 2 batches ahead, kept across epochs; forked, so POSIX only); 0: in the main
    process, one sample at a time. The default 2, because in the main process the data path becomes
    the step on a GPU (measured: 81 ms of CPU per batch of 8 x 30 s, where the model step runs
    10-50x faster than on a CPU), and two workers cost little where they are not needed: they start
    once per run, and with the encoder cache later epochs read no audio at all. More helps with long
    audio and free cores (the progress bar's `data=` share says when); on a CPU-only machine the
    workers take cores from the step (60 tiny steps on 2 loaded cores: 4.3-5.0 s of training loop
    against 3.8-4.2 s with 0). The batches, and so the training, are the same bit for bit whatever
    the count, so it may change on --resume."""
    encoder_cache: bool = True
    """Keep encoder outputs across epochs when nothing in the encoder trains; later epochs then read
    neither the audio nor the features of a cached sample."""
    encoder_cache_dir: str | None = None
    """Also keep them on disk in this folder, a relative path inside output_dir."""
    encoder_cache_shared: str | None = None
    """Or keep them in this folder shared across runs, named explicitly (absolute, or relative to
    the recipe's folder); entries are keyed by audio file, span, rate and encoder weights, and
    adaptkit only ever adds files there."""
    merged: bool = True
    """Also write a merged full checkpoint at the end."""
    spec_augment: SpecAugment = field(default_factory=SpecAugment)
    """SpecAugment-style frequency and time masks on the training features, e.g.
    {freq_masks: 2, freq_width: 10, time_masks: 2, time_width: 20} (fields:
    `adaptkit.data.spec_augment.SpecAugment`); off by default. Each sample's masks follow from
    (seed, step, sample), so --resume stays bit-identical. Not with the encoder cache: a frozen
    encoder's cached outputs would keep one mask for every epoch (set encoder_cache: false)."""


@dataclass
class Recipe:
    """A validated recipe."""

    model: ModelSection
    freeze: FreezeSpec
    data: DataSection | None = None
    task: str = DEFAULT_TASK
    train: TrainSection = field(default_factory=TrainSection)
    output_dir: Path | None = None
    prompt: str = ""
    language: str | None = None
    source: str = DEFAULT
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: Iterable[str] = ()) -> "Recipe":
        """Read, override and validate a recipe file (None: the embedded default)."""
        source = str(path) if path else DEFAULT
        data = read_yaml(path, overrides)
        base = Path(path).resolve().parent if path else Path.cwd()
        return cls.parse(data, source, base)

    @classmethod
    def parse(cls, data: Any, source: str = "<recipe>", base: Path | None = None) -> "Recipe":
        """Validate a recipe mapping; errors start with `source: key`."""
        base = base or Path.cwd()
        if not isinstance(data, dict):
            raise AdaptkitError(f"{source}: a recipe is a mapping of sections, got {type(data).__name__}")
        allowed = ("model", "tokens", "freeze", "data", "task", "train", "output_dir", "prompt", "language")
        with blame(source):
            check_keys(data, allowed)
            if "model" not in data:
                raise AdaptkitError("missing section 'model'")
            freeze = dict(typed(data.get("freeze") or {}, dict, "freeze"))
            if data.get("tokens") is not None:
                if freeze.get("add_tokens") is not None:
                    raise AdaptkitError("tokens: give new tokens either in 'tokens' or in 'freeze.add_tokens', not both")
                freeze["add_tokens"] = data["tokens"]
            model = data["model"] if not isinstance(data["model"], str) else {"name": data["model"]}
            task = check_choice(typed(data.get("task", DEFAULT_TASK), str, "task"), sorted(TASKS), "task", "task")
            recipe = cls(
                model=from_dict(ModelSection, model, "model"),
                freeze=parse_spec(freeze, "freeze"),
                data=from_dict(DataSection, data["data"], "data") if data.get("data") is not None else None,
                task=task,
                train=from_dict(TrainSection, data.get("train") or {}, "train"),
                output_dir=(base / typed(data["output_dir"], str, "output_dir")) if data.get("output_dir") else None,
                prompt=typed(data.get("prompt", ""), str, "prompt"),
                language=typed(data["language"], str, "language") if data.get("language") else None,
                source=source, raw=data,
            )
            _check(recipe, base)
        return recipe

    @property
    def new_tokens(self) -> AddTokens | None:
        """The tokens this recipe adds (from `tokens` or `freeze.add_tokens`)."""
        return self.freeze.add_tokens


@contextmanager
def blame(source: str) -> Iterator[None]:
    """Prefix any user error raised inside with the recipe's file name."""
    try:
        yield
    except AdaptkitError as err:
        if str(err).startswith(f"{source}"):
            raise
        raise AdaptkitError(f"{source}: {err}") from None


def _check(recipe: Recipe, base: Path) -> None:
    m, t, d = recipe.model, recipe.train, recipe.data
    composed_by_parts = m.arch == "composed" and not m.name and not m.tiny
    if bool(m.tiny) == bool(m.name) and not composed_by_parts:
        raise AdaptkitError("model: give exactly one of 'tiny' (an architecture) or 'name' (hub id or path)")
    if composed_by_parts and not m.llm:
        raise AdaptkitError("model.llm: a composed model needs an LLM (hub id or path), and optionally model.encoder")
    if (m.encoder or m.llm or m.projector) and "composed" not in (m.tiny, m.arch):
        raise AdaptkitError("model: encoder, llm and projector are for composed models; set tiny or arch to composed")
    check_choice(m.dtype, ("float32", "bfloat16", "float16"), "model.dtype", "dtype")
    if t.precision is False:  # YAML 1.1 reads an unquoted `no` as false
        t.precision = "no"
    for key, allowed in (("optimizer", ("adamw", "sgd")), ("schedule", ("constant", "linear", "cosine")), ("precision", ("no", "bf16", "fp16"))):
        check_choice(getattr(t, key), allowed, f"train.{key}")
    if t.log_with is not None:
        check_choice(t.log_with, TRACKERS, "train.log_with", "tracker")
    _check_train(t)
    _check_scoring(recipe)
    if t.encoder_cache_dir is not None:
        inside("train.encoder_cache_dir", t.encoder_cache_dir)
        if t.encoder_cache_shared is not None:
            raise AdaptkitError("train.encoder_cache_dir: give it or train.encoder_cache_shared, not both")
    if t.encoder_cache_shared is not None:
        t.encoder_cache_shared = str(base / t.encoder_cache_shared)
    if recipe.language is not None:
        check_language(recipe.language, "language")
    if d is not None:
        _check_data(d)
        if d.on_bad_sample not in ("error", "skip"):
            raise AdaptkitError(f"data.on_bad_sample: use 'error' or 'skip', got {d.on_bad_sample!r}")
        if d.downsample and set(d.downsample) - {"label", "to", "ratio"} | ({"label", "to"} - set(d.downsample)):
            raise AdaptkitError(f"data.downsample: expected {{label, to, ratio}}, got {d.downsample}")
        if d.synth and (d.train or d.dev):
            raise AdaptkitError("data: with data.synth the manifests are generated; drop data.train and data.dev")
        for key in ("train", "dev"):
            if getattr(d, key):
                setattr(d, key, str(base / getattr(d, key)))
        if not d.train and not d.synth:
            raise AdaptkitError("data.train: a training manifest is required (or data.synth to generate one)")


TRACKERS = ("tensorboard", "wandb", "mlflow")
"""The experiment trackers `train.log_with` names (accelerate's LoggerType values)."""

TRAIN_RANGES: dict[str, tuple[float, float]] = {
    "lr": (0, 1e10), "weight_decay": (0, 1e3), "warmup_steps": (0, 1e9), "min_lr_ratio": (0, 1), "epochs": (0, 1e6),
    "max_steps": (1, 1e9), "batch_size": (1, 1 << 16), "grad_accum": (1, 1 << 16), "clip": (0, 1e9), "seed": (0, 2**32 - 1),
    "eval_every": (0, 1e9), "save_every": (0, 1e9), "save_every_minutes": (0, 1e6), "log_every": (1, 1e9), "ctc_weight": (0, 1e3),
    "eval_samples": (0, 1e9), "early_stopping_patience": (1, 1e9), "data_workers": (0, 256),
}
"""Inclusive bounds of each numeric training setting (lr and epochs must also be above 0)."""
DATA_RANGES: dict[str, tuple[float, float]] = {"sample_rate": (1000, 384000), "max_audio_seconds": (0.1, 86400), "max_weight": (1e-6, 1e9)}
"""Inclusive bounds of each numeric data setting."""


def _check_train(t: "TrainSection") -> None:
    for key, (low, high) in TRAIN_RANGES.items():
        check_range(f"train.{key}", getattr(t, key), low, high, above_low=key in ("lr", "epochs"))
    if len(t.betas) != 2 or not all(math.isfinite(b) and 0 <= b < 1 for b in t.betas):
        raise AdaptkitError(f"train.betas: expected two numbers in [0, 1), got {t.betas}")
    for token, weight in t.token_loss_weights.items():
        check_range(f"train.token_loss_weights.{token}", weight, 0, 1e6)
    for key in ("freq_masks", "freq_width", "time_masks", "time_width"):
        check_range(f"train.spec_augment.{key}", getattr(t.spec_augment, key), 0, 1e6)
    check_range("train.spec_augment.time_ratio", t.spec_augment.time_ratio, 0, 1, above_low=True)


def _check_scoring(recipe: "Recipe") -> None:
    """train.best_metric names a metric of the task; early stopping needs evaluations to count."""
    t = recipe.train
    names = task_of(recipe.task).metrics
    if t.best_metric is not None and t.best_metric not in names:
        raise AdaptkitError(f"train.best_metric: {t.best_metric!r} is not a {recipe.task} metric{closest(t.best_metric, names)}; "
                            f"use one of {', '.join(names)}")
    if t.early_stopping_patience is not None and not (t.eval_every and t.eval_samples):
        raise AdaptkitError("train.early_stopping_patience: needs train.eval_every and train.eval_samples above 0")


def _check_data(d: "DataSection") -> None:
    for key, (low, high) in DATA_RANGES.items():
        check_range(f"data.{key}", getattr(d, key), low, high)
    for key, value in d.filters.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise AdaptkitError(f"data.filters.{key}: expected a finite number, got {value!r}")
    if d.downsample:
        ratio = d.downsample.get("ratio", 1.0)
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio < 0:
            raise AdaptkitError(f"data.downsample.ratio: expected a finite number >= 0, got {ratio!r}")
    if d.synth:
        inside("data.synth.out", d.synth.out)
        check_range("data.synth.n", d.synth.n, 1, 1e6)
        check_range("data.synth.duration", d.synth.duration, 2, 3600)


def inside(key: str, value: str) -> str:
    """`value` if it is a relative path that stays inside output_dir (no `..`, not absolute), else a one-line error."""
    p = Path(value)
    if not value.strip() or p.is_absolute() or ".." in p.parts:
        raise AdaptkitError(f"{key}: {value!r} must be a relative path inside output_dir (no '..', not absolute)")
    return value


def read_yaml(path: str | Path | None, overrides: Iterable[str] = ()) -> Any:
    """The YAML document of a recipe file (None: the embedded default; an empty file: {}), then
    each `KEY=VALUE` of `overrides` applied (`apply_override`). Unreadable files, bad YAML and
    duplicate keys are one-line errors naming the file (and line)."""
    data = _parse_yaml(path)
    if overrides and not isinstance(data, dict):
        raise AdaptkitError(f"{path or DEFAULT}: a recipe is a mapping of sections, got {type(data).__name__}")
    for item in overrides:
        apply_override(data, item)
    return data


def _parse_yaml(path: str | Path | None) -> Any:
    if path is None:
        text, name = resources.files("adaptkit").joinpath("default_recipe.yaml").read_text(encoding="utf-8"), DEFAULT
    else:
        name = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise AdaptkitError(f"{name}: cannot read recipe ({err.strerror})")
        except UnicodeDecodeError as err:
            line = Path(path).read_bytes()[:err.start].count(b"\n") + 1
            raise AdaptkitError(f"{name}:{line}: not UTF-8 text (byte {err.object[err.start]:#04x})")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        raise AdaptkitError(f"{where}: invalid YAML: {getattr(err, 'problem', None) or err}")
    return data if data is not None else {}


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (YAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def apply_override(data: dict[str, Any], item: str) -> None:
    """Set one `KEY=VALUE` override in `data` in place: dots walk into sections (made when
    missing), the value is parsed as YAML (`train.lr=1e-4`, `data.filters={x: 0.9}`)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise AdaptkitError(f"override {item!r}: expected KEY=VALUE, e.g. train.lr=1e-4")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        raise AdaptkitError(f"override {item!r}: value is not valid YAML")
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part, {}), dict):
            raise AdaptkitError(f"override {item!r}: {part} is not a section")
        node = node.setdefault(part, {})
    node[parts[-1]] = parsed
