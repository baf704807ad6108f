"""Tasks: what the model is asked to produce for a sample.

Each task module offers `REQUIRE` (manifest keys beyond audio and text), `check(sample)` (raises
AdaptkitError for a sample the task cannot use) and `target(sample) -> str` (the assistant text).
A text-only task sets `AUDIO = False` and may offer `for_training(samples)` to choose what trains.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from adaptkit.errors import AdaptkitError

TASKS = {"speaker_asr": "adaptkit.tasks.speaker_asr", "turn_tags": "adaptkit.tasks.turn_tags", "turn_end": "adaptkit.tasks.turn_end"}


def task(name: str) -> ModuleType:
    """The module implementing task `name`."""
    if name not in TASKS:
        raise AdaptkitError(f"unknown task {name!r}; supported: {', '.join(TASKS)}")
    return importlib.import_module(TASKS[name])
