"""The training loop: deterministic (data order from seed + epoch, augmentation from seed + epoch +
step, RNG states saved), resumable mid-epoch, DistributedDataParallel under torchrun.

The task (archspec.train.tasks) says what a batch's loss is and how the model is evaluated; the
run state (archspec.train.state) holds what a checkpoint saves; `Trainer` walks the epochs."""
from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch

from archspec.errors import ArchspecError
from archspec.files import safe_folder, write_atomic
from archspec.train import checkpoint as ckpt
from archspec.train.config import TrainConfig
from archspec.train.data import DataSet, augment, data_classes, load_data, parse_augment, to_device
from archspec.train.metrics import MetricLog
from archspec.train.runtime import Dist, Runtime, close_distributed, device_kind, init_distributed, pick_device
from archspec.train.setup import Plan, for_classes, plan as make_plan
from archspec.train.state import Running, RunState, freeze_until, seed_everything, step_generator
from archspec.runs import CONFIG_FILE
from archspec.train.task_table import make_task
from archspec.train.threads import threads_for
from archspec.train.tasks import Batch, Task

RUNS_FOLDER = Path("runs")
REDRAW_S = 0.25  # seconds between redraws of the progress bar


def train(config: TrainConfig, resume: Path | None = None, progress: bool = True,
          echo: Callable[[str], None] = print, plan: Plan | None = None) -> dict[str, Any]:
    """Train (or resume) one run; return the final test metrics, the folder and the model.
    `plan`: the spec as a preflight (archspec.train.setup.preflight) compiled it for this
    configuration, so it is not compiled again."""
    config.check()
    torch.set_num_threads(threads_for(config.threads, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    dist = init_distributed(device_kind(config.device))
    runtime = Runtime(pick_device(config.device, dist), config.amp, config.channels_last)
    spec_plan, data = plan_and_data(config, plan)
    task = make_task(spec_plan, config.loss_weights, config.margin, config.segmentation_loss)
    task.check_data(data, config.data)
    folder = Path(resume) if resume else run_folder(config, spec_plan)
    if dist.main and not resume and (folder / ckpt.WEIGHTS).exists():
        raise ArchspecError(f"{folder} already holds a run: --resume {folder} continues it, --out picks another folder")
    trainer = Trainer(config, task, data, runtime, dist, folder, echo)
    trainer.start(resume is not None)
    results = trainer.run(progress)
    trainer.finish()
    return {"metrics": results, "folder": folder, "model": trainer.state.model, "plan": spec_plan,
            "data": trainer.data, "task": spec_plan.task}


def plan_and_data(config: TrainConfig, given: Plan | None) -> tuple[Plan, DataSet]:
    """The plan (compiled once; again only where the data's classes, known after loading, differ)
    and the data at the spec's input size."""
    spec_plan = given or make_plan(Path(config.spec), config.sets, config.input_shapes,
                                   num_classes=data_classes(config.data))
    data = load_data(config.data, next(iter(spec_plan.shapes.values())), num_classes=spec_plan.classes)
    return for_classes(spec_plan, data.num_classes), data


def run_folder(config: TrainConfig, plan: Plan) -> Path:
    if config.out:
        return Path(config.out)
    return safe_folder(RUNS_FOLDER, f"{plan.name}-{Path(config.data).name}")


class Trainer:
    """One run: builds the model and its state, then trains epoch by epoch, evaluating and
    checkpointing (on the main process) as it goes."""

    def __init__(self, config: TrainConfig, task: Task, data: DataSet, runtime: Runtime, dist: Dist,
                 folder: Path, echo: Callable[[str], None]) -> None:
        self.config, self.task, self.plan, self.data = config, task, task.plan, data
        self.runtime, self.dist, self.folder, self.echo = runtime, dist, folder, echo
        if config.batch_size % dist.world:
            raise ArchspecError(f"--batch-size {config.batch_size} must be a multiple of the {dist.world} processes "
                                "(--nnodes x --nproc)")
        self.local_batch = config.batch_size // dist.world
        self.results: dict[str, float] = {}
        self.drawn = 0.0  # when the progress bar was last redrawn

    def say(self, line: str) -> None:
        if self.dist.main:
            self.echo(line)

    def start(self, resume: bool) -> None:
        """The model (seeded, --init, --freeze), its state (restored with --resume), the sampler."""
        from torch.utils.data import DistributedSampler

        config, device = self.config, self.runtime.device
        seed_everything(config.seed)
        model = self._build_model(init=not resume)
        if self.task.data_on_device:
            self.data = to_device(self.data, device)
        model.to(device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.sampler = DistributedSampler(range(len(self.data.x_train)), num_replicas=self.dist.world,
                                          rank=self.dist.rank, shuffle=True, seed=config.seed, drop_last=False)
        steps_per_epoch = math.ceil(len(self.sampler) / self.local_batch)
        self.state = RunState.create(model, config, steps_per_epoch, device)
        if resume:
            self.state.restore(self.folder, self.plan.spec_text)
            self.say(f"resuming {self.folder} at epoch {self.state.epoch + 1}, step {self.state.step_in_epoch} "
                     f"of {steps_per_epoch} (global step {self.state.global_step})")
        self.augments = self.task.augments(parse_augment(config.augment, self.data.default_augment))
        self.log = MetricLog(self.folder if self.dist.main else None, self.state.rows)
        self.net = self._wrap(model)
        if self.dist.main:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(self.folder / CONFIG_FILE, json.dumps(asdict(config), indent=1) + "\n")

    def _build_model(self, init: bool) -> torch.nn.Module:
        config = self.config
        model = self.plan.build()
        if config.init and init:
            loaded, skipped = ckpt.init_weights(model, Path(config.init))
            self.say(f"--init {config.init}: loaded {len(loaded)} tensors, skipped {len(skipped)}")
            for line in skipped:
                self.say(f"  skipped {line}")
        if config.freeze:
            frozen = freeze_until(model, self.plan.ir, config.freeze)
            more = ", ..." if len(frozen) > 6 else ""
            self.say(f"--freeze {config.freeze}: froze {len(frozen)} modules ({', '.join(frozen[:6])}{more})")
        return model

    def _wrap(self, model: torch.nn.Module) -> Any:
        """What the steps call: the model, under DistributedDataParallel and torch.compile when asked."""
        net: Any = model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            device = self.runtime.device
            net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        return torch.compile(net) if self.config.compile else net

    def run(self, progress: bool) -> dict[str, float]:
        """The remaining epochs; the last epoch's test metrics."""
        bar = _progress(progress and self.dist.main)
        self.state.model.train()
        with bar:
            for epoch in range(self.state.epoch, self.config.epochs):
                if self.state.finished:
                    break
                self._epoch(epoch, bar)
        return self.results

    def _epoch(self, epoch: int, bar) -> None:
        state, config = self.state, self.config  # state.epoch is `epoch`: the loop starts at it
        if state.step_in_epoch == 0 or state.running is None:
            state.running = Running()
        self.sampler.set_epoch(epoch)
        order = torch.tensor(list(self.sampler))  # sliced per step: no tensor built from a list each step
        bar_task = bar.add_task(f"epoch {epoch + 1}/{config.epochs}", total=state.steps_per_epoch,
                                completed=state.step_in_epoch, loss=float("nan"), metric="", speed=0.0)
        for step in range(state.step_in_epoch, state.steps_per_epoch):
            if state.finished:
                break
            self._step(epoch, step, order)
            running = state.running
            shown = f"acc {running.accuracy:.3f}" if self.task.reports_accuracy else ""
            bar.update(bar_task, advance=1, loss=running.mean_loss, metric=shown, speed=running.speed(self.dist.world))
            self._draw(bar, last=step + 1 == state.steps_per_epoch)
            if config.checkpoint_every and state.global_step % config.checkpoint_every == 0:
                self.save()
        state.running = state.running.over_ranks(self.dist.world)  # the row: every rank's samples
        if self.dist.main:
            self._evaluate(epoch)
        self.save()
        state.epoch, state.step_in_epoch, state.running = epoch + 1, 0, None

    def _draw(self, bar, last: bool) -> None:
        """Redraw the bar from the loop, at most every REDRAW_S: rich's own refresh thread (10 a
        second) held the GIL against the steps, 5-7% of a LeNet step (benchmarks/bench_train.py)."""
        now = time.perf_counter()
        if last or now - self.drawn >= REDRAW_S:
            bar.refresh()
            self.drawn = now

    def _step(self, epoch: int, step: int, order: torch.Tensor) -> None:
        began = time.perf_counter()
        config, runtime = self.config, self.runtime
        indices = order[step * self.local_batch:(step + 1) * self.local_batch]
        generator = step_generator(config.seed, epoch, step)
        x, y = augment(self.data.x_train[indices], self.data.y_train[indices], self.augments, generator,
                       config.batch_size, self.dist.rank, self.dist.world)
        batch = Batch(runtime.to(x), y.to(runtime.device), indices, generator)
        with runtime.autocast():
            loss, correct = self.task.train_loss(self.net, batch, self.data, runtime)
        value = float(loss.detach())  # one read of the loss: the check and the running figures
        if not math.isfinite(value):
            raise ArchspecError(f"the loss became {value} at epoch {epoch + 1}, step {step}; lower --lr")
        self.state.step(loss)
        elapsed = time.perf_counter() - began
        self.state.running.add(value * len(x), len(x), correct, elapsed)

    def _evaluate(self, epoch: int) -> None:
        """The epoch's row of metrics (metrics.csv, metrics.jsonl) and its line of output."""
        state, running = self.state, self.state.running
        test, _ = self.task.evaluate(state.model, self.data, self.runtime)
        row = {"epoch": epoch + 1, "step": state.global_step, "train_loss": running.mean_loss,
               "lr": state.optimizer.param_groups[0]["lr"], "images_per_s": running.speed(self.dist.world)}
        if self.task.reports_accuracy:
            row["train_accuracy"] = running.accuracy
        row.update({f"test_{k}": v for k, v in test.items()})
        self.log.add(row)
        state.rows, self.results = self.log.rows, test
        metric = self.task.metric
        self.echo(f"epoch {epoch + 1}/{self.config.epochs}: train loss {row['train_loss']:.4f}, test loss "
                  f"{test['loss']:.4f}, test {metric} {test.get(metric, float('nan')):.4f}, "
                  f"{row['images_per_s']:.0f} images/s")

    def save(self) -> None:
        if self.dist.main:
            build = {**self.plan.build_info(), "class_names": list(self.data.class_names)}
            self.state.save(self.folder, self.plan.spec_text, build, self.config)

    def finish(self) -> None:
        """curves.png, the task's samples and report.html in the run folder; the process group closed."""
        if self.dist.main:
            self.task.write_samples(self.state.model, self.data, self.runtime, self.folder)
            note = write_curves(self.folder, self.log.rows, self.task.metric)
            for line in [note] if note else write_report(self.plan, self.folder, self.config):
                self.echo(line)
        close_distributed(self.dist)


def write_curves(folder: Path, rows: list[dict[str, Any]], metric: str) -> str | None:
    """Write curves.png; return a note when matplotlib is missing."""
    if not rows:
        return None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed: no curves.png (pip install matplotlib)"
    from archspec.render.curves import curves_figure

    buffer = io.BytesIO()
    curves_figure(rows, metric).savefig(buffer, format="png", dpi=90)
    write_atomic(folder / "curves.png", buffer.getvalue())
    return None


def write_report(spec_plan: Plan, folder: Path, config: TrainConfig) -> list[str]:
    """report.html in the run folder: the spec's report at the trained sizes, batch and optimizer
    (its memory cards), with the curves."""
    from dataclasses import replace

    from archspec.render.html import write_reports

    compiled = replace(spec_plan.compiled, batch=config.batch_size)
    _, notes = write_reports([compiled], True, "html", folder, optimizer=config.optimizer, run=folder)
    return notes


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f} {task.fields[metric]}"),
        TextColumn("{task.fields[speed]:.0f} img/s"), TimeRemainingColumn(),
        console=Console(stderr=True), disable=not enabled, transient=False, auto_refresh=False,
    )
