"""`archspec train`, `archspec evaluate` and `archspec bench` (the only commands besides `build`
that import torch, and only inside the functions)."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from archspec.commands.common import (ForceOption, InputOption, MemoryLimitOption, SetOption, check_memory_limit,
                                      handles_errors, parse_inputs, parse_sets, refuse_over_limit, spec_file)
from archspec.errors import ArchspecError
from archspec.runs import OPTIMIZER_NAMES, OPTIMIZERS

MAX_BENCH_BATCH = 1_000_000
ThreadsOption = typer.Option(0, "--threads", min=0, help="torch threads per process; 0: 1 on a machine of at most 2 cores, "
                                                         "else the idle cores (cores - load average) shared by the processes.")
NnodesOption = typer.Option(1, "--nnodes", min=1, help="Machines: >1 runs torchrun's c10d rendezvous, --nproc processes on each; "
                                                       "run the same command (same spec, data and flags) on every machine.")
NodeRankOption = typer.Option(None, "--node-rank", "--node_rank", min=0, help="This machine's rank, 0 to --nnodes - 1 (passed to "
                              "torchrun, whose c10d rendezvous assigns the ranks itself: the run folder is written where global rank 0 lands).")
RdzvEndpointOption = typer.Option(None, "--rdzv-endpoint", "--rdzv_endpoint", help="HOST:PORT of the c10d rendezvous with --nnodes > 1: "
                                  "one of the machines and a port open on it, the same on every machine.")
RdzvIdOption = typer.Option(None, "--rdzv-id", "--rdzv_id", help="Job id shared by the machines of one run (torchrun's default: none).")


def _weights_option(items: Optional[List[str]]) -> dict[str, float]:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ArchspecError(f"--loss-weight expects OUTPUT=WEIGHT, got '{item}'") from None
        if not sep:
            raise ArchspecError(f"--loss-weight expects OUTPUT=WEIGHT, got '{item}'")
    return out


@handles_errors
def train(
    spec: Optional[Path] = typer.Argument(None, help="The spec file (not needed with --resume)."),
    data: str = typer.Option("digits", "--data", help="digits, shapes, fake, boxes[:COUNT] (detection), an .npz file (x, y), an image folder root/<class>/*.png or a YOLO folder (images/ + labels/)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Epochs (default 12)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Global batch size, split across all --nnodes x --nproc processes."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default " + ", ".join(
        f"{o.lr:g} {o.name}" for o in OPTIMIZERS.values()) + "); warm-up then cosine."),
    optimizer: str = typer.Option("adamw", "--optimizer", help=f"{OPTIMIZER_NAMES} (sgd with --momentum)."),
    momentum: float = typer.Option(0.9, "--momentum", help="SGD momentum."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Default " + ", ".join(
        f"{o.weight_decay:g} {o.name}" for o in OPTIMIZERS.values()) + "."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, "--seed", help="Seeds the weights, the data order and the augmentation."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/<spec>-<data>)."),
    sets: Optional[List[str]] = SetOption,
    inputs: Optional[List[str]] = InputOption,
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder exactly where it stopped."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from these weights (.safetensors or a torch .pth state_dict) where names and shapes match."),
    freeze: Optional[str] = typer.Option(None, "--freeze", help="Freeze every layer up to this node (in execution order)."),
    amp: str = typer.Option("off", "--amp", help="off, bf16 or fp16 (fp16 uses a grad scaler on CUDA)."),
    channels_last: bool = typer.Option(False, "--channels-last", help="Use the channels-last memory format."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Processes per machine: >1 launches torchrun with DistributedDataParallel (gloo on CPU, NCCL on GPU)."),
    nnodes: int = NnodesOption, node_rank: Optional[int] = NodeRankOption, rdzv_endpoint: Optional[str] = RdzvEndpointOption, rdzv_id: Optional[str] = RdzvIdOption,
    checkpoint_every: int = typer.Option(0, "--checkpoint-every", min=0, help="Also checkpoint every K steps (0: at each epoch end only)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many optimizer steps."),
    augment: Optional[str] = typer.Option(None, "--augment", help="crop,flip,colour, none, or default (digits: crop; shapes: flip)."),
    loss_weight: Optional[List[str]] = typer.Option(None, "--loss-weight", help="OUTPUT=WEIGHT for a multi-output spec (aux outputs default to 0.3)."),
    margin: float = typer.Option(0.2, "--margin", help="Triplet loss margin (embedding specs)."),
    seg_loss: str = typer.Option("ce+dice", "--seg-loss", help="Segmentation loss: ce (per-pixel cross-entropy) or ce+dice (plus the soft Dice loss)."),
    threads: int = ThreadsOption,
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
    memory_limit: float = MemoryLimitOption,
    force: bool = ForceOption,
) -> None:
    """Train a spec on real data; checkpoints (safetensors), metrics.csv/jsonl and curves.png go to the run folder."""
    check_memory_limit(memory_limit)
    launch = Launch(nproc, nnodes, node_rank, rdzv_endpoint, rdzv_id).checked(None if resume else batch_size)
    if launch.processes > 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:  # not yet under torchrun
        return _launch_torchrun(launch)
    from archspec.train.config import TrainConfig
    from archspec.train.loop import train as run

    if resume is not None:
        config = _resumed_config(resume, epochs, device, threads)
    elif spec is None:
        raise ArchspecError("give a SPEC to train, or --resume RUN_FOLDER")
    else:
        config = TrainConfig(
            spec=str(spec_file(spec)), data=data, epochs=epochs or 12, batch_size=batch_size, lr=lr, optimizer=optimizer,
            momentum=momentum, weight_decay=weight_decay, device=device, seed=seed, out=str(out) if out else None,
            sets=parse_sets(sets), inputs={k: list(v) for k, v in parse_inputs(inputs).items()},
            init=str(init) if init else None, freeze=freeze, amp=amp, channels_last=channels_last, compile=compile_,
            checkpoint_every=checkpoint_every, max_steps=max_steps, augment=augment,
            loss_weights=_weights_option(loss_weight), margin=margin, segmentation_loss=seg_loss, threads=threads)
    spec_plan = _preflight_train(config, resume, memory_limit, force)
    result = run(config, resume=resume, progress=not no_progress, echo=typer.echo, plan=spec_plan)
    if int(os.environ.get("RANK", "0")) == 0:
        typer.echo(f"final test: {', '.join(f'{k} {v:.4f}' for k, v in result['metrics'].items())}")
        typer.echo(f"wrote {result['folder']}")


def _resumed_config(folder: Path, epochs: Optional[int], device: str, threads: int):
    """The run's saved configuration, with what a resume may change: more epochs, the device, threads."""
    from archspec.train.config import load_config

    config = load_config(folder)
    config.epochs = epochs or config.epochs
    config.device = device if device != "auto" else config.device
    config.threads = threads or config.threads
    return config


