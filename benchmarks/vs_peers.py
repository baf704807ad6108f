"""adaptkit against its peers, measured in one run: training steps, decoding, end-of-turn scoring.

Training (projector + the new tokens' rows, encoder and LLM frozen), per model and audio shape, one
process per contender per round, the rounds interleaved (A, B, C, D, A, B, C, D, ...) so that load
drift on the machine hits every contender alike:

- `adaptkit`: adaptkit's step (`SpeechLMLoss`: encoder without autograd and not cached, logits and
  cross-entropy at the supervised positions only, token rows through `SparseTokensLayer`), then
  clip, AdamW, zero_grad.
- `adaptkit cached`: the same with the encoder cache (`train.encoder_cache`, an epoch after the
  first): the warm-up step fills it, the timed steps read the encoder's outputs from it. Its floor
  is the floor without the encoder phase.
- `plain`: a careful plain PyTorch loop over the same trainable parameters (the same model after
  `adaptkit.freeze.apply`): the model's own forward with labels (full logits at every position),
  backward, clip, AdamW over the trainable parameters only, zero_grad(set_to_none).
- `trainer+peft`: transformers' `Trainer` on peft's `TrainableTokensConfig` (the new rows of
  `embed_tokens` and `lm_head`) with the projector opened by requires_grad; the model's own forward.
- `trainer full`: `Trainer` with every weight trainable, the official Qwen3-ASR fine-tuning route
  (QwenLM/Qwen3-ASR finetuning/qwen3_asr_sft.py: Trainer on the thinker's forward; float32 here).

A Trainer step is timed by a `TrainerCallback` from `on_step_begin` to `on_step_end` inside
`trainer.train()` on a prepared batch: forward, backward, clip (Trainer's default 1.0, which the
other two loops use too), the optimizer (Trainer's default AdamW), the schedule and zero_grad.
Each process runs one warm-up step and then `--steps` timed ones; its peak RSS is its VmHWM, which
includes the resident memory of the parent it is forked from (the imports, printed).

The floor (`floor`, its own process): what no step can avoid, each phase timed apart: the frozen
encoder without autograd, the LLM's forward with grad for its input embeddings only, the output
layer's matmul + cross-entropy at the supervised positions (forward and backward to the hidden
states), the LLM's backward, AdamW on the trainable parameters. floor = their sum; the model's own
no-grad forward (full logits) is printed beside it.

Models: (a) the tiny Qwen3-ASR at the real vocabulary (151,936 rows), where the output layer
dominates; (b) `size="proportional"` with 5,440 rows: encoder 256 x 4, LLM 512 x 4 with the FFN widths
of Qwen3-ASR-1.7B, so that per token encoder / LLM = 0.25 and output layer / LLM = 0.22 of the
weights' FLOPs, the proportions of the 1.7B checkpoint.

Decoding: `adaptkit.eval.decode.decode` (what `adaptkit eval` runs) against qwen_asr's
`Qwen3ASRModel.transcribe` on the same hub-shaped folder (`save_qwen3_asr_checkpoint`) and the same
utterances, batched, language forced, the same new-token limit; one process per side per round.

End of turn: `EndOfTurnScorer.add` (new words fed on the KV cache) against recomputing the last
128 tokens per call as LiveKit's turn detector does (MAX_HISTORY_TOKENS = 128 in
livekit-plugins-turn-detector; here with logits at the last position only, the cheapest such
call), on a small Qwen3-shape LM (512 x 4) and on Qwen3-0.6B's configuration, both at the real
vocabulary with Qwen3's tokenizer, calls alternated. Both calls compute one row of the output layer
(151,936 x hidden, read once per call: memory-bound); it is timed alone and printed beside them.

    python benchmarks/vs_peers.py [--repeats 2] [--steps 1] [--shapes 2x1,8x4,...] [--quick]

The output of the last full run is committed in `benchmarks/results/vs_peers.txt`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from peft import TrainableTokensConfig, get_peft_model
from qwen_asr import Qwen3ASRModel
from transformers import AddedToken, Qwen2TokenizerFast, Trainer, TrainerCallback, TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks, also when imported by tests
import turn_scorer_cost  # noqa: E402
from step_cost import batch_of  # noqa: E402

from adaptkit.atomic import atomic_write_text  # noqa: E402
from adaptkit.child import can_fork, wait  # noqa: E402
from adaptkit.data.batching import IGNORE  # noqa: E402
from adaptkit.data.manifest import Sample  # noqa: E402
from adaptkit.end_of_turn import EndOfTurnScorer  # noqa: E402
from adaptkit.eval.decode import decode, length_limit  # noqa: E402
from adaptkit.freeze import apply, train_mode, trainable_parameters  # noqa: E402
from adaptkit.models import architecture, build_tiny  # noqa: E402
from adaptkit.models.base import scatter_audio  # noqa: E402
from adaptkit.models.hub_checkpoint import VOCAB_ROWS, qwen3_tokenizer_files, save_qwen3_asr_checkpoint  # noqa: E402
from adaptkit.train.step import SpeechLMLoss  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "vs_peers.txt"
MODELS = {"tiny": {"size": "tiny", "vocab_size": 151_936}, "proportional": {"size": "proportional", "vocab_size": 5_440}}
SHAPES = [(2, 1), (2, 4), (8, 1), (8, 4), (30, 1), (30, 4)]  # seconds of audio, batch size (8x8: --shapes)
CONTENDERS = ("adaptkit", "adaptkit cached", "plain", "trainer+peft", "trainer full", "floor")
PEERS = ("plain", "trainer+peft", "trainer full")
NEW_TOKENS = ["<|spk_0|>", "<|spk_1|>"]
SPEC = {"add_tokens": NEW_TOKENS, "train": ["projector", {"tokens": "added"}]}
PHASES = ("encoder", "llm_fwd", "llm_bwd", "output_ce", "optimizer")
INPUTS = ("input_ids", "attention_mask", "input_features", "feature_attention_mask", "labels")
DECODE_SECONDS = [2, 3, 4, 5, 6, 7, 8, 9]
REFERENCE = "hello thank you for calling"  # sets adaptkit's new-token limit; qwen_asr gets the same limit
DECODE_ROUNDS = 3  # decoding rounds per --repeats: two whole runs' medians gave 0.83x and 1.25x on this shared machine
WINDOW = 128  # LiveKit's MAX_HISTORY_TOKENS
CLIP, LR = 1.0, 1e-4


# ----- processes ---------------------------------------------------------------------------------

def status_mb(key: str) -> float:
    """A memory line of /proc/self/status (VmHWM: peak resident, VmRSS: resident now), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def in_child(fn: Callable[..., dict], *args) -> dict:
    """fn(*args) in a child forked from here (imports inherited); its result with the child's peak RSS."""
    if not can_fork():
        raise SystemExit("vs_peers: cannot fork here (another thread or a CUDA context); run it as a script")
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        sys.stdout = open(os.devnull, "w")  # Trainer prints its metrics; the table is the parent's
        try:
            result = fn(*args)
            result["peak_rss_mb"] = status_mb("VmHWM")
            Path(path).write_text(json.dumps(result))
            code = 0
        except BaseException:  # noqa: BLE001 - printed, then a failing exit code
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    code = wait(pid)
    text = Path(path).read_text()
    os.unlink(path)
    if code != 0:
        raise RuntimeError(f"vs_peers: {fn.__name__}{args} failed in its process (exit {code})")
    return json.loads(text)


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of `repeats` calls of `fn` after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


