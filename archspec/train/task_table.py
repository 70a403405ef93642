"""Every training task by name (archspec.train.tasks, archspec.train.detection)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from archspec.train.detection import Detection
from archspec.train.tasks import Classification, Embedding, Segmentation, Task

if TYPE_CHECKING:
    from archspec.train.setup import Plan

TASKS: dict[str, type[Task]] = {task.name: task for task in (Classification, Segmentation, Embedding, Detection)}


def make_task(plan: Plan, weights: dict[str, float] | None = None, margin: float = 0.2,
              segmentation_loss: str = "ce+dice") -> Task:
    """The task object of a plan's task, with its loss options."""
    return TASKS[plan.task](plan, weights, margin, segmentation_loss)
