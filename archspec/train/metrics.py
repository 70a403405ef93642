"""Metrics (accuracy, confusion matrix, IoU, Dice, triplet accuracy) and the run's metric files:
metrics.csv and metrics.jsonl (one row per epoch)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archspec.files import write_atomic
from archspec.runs import MAIN_METRICS

if TYPE_CHECKING:
    import torch


def confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """rows: true class, columns: predicted class (pixels for segmentation)."""
    import torch  # only when a metric is computed: importing the module stays torch-free

    index = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracy(matrix: torch.Tensor) -> float:
    return float(matrix.diag().sum()) / max(1, int(matrix.sum()))


def iou_dice(matrix: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-class IoU = TP / (TP + FP + FN) and Dice = 2TP / (2TP + FP + FN)."""
    tp = matrix.diag().double()
    fp = matrix.sum(0).double() - tp
    fn = matrix.sum(1).double() - tp
    iou = (tp / (tp + fp + fn).clamp(min=1)).tolist()
    dice = (2 * tp / (2 * tp + fp + fn).clamp(min=1)).tolist()
    return iou, dice


def summary(task: str, matrix: torch.Tensor | None, extra: dict[str, float] | None = None) -> dict[str, float]:
    out: dict[str, float] = dict(extra or {})
    if matrix is None:
        return out
    out["accuracy"] = accuracy(matrix)
    if task == "segmentation":
        iou, dice = iou_dice(matrix)
        foreground = slice(1, None) if len(iou) > 1 else slice(None)
        out["iou"] = sum(iou[foreground]) / len(iou[foreground])  # mean over the non-background classes
        out["dice"] = sum(dice[foreground]) / len(dice[foreground])
        out["miou"] = sum(iou) / len(iou)
    return out


def main_metric(task: str) -> str:
    return MAIN_METRICS.get(task, "accuracy")


class MetricLog:
    """Rows of epoch metrics, rewritten whole (atomically) after every epoch."""

    def __init__(self, folder: Path | None, rows: list[dict[str, Any]] | None = None) -> None:
        self.folder = folder
        self.rows = list(rows or [])

    def add(self, row: dict[str, Any]) -> None:
        self.rows = [r for r in self.rows if r.get("epoch") != row.get("epoch")] + [row]
        if self.folder is None:
            return
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        write_atomic(self.folder / "metrics.csv", text.getvalue())
        write_atomic(self.folder / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.rows))
