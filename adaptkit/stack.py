"""Which of the two supported software stacks is installed.

- the qwen-asr stack: transformers 4.57.6 with `qwen-asr` (`pip install 'adaptkit[qwen3-asr]'`), for
  the original Qwen3-ASR checkpoints in qwen_asr's layout and qwen_asr's own client;
- the current stack: transformers 5 and what goes with it, for the speech LLMs transformers ships
  natively (`Qwen3ASRForConditionalGeneration` in the `-hf` layout, AudioFlamingo3, GLM-ASR, ...).

adaptkit's core runs on both; an architecture that needs one stack says so in one line.
"""

from __future__ import annotations

import importlib.util

import transformers

from adaptkit.errors import AdaptkitError

TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])
"""The installed transformers' major version."""
CURRENT = TRANSFORMERS_MAJOR >= 5
"""True on the current stack (transformers 5)."""


def has_qwen_asr() -> bool:
    """Whether the `qwen_asr` package is importable (the qwen-asr stack)."""
    return importlib.util.find_spec("qwen_asr") is not None


def need_current(what: str) -> None:
    """Refuse `what` in one line unless transformers 5 is installed."""
    if not CURRENT:
        raise AdaptkitError(
            f"{what} needs transformers 5 (the current stack; this environment has {transformers.__version__}): "
            "bash scripts/install.sh --stack current")


def need_qwen_asr(what: str) -> None:
    """Refuse `what` in one line unless qwen_asr is installed."""
    if not has_qwen_asr():
        raise AdaptkitError(
            f"{what} needs the qwen_asr package (the qwen-asr stack, transformers 4.57.6): "
            "pip install 'adaptkit[qwen3-asr]' or bash scripts/install.sh --stack qwen-asr")
