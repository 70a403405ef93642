"""The training loop: deterministic (data order from seed + epoch, augmentation from seed + epoch +
step, RNG states saved), resumable mid-epoch, DistributedDataParallel under torchrun."""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from archspec.errors import ArchspecError
from archspec.render.files import safe_folder, write_atomic
from archspec.train import checkpoint as ckpt
from archspec.train.data import DataSet, augment, load_data, parse_augment, to_device
from archspec.train.metrics import MetricLog, confusion, main_metric, summary
from archspec.train.setup import (Plan, as_dict, embed_triplets, fit_target, loss_weights, plan as make_plan,
                                  SEGMENTATION_LOSSES, supervised_loss, triplet_indices, triplet_loss)

RUNS_FOLDER = Path("runs")
DEFAULT_LR = {"sgd": 0.05, "adamw": 3e-3}


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
    threads: int = 0  # torch intra-op threads; 0 = torch's default

    def check(self) -> None:
        if self.optimizer not in DEFAULT_LR:
            raise ArchspecError(f"--optimizer must be sgd or adamw, not '{self.optimizer}'")
        if self.amp not in ("off", "bf16", "fp16"):
            raise ArchspecError(f"--amp must be off, bf16 or fp16, not '{self.amp}'")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ArchspecError(f"--device must be auto, cpu or cuda, not '{self.device}'")
        if self.segmentation_loss not in SEGMENTATION_LOSSES:
            raise ArchspecError(f"--seg-loss must be {' or '.join(SEGMENTATION_LOSSES)}, not '{self.segmentation_loss}'")
        if self.epochs < 1 or self.batch_size < 1:
            raise ArchspecError("--epochs and --batch-size must be at least 1")


# --- distributed ---------------------------------------------------------------------------------------
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_available():
        raise ArchspecError("torch.distributed is not available in this torch build")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str, dist: Dist) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ArchspecError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
        return torch.device(f"cuda:{dist.local_rank}" if dist.world > 1 else name)
    return torch.device("cpu")


# --- helpers ----------------------------------------------------------------------------------------------
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
    return torch.Generator().manual_seed((seed * 10_007 + epoch) * 1_000_003 + step)


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


def schedule(total: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def run_folder(config: TrainConfig, plan: Plan) -> Path:
    if config.out:
        return Path(config.out)
    return safe_folder(RUNS_FOLDER, f"{plan.name}-{Path(config.data).name}")


# --- evaluation -------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model, plan: Plan, data: DataSet, device: torch.device, batch_size: int = 256, amp: str = "off",
             channels_last: bool = False, margin: float = 0.2,
             segmentation_loss: str = "ce+dice") -> tuple[dict[str, float], torch.Tensor | None]:
    """Test loss and metrics: accuracy + confusion matrix, IoU/Dice, or triplet accuracy."""
    was_training = model.training
    model.eval()
    weights = loss_weights(plan, None)
    matrix = None
    loss_sum, count, correct = 0.0, 0, 0
    generator = torch.Generator().manual_seed(4321)  # fixed test triplets
    x_all, y_all = data.x_test, data.y_test
    for start in range(0, len(x_all), batch_size):
        x = _to(x_all[start:start + batch_size], device, channels_last)
        y = y_all[start:start + batch_size].to(device)
        with _autocast(device, amp):
            if plan.task == "embedding":
                anchors = torch.arange(start, start + len(x))
                pos, neg = triplet_indices(y_all, anchors, generator)
                fa, fp, fn = embed_triplets(model, plan, x, _to(x_all[pos], device, channels_last),
                                            _to(x_all[neg], device, channels_last))
                loss = triplet_loss(fa, fp, fn, margin)
                a, p, n = (torch.nn.functional.normalize(t.float().flatten(1), dim=1) for t in (fa, fp, fn))
                correct += int(((a - p).pow(2).sum(1) < (a - n).pow(2).sum(1)).sum())
            else:
                outputs = as_dict(model(**{plan.input_names[0]: x}), plan)
                loss = supervised_loss(outputs, y, {plan.main_output: 1.0}, segmentation_loss)
                main = outputs[plan.main_output].float()
                goal = fit_target(y, main.shape[-2:]) if main.ndim == 4 else y
                part = confusion(main.argmax(1).cpu(), goal.cpu(), data.num_classes)
                matrix = part if matrix is None else matrix + part
        loss_sum += float(loss) * len(x)
        count += len(x)
    model.train(was_training)
    del weights
    extra = {"loss": loss_sum / max(1, count)}
    if plan.task == "embedding":
        extra["triplet_accuracy"] = correct / max(1, count)
    return summary(plan.task, matrix, extra), matrix


