"""A training run's configuration: what `archspec train` was asked for, saved as the run folder's
config.json and read back by `train --resume`."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from archspec.errors import ArchspecError
from archspec.runs import CONFIG_FILE, OPTIMIZER_NAMES, OPTIMIZERS

SEGMENTATION_LOSSES = ("ce", "ce+dice")


@dataclass
class TrainConfig:
    spec: str
    data: str = "digits"
    epochs: int = 12
    batch_size: int = 64
    lr: float | None = None
    optimizer: str = "adamw"
    weight_decay: float | None = None
    momentum: float = 0.9
    device: str = "auto"
    seed: int = 0
    out: str | None = None
    sets: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, list[int]] = field(default_factory=dict)
    init: str | None = None
    freeze: str | None = None
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    checkpoint_every: int = 0  # steps; 0 = at the end of every epoch only
    max_steps: int | None = None
    augment: str | None = None  # None = the data set's default
    loss_weights: dict[str, float] = field(default_factory=dict)
    margin: float = 0.2
    segmentation_loss: str = "ce+dice"
    warmup_steps: int = 20
    threads: int = 0  # torch intra-op threads per process; 0 = archspec.train.threads decides

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ArchspecError(f"--optimizer must be one of {OPTIMIZER_NAMES}, not '{self.optimizer}'")
        if self.amp not in ("off", "bf16", "fp16"):
            raise ArchspecError(f"--amp must be off, bf16 or fp16, not '{self.amp}'")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ArchspecError(f"--device must be auto, cpu or cuda, not '{self.device}'")
        if self.segmentation_loss not in SEGMENTATION_LOSSES:
            raise ArchspecError(f"--seg-loss must be {' or '.join(SEGMENTATION_LOSSES)}, not '{self.segmentation_loss}'")
        if self.epochs < 1 or self.batch_size < 1:
            raise ArchspecError("--epochs and --batch-size must be at least 1")

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(shape) for name, shape in self.inputs.items()}

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else OPTIMIZERS[self.optimizer].lr

    @property
    def decay(self) -> float:
        return self.weight_decay if self.weight_decay is not None else OPTIMIZERS[self.optimizer].weight_decay


def load_config(folder: Path) -> TrainConfig:
    """The configuration of the run in `folder`, refusing anything this archspec did not write."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise ArchspecError(f"--resume {folder}: no config.json there (not a run folder)")
    from archspec.spec.reading import read_bounded_text  # stat first, bounded: not /dev/zero or a FIFO

    try:
        values = json.loads(read_bounded_text(path))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ArchspecError(f"--resume {folder}: cannot read {path}: {err}") from None
    known = {f.name for f in fields(TrainConfig)}
    if not isinstance(values, dict) or "spec" not in values or set(values) - known:
        odd = sorted(set(values) - known) if isinstance(values, dict) else []
        raise ArchspecError(f"--resume {folder}: {path} is not a run configuration of this archspec"
                            + (f" (unknown keys: {', '.join(odd)})" if odd else ""))
    config = TrainConfig(**values)
    config.check()
    return config
