"""The one registry of tasks: name -> `Task`, filled by the `register` decorator."""

from __future__ import annotations

from typing import TypeVar

from adaptkit.errors import AdaptkitError
from adaptkit.tasks.base import Task

TASKS: dict[str, Task] = {}
"""Every task by name (one instance each)."""

T = TypeVar("T", bound=type[Task])


def register(cls: T) -> T:
    """Class decorator: add an instance of `cls` to TASKS under `cls.name`."""
    if cls.name in TASKS:
        raise ValueError(f"task {cls.name!r} is registered twice")
    TASKS[cls.name] = cls()
    return cls


def task(name: str) -> Task:
    """The task called `name`; an unknown one is a one-line error listing the supported tasks."""
    if name not in TASKS:
        raise AdaptkitError(f"unknown task {name!r}; supported: {', '.join(sorted(TASKS))}")
    return TASKS[name]