def _preflight_train(config, resume: Optional[Path], memory_limit: float, force: bool):
    """What train can refuse before it loads any data: a bad --out, over the memory limit, or --init
    tensors of another kind of dtype than the model's (checked on a meta-device model, which
    allocates nothing). Returns the plan, which the run then uses."""
    import torch

    from archspec.files import check_output_folder
    from archspec.train.checkpoint import init_matches, read_checkpoint
    from archspec.train.setup import preflight

    config.check()
    if config.out and not resume:  # a file or /proc there: say so now, not after the training
        check_output_folder(Path(config.out))
    spec_plan, _, parts = preflight(Path(config.spec), config.sets, config.input_shapes, config.data,
                                    config.batch_size, training=True, optimizer=config.optimizer)
    refuse_over_limit(f"training {spec_plan.name}", parts, memory_limit, force)
    if config.init and not resume and Path(config.init).is_file():
        with torch.device("meta"):
            model = spec_plan.build()
        init_matches(model, Path(config.init), read_checkpoint(Path(config.init))[0])
    return spec_plan


LAUNCH_FLAGS = ("--nproc", "--nnodes", "--node-rank", "--node_rank", "--rdzv-endpoint", "--rdzv_endpoint", "--rdzv-id", "--rdzv_id")


@dataclass(frozen=True)
class Launch:
    """Where train's processes run: --nproc on each of --nnodes machines, which meet at torchrun's
    c10d rendezvous. Only torchrun's own flags: the rendezvous and DDP are torch's."""

    nproc: int = 1
    nnodes: int = 1
    node_rank: Optional[int] = None
    rdzv_endpoint: Optional[str] = None
    rdzv_id: Optional[str] = None

    @property
    def processes(self) -> int:
        return self.nproc * self.nnodes

    def checked(self, batch_size: Optional[int]) -> "Launch":
        """This launch, or a one-line error before any process starts (`batch_size`: None on a resume)."""
        alone = {"--node-rank": self.node_rank, "--rdzv-endpoint": self.rdzv_endpoint, "--rdzv-id": self.rdzv_id}
        for flag, value in alone.items():
            if self.nnodes == 1 and value is not None:
                raise ArchspecError(f"{flag} is for a run on several machines: give --nnodes K > 1 as well")
        if self.nnodes > 1 and self.rdzv_endpoint is None:
            raise ArchspecError(f"--nnodes {self.nnodes} needs --rdzv-endpoint HOST:PORT, the same on every machine")
        host, _, port = (self.rdzv_endpoint or "").rpartition(":")
        if self.rdzv_endpoint is not None and not (host and port.isdigit() and 0 < int(port) < 65536):
            raise ArchspecError(f"--rdzv-endpoint '{self.rdzv_endpoint}' is not HOST:PORT with a port 1-65535 (e.g. 10.0.0.1:29400)")
        if self.node_rank is not None and self.node_rank >= self.nnodes:
            raise ArchspecError(f"--node-rank {self.node_rank} with --nnodes {self.nnodes}: node ranks run from 0 to {self.nnodes - 1}")
        if batch_size is not None and batch_size % self.processes:
            raise ArchspecError(f"--batch-size {batch_size} must be a multiple of the {self.processes} processes "
                                f"(--nnodes {self.nnodes} x --nproc {self.nproc}): it is the global batch, split across them")
        return self

    def torchrun_flags(self) -> list[str]:
        if self.nnodes == 1:
            return ["--standalone", f"--nproc-per-node={self.nproc}"]
        flags = [f"--nnodes={self.nnodes}", f"--nproc-per-node={self.nproc}", "--rdzv-backend=c10d",
                 f"--rdzv-endpoint={self.rdzv_endpoint}"]
        flags += [f"--node-rank={self.node_rank}"] if self.node_rank is not None else []
        return flags + ([f"--rdzv-id={self.rdzv_id}"] if self.rdzv_id is not None else [])


