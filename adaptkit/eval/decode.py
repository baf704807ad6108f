"""Batched greedy decoding as the user's client decodes, keeping what a degenerate model emits.

It follows qwen_asr's `Qwen3ASRModel.transcribe`: the same chat prompt, the answer prefix
`language X<asr_text>` appended to it when the language is forced, generation stopping on any of
the checkpoint's eos ids (`generation_config.eos_token_id`, `[151645, 151643]` on Qwen3-ASR), and
the text decoded with `skip_special_tokens=True`, so what is scored is what the user sees. The same
tokens decoded with special tokens kept (`raw`) feed the leaked-control-token check. The length
limit follows the reference, generously enough that a length blow-up is visible; each output
records whether it ended with eos within its own limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from adaptkit.data.audio import load_audio
from adaptkit.data.manifest import Sample
from adaptkit.devices import model_place
from adaptkit.models.base import Architecture


@dataclass
class Decoded:
    """One decoded sample."""

    id: str
    text: str
    """The generated answer as the client shows it (special tokens skipped), cut at eos or at the limit."""
    raw: str
    """The same tokens with special tokens kept (leaked control tokens stay visible)."""
    ended_with_eos: bool
    tokens: int
    """Generated tokens before eos or the limit."""
    limit: int
    first_scores: dict[str, float] | None = None
    """Softmax probabilities of chosen tokens at the first generated position (turn tags)."""


def length_limit(tokenizer, reference: str, factor: float = 3.0, slack: int = 16) -> int:
    """New-token limit for a reference answer: factor x its length plus slack."""
    return int(factor * len(tokenizer(reference, add_special_tokens=False)["input_ids"])) + slack


def eos_ids(model: nn.Module, tokenizer) -> list[int]:
    """The ids generation stops on: the checkpoint's generation config, else the tokenizer's eos."""
    config = getattr(model, "generation_config", None)
    ids = getattr(config, "eos_token_id", None)
    if ids is None:
        ids = tokenizer.eos_token_id
    return [int(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids])]


def _batch(tokenizer, feats: list[torch.Tensor], prompts: list[list[int]],
           device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Left-padded prompt ids and right-padded features, on the model's device, features in its dtype."""
    width, frames = max(map(len, prompts)), max(f.shape[-1] for f in feats)
    ids = torch.full((len(prompts), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    features = torch.zeros(len(prompts), feats[0].shape[0], frames)
    fmask = torch.zeros(len(prompts), frames, dtype=torch.long)
    for i, (p, f) in enumerate(zip(prompts, feats)):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
        features[i, :, : f.shape[-1]] = f
        fmask[i, : f.shape[-1]] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device),
            "input_features": features.to(device=device, dtype=dtype), "feature_attention_mask": fmask.to(device)}


def decode(model: nn.Module, arch: Architecture, tokenizer, feature_extractor, samples: list[Sample], targets: list[str],
           system: str = "", sample_rate: int = 16000, batch_size: int = 8, score_tokens: list[str] = (),
           progress: bool = True, prefixes: list[str] | None = None) -> list[Decoded]:
    """Greedy answers for `samples` on the model's own device and dtype.

    `targets` (the reference answers) set each length limit; `prefixes` are answer prefixes appended
    to each prompt (`language Japanese<asr_text>`: the language forced, as `transcribe(language=...)`)."""
    from tqdm.auto import tqdm

    model.eval()
    device, dtype = model_place(model)
    stop = eos_ids(model, tokenizer)
    score_ids = tokenizer.convert_tokens_to_ids(list(score_tokens))
    prefixes = prefixes or [""] * len(samples)
    out: list[Decoded] = []
    bar = tqdm(total=len(samples), desc="decode", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(samples), batch_size):
        chunk, refs = samples[start:start + batch_size], targets[start:start + batch_size]
        feats = [arch.features(feature_extractor, load_audio(s.audio, sample_rate, s.start, s.end)) for s in chunk]
        prompts = [arch.prompt_ids(tokenizer, arch.audio_token_count(f.shape[-1], model), s.prompt or system)
                   + (tokenizer(pre, add_special_tokens=False)["input_ids"] if pre else [])
                   for s, f, pre in zip(chunk, feats, prefixes[start:start + batch_size])]
        limits = [length_limit(tokenizer, r) for r in refs]
        inputs = _batch(tokenizer, feats, prompts, device, dtype)
        with torch.no_grad():
            result = arch.generate(model, **inputs, max_new_tokens=max(limits), eos_token_id=stop,
                                  pad_token_id=tokenizer.pad_token_id, do_sample=False, output_scores=bool(score_ids),
                                  return_dict_in_generate=True)
        new = result.sequences[:, inputs["input_ids"].shape[1]:].cpu()
        for i, s in enumerate(chunk):
            row = new[i, : limits[i]].tolist()
            end = next((k for k, t in enumerate(row) if t in stop), None)
            row = row if end is None else row[:end]
            first = None
            if score_ids:
                probs = torch.softmax(result.scores[0][i].float(), dim=-1)
                first = {tok: float(probs[j]) for tok, j in zip(score_tokens, score_ids)}
            out.append(Decoded(s.id, tokenizer.decode(row, skip_special_tokens=True, clean_up_tokenization_spaces=False),
                               tokenizer.decode(row, skip_special_tokens=False), end is not None, len(row), limits[i], first))
        bar.update(len(chunk))
    bar.close()
    return out
