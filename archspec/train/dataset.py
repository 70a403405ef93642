"""The in-memory data set every training task reads, and the fixed train/test split."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

SPLIT_SEED = 1234  # the train/test split is fixed, whatever --seed says


@dataclass
class DataSet:
    name: str
    task: str  # classification | segmentation | detection
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    default_augment: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.class_names:
            self.class_names = [str(i) for i in range(self.num_classes)]


def split(n: int, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 0.5) / 0.5