def _to(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def _autocast(device: torch.device, amp: str):
    if amp == "off":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


# --- training ----------------------------------------------------------------------------------------------
def train(config: TrainConfig, resume: Path | None = None, progress: bool = True,
          echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or resume) one run; return the final test metrics, the folder and the model."""
    config.check()
    if config.threads:
        torch.set_num_threads(config.threads)
    dist = init_distributed("cuda" if config.device.startswith("cuda") or
                            (config.device == "auto" and torch.cuda.is_available()) else "cpu")
    device = pick_device(config.device, dist)
    inputs = {k: tuple(v) for k, v in config.inputs.items()}
    first = make_plan(Path(config.spec), config.sets, inputs)
    shape = next(iter(first.shapes.values()))
    data = load_data(config.data, shape, num_classes=first.outputs[first.main_output][0])
    spec_plan = make_plan(Path(config.spec), config.sets, inputs, num_classes=data.num_classes)
    if spec_plan.task == "segmentation" and data.task != "segmentation":
        raise ArchspecError(f"{spec_plan.name} is a segmentation spec; --data {config.data} has class labels, not masks")
    if spec_plan.task == "classification" and data.task != "classification":
        raise ArchspecError(f"{spec_plan.name} is a classification spec; --data {config.data} has masks")
    folder = Path(resume) if resume else run_folder(config, spec_plan)
    if dist.main and not resume and (folder / ckpt.WEIGHTS).exists():
        raise ArchspecError(f"{folder} already holds a run: --resume {folder} continues it, --out picks another folder")

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    model = spec_plan.build()
    if config.init and not resume:
        loaded, skipped = ckpt.init_weights(model, Path(config.init))
        if dist.main:
            echo(f"--init {config.init}: loaded {len(loaded)} tensors, skipped {len(skipped)}")
            for line in skipped:
                echo(f"  skipped {line}")
    if config.freeze:
        frozen = freeze_until(model, spec_plan.ir, config.freeze)
        if dist.main:
            echo(f"--freeze {config.freeze}: froze {len(frozen)} modules ({', '.join(frozen[:6])}{', ...' if len(frozen) > 6 else ''})")
    if spec_plan.task != "embedding":  # triplet mining indexes labels on the CPU
        data = to_device(data, device)
    model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ArchspecError("nothing to train: every parameter is frozen")
    lr = config.lr if config.lr is not None else DEFAULT_LR[config.optimizer]
    if config.optimizer == "sgd":
        wd = 5e-4 if config.weight_decay is None else config.weight_decay
        optimizer = torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    else:
        wd = 1e-2 if config.weight_decay is None else config.weight_decay
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=wd)

    if config.batch_size % dist.world:
        raise ArchspecError(f"--batch-size {config.batch_size} must be a multiple of --nproc {dist.world}")
    local_batch = config.batch_size // dist.world
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(len(data.x_train)), num_replicas=dist.world, rank=dist.rank, shuffle=True,
                                 seed=config.seed, drop_last=False)
    steps_per_epoch = math.ceil(len(sampler) / local_batch)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(total_steps, min(config.warmup_steps, total_steps // 5 + 1)))
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16" and device.type == "cuda")

    start_epoch, start_step, global_step, rows, running = 0, 0, 0, [], None
    if resume:
        ckpt.load_weights(model, folder, spec_plan.spec_text)
        state = ckpt.read_state(folder)
        saved_step = int(ckpt.read_checkpoint(folder)[1].get("step", -1))
        if saved_step != state["step"]:
            raise ArchspecError(f"{folder}: the weights (step {saved_step}) and state.pt (step {state['step']}) "
                                "are from different steps (a write was interrupted); cannot resume exactly")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start_epoch, start_step, global_step = state["epoch"], state["step_in_epoch"], state["step"]
        rows, running = state.get("rows", []), state.get("running")
        if dist.main:
            echo(f"resuming {folder} at epoch {start_epoch + 1}, step {start_step} of {steps_per_epoch} (global step {global_step})")
    augments = parse_augment(config.augment, data.default_augment)
    if spec_plan.task == "embedding":
        augments = tuple(a for a in augments if a != "flip")
    weights = loss_weights(spec_plan, config.loss_weights)
    log = MetricLog(folder if dist.main else None, rows)
    metric = main_metric(spec_plan.task)

    net: Any = model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)
    if dist.main:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / "config.json", json.dumps(asdict(config), indent=1) + "\n")

    def save(epoch: int, step_in_epoch: int) -> None:
        if not dist.main:
            return
        if step_in_epoch >= steps_per_epoch:
            epoch, step_in_epoch = epoch + 1, 0
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "scaler": scaler.state_dict() if scaler.is_enabled() else None, "rng": rng_state(),
                 "epoch": epoch, "step_in_epoch": step_in_epoch, "rows": log.rows, "running": running,
                 "config": asdict(config)}
        ckpt.save_checkpoint(folder, model, spec_plan.spec_text, spec_plan.build_info(), state, global_step)

    sleep = float(os.environ.get("ARCHSPEC_TRAIN_STEP_SLEEP", "0"))  # tests: slow steps so a kill lands mid-epoch
    bar = _progress(progress and dist.main)
    results: dict[str, float] = {}
    model.train()
    with bar:
        for epoch in range(start_epoch, config.epochs):
            if global_step >= total_steps:
                break
            sampler.set_epoch(epoch)
            order = list(sampler)
            skip = start_step if epoch == start_epoch else 0
            if skip == 0 or running is None:
                running = {"loss": 0.0, "seen": 0, "correct": 0, "time": 0.0}
            task_id = bar.add_task(f"epoch {epoch + 1}/{config.epochs}", total=steps_per_epoch, completed=skip,
                                   loss=float("nan"), metric="", speed=0.0)
            position = skip
            for step in range(skip, steps_per_epoch):
                if global_step >= total_steps:
                    break
                position = step + 1
                began = time.perf_counter()
                idx = torch.tensor(order[step * local_batch:(step + 1) * local_batch])
                generator = step_generator(config.seed, epoch, step)
                x, y = augment(data.x_train[idx], data.y_train[idx], augments, generator, config.batch_size,
                               dist.rank, dist.world)
                x, y = _to(x, device, config.channels_last), y.to(device)
                with _autocast(device, config.amp):
                    if spec_plan.task == "embedding":
                        pos, neg = triplet_indices(data.y_train, idx, generator)
                        fa, fp, fn = embed_triplets(net, spec_plan, x, _to(data.x_train[pos], device, config.channels_last),
                                                    _to(data.x_train[neg], device, config.channels_last))
                        loss = triplet_loss(fa, fp, fn, config.margin)
                        correct = 0
                    else:
                        outputs = as_dict(net(**{spec_plan.input_names[0]: x}), spec_plan)
                        loss = supervised_loss(outputs, y, weights, config.segmentation_loss)
                        main = outputs[spec_plan.main_output]
                        correct = int((main.argmax(1) == (y if main.ndim == 2 else fit_target(y, main.shape[-2:]))).sum())
                        if main.ndim == 4:
                            correct = correct / float(main.shape[-1] * main.shape[-2])
                if not torch.isfinite(loss):
                    raise ArchspecError(f"the loss became {float(loss)} at epoch {epoch + 1}, step {step}; lower --lr")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                global_step += 1
                if sleep:
                    time.sleep(sleep)
                elapsed = time.perf_counter() - began
                running["loss"] += float(loss.detach()) * len(x)
                running["seen"] += len(x)
                running["correct"] += correct
                running["time"] += elapsed
                shown = "" if spec_plan.task == "embedding" else f"acc {running['correct'] / running['seen']:.3f}"
                bar.update(task_id, advance=1, loss=running["loss"] / running["seen"], metric=shown,
                           speed=running["seen"] * dist.world / max(running["time"], 1e-9))
                if config.checkpoint_every and global_step % config.checkpoint_every == 0:
                    save(epoch, step + 1)
            if dist.main:
                test, _ = evaluate(model, spec_plan, data, device, amp=config.amp, channels_last=config.channels_last,
                                   margin=config.margin, segmentation_loss=config.segmentation_loss)
                row = {"epoch": epoch + 1, "step": global_step,
                       "train_loss": running["loss"] / max(1, running["seen"]),
                       "lr": optimizer.param_groups[0]["lr"],
                       "images_per_s": running["seen"] * dist.world / max(running["time"], 1e-9)}
                if spec_plan.task != "embedding":
                    row["train_accuracy"] = running["correct"] / max(1, running["seen"])
                row.update({f"test_{k}": v for k, v in test.items()})
                log.add(row)
                results = test
                echo(f"epoch {epoch + 1}/{config.epochs}: train loss {row['train_loss']:.4f}, test loss {test['loss']:.4f}, "
                     f"test {metric} {test.get(metric, float('nan')):.4f}, {row['images_per_s']:.0f} images/s")
            save(epoch, position)
            running = None
    if dist.main:
        note = log.plot(metric)
        for line in [note] if note else _write_report(spec_plan, folder):
            echo(line)
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()
    return {"metrics": results, "folder": folder, "model": model, "plan": spec_plan, "data": data, "task": spec_plan.task}


def _write_report(spec_plan: Plan, folder: Path) -> list[str]:
    """report.html in the run folder: the spec's report (at the trained sizes) with the curves."""
    from archspec.render.html import write_reports

    _, notes = write_reports([(spec_plan.loaded, spec_plan.ir, spec_plan.analysis)], True, "html", folder, run=folder)
    return notes


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f} {task.fields[metric]}"),
        TextColumn("{task.fields[speed]:.0f} img/s"), TimeRemainingColumn(),
        console=Console(stderr=True), disable=not enabled, transient=False,
    )


def load_config(folder: Path) -> TrainConfig:
    path = Path(folder) / "config.json"
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
