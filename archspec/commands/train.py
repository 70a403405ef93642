"""`archspec train`, `archspec evaluate` and `archspec bench` (the only commands besides `build`
that import torch, and only inside the functions)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.common import InputOption, SetOption, handles_errors, parse_inputs, parse_sets
from archspec.errors import ArchspecError


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
    data: str = typer.Option("digits", "--data", help="digits, shapes, fake, an .npz file (x, y) or an image folder root/<class>/*.png."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Epochs (default 12)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Global batch size (split across --nproc processes)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default 3e-3 adamw, 0.05 sgd); warm-up then cosine."),
    optimizer: str = typer.Option("adamw", "--optimizer", help="sgd (momentum 0.9) or adamw."),
    momentum: float = typer.Option(0.9, "--momentum", help="SGD momentum."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Default 1e-2 adamw, 5e-4 sgd."),
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
    nproc: int = typer.Option(1, "--nproc", min=1, help="Processes: >1 launches torchrun with DistributedDataParallel (gloo on CPU, NCCL on GPU)."),
    checkpoint_every: int = typer.Option(0, "--checkpoint-every", min=0, help="Also checkpoint every K steps (0: at each epoch end only)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many optimizer steps."),
    augment: Optional[str] = typer.Option(None, "--augment", help="crop,flip,colour, none, or default (digits: crop; shapes: flip)."),
    loss_weight: Optional[List[str]] = typer.Option(None, "--loss-weight", help="OUTPUT=WEIGHT for a multi-output spec (aux outputs default to 0.3)."),
    margin: float = typer.Option(0.2, "--margin", help="Triplet loss margin (embedding specs)."),
    seg_loss: str = typer.Option("ce+dice", "--seg-loss", help="Segmentation loss: ce (per-pixel cross-entropy) or ce+dice (plus the soft Dice loss)."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch threads per process (0: torch's default)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
) -> None:
    """Train a spec on real data; checkpoints (safetensors), metrics.csv/jsonl and curves.png go to the run folder."""
    if nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        _launch_torchrun(nproc)
        return
    from archspec.train.loop import TrainConfig, load_config, train as run

    if resume is not None:
        config = load_config(resume)
        if epochs is not None:
            config.epochs = epochs
        config.device = device if device != "auto" else config.device
        if threads:
            config.threads = threads
    else:
        if spec is None:
            raise ArchspecError("give a SPEC to train, or --resume RUN_FOLDER")
        shapes = parse_inputs(inputs)
        config = TrainConfig(
            spec=str(spec), data=data, epochs=epochs or 12, batch_size=batch_size, lr=lr, optimizer=optimizer,
            momentum=momentum, weight_decay=weight_decay, device=device, seed=seed, out=str(out) if out else None,
            sets=parse_sets(sets), inputs={k: list(v) for k, v in shapes.items()}, init=str(init) if init else None,
            freeze=freeze, amp=amp, channels_last=channels_last, compile=compile_, checkpoint_every=checkpoint_every,
            max_steps=max_steps, augment=augment, loss_weights=_weights_option(loss_weight), margin=margin,
            segmentation_loss=seg_loss, threads=threads)
    result = run(config, resume=resume, progress=not no_progress, echo=typer.echo)
    if int(os.environ.get("RANK", "0")) == 0:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items())
        typer.echo(f"final test: {metrics}")
        typer.echo(f"wrote {result['folder']}")


def _launch_torchrun(nproc: int) -> None:
    """Re-invoke this very command under torchrun, one process per rank (--nproc dropped)."""
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        args.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "archspec", *args]
    typer.echo(f"launching {nproc} processes: torchrun --standalone --nproc_per_node={nproc} -m archspec {' '.join(args)}", err=True)
    code = subprocess.call(command)
    if code:
        raise typer.Exit(code)


@handles_errors
def evaluate(
    spec: Path = typer.Argument(..., help="The spec file."),
    weights: Path = typer.Option(..., "--weights", help="A run folder, a .safetensors checkpoint or a torch state_dict file (.pt/.pth, read with weights_only)."),
    data: str = typer.Option("digits", "--data", help="digits, shapes, fake, an .npz file or an image folder."),
    sets: Optional[List[str]] = SetOption,
    inputs: Optional[List[str]] = InputOption,
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
) -> None:
    """Test-set accuracy and confusion matrix (classification), IoU/Dice (segmentation), triplet accuracy (embedding)."""
    import json

    from rich.table import Table

    from archspec.render.terminal import console
    from archspec.train.checkpoint import load_weights, read_checkpoint
    from archspec.train.data import load_data
    from archspec.train.loop import Dist, evaluate as run_eval, pick_device
    from archspec.train.metrics import iou_dice
    from archspec.train.setup import plan as make_plan

    _, metadata = read_checkpoint(weights)
    build = json.loads(metadata.get("build", "{}"))
    params = {**build.get("params", {}), **parse_sets(sets)}
    shapes = {k: tuple(v) for k, v in build.get("inputs", {}).items()}
    shapes.update(parse_inputs(inputs))
    first = make_plan(spec, params, shapes)
    dataset = load_data(data, next(iter(first.shapes.values())), num_classes=first.outputs[first.main_output][0])
    spec_plan = make_plan(spec, params, shapes, num_classes=dataset.num_classes)
    model = spec_plan.build()
    load_weights(model, weights, spec_plan.spec_text)
    target = pick_device(device, Dist())
    model.to(target)
    metrics, matrix = run_eval(model, spec_plan, dataset, target, batch_size)
    out = console()
    table = Table(title=f"{spec_plan.name} on {dataset.name} ({len(dataset.x_test)} test samples)", header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}")
    out.print(table)
    if matrix is not None and spec_plan.task == "classification":
        cm = Table(title="confusion matrix (rows: true, columns: predicted)", header_style="bold")
        cm.add_column("")
        for name in dataset.class_names:
            cm.add_column(name, justify="right")
        for i, name in enumerate(dataset.class_names):
            cm.add_row(name, *[(f"[green]{v}[/green]" if i == j else (str(v) if v else "[dim]0[/dim]"))
                               for j, v in enumerate(matrix[i].tolist())])
        out.print(cm)
    elif matrix is not None:
        iou, dice = iou_dice(matrix)
        per = Table(title="per class", header_style="bold")
        for header in ("class", "IoU", "Dice"):
            per.add_column(header, justify="right" if header != "class" else "left")
        for name, i, d in zip(dataset.class_names, iou, dice):
            per.add_row(name, f"{i:.4f}", f"{d:.4f}")
        out.print(per)


@handles_errors
def bench(
    spec: Path = typer.Argument(..., help="The spec file."),
    batch: int = typer.Option(32, "--batch", min=1, help="Batch size."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    amp: str = typer.Option("off", "--amp", help="off, bf16 or fp16."),
    compile_: bool = typer.Option(False, "--compile", help="Also measure the torch.compile'd model."),
    channels_last: bool = typer.Option(False, "--channels-last"),
    seconds: float = typer.Option(2.0, "--seconds", min=0.05, help="Time to measure each case."),
    sets: Optional[List[str]] = SetOption,
    inputs: Optional[List[str]] = InputOption,
) -> None:
    """Forward and forward+backward images/s and latency, eager (and compiled with --compile)."""
    from rich.table import Table

    from archspec.render.terminal import console
    from archspec.train.bench import run_bench

    rows = run_bench(spec, parse_sets(sets), parse_inputs(inputs), batch, device, amp, compile_, channels_last, seconds)
    table = Table(title=f"{spec} at batch {batch}", header_style="bold")
    for header in ("mode", "pass", "images/s", "latency ms", "device"):
        table.add_column(header, justify="right" if header in ("images/s", "latency ms") else "left")
    for row in rows:
        table.add_row(row["mode"], row["pass"], f"{row['images_per_s']:,.1f}", f"{row['latency_ms']:.2f}", row["device"])
    console().print(table)