# ----- training contenders -----------------------------------------------------------------------

def train_child(model_kind: str, contender: str, seconds: float, n: int, steps: int) -> dict:
    """Build the model and batch of one shape in this process and time `contender`'s steps."""
    fam = architecture("qwen3_asr")
    model, tok = build_tiny("qwen3_asr", **MODELS[model_kind])
    if contender in ("adaptkit", "adaptkit cached", "plain", "floor"):
        model, _ = apply(model, SPEC, tokenizer=tok)
        train_mode(model)
    else:  # a plain user adds the tokens as adaptkit does (non-special); the vocabulary has room
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in NEW_TOKENS])
    batch = batch_of(tok, fam, n, seconds)
    tokens = int(batch["attention_mask"].sum())
    supervised = int((batch["labels"][:, 1:] != IGNORE).sum())
    if contender == "floor":
        return {"tokens": tokens, "supervised": supervised, **floor_phases(model, fam, batch, steps)}
    run = {"adaptkit": adaptkit_steps, "adaptkit cached": cached_adaptkit_steps, "plain": plain_steps, "trainer+peft": peft_trainer_steps,
           "trainer full": full_trainer_steps}[contender]
    return {"tokens": tokens, "supervised": supervised, "times": run(model, fam, tok, batch, steps)}


