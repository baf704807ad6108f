"""What a control token looks like in text: the one definition that manifests and scorers share.

A control token is `<|name|>` (`<|spk_0|>`, `<|im_end|>`: no space, `|`, `<` or `>` inside, at
most 64 characters) or a tag of one word, opening or closing (`<COMPLETE>`, `<asr_text>`,
`<think>`, `</s>`: a letter or `_`, then letters, digits or `_`, at most 64 characters). Plain text
with angle brackets (`a < b > c`, `<3`, `x <= y`) is not one.

Manifest reading refuses a control token that the recipe does not train (it would reach the
tokenizer as a special token or be scored as a leak); the scorers keep each one whole as a single
token and count one outside the allowed set as a leaked token.
"""

from __future__ import annotations

import re

CONTROL_TOKEN = re.compile(r"<\|[^<>|\s]{1,64}\|>|</?[A-Za-z_][A-Za-z0-9_]{0,63}>")
"""Anything shaped like a control token (module docstring)."""

