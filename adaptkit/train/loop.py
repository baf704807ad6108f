"""`adaptkit train`: build, freeze, read data, train on accelerate, save adapter and merged checkpoint.

One code path for a tiny model on a laptop CPU and a 1.7B checkpoint on GPUs: the recipe names
the model, `accelerate launch` decides the processes (DDP; DeepSpeed or FSDP through accelerate's
own config files, see examples/distributed/).
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import torch

from adaptkit.atomic import atomic_write_text
from adaptkit.data import loading
from adaptkit.data.audio import note_resampling
from adaptkit.data.batching import BucketBatchSampler, Encoded, encode
from adaptkit.data.sharding import ProcessShard
from adaptkit.data.manifest import Sample, read_manifest
from adaptkit.data.sampling import downsample, filter_samples, sample_weights
from adaptkit.data.spec_augment import mask_features
from adaptkit.data.synthetic import synth_manifests
from adaptkit.errors import AdaptkitError
from adaptkit.freeze import apply, fingerprint, moved, save_adapter, save_merged, train_mode, trainable_parameters
from adaptkit.freeze.adapters import adapter_state
from adaptkit.models import load
from adaptkit.recipe import Recipe, blame, inside
from adaptkit.tasks import task as task_of
from adaptkit.train import checkpoint, checkpointing, trackers
from adaptkit.train.distributed import check_global_batch, check_sharding, process_state
from adaptkit.train.encoder_cache import EncoderCache, encoder_digest, sample_key
from adaptkit.train.guard import Interrupted, StopFlag, detach_worker, run_lock, stop_on_signals
from adaptkit.train.precision import in_loaded_dtypes, restore_dtypes, upcast_trainable
from adaptkit.train.resume import CHANGEABLE, fingerprint as run_fingerprint
from adaptkit.train.resume import check as resume_check
from adaptkit.train.scoring import Best, best_metric, dev_metrics
from adaptkit.train.step import SpeechLMLoss, encoder_trains

log = logging.getLogger("adaptkit")


@dataclass
class Summary:
    """What a run did; written to output_dir/summary.json."""

    steps: int
    seconds: float
    trainable_parameters: int
    final_loss: float
    samples_per_second: float
    dev_loss: float | None = None
    skipped: list[str] = field(default_factory=list)
    output_dir: str = ""
    resumed_from: int | None = None
    peak_memory_mb: float | None = None
    """Peak memory of this process: CUDA allocations on a GPU, else the resident set (VmHWM)."""
    finished_before: bool = False
    """True when `--resume` found the run already finished (nothing was trained or written)."""
    best: dict[str, Any] | None = None
    """The best dev evaluation (train.best_metric): metric, value, step; its adapter is adapter_best/."""
    stopped_early: bool = False
    """True when train.early_stopping_patience ended the run before its last step."""
    processes: int = 1
    """Processes that trained (the world size); each took its share of every train.batch_size batch."""
    encoded_samples: int | None = None
    """Train samples run through the frozen encoder, over all processes and epochs (None: the
    encoder trains or train.encoder_cache is off); with the cache, each sample once."""
    data_wait_share: float | None = None
    """The data path's share of the training loop, in [0, 1]: the time the main process waited for
    train batches (reading audio, features, tokens; in train.data_workers or in the process itself)
    over that wait plus the optimizer steps (forward, backward, update; not checkpoints or dev
    evaluations). The largest over the processes, for this invocation (a resume counts afresh); None
    when no step ran. Also the progress bar's `data=`. Well above 0 the GPU waits for data: raise
    train.data_workers, or keep the encoder cache on (later epochs then read no audio)."""


def peak_memory_mb() -> float | None:
    """Peak memory of this process in MB. VmHWM, unlike ru_maxrss, restarts at exec, so a child
    process launched from a large parent reports its own peak."""
    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def schedule(recipe: Recipe, total: int):
    """Learning-rate multiplier per step: linear warm-up, then constant, linear to 0 or cosine to the floor."""
    t = recipe.train

    def factor(step: int) -> float:
        if step < t.warmup_steps:
            return (step + 1) / t.warmup_steps
        progress = min(1.0, (step - t.warmup_steps) / max(1, total - t.warmup_steps))
        if t.schedule == "linear":
            return 1.0 - progress
        if t.schedule == "cosine":
            return t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0
    return factor


def _manifests(recipe: Recipe, out: Path, accelerator) -> tuple[str, str | None]:
    d = recipe.data
    if d is None:
        raise AdaptkitError("data: the recipe has no data section")
    if not d.synth:
        return d.train, d.dev
    folder = out / inside("data.synth.out", d.synth.out)  # synth overwrites its folder: only ever inside output_dir
    paths = synth_manifests(d.synth, folder, recipe.task, make=accelerator.is_main_process)
    accelerator.wait_for_everyone()
    return paths


def _read(recipe: Recipe, path: str, allowed: set[str], training: bool) -> tuple[list[Sample], list[str]]:
    d, t = recipe.data, task_of(recipe.task)
    samples, skipped = read_manifest(path, allowed, d.on_bad_sample, t.require, t.check, t.audio)
    for s in samples:
        if s.duration > d.max_audio_seconds:
            msg = f"{s.where}: audio of {s.duration:.1f} s is longer than data.max_audio_seconds ({d.max_audio_seconds})"
            if d.on_bad_sample == "error":
                raise AdaptkitError(msg)
            skipped.append(msg)
    samples = [s for s in samples if s.duration <= d.max_audio_seconds]
    for s in samples:  # here, before any DataLoader worker forks: each would note it again
        if s.audio is not None:
            note_resampling(s.rate, d.sample_rate, s.audio)
    samples = t.for_training(samples)
    if training:
        samples = filter_samples(samples, d.filters)
        if d.downsample:
            samples = downsample(samples, d.downsample["label"], d.downsample["to"], d.downsample.get("ratio", 1.0), recipe.train.seed)
        if not samples:
            raise AdaptkitError(f"{path}: no sample left after data.filters / data.downsample")
    return samples, skipped


def _token_weights(recipe: Recipe, tokenizer) -> dict[int, float]:
    out = {}
    vocab = tokenizer.get_vocab()
    for tok, weight in recipe.train.token_loss_weights.items():
        if tok not in vocab:
            raise AdaptkitError(f"train.token_loss_weights: token {tok!r} is not in the vocabulary")
        out[vocab[tok]] = float(weight)
    return out


def output_dir(recipe: Recipe) -> Path:
    """Where `recipe` writes its run."""
    return recipe.output_dir or Path("runs") / "adaptkit"


RUN_FILES = ("checkpoints", "adapter", "adapter_best", "merged", "tensorboard", "logs", "metrics.jsonl", "summary.json",
             "encoder_cache")
"""What a run writes into output_dir (and `--force` deletes)."""


def run(recipe: Recipe, resume: bool = False, force: bool = False, allow_change: tuple[str, ...] = ()) -> Summary:
    """Train `recipe`; with `resume`, continue from the newest readable checkpoint in its output_dir.

    `force` deletes an earlier run first; `allow_change` names fingerprint keys (resume.CHANGEABLE)
    that may differ from the checkpoint's. One run at a time holds the output_dir's lock."""
    with blame(recipe.source):
        out = output_dir(recipe)
        state = process_state()
        check_global_batch(recipe.train.batch_size, state.num_processes)
        check_sharding()
        main = state.is_main_process
        with run_lock(out, state), stop_on_signals() as stop:
            if force and not resume and main:
                _clear(out)
            return _run(recipe, out, resume, allow_change, stop)


def _clear(out: Path) -> None:
    import shutil

    for name in RUN_FILES:
        target = out / name
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)


@dataclass
class _Position:
    """Where training stands: optimizer steps done, epoch, batches of that epoch consumed."""

    step: int = 0
    epoch: int = 0
    done_in_epoch: int = 0
    resumed_from: int | None = None


@dataclass
class _Parts:
    """Everything a run builds before its first step."""

    accelerator: Any
    loaded: Any
    model: torch.nn.Module
    report: Any
    frozen: dict[str, str]
    samples: list[Sample]
    skipped: list[str]
    sampler: BucketBatchSampler
    loader: Any
    dev_loader: Any
    module: Any
    dev_module: SpeechLMLoss
    named: list[tuple[str, torch.nn.Parameter]]
    optimizer: Any
    scheduler: Any
    total: int
    ctc_head: torch.nn.Linear | None
    fingerprint: dict[str, Any]
    dev_path: str | None = None
    allowed: set[str] = field(default_factory=set)
    """Tokens the manifests may hold (trained token rows and new tokens)."""
    upcast: dict[str, torch.dtype] = field(default_factory=dict)
    """Trainable parameters given float32 data under mixed precision, with their loaded dtype."""


def _run(recipe: Recipe, out: Path, resume: bool, allow_change: tuple[str, ...], stop: StopFlag) -> Summary:
    ckpt_dir = out / "checkpoints"
    checkpoint.remove_temporaries(ckpt_dir)
    found = checkpoint.newest_readable(ckpt_dir) if resume else None
    if resume and found is None:
        raise AdaptkitError(f"--resume: no checkpoint in {ckpt_dir}")
    if not resume and (checkpoint.latest(ckpt_dir) or list(ckpt_dir.glob("step_*.pt")) or (out / "adapter").exists()):
        raise AdaptkitError(f"output_dir {out} already holds a run; pass --resume to continue it, --force to start over, or choose another output_dir")
    parts = _build(recipe, out)
    position = _Position()
    if found is not None:
        path, state = found
        accepted = resume_check(state.get("fingerprint"), parts.fingerprint, allow_change, path)
        if _ended(out, state["step"], parts.total):
            return _finished(out, state["step"])
        position = _restore(parts, state, accepted, recipe)
        log.info("resuming from %s (step %d)", path, position.step)
    return _Trainer(recipe, parts, out, position, stop).train()


def _ended(out: Path, step: int, total: int) -> bool:
    """True when the run in `out` finished at `step`: its last step, or an early stop there."""
    if not ((out / "summary.json").is_file() and (out / "adapter").is_dir()):
        return False
    if step >= total:
        return True
    try:
        data = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(data.get("stopped_early")) and data.get("steps") == step


def _finished(out: Path, step: int) -> Summary:
    """The summary of a run that had already finished; nothing is written."""
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    names = {f.name for f in fields(Summary)}
    summary = Summary(**{k: v for k, v in data.items() if k in names})
    summary.finished_before = True
    log.info("%s: the run already finished at step %d; nothing to do", out, step)
    return summary


def _build(recipe: Recipe, out: Path) -> _Parts:
    """Model, data, optimizer and schedule of `recipe`, prepared by accelerate."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    t = recipe.train
    if t.precision == "fp16" and not torch.cuda.is_available():
        raise AdaptkitError("train.precision: fp16 needs a CUDA GPU and there is none; use bf16 or no")
    accelerator = Accelerator(mixed_precision=t.precision, **trackers.accelerator_kwargs(recipe, out))
    world = accelerator.num_processes
    set_seed(t.seed)
    loaded = load(recipe.model)
    arch, tok = loaded.architecture, loaded.tokenizer
    model, report = apply(loaded.model, recipe.freeze, tokenizer=tok)
    frozen = fingerprint(model)
    upcast = upcast_trainable(model.named_parameters(), t.precision)  # before the optimizer: its state is float32 too
    if t.gradient_checkpointing:
        checkpointing.enable(model, model.adaptkit.cmap.llm)
    allowed = set(report.token_rows) | set(recipe.new_tokens.tokens if recipe.new_tokens else [])
    for tag in task_of(recipe.task).allowed_tokens:
        if tag not in tok.get_vocab():
            raise AdaptkitError(f"tokens: task {recipe.task} answers with {tag}; add it under tokens")
    train_path, dev_path = _manifests(recipe, out, accelerator)
    samples, skipped = _read(recipe, train_path, allowed, training=True)
    dev_samples = _read(recipe, dev_path, allowed, training=False)[0] if dev_path else []
    if skipped:
        log.warning("skipped %d bad samples (data.on_bad_sample: skip), first: %s", len(skipped), skipped[0])
    trains_encoder = encoder_trains(model)
    if t.spec_augment.active and t.encoder_cache and not trains_encoder:
        raise AdaptkitError("train.spec_augment: the encoder is frozen and its outputs are cached, so every epoch would "
                            "see the first epoch's masks; set train.encoder_cache: false")
    ctc_head = _ctc_head(recipe, model, trains_encoder)
    weights_by_token = _token_weights(recipe, tok)
    cache_for = _cache_factory(recipe, out, model, frozen, trains_encoder, world)
    module = SpeechLMLoss(model, arch, trains_encoder, weights_by_token, cache_for(samples), [s.where for s in samples],
                          ctc_head, t.ctc_weight)
    dev_module = SpeechLMLoss(model, arch, trains_encoder, weights_by_token, cache_for(dev_samples), [s.where for s in dev_samples])
    sampler, loader, dev_loader = _loaders(recipe, loaded, samples, dev_samples, (module, dev_module), accelerator.process_index, world)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    named += [(f"ctc_head.{n}", p) for n, p in ctc_head.named_parameters()] if ctc_head is not None else []
    params = [p for _, p in named]
    if t.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=t.lr, weight_decay=t.weight_decay)
    total = total_steps(recipe, len(sampler))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(recipe, total))
    module, optimizer = accelerator.prepare(module, optimizer)  # the loaders are sharded by adaptkit.data.sharding
    return _Parts(accelerator, loaded, model, report, frozen, samples, skipped, sampler, loader, dev_loader, module, dev_module,
                  named, optimizer, scheduler, total, ctc_head, run_fingerprint(recipe, train_path, dev_path),
                  dev_path, allowed, upcast)