def optimizer_step(params: list[torch.nn.Parameter], opt: torch.optim.Optimizer) -> None:
    """Clip, step, zero_grad: the end of every hand-written step here."""
    torch.nn.utils.clip_grad_norm_(params, CLIP)
    opt.step()
    opt.zero_grad(set_to_none=True)


def adaptkit_steps(model, fam, tok, batch: dict, steps: int, cache: dict | None = None) -> list[float]:
    """adaptkit's step: `SpeechLMLoss` (supervised positions only, encoder no-grad; `cache`: the
    encoder cache, None: no cache)."""
    module = SpeechLMLoss(model, fam, encoder_trains=False, cache=cache)
    params = trainable_parameters(model)
    opt = torch.optim.AdamW(params, lr=LR)

    def step():
        loss_sum, weight = module(batch)
        (loss_sum / weight).backward()
        optimizer_step(params, opt)
    return timed(step, steps)


def cached_adaptkit_steps(model, fam, tok, batch: dict, steps: int) -> list[float]:
    """adaptkit's step with the encoder cache: the warm-up step fills it, the timed ones read it."""
    return adaptkit_steps(model, fam, tok, batch, steps, cache={})


def plain_steps(model, fam, tok, batch: dict, steps: int) -> list[float]:
    """The model's own forward with labels (full logits), the same trainable parameters."""
    inputs = {k: batch[k] for k in INPUTS}
    params = trainable_parameters(model)
    opt = torch.optim.AdamW(params, lr=LR)

    def step():
        model.thinker(**inputs).loss.backward()
        optimizer_step(params, opt)
    return timed(step, steps)


def peft_trainer_steps(model, fam, tok, batch: dict, steps: int) -> list[float]:
    """Trainer on peft's TrainableTokens (new rows of embed_tokens and lm_head) + the projector."""
    ids = tok.convert_tokens_to_ids(NEW_TOKENS)
    peft_model = get_peft_model(model.thinker, TrainableTokensConfig(token_indices=ids, target_modules=["embed_tokens", "lm_head"]))
    for name, p in peft_model.named_parameters():
        if ".audio_tower.proj1." in name or ".audio_tower.proj2." in name:
            p.requires_grad_(True)
    return trainer_steps(peft_model, batch, steps)


def full_trainer_steps(model, fam, tok, batch: dict, steps: int) -> list[float]:
    """Trainer with every weight of the thinker trainable (the official fine-tuning route)."""
    for p in model.parameters():
        p.requires_grad_(True)
    return trainer_steps(model.thinker, batch, steps)


