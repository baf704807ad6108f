"""A small byte-level BPE tokenizer for tiny offline models.

Real checkpoints bring their own tokenizer; tiny random models need one that builds offline in
well under a second. It is trained with the `tokenizers` library on a short embedded text, so it
is deterministic and needs no download.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerFast

from adaptkit.stack import CURRENT

# Chat and audio markers used by Qwen-style Speech-LLMs; tiny tokenizers carry the same names
# so prompts, placeholder counting and decoding follow the real code paths.
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<|audio_pad|>",
    "<asr_text>",
]

_CORPUS = """
Thank you for calling customer support, how can I help you today?
I would like to check the status of my order, it has not arrived yet.
Could you tell me your order number please? Yes, it is one two three four.
Please hold on a moment while I look that up for you. Okay, thank you.
The delivery was scheduled for Monday but it was delayed by the weather.
Is there anything else I can help you with? No, that is all, goodbye.
お電話ありがとうございます。本日はどのようなご用件でしょうか。
注文の状況を確認したいのですが、まだ届いていません。
注文番号を教えていただけますか。はい、一二三四です。
少々お待ちください。確認いたします。ありがとうございます。
language English language Japanese language Chinese language Malay language Tamil
nǐ hǎo, qǐng wèn yǒu shén me kě yǐ bāng nín? Terima kasih kerana menghubungi kami.
வணக்கம், நான் உங்களுக்கு எப்படி உதவ முடியும்? 0 1 2 3 4 5 6 7 8 9 10 11 12
"""


def tiny_tokenizer(vocab_size: int = 1024, special_tokens: list[str] | None = None) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE of at most `vocab_size` entries (special tokens included)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = list(special_tokens or QWEN_SPECIAL_TOKENS)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in _CORPUS.splitlines() if line.strip()]
    bpe.train_from_iterator(lines * 20, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe)
    tok.add_special_tokens({"additional_special_tokens": [t for t in specials if t != "<|endoftext|>"]})
    tok.eos_token = "<|im_end|>" if "<|im_end|>" in specials else specials[0]
    tok.pad_token = "<|endoftext|>" if "<|endoftext|>" in specials else specials[0]
    return tok


def add_special_tokens(tokenizer, tokens: list[str]) -> int:
    """Add `tokens` as special tokens, extending the tokenizer's extra special tokens instead of
    replacing them (the keyword is `replace_extra_special_tokens` on transformers 5,
    `replace_additional_special_tokens` on 4.57). Returns how many are new to the vocabulary."""
    keep = {"replace_extra_special_tokens" if CURRENT else "replace_additional_special_tokens": False}
    return tokenizer.add_special_tokens({"additional_special_tokens": tokens}, **keep)


def chatml_prompt(tokenizer, n_audio: int, system: str = "") -> list[int]:
    """Qwen3-ASR's chat prompt (what its chat template renders; composed models use it too): system
    context, a user turn holding `n_audio` placeholders between `<|audio_start|>` and `<|audio_end|>`,
    then the assistant start. Written out because tiny tokenizers carry no template; a test renders
    the hub-shaped checkpoint's own template and compares."""
    text = (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n<|audio_start|>" + "<|audio_pad|>" * n_audio
            + "<|audio_end|><|im_end|>\n<|im_start|>assistant\n")
    return tokenizer(text, add_special_tokens=False)["input_ids"]
