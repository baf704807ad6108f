"""`adaptkit train`: build, freeze, read data, train on accelerate, save adapter and merged checkpoint.

One code path for a tiny model on a laptop CPU and a 1.7B checkpoint on GPUs: the recipe names
the model, `accelerate launch` decides the processes (DDP; DeepSpeed or FSDP through accelerate's
own config files, see examples/distributed/).
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from adaptkit.atomic import atomic_write_text
from adaptkit.data.batching import BucketBatchSampler, Encoded, collate, encode
from adaptkit.data.manifest import Sample, read_manifest
from adaptkit.data.sampling import downsample, filter_samples, sample_weights
from adaptkit.errors import AdaptkitError
from adaptkit.freeze import apply, fingerprint, moved, save_adapter, save_merged, train_mode, trainable_parameters
from adaptkit.freeze.adapters import adapter_state
from adaptkit.models import family, load
from adaptkit.recipe import Recipe, blame
from adaptkit.tasks import task as task_module
from adaptkit.train import checkpoint
from adaptkit.train.encoder_cache import EncoderCache, encoder_digest, sample_key
from adaptkit.train.step import SpeechLMLoss, encoder_trains

log = logging.getLogger("adaptkit")
TRAINABLE_ARCHS = ("qwen3_asr", "composed")


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


class _Samples(Dataset):
    """Samples encoded on demand (audio, features, ids); `index` travels with each item."""

    def __init__(self, samples: list[Sample], encode_one):
        self.samples, self.encode_one = samples, encode_one

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[int, Encoded]:
        return i, self.encode_one(self.samples[i])


def _collate(pad_id: int):
    def fn(items):
        batch = collate([e for _, e in items], pad_id)
        batch["index"] = torch.tensor([i for i, _ in items])
        return batch
    return fn


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
    folder = out / d.synth.out
    name = f"{recipe.task}.jsonl"
    if accelerator.is_main_process and not (folder / "train" / name).is_file():
        from adaptkit.synth import SynthConfig, generate

        result = generate(SynthConfig(out=folder, langs=tuple(d.synth.langs), n=d.synth.n, duration=d.synth.duration,
                                      telephone=d.synth.telephone, seed=d.synth.seed, force=True))
        log.info("generated %d conversations into %s (%.0fx real time)", result.conversations, folder, result.speed)
    accelerator.wait_for_everyone()
    return str(folder / "train" / name), str(folder / "test_id" / name)


def _read(recipe: Recipe, path: str, allowed: set[str], training: bool) -> tuple[list[Sample], list[str]]:
    d, t = recipe.data, task_module(recipe.task)
    samples, skipped = read_manifest(path, allowed, d.on_bad_sample, t.REQUIRE, t.check, getattr(t, "AUDIO", True))
    for s in samples:
        if s.duration > d.max_audio_seconds:
            msg = f"{s.where}: audio of {s.duration:.1f} s is longer than data.max_audio_seconds ({d.max_audio_seconds})"
            if d.on_bad_sample == "error":
                raise AdaptkitError(msg)
            skipped.append(msg)
    samples = [s for s in samples if s.duration <= d.max_audio_seconds]
    if hasattr(t, "for_training"):
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


def run(recipe: Recipe, resume: bool = False) -> Summary:
    """Train `recipe`; with `resume`, continue from the newest checkpoint in its output_dir."""
    with blame(recipe.source):
        return _run(recipe, resume)


def _run(recipe: Recipe, resume: bool) -> Summary:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    t = recipe.train
    out = recipe.output_dir or Path("runs") / "adaptkit"
    ckpt_dir = out / "checkpoints"
    last = checkpoint.latest(ckpt_dir)
    if resume and last is None:
        raise AdaptkitError(f"--resume: no checkpoint in {ckpt_dir}")
    if not resume and (last is not None or (out / "adapter").exists()):
        raise AdaptkitError(f"output_dir {out} already holds a run; pass --resume to continue it, or choose another output_dir")

    accelerator = Accelerator(mixed_precision=t.precision, split_batches=True)
    set_seed(t.seed)
    loaded = load(recipe.model)
    if loaded.arch not in TRAINABLE_ARCHS:
        raise AdaptkitError(f"model: training supports {', '.join(TRAINABLE_ARCHS)} so far; {loaded.arch} has freezing, adapters and merging only")
    fam, tok = family(loaded.arch), loaded.tokenizer
    model, report = apply(loaded.model, recipe.freeze, tokenizer=tok)
    frozen = fingerprint(model)
    allowed = set(report.token_rows) | set(recipe.new_tokens.tokens if recipe.new_tokens else [])
    for tag in getattr(task_module(recipe.task), "TAGS", {}).values():
        if tag not in tok.get_vocab():
            raise AdaptkitError(f"tokens: task {recipe.task} answers with {tag}; add it under tokens")

    train_path, dev_path = _manifests(recipe, out, accelerator)
    samples, skipped = _read(recipe, train_path, allowed, training=True)
    dev_samples = _read(recipe, dev_path, allowed, training=False)[0] if dev_path else []
    if skipped:
        log.warning("skipped %d bad samples (data.on_bad_sample: skip), first: %s", len(skipped), skipped[0])
    target = task_module(recipe.task).target

    def encode_one(s: Sample) -> Encoded:
        return encode(s, fam, tok, loaded.feature_extractor, target(s, recipe.language), recipe.prompt, recipe.data.sample_rate,
                      ctc=t.ctc_weight > 0, model=loaded.model)

    weights = sample_weights(samples, recipe.data.weight_field) if recipe.data.weight_field else None

    def length(s: Sample) -> int:  # the bucketing key: centiseconds of audio, or characters of text
        return round(s.duration * 100) if s.audio is not None else len(target(s, recipe.language))

    sampler = BucketBatchSampler([length(s) for s in samples], t.batch_size, t.seed, True, weights, recipe.data.max_weight)
    loader = DataLoader(_Samples(samples, encode_one), batch_sampler=sampler, collate_fn=_collate(tok.pad_token_id))
    dev_loader = None
    if dev_samples:
        dev_sampler = BucketBatchSampler([length(s) for s in dev_samples], t.batch_size, shuffle=False)
        dev_loader = DataLoader(_Samples(dev_samples, encode_one), batch_sampler=dev_sampler, collate_fn=_collate(tok.pad_token_id))

    trains_encoder = encoder_trains(model)

    digest = encoder_digest(model, frozen) if (t.encoder_cache_dir and not trains_encoder) else ""

    def cache_for(items: list[Sample]) -> EncoderCache | None:
        if trains_encoder or not t.encoder_cache:
            return None
        if not t.encoder_cache_dir:
            return EncoderCache()
        return EncoderCache([sample_key(s, recipe.data.sample_rate, digest) for s in items], out / t.encoder_cache_dir)

    weights_by_token = _token_weights(recipe, tok)
    ctc_head = None
    if t.ctc_weight > 0:
        if not trains_encoder:
            log.info("train.ctc_weight: the encoder is frozen, so the CTC head trains the projector only")
        emb = model.get_submodule(model.adaptkit.cmap.embeddings)
        ctc_head = torch.nn.Linear(emb.weight.shape[1], emb.weight.shape[0] + 1)  # one more class: the blank
    module = SpeechLMLoss(model, fam, trains_encoder, weights_by_token, cache_for(samples), [s.where for s in samples],
                          ctc_head, t.ctc_weight)
    dev_module = SpeechLMLoss(model, fam, trains_encoder, weights_by_token, cache_for(dev_samples), [s.where for s in dev_samples])
    params = trainable_parameters(model) + (list(ctc_head.parameters()) if ctc_head is not None else [])
    if t.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=t.lr, weight_decay=t.weight_decay)
    per_epoch = math.ceil(len(sampler) / t.grad_accum)
    total = t.max_steps or max(1, math.ceil(t.epochs * per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(recipe, total))
    module, optimizer, loader = accelerator.prepare(module, optimizer, loader)
    if dev_loader is not None:
        dev_loader = accelerator.prepare(dev_loader)

    step, epoch, done_in_epoch, resumed_from = 0, 0, 0, None
    if resume:
        state = checkpoint.load(last)
        with torch.no_grad():
            named = dict(model.named_parameters())
            for name, value in state["adapter"].items():
                named[name].copy_(value)
        if ctc_head is not None:
            ctc_head.load_state_dict(state["ctc_head"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        step, epoch, done_in_epoch = state["step"], state["epoch"], state["batches_done"]
        resumed_from = step
        log.info("resuming from %s (step %d)", last, step)

    metrics_path = out / "metrics.jsonl"
    writer = None
    if accelerator.is_main_process:
        from torch.utils.tensorboard import SummaryWriter

        out.mkdir(parents=True, exist_ok=True)
        kept = [line for line in (metrics_path.read_text().splitlines() if resume and metrics_path.exists() else [])
                if json.loads(line)["step"] <= step]
        atomic_write_text(metrics_path, "".join(line + "\n" for line in kept))
        writer = SummaryWriter(str(out / "tensorboard"))

    def save_checkpoint(batches_done: int) -> Path:
        return checkpoint.save(ckpt_dir, step, {
            "step": step, "epoch": epoch, "batches_done": batches_done, "adapter": adapter_state(model),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": checkpoint.rng_state(),
            "ctc_head": ctc_head.state_dict() if ctc_head is not None else None,
        })

    def dev_loss() -> float | None:
        if dev_loader is None:
            return None
        model.eval()
        total_sum = total_weight = 0.0
        for batch in dev_loader:  # features are made outside autocast: it would give them its dtype
            with torch.no_grad(), accelerator.autocast():
                s, w = dev_module(batch)
            total_sum += float(accelerator.reduce(s.detach(), "sum"))
            total_weight += float(accelerator.reduce(w.detach(), "sum"))
        train_mode(model)
        return total_sum / max(total_weight, 1e-9)

    def accumulate(window: list[dict]) -> tuple[float, float]:
        """Backward every micro-batch of one optimizer step, each normalised by the supervised weight
        of the whole window over all processes, so `grad_accum 2 x batch 2` is `batch 4`.
        Returns the window's (loss sum, weight sum) over all processes."""
        local = sum(float(accelerator.unwrap_model(module).supervised_weight(b)) for b in window)
        total_weight = float(accelerator.reduce(torch.as_tensor(local, dtype=torch.float64, device=accelerator.device), "sum"))
        loss_total = 0.0
        for k, batch in enumerate(window):
            last = k == len(window) - 1
            with accelerator.no_sync(module) if not last else nullcontext(), accelerator.autocast():
                loss_sum, _ = module(batch)
                accelerator.backward(loss_sum / max(total_weight, 1e-9) * accelerator.num_processes)
            loss_total += float(accelerator.reduce(loss_sum.detach(), "sum"))
        return loss_total, total_weight

    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=step, disable=not accelerator.is_main_process, desc="train", dynamic_ncols=True)
    train_mode(model)
    started, seen, loss_value, last_dev = time.perf_counter(), 0, float("nan"), None
    window: list[dict] = []
    while step < total:
        sampler.epoch = epoch
        batches = accelerator.skip_first_batches(loader, done_in_epoch) if done_in_epoch else loader
        for batch in batches:
            done_in_epoch += 1
            window.append(batch)
            seen += len(batch["index"]) * accelerator.num_processes
            if len(window) < t.grad_accum:
                continue
            window_sum, window_weight = accumulate(window)
            window = []
            if t.clip:
                accelerator.clip_grad_norm_(params, t.clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_value = window_sum / window_weight
            if not math.isfinite(loss_value):
                good = checkpoint.latest(ckpt_dir)
                raise AdaptkitError(f"step {step}: loss is {loss_value}; training stopped, last good checkpoint: {good or 'none'}")
            lr = scheduler.get_last_lr()[0]
            rate = seen / max(time.perf_counter() - started, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", samples_s=f"{rate:.1f}")
            if accelerator.is_main_process and step % t.log_every == 0:
                writer.add_scalar("train/loss", loss_value, step)
                writer.add_scalar("train/lr", lr, step)
                with metrics_path.open("a") as f:
                    f.write(json.dumps({"step": step, "loss": loss_value, "lr": lr}) + "\n")
            if t.eval_every and step % t.eval_every == 0:
                last_dev = dev_loss()
                if accelerator.is_main_process and last_dev is not None:
                    writer.add_scalar("dev/loss", last_dev, step)
            if t.save_every and step % t.save_every == 0 and step < total and accelerator.is_main_process:
                save_checkpoint(done_in_epoch)
            if step >= total:
                break
        else:
            epoch, done_in_epoch = epoch + 1, 0
            continue
        break
    bar.close()
    seconds = time.perf_counter() - started
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:  # the trained result first: nothing after the last step can lose it
        save_checkpoint(done_in_epoch)
        changed = moved(model, frozen)
        if changed:
            raise RuntimeError(f"frozen weights moved during training: {', '.join(changed[:3])}")
        save_adapter(model, out / "adapter", base=recipe.model.name or f"tiny:{recipe.model.tiny}",
                     extra={"model": asdict(recipe.model), "task": recipe.task, "language": recipe.language, "prompt": recipe.prompt})
        if t.merged:
            save_merged(model, out / "merged", *loaded.save_pretrained_objects())
    accelerator.wait_for_everyone()
    last_dev = dev_loss() if dev_loader is not None else last_dev  # on the merged weights where merged
    summary = Summary(steps=step, seconds=round(seconds, 3), trainable_parameters=report.trainable_total,
                      final_loss=loss_value, samples_per_second=round(seen / max(seconds, 1e-9), 2), dev_loss=last_dev,
                      skipped=skipped, output_dir=str(out), resumed_from=resumed_from, peak_memory_mb=peak_memory_mb())
    if accelerator.is_main_process:
        writer.close()
        atomic_write_text(out / "summary.json", json.dumps({**asdict(summary), "report": report.to_dict()}, indent=2, ensure_ascii=False) + "\n")
    return summary
