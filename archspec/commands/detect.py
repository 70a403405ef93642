"""`archspec detect SPEC --weights RUN IMAGE...`: a trained detector's boxes on images, printed as
JSON and drawn on each image as a PNG."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Optional

import typer

from archspec.commands.common import InputOption, SetOption, handles_errors, spec_file
from archspec.errors import ArchspecError

MAX_IMAGES = 1000  # one command's images


@handles_errors
def command(
    spec: Path = typer.Argument(..., help="The detection spec."),
    images: List[Path] = typer.Argument(..., help="Images (PNG or JPEG)."),
    weights: Path = typer.Option(..., "--weights", help="A run folder or its checkpoint."),
    out: Path = typer.Option(Path("detections"), "--out", help="Folder for the images with their boxes drawn."),
    score: float = typer.Option(0.5, "--score", help="The pc a box needs to be reported."),
    iou: float = typer.Option(0.5, "--iou", help="Non-max suppression: within a class, a box overlapping a likelier one by more is dropped."),
    sets: Optional[List[str]] = SetOption,
    inputs: Optional[List[str]] = InputOption,
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
) -> None:
    """Detect objects: one JSON record per image (boxes in its own pixels, xyxy), and OUT/<image>.png."""
    for name, value in (("--score", score), ("--iou", iou)):
        if not 0.0 <= value <= 1.0:  # also refuses nan
            raise ArchspecError(f"{name} must be between 0 and 1, not {value}")
    if len(images) > MAX_IMAGES:
        raise ArchspecError(f"{len(images):,} images in one command; the limit is {MAX_IMAGES:,}")
    records = detect(spec, weights, images, out, score, iou, sets, inputs, device)
    # one line per number list: a box reads as [x1, y1, x2, y2]
    text = re.sub(r"\[\s+([-0-9.,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]",
                  json.dumps(records, indent=1))
    typer.echo(text)


def detect(spec: Path, weights: Path, images: list[Path], out: Path, score: float, iou: float, sets, inputs,
           device: str) -> list[dict]:
    import torch

    from archspec.commands.train import checkpoint_plan, trained_model
    from archspec.detect.draw import draw, png_bytes, to_pil
    from archspec.files import write_atomic
    from archspec.train.boxes_data import read_image
    from archspec.train.checkpoint import build_metadata, weights_path
    from archspec.train.dataset import normalise
    from archspec.train.runtime import Dist, Runtime, pick_device
    from archspec.train.setup import plan

    spec_plan, checkpoint = checkpoint_plan(weights, sets, inputs, lambda params, shapes: plan(spec_file(spec), params, shapes))
    if spec_plan.task != "detection":
        raise ArchspecError(f"{spec_plan.name} is a {spec_plan.task} spec; detect needs `task: detection`")
    layout = spec_plan.detection
    names = build_metadata(checkpoint[1], weights_path(weights))["class_names"]
    names = names if len(names) == layout.num_classes else [str(i) for i in range(layout.num_classes)]
    channels, height, width = next(iter(spec_plan.shapes.values()))
    model = trained_model(spec_plan, weights, checkpoint).eval()
    runtime = Runtime(pick_device(device, Dist()))
    model.to(runtime.device)
    records = []
    for path in images:
        original = torch.from_numpy(read_image(path, None))
        x = normalise(torch.from_numpy(read_image(path, (height, width))))[None]
        with torch.no_grad():
            output = as_output(model(**{spec_plan.input_names[0]: runtime.to(x)}), layout.output)
        found = layout.detections(output, score, iou)[0]
        scale = torch.tensor([original.shape[2], original.shape[1]] * 2, dtype=torch.float32)
        boxes = found["boxes"] * scale
        target = write_atomic(out / f"{path.stem}.png", png_bytes(draw(to_pil(original), boxes, found["labels"],
                                                                       names, found["scores"])))
        records.append({"image": str(path), "width": int(original.shape[2]), "height": int(original.shape[1]),
                        "drawn": str(target), "detections": [
                            {"class": names[label], "label": label, "score": round(float(s), 4),
                             "box": [round(float(v), 1) for v in box]}
                            for box, label, s in zip(boxes, found["labels"].tolist(), found["scores"])]})
    return records


def as_output(result, name: str):
    return result[name] if isinstance(result, dict) else result
