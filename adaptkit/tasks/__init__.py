"""Tasks: what the model is asked to produce for a sample, and how it is decoded and scored.

Each task is a `Task` subclass in its own module (`speaker_asr`, `turn_tags`, `turn_end`),
registered in `TASKS`; `task(name)` gives it. Everything task-specific goes through these objects.
"""

from __future__ import annotations

from adaptkit.tasks.base import GeneratingTask, Task
from adaptkit.tasks.registry import TASKS, register, task
from adaptkit.tasks.speaker_asr import SpeakerAsr
from adaptkit.tasks.turn_end import TurnEnd
from adaptkit.tasks.turn_tags import TurnTags

DEFAULT_TASK = SpeakerAsr.name
"""The task of a recipe, adapter or checkpoint that names none."""

__all__ = ["DEFAULT_TASK", "GeneratingTask", "TASKS", "Task", "SpeakerAsr", "TurnEnd", "TurnTags", "register", "task"]
