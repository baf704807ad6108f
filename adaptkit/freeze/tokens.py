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
from adaptkit.freeze.spec import AddTokens
from adaptkit.validation import closest

PAD_TO_MULTIPLE = 64


def embedding_modules(model: nn.Module, cmap: ComponentMap) -> tuple[nn.Module, nn.Module | None]:
    """The input embedding module and the lm_head module (None when the model has none)."""
    emb = model.get_submodule(cmap.embeddings)
    head = model.get_submodule(cmap.lm_head) if cmap.lm_head else None
    return emb, head


def _weight(module: nn.Module) -> torch.Tensor | None:
    return getattr(module.get_base_layer() if hasattr(module, "get_base_layer") else module, "weight", None)


def is_tied(model: nn.Module, cmap: ComponentMap) -> bool:
    """True when the input embedding and lm_head share one weight tensor."""
    emb, head = embedding_modules(model, cmap)
    return head is not None and _weight(head) is not None and _weight(head) is _weight(emb)


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


def _grow(module: nn.Module, rows: int) -> None:
    """Give an embedding or output layer `rows` rows in place: same object and class (a scaled
    embedding keeps its scale, padding_idx stays), old rows kept, new rows zero until initialised."""
    old = module.weight
    with torch.no_grad():
        weight = torch.zeros((rows, old.shape[1]), dtype=old.dtype, device=old.device)
        weight[: old.shape[0]] = old
        module.weight = nn.Parameter(weight, requires_grad=old.requires_grad)
        if getattr(module, "bias", None) is not None:
            bias = torch.zeros(rows, dtype=module.bias.dtype, device=module.bias.device)
            bias[: module.bias.shape[0]] = module.bias
            module.bias = nn.Parameter(bias, requires_grad=module.bias.requires_grad)
    if isinstance(module, nn.Embedding):
        module.num_embeddings = rows
    else:
        module.out_features = rows


def _resize(model: nn.Module, cmap: ComponentMap, rows: int) -> None:
    """Grow the embedding and lm_head to `rows` rows, keeping their classes, the old rows and the tie
    state; the language model's text config (and only it) learns the new vocabulary size."""
    from transformers import PreTrainedModel

    emb, head = embedding_modules(model, cmap)
    old = emb.weight.shape[0]
    tied = is_tied(model, cmap)
    _grow(emb, rows)
    if head is not None:
        if tied:
            head.weight = emb.weight
            head.out_features = rows
        else:
            _grow(head, rows)
    owners = [m for n, m in model.named_modules() if isinstance(m, PreTrainedModel) and (not n or cmap.embeddings.startswith(n + "."))]
    for owner in owners:  # the model and the sub-models that hold the embeddings (Qwen3-ASR: outer class, thinker)
        text = owner.config.get_text_config() if hasattr(owner.config, "get_text_config") else owner.config
        if getattr(text, "vocab_size", None) == old:
            text.vocab_size = rows
        if getattr(owner, "vocab_size", None) == old:
            owner.vocab_size = rows


def multimodal_id_ranges(model: nn.Module) -> list[tuple[str, int, int]]:
    """(module, first id, last id + 1) of every id range a multimodal embedder claims (`vocab_offset`)."""
    out = []
    for name, module in model.named_modules():
        offset, size = getattr(module, "vocab_offset", None), getattr(module, "vocab_size", None)
        if isinstance(offset, int) and isinstance(size, int):
            out.append((name, offset, offset + size))
    return out


def check_token_layers(model: nn.Module, cmap: ComponentMap, tokenizer, add: AddTokens | None) -> None:
    """Refuse, before anything changes, what token rows cannot do right on this model: embeddings that
    are not one nn.Embedding table, an output layer with a bias (peft's token-row layer computes
    `F.linear(x, W)` without it, so every logit would shift), and new ids that would land inside an
    id range a multimodal embedder claims."""
    emb, head = embedding_modules(model, cmap)
    if not isinstance(emb, nn.Embedding):
        raise AdaptkitError(f"freeze: the input embeddings {cmap.embeddings} of {type(model).__name__} are a {type(emb).__name__}, "
                            "not one nn.Embedding table (several codebooks?); adding or training token rows there is not supported")
    if head is not None and getattr(head, "bias", None) is not None:
        raise AdaptkitError(f"freeze: the output layer {cmap.lm_head} has a bias, which peft's token-row layer drops (every logit "
                            "would shift); token rows are not supported on it")
    if add is None or tokenizer is None:
        return
    fresh = [t for t in dict.fromkeys(add.tokens) if t not in tokenizer.get_vocab()]
    new_ids = range(len(tokenizer), len(tokenizer) + len(fresh))
    for name, first, end in multimodal_id_ranges(model):
        clash = [i for i in new_ids if first <= i < end]
        if clash:
            raise AdaptkitError(f"freeze.add_tokens: new token ids {clash[0]}..{clash[-1]} would land inside ids {first}..{end - 1}, "
                                f"which {name} claims (vocab_offset); these tokens cannot be added to this model")


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


def token_ids(tokenizer, tokens: list[str], rows: int, where: str = "freeze.train.tokens", adding=()) -> dict[str, int]:
    """Ids of existing tokens; a token outside the vocabulary is an error naming the closest ones
    (among the vocabulary and the tokens being added)."""
    if tokenizer is None:
        raise AdaptkitError(f"{where}: training token rows needs the tokenizer (apply(..., tokenizer=tok))")
    vocab = tokenizer.get_vocab()
    out = {}
    for tok in tokens:
        if tok not in vocab:
            raise AdaptkitError(f"{where}: token {tok!r} is not in the vocabulary and not in freeze.add_tokens{closest(tok, [*adding, *vocab])}")
        if vocab[tok] >= rows:
            raise AdaptkitError(f"{where}: token {tok!r} has id {vocab[tok]} but the embedding has only {rows} rows")
        out[tok] = vocab[tok]
    return out
