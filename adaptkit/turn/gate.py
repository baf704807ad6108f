"""The edge gate of SpeculativeETD (arXiv 2503.23439): a tiny streaming speech / non-speech model.

Every 100 ms chunk of 16 kHz audio becomes 10 log-mel frames x 40 bins (25 ms Hann window, 10 ms
hop). A two-layer Conv2D front end turns a chunk into a 960-dim vector, a one-layer GRU (hidden 64)
runs over the chunks and a linear head gives SU / non-SU logits (index 1 = SU, speech), about 202K
parameters as in the paper. Frames are causal: frame i ends where its 10 ms hop ends, so chunk c
needs only the samples up to its own end plus 15 ms before it, and `StreamingGate` gives exactly
what `GRUGate.forward` gives on the whole wave.

`train_gate` fits it on conversations from `adaptkit synth` (target: frame label == "SU").
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adaptkit.atomic import atomic_write
from adaptkit.errors import AdaptkitError

SAMPLE_RATE = 16000
CHUNK_SECONDS = 0.1
N_MELS = 40
HOP, WIN, N_FFT = 160, 400, 512  # 10 ms hop, 25 ms window
CHUNK = int(SAMPLE_RATE * CHUNK_SECONDS)  # 1600 samples
FRAMES = CHUNK // HOP  # 10 frames a chunk
CONTEXT = WIN - HOP  # samples of the past that the first frame of a chunk reaches back to

_window: torch.Tensor | None = None
_mel: torch.Tensor | None = None


def _log_mel(samples: np.ndarray) -> torch.Tensor:
    """Log-mel frames (n, 40) of `samples` whose first CONTEXT samples are the past: frame i ends at sample CONTEXT+(i+1)*HOP."""
    global _window, _mel
    if _mel is None:
        from transformers.audio_utils import mel_filter_bank, window_function

        _window = torch.from_numpy(window_function(WIN, "hann")).float()
        fb = mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=N_MELS, min_frequency=20.0,
                             max_frequency=SAMPLE_RATE / 2, sampling_rate=SAMPLE_RATE, mel_scale="htk")
        _mel = torch.from_numpy(fb).float()
    frames = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unfold(0, WIN, HOP)
    power = torch.fft.rfft(frames * _window, n=N_FFT).abs() ** 2
    return torch.log(power @ _mel + 1e-6)


def log_mel_chunks(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Log-mel features (n_chunks, 10, 40) of a mono wave, n_chunks = ceil(len / 1600) at 16 kHz; the last chunk is zero padded."""
    wave = np.asarray(wave, dtype=np.float32)
    if sample_rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        g = math.gcd(sample_rate, SAMPLE_RATE)
        wave = resample_poly(wave, SAMPLE_RATE // g, sample_rate // g).astype(np.float32)
    n = math.ceil(len(wave) / CHUNK)
    padded = np.zeros(CONTEXT + n * CHUNK, np.float32)
    padded[CONTEXT : CONTEXT + len(wave)] = wave
    return _log_mel(padded).reshape(n, FRAMES, N_MELS)


class GRUGate(nn.Module):
    """Conv2D front end (1 -> 16 -> 32 channels, 3x3, stride 2: 10x40 -> 5x20 -> 3x10 = 960) -> GRU(64) -> 2 logits.

    201,922 parameters with the defaults. `mean` / `std` (per mel bin) normalise the log-mel input;
    `train_gate` sets them from its training data.
    """

    def __init__(self, channels: tuple[int, int] = (16, 32), hidden: int = 64):
        super().__init__()
        self.config = {"channels": list(channels), "hidden": hidden}
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.gru = nn.GRU(c2 * 3 * 10, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)
        self.register_buffer("mean", torch.zeros(N_MELS))
        self.register_buffer("std", torch.ones(N_MELS))

    def features(self, chunks: torch.Tensor) -> torch.Tensor:
        """(B, T, 10, 40) log-mel chunks -> (B, T, 960) chunk features."""
        B, T = chunks.shape[:2]
        x = ((chunks - self.mean) / self.std).reshape(B * T, 1, FRAMES, N_MELS)
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return x.reshape(B, T, -1)

    def forward(self, chunks: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, 10, 40) log-mel chunks and a GRU state (1, B, 64) or None -> logits (B, T, 2), new state."""
        out, state = self.gru(self.features(chunks), state)
        return self.head(out), state

    @torch.no_grad()
    def speech_probabilities(self, wave: np.ndarray) -> np.ndarray:
        """P(speech) for each 100 ms chunk of a 16 kHz mono wave, run from the start with a fresh state."""
        logits, _ = self(log_mel_chunks(wave)[None])
        return torch.softmax(logits[0], -1)[:, 1].numpy()


class StreamingGate:
    """Feed a `GRUGate` one 100 ms chunk (1600 samples) at a time; returns P(speech) for each chunk."""

    def __init__(self, gate: GRUGate):
        self.gate = gate.eval()
        self.reset()

    def reset(self) -> None:
        """Start a new stream: silence before it, fresh GRU state."""
        self.context = np.zeros(CONTEXT, np.float32)
        self.state: torch.Tensor | None = None

    def features(self, chunk: np.ndarray) -> torch.Tensor:
        """Log-mel (10, 40) of the next chunk (a short last chunk is zero padded); advances the STFT context."""
        chunk = np.asarray(chunk, dtype=np.float32)
        if len(chunk) > CHUNK:
            raise AdaptkitError(f"streaming gate: a chunk has {CHUNK} samples at most, got {len(chunk)}")
        chunk = np.pad(chunk, (0, CHUNK - len(chunk)))
        samples = np.concatenate([self.context, chunk])
        self.context = samples[-CONTEXT:]
        return _log_mel(samples)

    @torch.no_grad()
    def __call__(self, chunk: np.ndarray) -> float:
        logits, self.state = self.gate(self.features(chunk)[None, None], self.state)
        return float(torch.softmax(logits[0, 0], -1)[1])


def _load_conversation(wav: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel chunks and 0/1 SU targets of one synth conversation (its JSON lies beside the WAV)."""
    from adaptkit.data.audio import load_audio

    meta = Path(wav).with_suffix(".json")
    try:
        labels = json.loads(meta.read_text())["frames"]["labels"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AdaptkitError(f"{meta}: no frame labels (expected \"frames\": {{\"labels\": [...]}}): {type(e).__name__}: {e}")
    x = log_mel_chunks(load_audio(wav, SAMPLE_RATE))
    if abs(len(labels) - len(x)) > 1:
        raise AdaptkitError(f"{meta}: {len(labels)} frame labels but {wav.name} has {len(x)} chunks of 100 ms")
    n = min(len(labels), len(x))
    return x[:n], torch.tensor([label == "SU" for label in labels[:n]], dtype=torch.long)


def train_gate(conversations: list[Path], *, steps: int = 300, lr: float = 3e-3, batch_size: int = 8,
               window_chunks: int = 50, seed: int = 0) -> tuple[GRUGate, dict]:
    """Train a GRUGate on synth conversations (WAV paths, JSON beside) with random windows; returns it and
    {"steps", "final_loss" (mean of the last 10 steps), "seconds", "parameters"}.

    Runs on one CPU thread (restored after): the ops are too small for intra-op threads, which cost
    several times the CPU and, on a busy machine, several times the wall time."""
    if not conversations:
        raise AdaptkitError("train_gate: no conversations given")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(conversations, steps, lr, batch_size, window_chunks, seed)
    finally:
        torch.set_num_threads(threads)


def _train(conversations: list[Path], steps: int, lr: float, batch_size: int, window_chunks: int, seed: int) -> tuple[GRUGate, dict]:
    t0 = time.perf_counter()
    data = [_load_conversation(Path(p)) for p in conversations]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    gate = GRUGate()
    allx = torch.cat([x for x, _ in data]).reshape(-1, FRAMES, N_MELS)
    gate.mean.copy_(allx.mean((0, 1)))
    gate.std.copy_(allx.std((0, 1)) + 1e-3)
    win = min(window_chunks, min(len(x) for x, _ in data))
    opt = torch.optim.AdamW(gate.parameters(), lr=lr)
    losses = []
    gate.train()
    for _ in range(steps):
        xs, ys = [], []
        for i in torch.randint(len(data), (batch_size,), generator=gen).tolist():
            x, y = data[i]
            s = int(torch.randint(len(x) - win + 1, (1,), generator=gen))
            xs.append(x[s : s + win])
            ys.append(y[s : s + win])
        logits, _ = gate(torch.stack(xs))
        loss = F.cross_entropy(logits.reshape(-1, 2), torch.stack(ys).reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    gate.eval()
    stats = {"steps": steps, "final_loss": float(np.mean(losses[-10:])) if losses else float("nan"),
             "seconds": time.perf_counter() - t0, "parameters": sum(p.numel() for p in gate.parameters())}
    return gate, stats


def save_gate(gate: GRUGate, path: Path) -> None:
    """Write the gate's weights and config to one safetensors file, atomically."""
    from safetensors.torch import save

    tensors = {k: v.contiguous() for k, v in gate.state_dict().items()}
    atomic_write(path, save(tensors, metadata={"config": json.dumps(gate.config)}))


def load_gate(path: Path) -> GRUGate:
    """Read a gate written by `save_gate` (in eval mode)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            config = json.loads((f.metadata() or {})["config"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, KeyError, ValueError, SafetensorError) as e:
        raise AdaptkitError(f"{path}: not a gate saved by save_gate ({type(e).__name__}: {e})")
    gate = GRUGate(tuple(config["channels"]), config["hidden"])
    gate.load_state_dict(tensors)
    return gate.eval()