def trainer_steps(model, batch: dict, steps: int) -> list[float]:
    """`Trainer.train()` for 1 + `steps` steps on the same prepared batch, each step timed by a callback."""
    class StepTimer(TrainerCallback):
        """Seconds from on_step_begin to on_step_end of every step."""

        def __init__(self):
            self.times, self.start = [], 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.start)

    inputs = {k: batch[k] for k in INPUTS}
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, max_steps=steps + 1, per_device_train_batch_size=1, learning_rate=LR,
                                 lr_scheduler_type="constant", max_grad_norm=CLIP, use_cpu=True, report_to="none",
                                 save_strategy="no", logging_strategy="no", disable_tqdm=True, remove_unused_columns=False,
                                 dataloader_pin_memory=False, seed=0)
        trainer = Trainer(model=model, args=args, train_dataset=[inputs] * (steps + 1), data_collator=lambda items: items[0],
                          callbacks=[timer])
        trainer.train()
    return timer.times[1:]


# ----- the floor ---------------------------------------------------------------------------------

def floor_phases(model, fam, batch: dict, steps: int) -> dict:
    """Median seconds of each unavoidable phase of a step, timed apart, and of the model's own no-grad forward."""
    thinker = model.thinker
    feats, mask, ids, att = (batch[k] for k in ("input_features", "feature_attention_mask", "input_ids", "attention_mask"))
    with torch.no_grad():
        states = fam.encode_audio(model, feats, mask)
        embeds = scatter_audio(thinker.get_input_embeddings()(ids), ids, fam.audio_token_id(model), fam.project(model, states))
    leaf = embeds.detach().requires_grad_()
    position_ids, _ = thinker.get_rope_index(att)
    targets = batch["labels"][:, 1:]
    chosen = targets != IGNORE
    head = fam.output_layer(model)
    weight = (head.get_base_layer() if hasattr(head, "get_base_layer") else head).weight
    times: dict[str, list[float]] = {p: [] for p in PHASES}
    for k in range(steps + 1):  # the first round is the warm-up
        lap = {}
        start = time.perf_counter()
        with torch.no_grad():
            fam.encode_audio(model, feats, mask)
        lap["encoder"] = time.perf_counter() - start
        start = time.perf_counter()
        hidden = thinker.model(inputs_embeds=leaf, attention_mask=att, position_ids=position_ids, use_cache=False).last_hidden_state
        lap["llm_fwd"] = time.perf_counter() - start
        start = time.perf_counter()
        supervised = hidden[:, :-1][chosen].detach().requires_grad_()
        F.cross_entropy(F.linear(supervised, weight).float(), targets[chosen], reduction="sum").backward()
        lap["output_ce"] = time.perf_counter() - start
        grad = torch.zeros_like(hidden)
        grad[:, :-1][chosen] = supervised.grad
        start = time.perf_counter()
        hidden.backward(grad)
        lap["llm_bwd"] = time.perf_counter() - start
        if k:
            for phase, seconds in lap.items():
                times[phase].append(seconds)
    times["optimizer"] = optimizer_times(model, steps)
    inputs = {k: batch[k] for k in INPUTS if k != "labels"}

    def forward():
        with torch.no_grad():
            thinker(**inputs)
    return {"phases": {p: statistics.median(t) for p, t in times.items()}, "nograd_forward": statistics.median(timed(forward, steps))}


def optimizer_times(model, steps: int) -> list[float]:
    """Seconds of clip + AdamW + zero_grad over the trainable parameters (gradients of zeros)."""
    params = trainable_parameters(model)
    opt = torch.optim.AdamW(params, lr=LR)

    def step():
        for p in params:
            p.grad = torch.zeros_like(p)
        start = time.perf_counter()
        optimizer_step(params, opt)
        return time.perf_counter() - start
    step()
    return [step() for _ in range(steps)]


# ----- decoding ----------------------------------------------------------------------------------

def make_checkpoint(folder: str) -> dict:
    """The hub-shaped tiny Qwen3-ASR, written to `folder` (in a process of its own)."""
    save_qwen3_asr_checkpoint(folder)
    return {}


