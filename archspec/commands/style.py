"""`archspec style-transfer`: neural style transfer on any spec, with the course's costs
(archspec.style), features tapped by node name.

G.png is written with its cost curve beside it: `<G>_costs.csv` (J, J_content, J_style for the
image after each number of updates, 0 to --steps) and `<G>_costs.png` (a matplotlib plot). Images
are PNGs read and written with matplotlib (a runtime dependency), values in [0, 1], 3 channels.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.common import SetOption, handles_errors, parse_sets, spec_file
from archspec.errors import ArchspecError

WEIGHTS_HINT = ("--weights takes a state_dict whose tensors are the lowered module's, by name or by order and "
                "shape, such as torchvision's vgg19().state_dict() for specs/vgg19.yaml")


@handles_errors
def command(
    spec: Path = typer.Option(..., "--spec", help="The spec file (any spec with one image input)."),
    content: Path = typer.Option(..., "--content", help="The content image C (PNG)."),
    style: Path = typer.Option(..., "--style", help="The style image S (PNG), resized to C's size."),
    content_layer: str = typer.Option(..., "--content-layer", help="The node whose activation J_content compares."),
    style_layers: str = typer.Option(..., "--style-layers", help="Comma-separated nodes J_style sums over."),
    out: Path = typer.Option(..., "--out", help="The generated image G (.png); the cost curve goes beside it."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="A state_dict (.pth, .safetensors) for the lowered "
                                           "module, by name or by order and shape (torchvision's VGG-19)."),
    alpha: float = typer.Option(10.0, "--alpha", help="Weight of J_content in J(G)."),
    beta: float = typer.Option(40.0, "--beta", help="Weight of J_style in J(G)."),
    steps: int = typer.Option(200, "--steps", min=1, help="Optimisation steps on G's pixels."),
    lr: float = typer.Option(0.01, "--lr", help="Learning rate."),
    init: str = typer.Option("noise", "--init", help="noise (as the course does) or content."),
    optimizer: str = typer.Option("adam", "--optimizer", help="adam or lbfgs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the starting noise."),
    sets: Optional[List[str]] = SetOption,
) -> None:
    """Generate G minimising J(G) = alpha J_content(C, G) + beta J_style(S, G) over its pixels."""
    _check_numbers(alpha, beta, lr)
    _check_out(out)
    nodes = [name.strip() for name in style_layers.split(",") if name.strip()]
    if not nodes:
        raise ArchspecError("--style-layers needs at least one node name")
    content_image = read_image(content, "--content")
    module = _module(spec, sets, tuple(content_image.shape[1:]), weights)
    style_image = resize(read_image(style, "--style"), content_image.shape[1:])
    curve = _run(module, content_image, style_image, content_layer, nodes,
                 dict(alpha=alpha, beta=beta, steps=steps, lr=lr, init=init, optimizer=optimizer, seed=seed))
    written = write_outputs(out, curve)
    typer.echo("wrote " + ", ".join(str(path) for path in written))


def _check_numbers(alpha: float, beta: float, lr: float) -> None:
    for option, value in (("--alpha", alpha), ("--beta", beta)):
        if not math.isfinite(value) or value < 0:
            raise ArchspecError(f"{option} must be a finite number >= 0, not {value:g}")
    if not math.isfinite(lr) or lr <= 0:
        raise ArchspecError(f"--lr must be a positive number, not {lr:g}")


def _check_out(out: Path) -> None:
    from archspec.files import check_output_folder

    if out.suffix.lower() != ".png":
        raise ArchspecError(f"--out {out}: the generated image is written as a PNG; name it *.png")
    if out.is_dir():
        raise ArchspecError(f"--out {out}: is a folder; give the image's file name")
    check_output_folder(out.parent)


# --- images -------------------------------------------------------------------------------------------
def read_image(path: Path, option: str):
    """An image file as a float tensor (3, H, W) in [0, 1]: grey is repeated, alpha dropped."""
    import numpy as np
    import torch
    from matplotlib import image as mpimg

    if not path.is_file():
        raise ArchspecError(f"{option} {path}: no such file")
    try:
        pixels = np.asarray(mpimg.imread(path))
    except Exception as err:  # matplotlib/pillow name the format problem in many ways
        raise ArchspecError(f"{option} {path}: cannot read it as an image ({type(err).__name__})") from None
    if pixels.dtype == np.uint8:
        pixels = pixels / 255.0
    elif pixels.dtype == np.uint16:
        pixels = pixels / 65535.0
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4) or min(pixels.shape[:2]) < 1:
        raise ArchspecError(f"{option} {path}: not an image of 1 to 4 channels (shape {pixels.shape})")
    colour = pixels[:, :, :3] if pixels.shape[2] >= 3 else np.repeat(pixels[:, :, :1], 3, axis=2)
    return torch.tensor(np.clip(colour, 0.0, 1.0), dtype=torch.float32).permute(2, 0, 1).contiguous()


def resize(image, size):
    """The style image at the content image's (H, W): bilinear, antialiased when shrinking."""
    import torch.nn.functional as F

    if tuple(image.shape[1:]) == tuple(size):
        return image
    resized = F.interpolate(image[None], size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return resized[0].clamp(0.0, 1.0)


def png_bytes(image) -> bytes:
    """A (3, H, W) tensor as PNG bytes, clipped to [0, 1] (the optimised pixels are unbounded)."""
    from matplotlib import image as mpimg

    buffer = io.BytesIO()
    pixels = image.detach().clamp(0.0, 1.0).permute(1, 2, 0).cpu().numpy()
    mpimg.imsave(buffer, pixels, format="png")
    return buffer.getvalue()


# --- the network ----------------------------------------------------------------------------------------
def _module(spec: Path, sets, image_shape: tuple[int, ...], weights: Optional[Path]):
    """The spec lowered at the content image's size (3 x H x W), with --weights or random weights."""
    from archspec import pipeline
    from archspec.spec.document import load_spec

    spec = spec_file(spec)
    if not spec.is_file():
        raise ArchspecError(f"--spec {spec}: no such file")
    loaded = load_spec(spec)
    names = list(loaded.document.inputs)
    if len(names) != 1:
        raise ArchspecError(f"{spec}: style transfer needs a spec with one image input; this one has "
                            f"{len(names)} ({', '.join(names) or 'none'})")
    module = pipeline.compile(loaded, parse_sets(sets), {"": (3, *image_shape)}).module()
    if weights is None:
        typer.echo("warning: no --weights: the network has random weights; good pictures need pretrained "
                   "weights", err=True)
        return module
    load_weights(module, weights)
    return module


def load_weights(module, weights: Path) -> None:
    """--weights into `module`, by name or by order and shape (archspec.lower.foreign_weights),
    saying on stderr which mapping it used."""
    from archspec.lower.foreign_weights import match_weights
    from archspec.train.checkpoint import read_checkpoint

    if not weights.is_file():
        raise ArchspecError(f"--weights {weights}: no such file")
    try:
        tensors = read_checkpoint(weights)[0]
    except ArchspecError as err:
        raise ArchspecError(f"--weights: {err}") from None
    try:
        matched = match_weights(module.state_dict(), tensors)
    except ArchspecError as err:
        raise ArchspecError(f"--weights {weights}: {err}; {WEIGHTS_HINT}") from None
    module.load_state_dict(matched.state)
    typer.echo(f"--weights {weights}: {matched.summary()}", err=True)


def _taps(module, content_layer: str, nodes: list[str]):
    from archspec.style.transfer import tap

    try:
        return tap(module, [content_layer, *nodes])
    except KeyError as err:
        raise ArchspecError(f"unknown node: {err.args[0]}") from None


# --- the optimisation and its cost curve -----------------------------------------------------------------
def _run(module, content, style, content_layer: str, nodes: list[str], settings: dict):
    """Optimise G (archspec.style.transfer) under a progress bar on stderr; return G and the curve:
    one (J, J_content, J_style) row for the image after 0, 1, ..., steps updates. Row k is what
    transfer measured before update k+1; the last row is the final image's."""
    import torch

    from archspec.style.transfer import cost_terms, targets, transfer

    content, style = content[None], style[None]
    tapped = _taps(module, content_layer, nodes)
    module.eval()  # as transfer runs it: dropout off, batch norm on its running statistics
    curve: list[tuple[float, float, float]] = []
    with _progress() as progress:
        task = progress.add_task("style transfer", total=settings["steps"], cost=float("nan"))

        def record(step: int, terms: tuple[float, float, float], image) -> None:
            curve.append(terms)
            progress.update(task, advance=1, cost=terms[0])

        try:
            image, _ = transfer(module, content, style, content_layer, nodes, settings["alpha"], settings["beta"],
                                settings["steps"], settings["lr"], settings["init"], record,
                                optimizer=settings["optimizer"], seed=settings["seed"])
        except ValueError as err:  # transfer's own checks of --init and --optimizer
            raise ArchspecError(str(err)) from None
    with torch.no_grad():
        goal = targets(tapped, content, style, content_layer, nodes)
        curve.append(tuple(float(term) for term in cost_terms(tapped, image, goal, settings["alpha"], settings["beta"])))
    return image[0], curve


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("J {task.fields[cost]:.4g}"), TimeRemainingColumn(), console=Console(stderr=True))


# --- outputs ----------------------------------------------------------------------------------------------
def write_outputs(out: Path, result) -> list[Path]:
    from archspec.files import write_atomic

    image, curve = result
    stem = out.with_name(out.stem + "_costs")
    rows = ["step,J,J_content,J_style"] + [f"{step},{j!r},{jc!r},{js!r}" for step, (j, jc, js) in enumerate(curve)]
    return [write_atomic(out, png_bytes(image)),
            write_atomic(stem.with_suffix(".csv"), "\n".join(rows) + "\n"),
            write_atomic(stem.with_suffix(".png"), _plot(curve))]


def _plot(curve) -> bytes:
    """J, J_content and J_style against the number of updates, log scale (they span decades)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    steps = range(len(curve))
    for column, label in enumerate(("J", "J_content", "J_style")):
        values = [row[column] for row in curve]
        axes.plot(steps, values, label=label)
    if all(value > 0 for row in curve for value in row):
        axes.set_yscale("log")
    axes.set_xlabel("updates")
    axes.set_ylabel("cost")
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
