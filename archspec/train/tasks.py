"""The training tasks. Each owns its loss on a training batch, the data it accepts, what the
progress bar and metric rows show, and its evaluation on the test set (archspec.train.task_table
names them all; detection lives in archspec.train.detection):

- classification: weighted cross-entropy; accuracy and the confusion matrix;
- segmentation: per-pixel cross-entropy (+ soft Dice), masks centre-cropped to the output; IoU/Dice;
- embedding: the triplet loss on mined triplets; triplet accuracy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Iterator, NamedTuple

import torch

from archspec.errors import ArchspecError
from archspec.train.losses import (as_dict, embed_triplets, fit_target, loss_weights, normalised, supervised_loss,
                                   triplet_indices, triplet_loss)
from archspec.train.metrics import confusion, main_metric, summary

if TYPE_CHECKING:
    from archspec.train.data import DataSet
    from archspec.train.runtime import Runtime
    from archspec.train.setup import Plan

TEST_TRIPLET_SEED = 4321  # the same test triplets at every evaluation


class Batch(NamedTuple):
    """One training step's batch: the (augmented) inputs and targets on the device, the sample
    indices they came from, and the step's generator (augmentation, triplet mining)."""

    x: torch.Tensor
    y: torch.Tensor
    indices: torch.Tensor
    generator: torch.Generator


class Task:
    name: ClassVar[str]
    reports_accuracy: ClassVar[bool] = True  # a training accuracy in the progress bar and the rows
    data_on_device: ClassVar[bool] = True  # False: the data stays on the CPU (triplet mining indexes it)

    def __init__(self, plan: Plan, weights: dict[str, float] | None = None, margin: float = 0.2,
                 segmentation_loss: str = "ce+dice") -> None:
        self.plan = plan
        self.weights = loss_weights(plan, weights)
        self.margin = margin
        self.segmentation_loss = segmentation_loss

    @property
    def metric(self) -> str:
        """The metric a run is judged and plotted by."""
        return main_metric(self.name)

    def check_data(self, data: DataSet, data_name: str) -> None:
        """Refuse data of another kind of target than this task's."""

    def augments(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return names

    def train_loss(self, net, batch: Batch, data: DataSet, runtime: Runtime) -> tuple[torch.Tensor, float]:
        """The batch's loss and how many of its samples came out right (0 where that has no meaning)."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model, data: DataSet, runtime: Runtime,
                 batch_size: int = 256) -> tuple[dict[str, float], torch.Tensor | None]:
        """Test loss and metrics, and the confusion matrix where the task has one."""
        was_training = model.training
        model.eval()
        try:
            return self._evaluate(model, data, runtime, batch_size)
        finally:
            model.train(was_training)

    def _evaluate(self, model, data: DataSet, runtime: Runtime, batch_size: int):
        raise NotImplementedError

    def write_samples(self, model, data: DataSet, runtime: Runtime, folder) -> None:
        """Files a finished run adds to its folder for its report (a detector's sample predictions)."""


def held_out_batches(data: DataSet, batch_size: int, runtime: Runtime) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    for start in range(0, len(data.x_test), batch_size):
        x = runtime.to(data.x_test[start:start + batch_size])
        yield start, x, data.y_test[start:start + batch_size].to(runtime.device)


class Classification(Task):
    name = "classification"

    def check_data(self, data: DataSet, data_name: str) -> None:
        if data.task != "classification":
            raise ArchspecError(f"{self.plan.name} is a classification spec; --data {data_name} has masks")

    def goal(self, target: torch.Tensor, main: torch.Tensor) -> torch.Tensor:
        """The target the main output is scored against."""
        return target

    def correct(self, main: torch.Tensor, target: torch.Tensor) -> float:
        return int((main.argmax(1) == target).sum())

    def train_loss(self, net, batch: Batch, data: DataSet, runtime: Runtime) -> tuple[torch.Tensor, float]:
        outputs = as_dict(net(**{self.plan.input_names[0]: batch.x}), self.plan)
        loss = supervised_loss(outputs, batch.y, self.weights, self.segmentation_loss)
        main = outputs[self.plan.main_output]
        return loss, self.correct(main, self.goal(batch.y, main))

    def _evaluate(self, model, data: DataSet, runtime: Runtime, batch_size: int):
        main_output = self.plan.main_output
        matrix, loss_sum, count = None, 0.0, 0
        for _, x, y in held_out_batches(data, batch_size, runtime):
            with runtime.autocast():
                outputs = as_dict(model(**{self.plan.input_names[0]: x}), self.plan)
                loss = supervised_loss(outputs, y, {main_output: 1.0}, self.segmentation_loss)
                main = outputs[main_output].float()
                part = confusion(main.argmax(1).cpu(), self.goal(y, main).cpu(), data.num_classes)
            matrix = part if matrix is None else matrix + part
            loss_sum += float(loss) * len(x)
            count += len(x)
        return summary(self.name, matrix, {"loss": loss_sum / max(1, count)}), matrix


class Segmentation(Classification):
    """Classification per pixel; a valid-convolution U-Net's smaller map is scored against the
    mask's centre."""

    name = "segmentation"

    def check_data(self, data: DataSet, data_name: str) -> None:
        if data.task != "segmentation":
            raise ArchspecError(f"{self.plan.name} is a segmentation spec; --data {data_name} has class labels, not masks")

    def goal(self, target: torch.Tensor, main: torch.Tensor) -> torch.Tensor:
        return fit_target(target, main.shape[-2:])

    def correct(self, main: torch.Tensor, target: torch.Tensor) -> float:
        """Correct pixels as a fraction of one image's: images' worth of correct pixels."""
        return int((main.argmax(1) == target).sum()) / float(main.shape[-1] * main.shape[-2])


class Embedding(Task):
    """FaceNet's triplet loss: for every anchor a positive of its class and a negative of another."""

    name = "embedding"
    reports_accuracy = False
    data_on_device = False

    def augments(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(a for a in names if a != "flip")  # a mirrored digit is another shape

    def train_loss(self, net, batch: Batch, data: DataSet, runtime: Runtime) -> tuple[torch.Tensor, float]:
        positives, negatives = triplet_indices(data.y_train, batch.indices, batch.generator)
        embedded = embed_triplets(net, self.plan, batch.x, runtime.to(data.x_train[positives]),
                                  runtime.to(data.x_train[negatives]))
        return triplet_loss(*embedded, self.margin), 0

    def _evaluate(self, model, data: DataSet, runtime: Runtime, batch_size: int):
        generator = torch.Generator().manual_seed(TEST_TRIPLET_SEED)
        loss_sum, count, correct = 0.0, 0, 0
        for start, x, _ in held_out_batches(data, batch_size, runtime):
            with runtime.autocast():
                positives, negatives = triplet_indices(data.y_test, torch.arange(start, start + len(x)), generator)
                embedded = embed_triplets(model, self.plan, x, runtime.to(data.x_test[positives]),
                                          runtime.to(data.x_test[negatives]))
                loss = triplet_loss(*embedded, self.margin)
                a, p, n = normalised(*embedded)
                correct += int(((a - p).pow(2).sum(1) < (a - n).pow(2).sum(1)).sum())
            loss_sum += float(loss) * len(x)
            count += len(x)
        extra = {"loss": loss_sum / max(1, count), "triplet_accuracy": correct / max(1, count)}
        return summary(self.name, None, extra), None