def decode_child(who: str, folder: str, wavs: list[str], batch: int, steps: int) -> dict:
    """Load `folder` the way `who` does and time decoding every utterance of `wavs` (batched)."""
    if who == "adaptkit":
        arch = architecture("qwen3_asr")
        model, tok, fe, _ = arch.load(folder)
        samples = [Sample(id=str(i), where="bench", audio=Path(w), text=REFERENCE) for i, w in enumerate(wavs)]

        def call() -> list[str]:
            out = decode(model, arch, tok, fe, samples, [REFERENCE] * len(wavs), batch_size=batch, progress=False,
                         prefixes=["language English<asr_text>"] * len(wavs))
            return [d.text for d in out]
    else:
        asr = Qwen3ASRModel.from_pretrained(folder, max_inference_batch_size=batch)
        asr.max_new_tokens = length_limit(asr.processor.tokenizer, REFERENCE)  # adaptkit's limit for REFERENCE

        def call() -> list[str]:
            return [r.text for r in asr.transcribe(audio=wavs, language="English")]
    texts = call()
    return {"times": timed(call, steps, warmup=0), "texts": texts}


def write_utterances(folder: Path, seconds: list[float]) -> list[str]:
    """Noise utterances of the given lengths as 16 kHz WAVs; their paths."""
    rng = np.random.default_rng(1)
    paths = []
    for i, s in enumerate(seconds):
        path = folder / f"utt{i}.wav"
        sf.write(path, rng.standard_normal(int(16000 * s)).astype("float32") * 0.1, 16000)
        paths.append(str(path))
    return paths


# ----- end of turn -------------------------------------------------------------------------------

def scorer_child(shape: str, contexts: list[int], updates: int) -> dict:
    """Per context: ms of `EndOfTurnScorer.add`, of recomputing the last WINDOW tokens, and of the one
    output-layer row both must compute (a 151,936 x hidden matrix read once: memory-bound), alternated."""
    tok = Qwen2TokenizerFast.from_pretrained(str(qwen3_tokenizer_files()))
    model = turn_scorer_cost.qwen3_shape_model(VOCAB_ROWS, shape)
    scorer = EndOfTurnScorer(model, tok)
    out = {}
    for context in contexts:
        scorer.start(turn_scorer_cost.conversation(tok, context) + [{"role": "user", "content": "I would"}])
        first = len(scorer.ids)
        update, recompute, row = [], [], []
        for i in range(updates + 1):  # the first triple is the warm-up
            start = time.perf_counter()
            scorer.add(" " + turn_scorer_cost.WORDS[i % len(turn_scorer_cost.WORDS)])
            update.append(time.perf_counter() - start)
            start = time.perf_counter()
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([scorer.ids[-WINDOW:]]), logits_to_keep=1, use_cache=False).logits
            float(torch.softmax(logits[0, -1].float(), dim=-1)[scorer.end_id])
            recompute.append(time.perf_counter() - start)
            start = time.perf_counter()
            with torch.no_grad():
                float(torch.softmax(model.lm_head(logits.new_ones(1, model.config.hidden_size)), dim=-1)[0, scorer.end_id])
            row.append(time.perf_counter() - start)
        out[context] = {"tokens": [first, len(scorer.ids)], "update": update[1:], "recompute": recompute[1:],
                        "output_row": row[1:]}
    return {"shape": shape, "contexts": out}


# ----- the run -----------------------------------------------------------------------------------

