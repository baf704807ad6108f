"""Batched greedy decoding that keeps every token a degenerate model may emit.

Special tokens are kept in the text (decoding with them skipped would hide both the speaker tags
and leaked control tokens); the length limit follows the reference, generously enough that a
length blow-up is visible; each output records whether it ended with eos within its own limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import torch
from torch import nn

from adaptkit.data.audio import load_audio
from adaptkit.data.manifest import Sample


@dataclass
class Decoded:
    """One decoded sample."""

    id: str
    text: str
    """The generated answer, special tokens kept, cut at eos (excluded) or at the limit."""
    ended_with_eos: bool
    tokens: int
    """Generated tokens before eos or the limit."""
    limit: int
    first_scores: dict[str, float] | None = None
    """Softmax probabilities of chosen tokens at the first generated position (turn tags)."""


def length_limit(tokenizer, reference: str, factor: float = 3.0, slack: int = 16) -> int:
    """New-token limit for a reference answer: factor x its length plus slack."""
    return int(factor * len(tokenizer(reference, add_special_tokens=False)["input_ids"])) + slack


def decode(model: nn.Module, fam: ModuleType, tokenizer, feature_extractor, samples: list[Sample], targets: list[str],
           system: str = "", sample_rate: int = 16000, batch_size: int = 8, score_tokens: list[str] = (),
           progress: bool = True) -> list[Decoded]:
    """Greedy answers for `samples`; `targets` (the reference answers) set each length limit."""
    from tqdm.auto import tqdm

    model.eval()
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    score_ids = tokenizer.convert_tokens_to_ids(list(score_tokens))
    out: list[Decoded] = []
    bar = tqdm(total=len(samples), desc="decode", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(samples), batch_size):
        chunk, refs = samples[start:start + batch_size], targets[start:start + batch_size]
        feats = [fam.features(feature_extractor, load_audio(s.audio, sample_rate, s.start, s.end)) for s in chunk]
        prompts = [fam.prompt_ids(tokenizer, fam.audio_token_count(f.shape[-1], model), s.prompt or system) for s, f in zip(chunk, feats)]
        limits = [length_limit(tokenizer, r) for r in refs]
        width, frames = max(map(len, prompts)), max(f.shape[-1] for f in feats)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        features = torch.zeros(len(chunk), feats[0].shape[0], frames)
        fmask = torch.zeros(len(chunk), frames, dtype=torch.long)
        for i, (p, f) in enumerate(zip(prompts, feats)):  # left padding for generation
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
            features[i, :, : f.shape[-1]] = f
            fmask[i, : f.shape[-1]] = 1
        with torch.no_grad():
            result = fam.generate(model, input_ids=ids, attention_mask=mask, input_features=features,
                                  feature_attention_mask=fmask, max_new_tokens=max(limits), eos_token_id=eos,
                                  pad_token_id=pad, do_sample=False, output_scores=bool(score_ids), return_dict_in_generate=True)
        new = result.sequences[:, width:]
        for i, s in enumerate(chunk):
            row = new[i, : limits[i]].tolist()
            ended = eos in row
            row = row[: row.index(eos)] if ended else row
            first = None
            if score_ids:
                probs = torch.softmax(result.scores[0][i].float(), dim=-1)
                first = {tok: float(probs[j]) for tok, j in zip(score_tokens, score_ids)}
            out.append(Decoded(s.id, tokenizer.decode(row, skip_special_tokens=False), ended, len(row), limits[i], first))
        bar.update(len(chunk))
    bar.close()
    return out
