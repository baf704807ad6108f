"""New tokens: add them to the tokenizer, grow the matrices only when needed, initialise the rows.

Tying is decided from the weights (`embeddings.weight is lm_head.weight`), never from a config
flag: real checkpoints carry flags that disagree with their weights (Qwen3-ASR's top-level
`tie_word_embeddings=True` beside untied thinker weights).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AddedToken, PretrainedConfig

from adaptkit.errors import AdaptkitError
from adaptkit.freeze.components import ComponentMap
from adaptkit.freeze.spec import AddTokens, closest

PAD_TO_MULTIPLE = 64


def embedding_modules(model: nn.Module, cmap: ComponentMap) -> tuple[nn.Module, nn.Module | None]:
    """The input embedding module and the lm_head module (None when the model has none)."""
    emb = model.get_submodule(cmap.embeddings)
    head = model.get_submodule(cmap.lm_head) if cmap.lm_head else None
    return emb, head


def _weight(module: nn.Module) -> torch.Tensor:
    return module.get_base_layer().weight if hasattr(module, "get_base_layer") else module.weight


def is_tied(model: nn.Module, cmap: ComponentMap) -> bool:
    """True when the input embedding and lm_head share one weight tensor."""
    emb, head = embedding_modules(model, cmap)
    return head is not None and _weight(head) is _weight(emb)


def _configs(model: nn.Module):
    """Every config object reachable from the model's config (sub-configs included)."""
    todo, seen = [getattr(model, "config", None)], []
    while todo:
        cfg = todo.pop()
        if isinstance(cfg, PretrainedConfig) and all(cfg is not s for s in seen):
            seen.append(cfg)
            todo += [v for v in vars(cfg).values() if isinstance(v, PretrainedConfig)]
    return seen


def set_tie_flags(model: nn.Module, tied: bool) -> None:
    """Make every `tie_word_embeddings` flag of the model's configs tell the truth about the weights."""
    for cfg in _configs(model):
        if hasattr(cfg, "tie_word_embeddings") or cfg is getattr(model, "config", None):
            cfg.tie_word_embeddings = tied


def _resize(model: nn.Module, cmap: ComponentMap, rows: int) -> None:
    """Grow the embedding and lm_head to `rows` rows, keeping the old rows and the tie state."""
    emb, head = embedding_modules(model, cmap)
    old = emb.weight.shape[0]
    tied = is_tied(model, cmap)
    new_emb = nn.Embedding(rows, emb.embedding_dim, padding_idx=emb.padding_idx, dtype=emb.weight.dtype, device=emb.weight.device)
    with torch.no_grad():
        new_emb.weight[:old] = emb.weight
    model.set_submodule(cmap.embeddings, new_emb)
    if head is not None:
        if tied:
            head.weight = new_emb.weight
        else:
            new_head = nn.Linear(head.in_features, rows, bias=head.bias is not None, dtype=head.weight.dtype, device=head.weight.device)
            with torch.no_grad():
                new_head.weight[:old] = head.weight
                if head.bias is not None:
                    new_head.bias[:old] = head.bias
            model.set_submodule(cmap.lm_head, new_head)
    for cfg in _configs(model):
        if getattr(cfg, "vocab_size", None) == old:
            cfg.vocab_size = rows
    for module in model.modules():
        if getattr(module, "vocab_size", None) == old and not isinstance(module, PretrainedConfig):
            module.vocab_size = rows


def _init_rows(weight: torch.Tensor, new: list[int], old_rows: int, add: AddTokens, tokenizer) -> None:
    if not new:
        return
    existing = weight[:old_rows]
    with torch.no_grad():
        if add.init in ("mean", "random"):  # statistics once, in float32, whatever the weights' dtype
            mean = existing.mean(0, dtype=torch.float32)
            std = existing.float().std(0) if add.init == "random" else None
        for tok_id in new:
            if add.init == "mean":
                row = mean
            elif add.init == "random":
                row = mean + std * torch.randn(existing.shape[1], generator=torch.Generator().manual_seed(tok_id))
            else:
                token = tokenizer.convert_ids_to_tokens(tok_id)
                ids = [t for t in tokenizer(add.descriptions[token], add_special_tokens=False)["input_ids"] if t < old_rows]
                if not ids:
                    raise AdaptkitError(f"freeze.add_tokens.descriptions: the text for {token!r} has no known token")
                row = existing[ids].float().mean(0)
            weight[tok_id] = row.to(weight.dtype)


def add_tokens(model: nn.Module, tokenizer, add: AddTokens, cmap: ComponentMap) -> dict[str, int]:
    """Add `add.tokens` to the tokenizer, grow the matrices only when the vocabulary has no room, and
    initialise the new rows. Returns token -> id for all of them.

    The tokens are added as added tokens that are not special (`special=False`, `normalized=False`):
    an added token is matched before the BPE runs, so it is never split, and a non-special one
    survives decoding with `skip_special_tokens=True`, which is how qwen_asr's `transcribe` and
    vLLM's default `SamplingParams` decode. Added as special tokens, speaker and turn tags would be
    invisible to every user of the merged checkpoint."""
    if tokenizer is None:
        raise AdaptkitError("freeze.add_tokens: adding tokens needs the tokenizer (apply(..., tokenizer=tok))")
    vocab = tokenizer.get_vocab()
    old_len = len(tokenizer)
    fresh = [t for t in add.tokens if t not in vocab]
    if fresh:
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in fresh], special_tokens=False)
    emb, head = embedding_modules(model, cmap)
    rows = emb.weight.shape[0]
    if len(tokenizer) > rows:
        _resize(model, cmap, -(-len(tokenizer) // PAD_TO_MULTIPLE) * PAD_TO_MULTIPLE)
        emb, head = embedding_modules(model, cmap)
    new_ids = tokenizer.convert_tokens_to_ids(fresh)
    reference_rows = min(old_len, rows)
    _init_rows(emb.weight, new_ids, reference_rows, add, tokenizer)
    if head is not None and not is_tied(model, cmap):
        _init_rows(head.weight, new_ids, reference_rows, add, tokenizer)
    return dict(zip(add.tokens, tokenizer.convert_tokens_to_ids(add.tokens)))


def token_ids(tokenizer, tokens: list[str], rows: int, where: str = "freeze.train.tokens") -> dict[str, int]:
    """Ids of existing tokens; a token outside the vocabulary is an error naming the closest ones."""
    if tokenizer is None:
        raise AdaptkitError(f"{where}: training token rows needs the tokenizer (apply(..., tokenizer=tok))")
    vocab = tokenizer.get_vocab()
    out = {}
    for tok in tokens:
        if tok not in vocab:
            raise AdaptkitError(f"{where}: token {tok!r} is not in the vocabulary and not in freeze.add_tokens{closest(tok, vocab)}")
        if vocab[tok] >= rows:
            raise AdaptkitError(f"{where}: token {tok!r} has id {vocab[tok]} but the embedding has only {rows} rows")
        out[tok] = vocab[tok]
    return out