def total_steps(recipe: Recipe, batches_per_epoch: int) -> int:
    """Optimizer steps of the whole run: max_steps, or epochs x steps per epoch."""
    t = recipe.train
    if t.max_steps:
        return t.max_steps
    per_epoch = math.ceil(batches_per_epoch / t.grad_accum)
    if t.epochs * per_epoch < 1:
        raise AdaptkitError(f"train.epochs: {t.epochs:g} epochs of {per_epoch} steps is less than one optimizer step")
    return math.ceil(t.epochs * per_epoch)


def _loaders(recipe: Recipe, loaded, samples: list[Sample], dev_samples: list[Sample], modules: tuple[SpeechLMLoss, SpeechLMLoss],
             rank: int, world: int):
    """The train batch sampler (global batches) and this process's train and dev loaders. A sample
    whose encoder output `modules` (train, dev) hold cached is loaded without audio or features."""
    t, tok = recipe.train, loaded.tokenizer
    target = task_of(recipe.task).target

    def encode_one(s: Sample, n_audio: int | None = None) -> Encoded:
        return encode(s, loaded.architecture, tok, loaded.feature_extractor, target(s, recipe.language), recipe.prompt, recipe.data.sample_rate,
                      ctc=t.ctc_weight > 0, model=loaded.model, n_audio=n_audio)

    def length(s: Sample) -> int:  # the bucketing key: centiseconds of audio, or characters of text
        return round(s.duration * 100) if s.audio is not None else len(target(s, recipe.language))

    def make(items: list[Sample], batches, module: SpeechLMLoss):
        marked = loading.CachedMarks(ProcessShard(batches, rank, world), module.cached_placeholders)
        return loading.loader(loading.SampleDataset(items, encode_one, t.seed), marked, tok.pad_token_id, t.data_workers, t.seed,
                              partial(detach_worker, os.getpid()))

    weights = sample_weights(samples, recipe.data.weight_field) if recipe.data.weight_field else None
    sampler = BucketBatchSampler([length(s) for s in samples], t.batch_size, t.seed, True, weights, recipe.data.max_weight)
    dev_loader = None
    if dev_samples:
        dev_loader = make(dev_samples, BucketBatchSampler([length(s) for s in dev_samples], t.batch_size, shuffle=False), modules[1])
    return sampler, make(samples, sampler, modules[0]), dev_loader