def train_rounds(models: list[str], shapes: list[tuple[float, int]], repeats: int, steps: int) -> dict:
    """Every contender's results per (model, shape): `repeats` rounds, the contenders interleaved."""
    results: dict = {}
    for r in range(repeats):
        for model_kind in models:
            for seconds, n in shapes:
                for contender in CONTENDERS:
                    started = time.perf_counter()
                    res = in_child(train_child, model_kind, contender, seconds, n, steps)
                    results.setdefault((model_kind, seconds, n), {}).setdefault(contender, []).append(res)
                    print(f"round {r + 1}/{repeats} {model_kind} {seconds:g} s x {n} {contender}: "
                          f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return results


def decode_rounds(utterances: list[float], batch: int, repeats: int, steps: int) -> dict:
    """adaptkit's decode and qwen_asr's transcribe on the same folder and utterances, rounds interleaved."""
    results: dict = {"adaptkit": [], "qwen_asr": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = str(Path(tmp) / "Qwen3-ASR-tiny")
        in_child(make_checkpoint, folder)
        wavs = write_utterances(Path(tmp), utterances)
        for _ in range(repeats):
            for who in results:
                results[who].append(in_child(decode_child, who, folder, wavs, batch, steps))
    return results


def spread(times: list[float]) -> str:
    """Median and min-max of `times`, in seconds."""
    return f"{statistics.median(times):7.3f} [{min(times):.3f}-{max(times):.3f}]"


def train_table(results: dict, parent_mb: float) -> list[str]:
    """The training table: median s/step [min-max], peer / adaptkit, peak RSS, floor and its phases."""
    lines = [f"Training step, seconds: median [min-max] over every timed step of every round; x = peer / adaptkit; "
             f"peak RSS in MB per process (each includes {parent_mb:.0f} MB resident in the parent at fork: the imports)", ""]
    header = f"{'model':<13}{'audio':>6}{'batch':>6}{'tokens':>7}{'sup':>5} | {'contender':<15}{'s/step [min-max]':>24}{'x':>7}{'RSS MB':>8}"
    current = None
    for (model_kind, seconds, n), by in results.items():
        if model_kind != current:
            lines += ([""] if current else []) + [f"{model_kind}: {describe(model_kind)}", header, "-" * len(header)]
            current = model_kind
        ours = step_median(by, "adaptkit")
        first = by["adaptkit"][0]
        for contender in ("adaptkit", "adaptkit cached", *PEERS):
            times = [t for res in by[contender] for t in res["times"]]
            rss = max(res["peak_rss_mb"] for res in by[contender])
            ratio = statistics.median(times) / ours
            lead = f"{model_kind:<13}{seconds:>5g}s{n:>6}{first['tokens']:>7}{first['supervised']:>5}" if contender == "adaptkit" else " " * 37
            lines.append(f"{lead} | {contender:<15}{spread(times):>24}{ratio:>7.2f}{rss:>8.0f}")
        lines.append(floor_line(by))
    return lines


def step_median(by: dict, contender: str) -> float:
    """Median seconds over every timed step of every round of `contender`."""
    return statistics.median(t for res in by[contender] for t in res["times"])


def floor_ratios(by: dict) -> tuple[dict[str, float], float, float]:
    """The floor's phases (medians over rounds), adaptkit step / floor, and the cached step / the
    floor without the encoder."""
    phases = {p: statistics.median(res["phases"][p] for res in by["floor"]) for p in PHASES}
    floor = sum(phases.values())
    return phases, step_median(by, "adaptkit") / floor, step_median(by, "adaptkit cached") / (floor - phases["encoder"])


def floor_line(by: dict) -> str:
    """adaptkit step / floor, the cached step / the floor without the encoder, and the floor's phases."""
    phases, ours, cached = floor_ratios(by)
    forward = statistics.median(res["nograd_forward"] for res in by["floor"])
    parts = ", ".join(f"{p} {phases[p]:.3f}" for p in PHASES)
    return (f"{'':37} | floor {sum(phases.values()):.3f} s ({parts}); adaptkit / floor {ours:.2f}; adaptkit cached / "
            f"floor without the encoder {cached:.2f}; no-grad forward {forward:.3f} s")


def floor_verdict(ratio: float, target: float) -> str:
    """met / NOT met for a step / floor ratio, or UNRELIABLE when the floor measured above the step."""
    if ratio < 0.95:
        return "UNRELIABLE: the floor measured above the step (the machine's load changed between processes)"
    return "met" if ratio <= target else "NOT met"


def describe(model_kind: str) -> str:
    """One line on a model preset."""
    return {"tiny": "tiny Qwen3-ASR (encoder 64 x 2, LLM 128 x 2), real vocabulary 151,936 rows",
            "proportional": "encoder 256 x 4 (FFN 4x), LLM 512 x 4 (FFN 3x), 5,440 rows: encoder / LLM 0.25, "
                            "output layer / LLM 0.22 of the FLOPs per token, as Qwen3-ASR-1.7B"}[model_kind]


def decode_table(results: dict, utterances: list[float], batch: int) -> tuple[list[str], float]:
    """Utterances per second of each side and adaptkit / qwen_asr; also returns that ratio."""
    rate = {who: [len(utterances) / t for res in runs for t in res["times"]] for who, runs in results.items()}
    # transcribe strips the text (qwen_asr's parse_asr_output); the tokens are what must agree
    same = sum(a.strip() == b.strip() for a, b in zip(results["adaptkit"][0]["texts"], results["qwen_asr"][0]["texts"]))
    # each round runs both sides back to back: their ratio per round is what load drift between rounds leaves alone
    paired = [statistics.median(len(utterances) / t for t in ours["times"]) / statistics.median(len(utterances) / t for t in theirs["times"])
              for ours, theirs in zip(results["adaptkit"], results["qwen_asr"])]
    ratio = statistics.median(paired)
    lines = [f"Decoding: {len(utterances)} utterances of {min(utterances):g}-{max(utterances):g} s, batch {batch}, "
             "hub-shaped tiny Qwen3-ASR (151,936 rows), language forced, greedy, the same new-token limit", ""]
    for who, label in (("adaptkit", "adaptkit eval's decode"), ("qwen_asr", "qwen_asr transcribe")):
        r, rss = rate[who], max(res["peak_rss_mb"] for res in results[who])
        lines.append(f"  {label:<24} {statistics.median(r):7.2f} utt/s [{min(r):.2f}-{max(r):.2f}]  peak RSS {rss:.0f} MB")
    lines.append(f"  adaptkit / qwen_asr throughput, per round (both sides back to back): median {ratio:.2f} "
                 f"[{min(paired):.2f}-{max(paired):.2f}] over {len(paired)} rounds; identical transcripts {same} of {len(utterances)}")
    return lines, ratio


def scorer_table(runs: list[dict]) -> tuple[list[str], dict[tuple[str, int], float]]:
    """Per LM shape and context: ms per call of the update, of the 128-token recomputation and of the
    output row alone, and update / recompute (keyed by (shape, context))."""
    lines = [f"End of turn: EndOfTurnScorer.add vs recomputing the last {WINDOW} tokens (LiveKit), Qwen3 LMs at "
             "151,936 rows, Qwen3's tokenizer; ms per call, median [min-max]; 'row' is the one output-layer row "
             "both calls compute (update / recompute cannot go below row / recompute)", ""]
    ratios = {}
    for shape in dict.fromkeys(run["shape"] for run in runs):
        mine = [run for run in runs if run["shape"] == shape]
        lines.append(f"  {shape}:")
        for context in mine[0]["contexts"]:
            ms = {k: [t * 1000 for run in mine for t in run["contexts"][context][k]] for k in ("update", "recompute", "output_row")}
            med = {k: statistics.median(v) for k, v in ms.items()}
            ratios[(shape, int(context))] = med["update"] / med["recompute"]
            first, last = mine[0]["contexts"][context]["tokens"]
            lines.append(f"    context {context:>4} ({first}-{last} tokens): update {med['update']:7.2f} "
                         f"[{min(ms['update']):.2f}-{max(ms['update']):.2f}]  recompute {med['recompute']:8.2f} "
                         f"[{min(ms['recompute']):.2f}-{max(ms['recompute']):.2f}]  row {med['output_row']:6.2f}  "
                         f"update / recompute {ratios[(shape, int(context))]:.3f} (row / recompute "
                         f"{med['output_row'] / med['recompute']:.3f})")
    return lines, ratios


def targets(train: dict, decode_ratio: float | None, scorer: dict[int, float]) -> list[str]:
    """The issue's targets, each met or not (the numbers above)."""
    def ratio(key, peer):
        return step_median(train[key], peer) / step_median(train[key], "adaptkit")
    lines = ["Targets:"]
    big = [k for k in train if k[0] == "tiny" and k[1] >= 8 and k[2] >= 4]
    for key in big:
        r = ratio(key, "trainer+peft")
        lines.append(f"  training >= 3x Trainer + peft, tiny {key[1]:g} s x {key[2]}: {r:.2f}x  {'met' if r >= 3 else 'NOT met'}")
    if decode_ratio is not None:
        lines.append(f"  decoding >= qwen_asr transcribe: {decode_ratio:.2f}x  {'met' if decode_ratio >= 1 else 'NOT met'}")
    for (shape, context), r in scorer.items():
        if context == 256:
            lines.append(f"  scorer update <= 0.3x recomputation at 256, {shape}: {r:.3f}  {'met' if r <= 0.3 else 'NOT met'}")
    key = ("proportional", 8, 4)
    if key in train:
        _, ours, cached = floor_ratios(train[key])
        lines.append(f"  proportional model, step <= 1.2x its floor at 8 s x 4: {ours:.2f}x  {floor_verdict(ours, 1.2)}")
        lines.append(f"  proportional model, cached step <= 1.1x its floor without the encoder at 8 s x 4: "
                     f"{cached:.2f}x  {floor_verdict(cached, 1.1)}")
    return lines


def load() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def machine() -> list[str]:
    """The command, the date, the machine and the library versions."""
    import peft
    import transformers
    from importlib.metadata import version

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return [f"$ {' '.join(shlex.quote(a) for a in ['python', *sys.argv])}",
            f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
            f"machine: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
            f"{status_mb('VmRSS'):.0f} MB resident after the imports; python {platform.python_version()}",
            f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
            f"qwen-asr {version('qwen-asr')}; load average at the start {load()} (the machine is shared)", ""]


def shape_list(text: str) -> list[tuple[float, int]]:
    """`2x1,8x4` -> [(2.0, 1), (8.0, 4)]."""
    return [(float(a), int(b)) for a, b in (part.split("x") for part in text.split(","))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="rounds; every contender runs once per round")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per process, after one warm-up")
    parser.add_argument("--quick", action="store_true", help="one shape, one round, one step: a smoke test (not written)")
    parser.add_argument("--shapes", type=shape_list, default=SHAPES, help="audio seconds x batch, e.g. 2x1,8x4")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    quick = args.quick
    repeats, steps = (1, 1) if quick else (args.repeats, args.steps)
    shapes = args.shapes[:1] if quick else args.shapes
    utterances = DECODE_SECONDS[:2] if quick else DECODE_SECONDS
    started = time.perf_counter()
    head = machine()
    parent_mb = status_mb("VmRSS")
    train = train_rounds(list(MODELS), shapes, repeats, steps)
    decoded = decode_rounds(utterances, len(utterances), 1 if quick else repeats * DECODE_ROUNDS, 1 if quick else 3)
    scored = [in_child(scorer_child, "512 x 4", [128] if quick else [128, 256, 512], 3 if quick else 10) for _ in range(repeats)]
    scored += [in_child(scorer_child, "Qwen3-0.6B", [256], 1 if quick else 4) for _ in range(1 if quick else repeats)]
    decode_lines, decode_ratio = decode_table(decoded, utterances, len(utterances))
    scorer_lines, scorer_ratios = scorer_table(scored)
    lines = [*head, *train_table(train, parent_mb), "", *decode_lines, "", *scorer_lines, "",
             *targets(train, decode_ratio, scorer_ratios), "", f"wall time {time.perf_counter() - started:.0f} s; load average at the end {load()}"]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if not quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