def without_launch_flags(argv: list[str]) -> list[str]:
    """The command line less the launch flags (`--nproc 2` and `--nproc=2` alike), for each rank to run."""
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LAUNCH_FLAGS:
            skip = True
        elif arg.partition("=")[0] not in LAUNCH_FLAGS:
            args.append(arg)
    return args


def _launch_torchrun(launch: Launch) -> None:
    """Re-invoke this very command under torchrun, one process per rank on this machine."""
    args = without_launch_flags(sys.argv[1:])
    flags = launch.torchrun_flags()
    command = [sys.executable, "-m", "torch.distributed.run", *flags, "-m", "archspec", *args]
    typer.echo(f"launching {launch.nproc} process(es) on this machine of {launch.nnodes}: "
               f"torchrun {' '.join(flags)} -m archspec {' '.join(args)}", err=True)
    code = subprocess.call(command)
    if code:
        raise typer.Exit(code)


@handles_errors
def evaluate(
    spec: Path = typer.Argument(..., help="The spec file."),
    weights: Path = typer.Option(..., "--weights", help="A run folder, a .safetensors checkpoint or a torch state_dict file (.pt/.pth, read with weights_only)."),
    data: str = typer.Option("digits", "--data", help="digits, shapes, fake, boxes, an .npz file, an image folder or a YOLO folder."),
    sets: Optional[List[str]] = SetOption,
    inputs: Optional[List[str]] = InputOption,
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
    memory_limit: float = MemoryLimitOption,
    force: bool = ForceOption,
) -> None:
    """Test-set accuracy and confusion matrix (classification), IoU/Dice (segmentation), triplet accuracy
    (embedding), mAP and AP per class (detection)."""
    from rich.table import Table

    from archspec.render.terminal import console
    from archspec.train.runtime import Dist, Runtime, pick_device
    from archspec.train.task_table import make_task

    check_memory_limit(memory_limit)
    spec_plan, model, dataset = _evaluation(spec, weights, data, sets, inputs, batch_size, memory_limit, force)
    runtime = Runtime(pick_device(device, Dist()))
    model.to(runtime.device)
    metrics, matrix = make_task(spec_plan).evaluate(model, dataset, runtime, batch_size)
    out = console()
    shown = metrics
    if spec_plan.task == "detection":
        from archspec.detect.evaluation import per_class

        rows = per_class(metrics, dataset.class_names)
        shown = {k: v for k, v in metrics.items() if not any(k.endswith("_" + name) for name, _, _ in rows)}
    table = Table(title=f"{spec_plan.name} on {dataset.name} ({len(dataset.x_test)} test samples)", header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in shown.items():
        table.add_row(key, f"{value:.4f}")
    out.print(table)
    if spec_plan.task == "detection":
        out.print(_ap_table(rows, dataset))
    elif matrix is not None:
        out.print(_confusion_table(matrix, dataset) if spec_plan.task == "classification" else _iou_table(matrix, dataset))


def _ap_table(rows, dataset):
    from rich.table import Table

    objects = (dataset.y_test[..., 0].long().flatten()).tolist()
    per = Table(title="average precision per class (COCO, via torchmetrics)", header_style="bold")
    for header in ("class", "test objects", "AP@0.5", "AP@[.5:.95]"):
        per.add_column(header, justify="right" if header != "class" else "left")
    for index, (name, ap50, ap) in enumerate(rows):
        per.add_row(name, str(objects.count(index)), f"{ap50:.4f}", f"{ap:.4f}")
    return per


def _confusion_table(matrix, dataset):
    from rich.table import Table

    cm = Table(title="confusion matrix (rows: true, columns: predicted)", header_style="bold")
    cm.add_column("")
    for name in dataset.class_names:
        cm.add_column(name, justify="right")
    for i, name in enumerate(dataset.class_names):
        cm.add_row(name, *[(f"[green]{v}[/green]" if i == j else (str(v) if v else "[dim]0[/dim]"))
                           for j, v in enumerate(matrix[i].tolist())])
    return cm


def _iou_table(matrix, dataset):
    from rich.table import Table

    from archspec.train.metrics import iou_dice

    iou, dice = iou_dice(matrix)
    per = Table(title="per class", header_style="bold")
    for header in ("class", "IoU", "Dice"):
        per.add_column(header, justify="right" if header != "class" else "left")
    for name, i, d in zip(dataset.class_names, iou, dice):
        per.add_row(name, f"{i:.4f}", f"{d:.4f}")
    return per


def checkpoint_plan(weights: Path, sets, inputs, make: Callable[[dict, dict], Any]):
    """(what `make(params, shapes)` gives, the checkpoint): the spec planned with the checkpoint's
    build parameters and inputs under the command line's. An error says which values came from
    the checkpoint's metadata rather than the command line."""
    from archspec.train.checkpoint import build_metadata, read_checkpoint, weights_path

    checkpoint = read_checkpoint(weights)
    path = weights_path(weights)
    build = build_metadata(checkpoint[1], path)
    given_params, given_shapes = parse_sets(sets), parse_inputs(inputs)
    try:
        return make({**build["params"], **given_params}, {**build["inputs"], **given_shapes}), checkpoint
    except ArchspecError as err:
        from_file = [f"params.{k}" for k in build["params"] if k not in given_params]
        from_file += [f"inputs.{k}" for k in build["inputs"] if k not in given_shapes and "" not in given_shapes]
        if not from_file:
            raise
        raise ArchspecError(f"{err}\n  note: {', '.join(from_file[:8])} came from the metadata of checkpoint {path}") from None


def trained_model(spec_plan, weights: Path, checkpoint):
    """The plan's module with the checkpoint's weights, checked on the meta device first (another
    spec's or dtype's weights are refused before anything is allocated)."""
    import torch

    from archspec.train.checkpoint import check_fits, load_weights

    with torch.device("meta"):  # shapes and dtypes only: nothing allocated
        check_fits(spec_plan.build(), weights, checkpoint, spec_plan.spec_text)
    model = spec_plan.build()
    load_weights(model, weights, spec_plan.spec_text, checkpoint)
    return model


def _evaluation(spec: Path, weights: Path, data: str, sets, inputs, batch_size: int, memory_limit: float, force: bool):
    """The plan, the model with the checkpoint's weights, and the data set, in an order that refuses
    crafted metadata, weights of another spec or dtype, and over-limit sizes before any data loads."""
    from archspec.train.data import load_data
    from archspec.train.setup import for_classes, preflight

    spec = spec_file(spec)
    (spec_plan, info, parts), checkpoint = checkpoint_plan(
        weights, sets, inputs, lambda params, shapes: preflight(spec, params, shapes, data, batch_size, training=False))
    refuse_over_limit(f"evaluating {spec_plan.name}", parts, memory_limit, force)
    model = trained_model(spec_plan, weights, checkpoint)
    dataset = load_data(data, next(iter(spec_plan.shapes.values())), num_classes=spec_plan.classes)
    if dataset.num_classes != (info.num_classes or spec_plan.classes):  # an .npz's
        spec_plan = for_classes(spec_plan, dataset.num_classes)
        model = trained_model(spec_plan, weights, checkpoint)
    return spec_plan, model, dataset


@handles_errors
def bench(
    spec: Path = typer.Argument(..., help="The spec file."),
    batch: int = typer.Option(32, "--batch", min=1, help="Batch size."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    amp: str = typer.Option("off", "--amp", help="off, bf16 or fp16."),
    compile_: bool = typer.Option(False, "--compile", help="Also measure the torch.compile'd model."),
    channels_last: bool = typer.Option(False, "--channels-last"),
    seconds: float = typer.Option(2.0, "--seconds", min=0.05, help="Time to measure each case."),
    threads: int = ThreadsOption,
    sets: Optional[List[str]] = SetOption,
    inputs: Optional[List[str]] = InputOption,
    memory_limit: float = MemoryLimitOption,
    force: bool = ForceOption,
) -> None:
    """Forward and forward+backward images/s and latency, eager (and compiled with --compile)."""
    from rich.table import Table

    from archspec.render.terminal import console
    from archspec.train.bench import run_bench

    check_memory_limit(memory_limit)
    if batch > MAX_BENCH_BATCH:
        raise ArchspecError(f"--batch {batch:,}: bench takes batches of at most {MAX_BENCH_BATCH:,}")

    def budget(spec_plan, parts: list[tuple[str, int]]) -> None:
        refuse_over_limit(f"benchmarking {spec_plan.name} at batch {batch:,}", parts, memory_limit, force)

    rows = run_bench(spec_file(spec), parse_sets(sets), parse_inputs(inputs), batch, device, amp, compile_, channels_last,
                     seconds, budget=budget, threads=threads)
    table = Table(title=f"{spec} at batch {batch}, {rows[0]['threads']} torch thread(s)", header_style="bold")
    for header in ("mode", "pass", "images/s", "latency ms", "device"):
        table.add_column(header, justify="right" if header in ("images/s", "latency ms") else "left")
    for row in rows:
        table.add_row(row["mode"], row["pass"], f"{row['images_per_s']:,.1f}", f"{row['latency_ms']:.2f}", row["device"])
    console().print(table)
