"""Detections drawn on their images (Pillow): `archspec detect`'s PNGs and a training run's sheet
of sample test predictions (predictions.png, shown in the run's report.html)."""
from __future__ import annotations

import io

import torch

# matplotlib's tab10, one colour a class (cycling past ten)
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
TRUTH_COLOUR = "#ffffff"
SHEET_TILE = 200  # pixels a side of each image on the sheet
SHEET_COLUMNS = 4


def to_pil(image: torch.Tensor):
    """A (3, H, W) image with values in [0, 1] as a Pillow RGB image."""
    from PIL import Image

    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")


def draw(picture, boxes: torch.Tensor, labels: torch.Tensor, class_names: list[str],
         scores: torch.Tensor | None = None, truth: torch.Tensor | None = None):
    """`picture` (Pillow) with each box (xyxy, in its pixels) outlined in its class's colour and
    labelled with the class and score; ground-truth boxes, where given, thinly in white."""
    from PIL import ImageDraw

    pen = ImageDraw.Draw(picture)
    width = max(1, round(min(picture.size) / 100))
    for box in (truth if truth is not None else ()):
        pen.rectangle([float(v) for v in box], outline=TRUTH_COLOUR, width=1)
    for k, (box, label) in enumerate(zip(boxes.tolist(), labels.tolist())):
        colour = COLOURS[label % len(COLOURS)]
        pen.rectangle(box, outline=colour, width=width)
        name = class_names[label] if label < len(class_names) else str(label)
        text = name if scores is None else f"{name} {float(scores[k]):.2f}"
        left, top = box[0], max(0.0, box[1] - 11)
        pen.rectangle(pen.textbbox((left, top), text), fill=colour)
        pen.text((left, top), text, fill="#ffffff")
    return picture


def png_bytes(picture) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def sheet(images: torch.Tensor, found: list[dict[str, torch.Tensor]], truth: list[dict[str, torch.Tensor]],
          class_names: list[str]) -> bytes:
    """A PNG of images (N, 3, H, W) in [0, 1], each scaled to SHEET_TILE a side, with its
    detections and ground truth (boxes normalised to the image)."""
    from PIL import Image

    rows = -(-len(images) // SHEET_COLUMNS)
    canvas = Image.new("RGB", (SHEET_COLUMNS * SHEET_TILE, rows * SHEET_TILE), "#202020")
    scale = torch.tensor([SHEET_TILE] * 4, dtype=torch.float32)
    for i, image in enumerate(images):
        tile = to_pil(image).resize((SHEET_TILE, SHEET_TILE))
        draw(tile, found[i]["boxes"] * scale, found[i]["labels"], class_names, found[i]["scores"],
             truth[i]["boxes"] * scale)
        canvas.paste(tile, ((i % SHEET_COLUMNS) * SHEET_TILE, (i // SHEET_COLUMNS) * SHEET_TILE))
    return png_bytes(canvas)
