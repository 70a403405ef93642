"""A run's state: the model, optimizer, learning-rate schedule and grad scaler, where the run is
(epoch, step), the epoch's running figures and every RNG; saved beside the weights and restored
exactly by `train --resume`."""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from archspec.errors import ArchspecError
from archspec.train import checkpoint as ckpt
from archspec.train.config import TrainConfig


# --- random number generators ----------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain data, so state.pt loads with weights_only=True."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
             "python": random.getstate()}  # (version, a tuple of 625 ints, None): plain data already
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def step_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """The generator of one step's augmentation and triplets: a function of where the run is, so a
    resumed run draws what the uninterrupted one drew."""
    return torch.Generator().manual_seed((seed * 10_007 + epoch) * 1_000_003 + step)


# --- what is optimised, and how ------------------------------------------------------------------------------
def freeze_until(model: torch.nn.Module, ir, node: str) -> list[str]:
    """Freeze every module that runs before `node` ends (in execution order), `node` included."""
    order = [n for n in ir.nodes() if n.op != "input"]
    hits = [i for i, n in enumerate(order) if n.id == node or n.id.startswith(node + ".")]
    if not hits:
        names = ", ".join(n.id for n in order[:12])
        raise ArchspecError(f"--freeze {node}: no such node in the spec (nodes start: {names}, ...)")
    frozen = []
    for n in order[: hits[-1] + 1]:
        module_path = getattr(n, "module", None)
        if not module_path:
            continue
        try:
            sub = model.get_submodule(module_path)
        except AttributeError:
            continue
        if any(p.requires_grad for p in sub.parameters()):
            sub.requires_grad_(False)
            frozen.append(module_path)
    return frozen


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ArchspecError("nothing to train: every parameter is frozen")
    # the names are archspec.runs.OPTIMIZERS' (config.check refused any other)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.learning_rate, momentum=config.momentum, weight_decay=config.decay)
    adam = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return adam(params, lr=config.learning_rate, weight_decay=config.decay)


def schedule(total: int, warmup: int) -> Callable[[int], float]:
    """Linear warm-up over `warmup` steps, then a cosine decay to 0 at `total`."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return factor


# --- the state ---------------------------------------------------------------------------------------------
@dataclass
class Running:
    """The current epoch's training figures so far (saved mid-epoch, so a resumed epoch's row is
    the uninterrupted one's)."""

    loss: float = 0.0  # summed over samples
    seen: int = 0
    correct: float = 0.0
    time: float = 0.0
    ranks: int = 1  # the processes whose samples these sums hold (all of them once `over_ranks`)

    def add(self, loss_sum: float, samples: int, correct: float, seconds: float) -> None:
        self.loss += loss_sum
        self.seen += samples
        self.correct += correct
        self.time += seconds

    @property
    def mean_loss(self) -> float:
        return self.loss / max(1, self.seen)

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.seen)

    def speed(self, world: int) -> float:
        """Images per second over all processes."""
        return self.seen * world / self.ranks / max(self.time, 1e-9)

    def over_ranks(self, world: int) -> Running:
        """The figures of every process of a DDP run (each trained on its share of every batch):
        sums of loss, samples and correct; the slowest process's time."""
        if world == 1:
            return self
        import torch.distributed as dist

        sums = torch.tensor([self.loss, float(self.seen), self.correct], dtype=torch.float64)
        slowest = torch.tensor([self.time], dtype=torch.float64)
        dist.all_reduce(sums)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        loss, seen, correct = sums.tolist()
        return Running(loss, int(seen), correct, float(slowest), ranks=world)


@dataclass
class RunState:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    steps_per_epoch: int
    total_steps: int
    epoch: int = 0  # the epoch under way (or the next to start)
    step_in_epoch: int = 0  # the steps of `epoch` done
    global_step: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)  # the metric rows of the epochs done
    running: Running | None = None

    @classmethod
    def create(cls, model: torch.nn.Module, config: TrainConfig, steps_per_epoch: int,
               device: torch.device) -> RunState:
        total = config.epochs * steps_per_epoch
        if config.max_steps:
            total = min(total, config.max_steps)
        optimizer = make_optimizer(config, model)
        warmup = min(config.warmup_steps, total // 5 + 1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(total, warmup))
        scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16" and device.type == "cuda")
        return cls(model, optimizer, scheduler, scaler, steps_per_epoch, total)

    @property
    def finished(self) -> bool:
        return self.global_step >= self.total_steps

    def step(self, loss: torch.Tensor) -> None:
        """One optimizer step on `loss` (scaled for fp16), and the schedule's."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.global_step += 1
        self.step_in_epoch += 1

    def save(self, folder: Path, spec_text: str, build: dict[str, Any], config: TrainConfig) -> None:
        """The weights and state.pt, both at this step; an epoch's end is saved as the next's start."""
        epoch, step_in_epoch = self.epoch, self.step_in_epoch
        if step_in_epoch >= self.steps_per_epoch:
            epoch, step_in_epoch = epoch + 1, 0
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None, "rng": rng_state(),
                 "epoch": epoch, "step_in_epoch": step_in_epoch, "rows": self.rows,
                 "running": asdict(self.running) if self.running else None, "config": asdict(config)}
        ckpt.save_checkpoint(folder, self.model, spec_text, build, state, self.global_step)

    def restore(self, folder: Path, spec_text: str) -> None:
        """Continue from the run saved in `folder`: weights, optimizer, schedule, scaler, RNGs, position."""
        ckpt.load_weights(self.model, folder, spec_text)
        state = ckpt.read_state(folder)
        saved_step = int(ckpt.read_checkpoint(folder)[1].get("step", -1))
        if saved_step != state["step"]:
            raise ArchspecError(f"{folder}: the weights (step {saved_step}) and state.pt (step {state['step']}) "
                                "are from different steps (a write was interrupted); cannot resume exactly")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.epoch, self.step_in_epoch, self.global_step = state["epoch"], state["step_in_epoch"], state["step"]
        self.rows = state.get("rows", [])
        self.running = Running(**state["running"]) if state.get("running") else None
