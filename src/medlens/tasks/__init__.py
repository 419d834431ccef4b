"""Task kinds: one object per task (classification, segmentation, registration, detection) that
answers the task's questions, and the full check of a run config."""

from medlens.tasks.base import Task
from medlens.tasks.checks import check_config, load_config
from medlens.tasks.classification import CLASSIFICATION
from medlens.tasks.detection import DETECTION
from medlens.tasks.registration import REGISTRATION
from medlens.tasks.registry import TASKS, task_named, task_of
from medlens.tasks.segmentation import SEGMENTATION

__all__ = [
    "CLASSIFICATION",
    "DETECTION",
    "REGISTRATION",
    "SEGMENTATION",
    "TASKS",
    "Task",
    "check_config",
    "load_config",
    "task_named",
    "task_of",
]
