"""The task registry: ``task:`` names -> ``Task`` objects."""

from __future__ import annotations

from medlens.config import RunConfig
from medlens.registry import Registry
from medlens.tasks.base import Task
from medlens.tasks.classification import CLASSIFICATION
from medlens.tasks.detection import DETECTION
from medlens.tasks.registration import REGISTRATION
from medlens.tasks.segmentation import SEGMENTATION

TASKS: Registry[Task] = Registry("task")
for _task in (CLASSIFICATION, SEGMENTATION, REGISTRATION, DETECTION):
    TASKS.register(_task.name)(_task)


def task_named(name: str) -> Task:
    """The task called ``name`` (the config's ``task`` value).

    Raises:
        UnknownNameError: no task has that name.
    """
    return TASKS.get(name)


def task_of(config: RunConfig) -> Task:
    """The task a run config asks for."""
    return TASKS.get(config.task)
