"""The detection task: YOLO v1's loss on the course's targets (archspec.detect), and mAP from
torchmetrics on the test set. The spec's `detection` key says how its output grid reads."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from archspec.detect.draw import sheet
from archspec.detect.evaluation import in_pixels, mean_average_precision
from archspec.detect.layout import ground_truth
from archspec.detect.loss import responsible, yolo_loss
from archspec.errors import ArchspecError
from archspec.files import write_atomic
from archspec.runs import PREDICTIONS_FILE
from archspec.train.losses import as_dict
from archspec.train.tasks import Batch, Task, held_out_batches

if TYPE_CHECKING:
    from pathlib import Path

    from archspec.train.data import DataSet
    from archspec.train.runtime import Runtime

SAMPLES = 8  # test images on the run's predictions.png
SHOWN_SCORE = 0.5  # the pc a drawn detection needs (mAP ranks every score; a picture cannot)


class Detection(Task):
    name = "detection"
    reports_accuracy = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.layout = self.plan.detection
        self._encoded: tuple[torch.Tensor, torch.Tensor] | None = None  # (labels, their targets)

    def check_data(self, data: DataSet, data_name: str) -> None:
        if data.task != "detection":
            raise ArchspecError(f"{self.plan.name} is a detection spec; --data {data_name} has no boxes "
                                "(use boxes, boxes:COUNT or a YOLO folder with images/ and labels/)")
        if data.num_classes != self.layout.num_classes:
            raise ArchspecError(f"{self.plan.name}'s detection head has {self.layout.num_classes} classes and "
                                f"--data {data_name} {data.num_classes}")

    def augments(self, names: tuple[str, ...]) -> tuple[str, ...]:
        if names:
            raise ArchspecError(f"--augment {','.join(names)} moves pixels but not boxes; detection trains "
                                "with --augment none")
        return names

    def targets_of(self, labels: torch.Tensor) -> torch.Tensor:
        """The training labels' targets, encoded once (the same tensor comes every step)."""
        if self._encoded is None or self._encoded[0] is not labels:
            self._encoded = (labels, self.layout.targets(labels))
        return self._encoded[1]

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        slots = self.layout.as_slots(output.float())
        if self.layout.shares_classes:
            target = responsible(slots, target)
        return yolo_loss(slots, target, self.layout.num_classes)

    def predict(self, net, x: torch.Tensor) -> torch.Tensor:
        return as_dict(net(**{self.plan.input_names[0]: x}), self.plan)[self.layout.output]

    def train_loss(self, net, batch: Batch, data: DataSet, runtime: Runtime) -> tuple[torch.Tensor, float]:
        targets = self.targets_of(data.y_train)
        target = targets[batch.indices.to(targets.device)].to(runtime.device)
        return self.loss(self.predict(net, batch.x), target), 0

    def _evaluate(self, model, data: DataSet, runtime: Runtime, batch_size: int):
        found, truth, loss_sum = [], [], 0.0
        for _, x, y in held_out_batches(data, batch_size, runtime):
            with runtime.autocast():
                output = self.predict(model, x).float()
            loss_sum += float(self.loss(output, self.layout.targets(y))) * len(x)
            found += self.layout.detections(output)
            truth += ground_truth(y)
        height, width = data.x_test.shape[-2:]
        metrics = {"loss": loss_sum / max(1, len(data.x_test))}
        metrics.update(mean_average_precision(in_pixels(found, height, width), in_pixels(truth, height, width),
                                              data.class_names))
        return metrics, None

    @torch.no_grad()
    def write_samples(self, model, data: DataSet, runtime: Runtime, folder: Path) -> None:
        """predictions.png: the first test images with their detections and ground truth."""
        was_training = model.training
        model.eval()
        try:
            with runtime.autocast():
                output = self.predict(model, runtime.to(data.x_test[:SAMPLES])).float()
        finally:
            model.train(was_training)
        found = self.layout.detections(output, score_threshold=SHOWN_SCORE)
        images = data.x_test[:SAMPLES].cpu() * 0.5 + 0.5  # undo archspec.train.dataset.normalise
        picture = sheet(images, found, ground_truth(data.y_test[:SAMPLES]), data.class_names)
        write_atomic(folder / PREDICTIONS_FILE, picture)