def _ctc_head(recipe: Recipe, model, trains_encoder: bool) -> torch.nn.Linear | None:
    if recipe.train.ctc_weight <= 0:
        return None
    if not trains_encoder:
        log.info("train.ctc_weight: the encoder is frozen, so the CTC head trains the projector only")
    emb = model.get_submodule(model.adaptkit.cmap.embeddings)
    return torch.nn.Linear(emb.weight.shape[1], emb.weight.shape[0] + 1)  # one more class: the blank


def _cache_factory(recipe: Recipe, out: Path, model, frozen: dict[str, str], trains_encoder: bool, world: int):
    """The encoder cache of a sample list: in memory; on disk where the recipe names a folder, and
    in output_dir/encoder_cache under several processes, so that a sample one process encoded is
    read by the others in later epochs instead of encoded again (each sample is encoded once)."""
    t = recipe.train
    folder = out / t.encoder_cache_dir if t.encoder_cache_dir else (Path(t.encoder_cache_shared) if t.encoder_cache_shared else None)
    folder = folder or (out / "encoder_cache" if world > 1 else None)
    digest = encoder_digest(model, frozen) if (folder and not trains_encoder) else ""

    def cache_for(items: list[Sample]) -> EncoderCache | None:
        if trains_encoder or not t.encoder_cache:
            return None
        if folder is None or any(s.audio is None for s in items):
            return EncoderCache()
        return EncoderCache([sample_key(s, recipe.data.sample_rate, digest) for s in items], folder)
    return cache_for


