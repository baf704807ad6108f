"""LiveKit's text normalisation for end-of-turn models, and turn_end data written through it.

LiveKit's multilingual turn detector normalises every message before its model reads it, so that
what it learns does not hang on punctuation and case an ASR may or may not write. An end-of-turn LM
that reads ASR words is trained and asked on text normalised the same way: `normalize_text` is that
normalisation, `normalize_messages` applies it to a conversation as LiveKit's `_format_chat_ctx` does
before joining a speaker's consecutive messages, `write_normalized_turn_end` writes a normalised copy
of a turn_end.jsonl to train such a model. Standard library only (no livekit import).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from adaptkit.errors import AdaptkitError

KEPT = ("'", "-")
"""The punctuation LiveKit keeps: apostrophes (don't) and hyphens (e-mail)."""
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """`text` as LiveKit's turn detector normalises it: lower case, then Unicode NFKC, then every
    punctuation character (Unicode category P*) removed except `'` and `-`, then runs of white space
    made one space and the ends stripped ("Hello, World!" -> "hello world", "ＡＢＣ。" -> "abc").

    Source: github.com/livekit/agents, livekit-plugins/livekit-plugins-turn-detector/livekit/plugins/
    turn_detector/base.py, `_EUORunnerBase._normalize_text` (the multilingual model's runner; checked
    against livekit-plugins-turn-detector 1.8.9 and the main branch of August 2026). Its English
    model (`english.py`, `_EUORunnerEn._normalize_text`) reads text as it is. Symbols (S*: `$`, `+`,
    `<`, `|`) and marks stay; punctuation is removed, not made a space ("3.5" -> "35")."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text.lower())
    text = "".join(ch for ch in text if not (unicodedata.category(ch).startswith("P") and ch not in KEPT))
    return _SPACES.sub(" ", text).strip()


def normalize_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Each message's content through `normalize_text` (role and other keys kept), as LiveKit does
    per message before it joins a speaker's consecutive messages with a space."""
    return [{**m, "content": normalize_text(m["content"])} for m in messages]


def write_normalized_turn_end(src: str | Path, dst: str | Path) -> Path:
    """Write a copy of the turn_end.jsonl `src` to `dst` with every message's content normalised
    (`normalize_text`); every other field is kept. A message left empty by the normalisation (only
    punctuation) is an error naming its line: turn_end lines need words in every message."""
    from adaptkit.atomic import atomic_write_text
    from adaptkit.synth.manifests import jsonl
    from adaptkit.tasks.turn_end import read_turn_end

    rows = []
    for s in read_turn_end(src):
        messages = normalize_messages(s.fields["messages"])
        empty = [i for i, m in enumerate(messages) if not m["content"]]
        if empty:
            raise AdaptkitError(f"{s.where}: messages[{empty[0]}] holds no words once normalised like LiveKit")
        rows.append({**s.fields, "messages": messages})
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dst, jsonl(rows))
    return dst
