"""The loss of one batch, computed only where it is needed.

- When nothing in the encoder trains, the encoder runs without autograd and its outputs (just
  before the projector) can be kept across epochs.
- Logits and cross-entropy are computed only at supervised positions: at a real vocabulary
  (151,936 rows) the output layer over every position is most of a naive step. Long batches go
  through the output layer in chunks of positions (`adaptkit.train.chunked_loss`), so the logits
  held at once stay bounded; on CUDA with `liger_kernel` and a plain output layer, Liger Kernel's
  fused linear cross-entropy does it.
- Each sample's audio placeholder count is checked against the encoder's output length: a wrong
  count raises nothing in the model and silently shifts features between samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adaptkit.data.batching import IGNORE
from adaptkit.errors import AdaptkitError
from adaptkit.models.base import Architecture
from adaptkit.train.chunked_loss import chunk_positions, fused_loss, output_rows, weighted_cross_entropy


class SpeechLMLoss(nn.Module):
    """Wraps the model so that one `forward(batch)` gives (weighted loss sum, weight sum).

    A module of its own so that accelerate's DistributedDataParallel sees the whole step. `cache`
    maps dataset index -> encoder states (a dict or an `EncoderCache`); None recomputes them.
    `logit_chunk`: supervised positions per pass through the output layer (None: as many as fit
    in `chunked_loss.LOGIT_BUDGET_BYTES` of float32 logits).
    """

    def __init__(self, model: nn.Module, arch: Architecture, encoder_trains: bool,
                 token_weights: dict[int, float] | None = None, cache=None,
                 where: list[str] | None = None, ctc_head: nn.Linear | None = None, ctc_weight: float = 0.0,
                 logit_chunk: int | None = None):
        super().__init__()
        self.logit_chunk = logit_chunk
        self.ctc_head, self.ctc_weight = ctc_head, ctc_weight
        self.model = model
        self.arch = arch
        self.encoder_trains = encoder_trains
        self.token_weights = token_weights or {}
        self.cache = cache
        self.where = where or []
        self.input_dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
        self.encoded = 0
        """Samples this process ran through the frozen encoder (each once while the cache holds them)."""

    def audio_states(self, batch: dict) -> list[torch.Tensor]:
        """Pre-projector audio states per sample (from the cache when the encoder is frozen)."""
        feats, mask, index = batch["input_features"], batch["feature_attention_mask"], batch["index"].tolist()
        feats = feats.to(self.input_dtype)  # features are float32; a bfloat16 encoder wants its own dtype
        if self.encoder_trains:
            return self.arch.encode_audio(self.model, feats, mask)
        out: list[torch.Tensor | None] = [self.cache.get(i) if self.cache is not None else None for i in index]
        todo = [k for k, x in enumerate(out) if x is None]
        flags = batch["cached"].tolist() if "cached" in batch else [False] * len(index)
        lost = [index[k] for k in todo if flags[k]]
        if lost:  # cached_placeholders loaded it into memory, which never drops an entry
            raise RuntimeError(f"sample {lost[0]} came without features as cached, and the encoder cache does not hold it")
        if todo:
            self.encoded += len(todo)
            width = int(mask[todo].sum(dim=1).max())  # the rows encoded alone decide the padding, not cached ones
            with torch.no_grad():
                fresh = self.arch.encode_audio(self.model, feats[todo][..., :width], mask[todo][:, :width])
            for k, states in zip(todo, fresh):
                out[k] = states
                if self.cache is not None:
                    self.cache[index[k]] = states
        return out

    def cached_placeholders(self, index: int) -> int | None:
        """The audio placeholder count of sample `index` when its encoder output is cached (then its
        audio need not be read nor its features computed: `adaptkit.data.loading.CachedMarks`), else
        None. An entry read from disk stays in memory, where the step finds it."""
        if self.encoder_trains or self.cache is None:
            return None
        states = self.cache.get(index)
        return None if states is None else self.arch.projected_length(self.model, states.shape[0])

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        audio = self.audio_embeddings(batch) if "input_features" in batch else None
        loss_sum, weight_sum = self.language_model_loss(batch, audio)
        if self.ctc_head is not None and "ctc_labels" in batch:
            loss_sum = loss_sum + self.ctc_weight * self.ctc_loss(batch, audio) * weight_sum.detach()
        return loss_sum, weight_sum

    def ctc_loss(self, batch: dict, audio: torch.Tensor) -> torch.Tensor:
        """Mean CTC loss per target token of a linear head on the audio embeddings (training only).

        It makes a from-scratch Speech-LLM listen: with cross-entropy alone a small model trained on
        CPU learns the text prior and ignores the audio (measured here: CER near 80% after 20 minutes
        with cross-entropy alone, 12% after 5 with CTC weight 0.5)."""
        counts = (batch["input_ids"] == self.arch.audio_token_id(self.model)).sum(dim=1)
        per_sample = torch.split(audio, counts.tolist())
        logits = nn.utils.rnn.pad_sequence(per_sample, batch_first=True)
        log_probs = F.log_softmax(self.ctc_head(logits).float(), dim=-1).transpose(0, 1)
        labels = batch["ctc_labels"]
        lengths = (labels != IGNORE).sum(dim=1)
        targets = labels[labels != IGNORE]
        total = F.ctc_loss(log_probs, targets, counts, lengths, blank=self.ctc_head.out_features - 1,
                           reduction="sum", zero_infinity=True)
        return total / lengths.sum().clamp_min(1)

    def language_model_loss(self, batch: dict, audio: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted cross-entropy sum and weight sum at the supervised positions."""
        hidden = self.arch.llm_hidden(self.model, batch["input_ids"], batch["attention_mask"], audio)
        targets = batch["labels"][:, 1:]
        chosen = targets != IGNORE
        hidden, targets = hidden[:, :-1][chosen], targets[chosen]
        weights = self.target_weights(targets)
        head = self.arch.output_layer(self.model)
        plain_logits = type(self.arch).logits is Architecture.logits  # no class-specific scaling of the logits
        fused = fused_loss(head, hidden, targets, self.token_weights) if plain_logits else None
        if fused is not None:
            return fused, weights.sum()
        chunk = self.logit_chunk or chunk_positions(output_rows(head))
        total = weighted_cross_entropy(lambda h: self.arch.logits(self.model, h), hidden, targets, weights, chunk)
        return total, weights.sum()

    def target_weights(self, targets: torch.Tensor) -> torch.Tensor:
        """Loss weight of each supervised target token (1, or its `token_loss_weights` entry)."""
        weights = torch.ones(targets.shape, dtype=torch.float32, device=targets.device)
        for token, weight in self.token_weights.items():
            weights = torch.where(targets == token, torch.full_like(weights, weight), weights)
        return weights

    def supervised_weight(self, batch: dict) -> torch.Tensor:
        """The weight sum `forward` will return for `batch`, from its labels alone (no forward)."""
        targets = batch["labels"][:, 1:]
        return self.target_weights(targets[targets != IGNORE]).sum()

    def audio_embeddings(self, batch: dict) -> torch.Tensor:
        """Projected audio states of the batch, after checking each sample's placeholder count."""
        states = self.audio_states(batch)
        placeholders = (batch["input_ids"] == self.arch.audio_token_id(self.model)).sum(dim=1).tolist()
        for k, (s, n) in enumerate(zip(states, placeholders)):
            rows = self.arch.projected_length(self.model, s.shape[0])  # a projector may shorten the sequence
            if rows != n:
                i = int(batch["index"][k])
                where = self.where[i] if i < len(self.where) else f"sample {i}"
                raise AdaptkitError(f"{where}: {n} audio placeholders but the encoder and projector give {rows}")
        return self.arch.project(self.model, states)


def encoder_trains(model: nn.Module) -> bool:
    """True when any parameter of the encoder (projector excluded) trains."""
    cmap = model.adaptkit.cmap
    return any(p.requires_grad and cmap.group_of(n) == "encoder" for n, p in model.named_parameters())