def _restore(parts: _Parts, state: dict[str, Any], accepted: list[str], recipe: Recipe) -> _Position:
    """Load a checkpoint's tensors, optimizer, schedule and RNG into the built run; apply accepted changes."""
    with torch.no_grad():
        named = dict(parts.model.named_parameters())
        for name, value in state["adapter"].items():
            named[name].copy_(value)
    if parts.ctc_head is not None:
        parts.ctc_head.load_state_dict(state["ctc_head"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    parts.scheduler.lr_lambdas = [schedule(recipe, parts.total)]  # the schedule of this run's total (it may be new)
    t = recipe.train
    for group in parts.optimizer.param_groups:
        if "train.weight_decay" in accepted:
            group["weight_decay"] = t.weight_decay
        if "train.lr" in accepted:
            group["initial_lr"] = t.lr
    if "train.lr" in accepted:
        parts.scheduler.base_lrs = [t.lr for _ in parts.optimizer.param_groups]
    if set(accepted) & {"train.lr", "train.max_steps", "train.epochs"}:
        factor = schedule(recipe, parts.total)(parts.scheduler.last_epoch)
        for group, base in zip(parts.optimizer.param_groups, parts.scheduler.base_lrs):
            group["lr"] = base * factor
    if accepted:
        log.info("resume: accepted changes in %s", ", ".join(f"{k} ({CHANGEABLE[k]})" for k in accepted))
    checkpoint.set_rng_state(state["rng"])
    return _Position(state["step"], state["epoch"], state["batches_done"], state["step"])


def _kept_metrics(path: Path, step: int) -> list[str]:
    """Lines of metrics.jsonl up to `step`; a half-written or damaged line (a kill mid-write) is dropped."""
    kept = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []
    for line in lines:
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            log.warning("warning: %s: dropping a damaged line (%.40s)", path, line)
    return kept


class _Trainer:
    """The training loop of one built run: steps, non-finite guards, logging, checkpoints, the end."""

    def __init__(self, recipe: Recipe, parts: _Parts, out: Path, position: _Position, stop: StopFlag):
        self.recipe, self.parts, self.out, self.pos, self.stop = recipe, parts, out, position, stop
        self.t, self.acc = recipe.train, parts.accelerator
        self.ckpt_dir = out / "checkpoints"
        self.metrics_path = out / "metrics.jsonl"
        self.writer = None
        self.loss_value, self.last_dev, self.seen = float("nan"), None, 0
        self.step_samples: list[int] = []
        """Dataset indices this process trained on in the last step (logged as metrics.jsonl `samples`)."""
        self.last_save = time.monotonic()
        self.clock = loading.DataClock()
        """Time this process waited for batches against time in optimizer steps (Summary.data_wait_share)."""
        self.best, self.stopped_early = Best(best_metric(recipe.task, self.t.best_metric)), False
        self.scoring = bool(self.t.eval_every and self.t.eval_samples and parts.dev_path)

    def train(self) -> Summary:
        """Run the remaining steps, then write the adapter, the merged checkpoint and the summary."""
        from tqdm.auto import tqdm

        if self.acc.is_main_process:
            from torch.utils.tensorboard import SummaryWriter

            kept = _kept_metrics(self.metrics_path, self.pos.step) if self.pos.resumed_from is not None else []
            for row in map(json.loads, kept):  # the best evaluation so far and the patience spent
                if "dev_metrics" in row:
                    self.best.update(row["step"], row["dev_metrics"])
            self._io(self.metrics_path, lambda: atomic_write_text(self.metrics_path, "".join(line + "\n" for line in kept)))
            self.writer = SummaryWriter(str(self.out / "tensorboard"))
        if self.t.log_with:
            trackers.start(self.acc, self.recipe, self.out)
        self.bar = tqdm(total=self.parts.total, initial=self.pos.step, disable=not self.acc.is_main_process, desc="train",
                        dynamic_ncols=True)
        train_mode(self.parts.model)
        self.started = time.perf_counter()
        try:
            try:
                self._loop()
            finally:
                self.bar.close()
                if self.writer is not None:
                    self.writer.flush()
            return self._finish(time.perf_counter() - self.started)
        finally:  # on every exit, a stop by an error or a signal too: no writer thread or worker left running
            loading.close(self.parts.loader)
            loading.close(self.parts.dev_loader)
            if self.writer is not None:
                self.writer.close()
            if self.t.log_with:
                self.acc.end_training()

    def _scalars(self, values: dict[str, float], step: int) -> None:
        """Log scalars (main process) to the run's TensorBoard and to the train.log_with tracker."""
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        if self.t.log_with:
            self.acc.log(values, step=step)

    def _loop(self) -> None:
        from accelerate.utils import send_to_device

        p, pos = self.parts, self.pos
        window: list[dict] = []
        while pos.step < p.total:
            p.sampler.epoch = pos.epoch
            p.loader.batch_sampler.skip = pos.done_in_epoch  # a resume: the global batches already trained on
            for batch in loading.timed(p.loader, self.clock):
                pos.done_in_epoch += 1
                batch = mask_features(batch, self.t.spec_augment, self.t.seed, pos.step)
                window.append(send_to_device(batch, self.acc.device))
                if len(window) < self.t.grad_accum:
                    continue
                started = time.perf_counter()
                self._step(window)
                self.clock.stepped += time.perf_counter() - started
                window = []
                if self._after_step() or pos.step >= p.total:
                    return
            pos.epoch, pos.done_in_epoch = pos.epoch + 1, 0

    def _step(self, window: list[dict]) -> None:
        """One optimizer step; the loss and gradients are checked before the update, the weights after it."""
        p = self.parts
        window_sum, window_weight = self._accumulate(window)
        loss = window_sum / window_weight
        if not math.isfinite(loss):
            where = [p.samples[int(i)].where for b in window for i in b["index"]]
            self._halt(f"loss is {loss} in the batch of {', '.join(where[:4])}{' ...' if len(where) > 4 else ''}")
        bad = [n for n, q in p.named if q.grad is not None and not bool(torch.isfinite(q.grad).all())]
        if bad:
            self._halt(f"the gradient of {bad[0]} is not finite (loss {loss:.4g})")
        if self.t.clip:
            self.acc.clip_grad_norm_([q for _, q in p.named], self.t.clip)
        p.optimizer.step()
        p.scheduler.step()
        p.optimizer.zero_grad(set_to_none=True)
        self.pos.step += 1
        self.loss_value = loss
        bad = [n for n, q in p.named if not bool(torch.isfinite(q).all())]
        if bad:
            self._halt(f"the update made {bad[0]} non-finite (train.lr {self.t.lr:g} too high?)", after=True)

    def _halt(self, what: str, after: bool = False) -> None:
        step = self.pos.step if after else self.pos.step + 1
        good = checkpoint.latest(self.ckpt_dir)
        hint = str(good) if good else f"none yet (train.save_every {self.t.save_every})"
        self.bar.close()
        raise AdaptkitError(f"step {step}: {what}; training stopped, last good checkpoint: {hint}")

    def _accumulate(self, window: list[dict]) -> tuple[float, float]:
        """Backward every micro-batch of one optimizer step, each normalised by the supervised weight
        of the whole window over all processes, so `grad_accum 2 x batch 2` is `batch 4`.
        Returns the window's (loss sum, weight sum) over all processes; counts the samples seen."""
        acc, module = self.acc, self.parts.module
        local = sum(float(acc.unwrap_model(module).supervised_weight(b)) for b in window)
        count = sum(int(b["real"].sum()) for b in window)
        totals = acc.reduce(torch.tensor([local, count], dtype=torch.float64, device=acc.device), "sum")
        total_weight, self.seen = float(totals[0]), self.seen + int(totals[1])
        self.step_samples = [int(i) for b in window for i, real in zip(b["index"].tolist(), b["real"].tolist()) if real]
        loss_total = 0.0
        for k, batch in enumerate(window):
            last = k == len(window) - 1
            with acc.no_sync(module) if not last else nullcontext(), acc.autocast():
                loss_sum, _ = module(batch)
                acc.backward(loss_sum / max(total_weight, 1e-9) * acc.num_processes)
            loss_total += float(acc.reduce(loss_sum.detach(), "sum"))
        return loss_total, total_weight

    def _after_step(self) -> bool:
        """Progress, metrics, dev loss and scores, checkpoints by step or time, and a stop requested
        by a signal. True when early stopping ends the run here."""
        from accelerate.utils import gather_object

        step, t, acc = self.pos.step, self.t, self.acc
        lr = self.parts.scheduler.get_last_lr()[0]
        self.bar.update(1)
        rate = self.seen / max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix(loss=f"{self.loss_value:.4f}", lr=f"{lr:.2e}", samples_s=f"{rate:.1f}", data=f"{self.clock.share():.0%}")
        if step % t.log_every == 0:
            samples = gather_object([self.step_samples])  # every process takes part; one list per process
            if acc.is_main_process:
                self._scalars({"train/loss": self.loss_value, "train/lr": lr}, step)
                row = {"step": step, "loss": self.loss_value, "lr": lr, "samples": samples}
                self._io(self.metrics_path, lambda: _append(self.metrics_path, row))
        if t.eval_every and step % t.eval_every == 0:
            self.last_dev = self._dev_loss()
            if acc.is_main_process and self.last_dev is not None:
                self._scalars({"dev/loss": self.last_dev}, step)
            if self.scoring and self._evaluate(step):
                return True
        if step >= self.parts.total:
            return False  # the end writes the last checkpoint, the adapter and the summary
        stopping = self._stop_requested()
        due = (t.save_every and step % t.save_every == 0) or \
            (t.save_every_minutes and time.monotonic() - self.last_save >= 60 * t.save_every_minutes)
        if due or stopping:
            self._save()
        if stopping:
            self.bar.close()
            name = signal.Signals(self.stop.signum).name
            raise Interrupted(self.stop.signum, f"stopped by {name} at step {step}, checkpoint {checkpoint.latest(self.ckpt_dir)}; "
                              f"continue with: adaptkit train {self.recipe.source} --resume (and the same overrides)")
        return False

    def _evaluate(self, step: int) -> bool:
        """Decode and score dev samples (main process), log them, keep adapter_best/; True when
        early stopping ends the run here, decided once and shared by every process."""
        t, acc, p = self.t, self.acc, self.parts
        stop = 0.0
        if acc.is_main_process:
            with in_loaded_dtypes(p.model, p.upcast):  # decoded as `adaptkit eval` loads the adapter
                metrics = dev_metrics(p.model, p.loaded, self.recipe.task, self.recipe.language, self.recipe.prompt, p.allowed,
                                      p.dev_path, t.eval_samples, t.batch_size, self.recipe.data.on_bad_sample)
            train_mode(p.model)
            improved = self.best.update(step, metrics)
            self._scalars({f"dev/{k}": v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "n"}, step)
            row = {"step": step, "dev_loss": self.last_dev, "dev_metrics": metrics, "best": self.best.to_dict()}
            self._io(self.metrics_path, lambda: _append(self.metrics_path, row))
            if improved:
                self._write_adapter(self.out / "adapter_best", {"best": self.best.to_dict()})
            patience = t.early_stopping_patience
            stop = 1.0 if patience is not None and self.best.stale >= patience and step < p.total else 0.0
            log.info("step %d: dev %s %s (best %s at step %s)", step, self.best.metric, metrics.get(self.best.metric),
                     self.best.value, self.best.step)
        if acc.num_processes > 1:
            stop = float(acc.reduce(torch.tensor(stop, device=acc.device), "max"))
        if stop:
            self.stopped_early = True
            log.info("early stopping at step %d: %s has not improved for %d evaluations (best %s at step %s)", step,
                     self.best.metric, t.early_stopping_patience, self.best.value, self.best.step)
        return bool(stop)

    def _stop_requested(self) -> bool:
        flag = 1.0 if self.stop else 0.0
        if self.acc.num_processes > 1:  # every process stops at the same step
            flag = float(self.acc.reduce(torch.tensor(flag, device=self.acc.device), "max"))
        if flag and not self.stop.signum:
            self.stop.signum = signal.SIGTERM
        return bool(flag)

    def _save(self) -> Path | None:
        self.last_save = time.monotonic()
        if not self.acc.is_main_process:
            return None
        p, pos = self.parts, self.pos
        return checkpoint.save(self.ckpt_dir, pos.step, {
            "step": pos.step, "epoch": pos.epoch, "batches_done": pos.done_in_epoch, "total": p.total,
            "adapter": adapter_state(p.model), "optimizer": p.optimizer.state_dict(), "scheduler": _scheduler_state(p.scheduler),
            "rng": checkpoint.rng_state(), "ctc_head": p.ctc_head.state_dict() if p.ctc_head is not None else None,
            "fingerprint": p.fingerprint,
        })

    def _dev_loss(self) -> float | None:
        from accelerate.utils import send_to_device

        p, acc = self.parts, self.acc
        if p.dev_loader is None:
            return None
        p.model.eval()
        total_sum = total_weight = 0.0
        for batch in loading.timed(p.dev_loader):  # features are made outside autocast: it would give them its dtype
            batch = send_to_device(batch, acc.device)
            with torch.no_grad(), acc.autocast():
                s, w = p.dev_module(batch)
            total_sum += float(acc.reduce(s.detach(), "sum"))
            total_weight += float(acc.reduce(w.detach(), "sum"))
        train_mode(p.model)
        return total_sum / max(total_weight, 1e-9)

    @staticmethod
    def _io(path: Path, write) -> Any:
        """Run a write; an OS error (disk full, read-only) becomes one line naming the path."""
        from safetensors import SafetensorError

        try:
            return write()
        except (OSError, SafetensorError) as err:
            reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
            raise AdaptkitError(f"{path}: cannot write ({reason}); the last checkpoint is kept, resume with --resume") from None

    def _write_adapter(self, folder: Path, extra: dict[str, Any] | None = None) -> None:
        """The trained adapter into `folder` (atomically, as `adapter/`), with what eval needs to rebuild it."""
        p, recipe = self.parts, self.recipe
        info = {"model": asdict(recipe.model), "task": recipe.task, "language": recipe.language, "prompt": recipe.prompt,
                **(extra or {})}
        self._io(folder, lambda: save_adapter(p.model, folder, base=recipe.model.name or f"tiny:{recipe.model.tiny}",
                                              extra=info, prints=p.frozen))

    def _encoded(self) -> int | None:
        """Train samples encoded over all processes (Summary.encoded_samples)."""
        module = self.acc.unwrap_model(self.parts.module)
        if module.cache is None:
            return None
        return int(self.acc.reduce(torch.tensor(module.encoded, device=self.acc.device), "sum"))

    def _data_wait_share(self) -> float | None:
        """Summary.data_wait_share: the largest over all processes (every process takes part)."""
        share = self.clock.share()
        if self.acc.num_processes > 1:  # gathered: accelerate's reduce sums whatever reduction it is given
            share = float(self.acc.gather(torch.tensor([-1.0 if share is None else share], device=self.acc.device)).max())
            share = None if share < 0 else share
        return None if share is None else round(share, 4)

    def _finish(self, seconds: float) -> Summary:
        p, acc, out, recipe = self.parts, self.acc, self.out, self.recipe
        acc.wait_for_everyone()
        if acc.is_main_process:  # the trained result first: nothing after the last step can lose it
            self._save()
            changed = moved(p.model, p.frozen)
            if changed:
                raise RuntimeError(f"frozen weights moved during training: {', '.join(changed[:3])}")
            self._write_adapter(out / "adapter")
            if self.t.merged:
                restore_dtypes(p.model, p.upcast)  # the merged checkpoint in the recipe's dtype throughout
                self._io(out / "merged", lambda: save_merged(p.model, out / "merged", *p.loaded.save_pretrained_objects(),
                                                             carry=p.loaded.carried_files()))
        acc.wait_for_everyone()
        last_dev = self._dev_loss() if p.dev_loader is not None else self.last_dev  # on the merged weights where merged
        summary = Summary(steps=self.pos.step, seconds=round(seconds, 3), trainable_parameters=p.report.trainable_total,
                          final_loss=self.loss_value, samples_per_second=round(self.seen / max(seconds, 1e-9), 2), dev_loss=last_dev,
                          skipped=p.skipped, output_dir=str(out), resumed_from=self.pos.resumed_from, peak_memory_mb=peak_memory_mb(),
                          best=self.best.to_dict() if self.best.step is not None else None, stopped_early=self.stopped_early,
                          processes=acc.num_processes, encoded_samples=self._encoded(), data_wait_share=self._data_wait_share())
        if acc.is_main_process:
            text = json.dumps({**asdict(summary), "report": p.report.to_dict()}, indent=2, ensure_ascii=False) + "\n"
            self._io(out / "summary.json", lambda: atomic_write_text(out / "summary.json", text))
        return summary


def _scheduler_state(scheduler) -> dict[str, Any]:
    """LambdaLR's state without its lambdas (a closure is rebuilt from the recipe, never stored)."""
    state = scheduler.state_dict()
    state["lr_lambdas"] = [None for _ in state.get("lr_lambdas", [])]
    return state


def _append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
