"""Detection data: the generated `boxes` set and a YOLO txt folder, both as images plus boxes.

Both give `(images, boxes)`: images a float tensor (N, 3, H, W) with values in [0, 1], boxes a
list of N tensors (k, 5), one row `[class, cx, cy, w, h]` per object, coordinates normalised to
the image (0 = left/top edge, 1 = right/bottom edge), which is the YOLO txt convention.

`make_boxes` draws filled circles (class 0), squares (1) and triangles (2) on a plain background,
each in its own colour. Shapes never share a pixel and their boxes overlap only a little, so every
box is exactly the extent of its shape's pixels: pixel columns x0..x1-1 give cx = (x0 + x1) / 2W
and w = (x1 - x0) / W. `read_yolo_folder` reads `images/` plus `labels/` (same stem, `.txt`).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from archspec.errors import ArchspecError, Location, SpecError
from archspec.spec.reading import read_bounded, read_bounded_text

CLASS_NAMES = ("circle", "square", "triangle")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

MAX_IMAGES = 100_000  # images in one generated set or folder
MAX_SIDE = 4096  # pixels of an image side
MAX_TOTAL_BYTES = 8 << 30  # float32 bytes of all images together
MAX_OBJECTS = 1_000  # objects in one image (a label file with more is not a label file)
MAX_LABEL_BYTES = 1 << 20  # one label file: 1,000 lines of ~40 bytes fit many times over
MAX_IMAGE_BYTES = 64 << 20  # one encoded image file
MAX_BOX_IOU = 0.15  # boxes of two shapes in one image may overlap this much, no more
_PLACEMENT_TRIES = 60
_MIN_SIDE = 16  # smaller images leave no room for a shape of a few pixels


def _box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two pixel boxes (x0, y0, x1, y1), x1 and y1 exclusive."""
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _shape_mask(kind: int, cy: float, cx: float, r: float, height: int, width: int) -> np.ndarray:
    """Pixels whose centre lies inside the shape (a circle, square or upward triangle of radius r)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    if kind == 0:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    if kind == 1:
        return (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
    top = cy - r
    return (yy >= top) & (yy <= cy + r) & (np.abs(xx - cx) <= (yy - top) / 2)


def _pixel_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _distinct_colour(rng: np.random.Generator, taken: list[np.ndarray]) -> np.ndarray:
    """A colour at least 0.3 away (in its largest channel) from the background and every shape so
    far; a uniform draw finds one in a few tries for the handful of colours an image has."""
    while True:
        colour = rng.uniform(0.0, 1.0, size=3)
        if all(np.abs(colour - other).max() >= 0.3 for other in taken):
            return colour


def _place(rng: np.random.Generator, kind: int, height: int, width: int, occupied: np.ndarray,
           boxes: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """A mask and pixel box for one shape that shares no pixel with `occupied` and whose box
    overlaps no earlier box by more than MAX_BOX_IOU; None when no try fits."""
    for _ in range(_PLACEMENT_TRIES):
        r = rng.uniform(0.1, 0.22) * min(height, width)
        cy, cx = rng.uniform(r, height - r), rng.uniform(r, width - r)
        mask = _shape_mask(kind, cy, cx, r, height, width)
        if not mask.any() or (mask & occupied).any():
            continue
        box = _pixel_box(mask)
        if all(_box_iou(box, other) <= MAX_BOX_IOU for other in boxes):
            return mask, box
    return None


def _scene(rng: np.random.Generator, height: int, width: int, max_objects: int) -> tuple[np.ndarray, list]:
    """One image (3, H, W) and its rows [class, cx, cy, w, h]."""
    background = rng.uniform(0.0, 1.0, size=3)
    image = np.broadcast_to(background[:, None, None], (3, height, width)).copy()
    occupied = np.zeros((height, width), bool)
    colours, pixel_boxes, rows = [background], [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        kind = int(rng.integers(len(CLASS_NAMES)))
        placed = _place(rng, kind, height, width, occupied, pixel_boxes)
        if placed is None:
            continue  # the image is full enough; it keeps the shapes it has
        mask, (x0, y0, x1, y1) = placed
        colour = _distinct_colour(rng, colours)
        image[:, mask] = colour[:, None]
        occupied |= mask
        colours.append(colour)
        pixel_boxes.append((x0, y0, x1, y1))
        rows.append([kind, (x0 + x1) / (2 * width), (y0 + y1) / (2 * height), (x1 - x0) / width,
                     (y1 - y0) / height])
    return image, rows


def _check_count(count: int, height: int, width: int, what: str) -> None:
    if count > MAX_IMAGES:
        raise ArchspecError(f"{what}: {count:,} images is more than the limit of {MAX_IMAGES:,}")
    total = count * 3 * height * width * 4
    if total > MAX_TOTAL_BYTES:
        raise ArchspecError(f"{what}: {count:,} images of {height}x{width} need {total:,} bytes in memory; "
                            f"the limit is {MAX_TOTAL_BYTES:,}")


def _image_size(size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if not (_MIN_SIDE <= height <= MAX_SIDE and _MIN_SIDE <= width <= MAX_SIDE):
        raise ArchspecError(f"boxes: image size {height}x{width} is outside {_MIN_SIDE}..{MAX_SIDE} a side")
    return height, width


def make_boxes(count: int, size: int | tuple[int, int], seed: int,
               max_objects: int = 3) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """`count` generated images of `size` (H = W, or (H, W)) with 1 to `max_objects` shapes each,
    the same for the same seed."""
    height, width = _image_size(size)
    if count < 1:
        raise ArchspecError(f"boxes: the count must be at least 1, not {count}")
    if not 1 <= max_objects <= 10:
        raise ArchspecError(f"boxes: max_objects must be 1..10, not {max_objects}")
    _check_count(count, height, width, "boxes")
    rng = np.random.default_rng(seed)
    images = np.empty((count, 3, height, width), np.float32)
    boxes = []
    for i in range(count):
        image, rows = _scene(rng, height, width, max_objects)
        images[i] = image
        boxes.append(torch.tensor(rows, dtype=torch.float32).reshape(-1, 5))
    return torch.from_numpy(images), boxes


def _parse_number(token: str, loc: Location, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise SpecError(f"{what} '{token}' is not a number", loc) from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise SpecError(f"{what} {token} is outside [0, 1]", loc,
                        hint="YOLO labels are normalised by the image width and height")
    return value


def _parse_line(text: str, file: str, line: int, num_classes: int | None) -> list[float]:
    tokens, columns, column = text.split(), [], 0
    for token in tokens:  # the 1-based column of each token, so an error points at it
        column = text.index(token, column)
        columns.append(column + 1)
        column += len(token)
    if len(tokens) != 5:
        raise SpecError(f"expected 5 values 'class cx cy w h', found {len(tokens)}", Location(file, line, 1))
    loc = Location(file, line, columns[0])
    if not tokens[0].isdigit():
        raise SpecError(f"class '{tokens[0]}' is not a non-negative whole number", loc)
    label = int(tokens[0])
    if num_classes is not None and label >= num_classes:
        raise SpecError(f"class {label} is not below the {num_classes} classes", loc)
    values = [_parse_number(token, Location(file, line, col), name)
              for token, col, name in zip(tokens[1:], columns[1:], ("cx", "cy", "w", "h"))]
    for value, col, name in zip(values[2:], columns[3:], ("w", "h")):
        if value == 0.0:
            raise SpecError(f"{name} is 0: a box needs a positive width and height", Location(file, line, col))
    return [float(label), *values]


def read_labels(path: Path, num_classes: int | None = None) -> torch.Tensor:
    """The (k, 5) rows of one YOLO label file; blank lines are skipped."""
    file = str(path)
    try:
        text = read_bounded_text(path, MAX_LABEL_BYTES)
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read the label file: {err}", Location(file, 1, 1)) from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(rows) == MAX_OBJECTS:
            raise SpecError(f"more than {MAX_OBJECTS:,} objects in one image", Location(file, number, 1))
        rows.append(_parse_line(line, file, number, num_classes))
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)


def read_image(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """(3, H, W) float32 in [0, 1]; resized to `size` (H, W) when given."""
    from PIL import Image, ImageOps, UnidentifiedImageError  # Pillow comes with torchvision

    try:
        data = read_bounded(path, MAX_IMAGE_BYTES)
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size  # from the header: a huge image is refused before decoding
            if max(width, height) > MAX_SIDE:
                raise ArchspecError(f"image {path} is {width}x{height}; the limit is {MAX_SIDE} a side")
            # labelling tools draw on the image as shown, i.e. after its EXIF orientation
            image = ImageOps.exif_transpose(image).convert("RGB")
            if size is not None and (height, width) != size:
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            array = np.asarray(image, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise ArchspecError(f"cannot read image {path}: {err}") from None
    return array.transpose(2, 0, 1)


def _image_files(folder: Path) -> dict[str, Path]:
    """Image paths by stem, sorted by name; two images with one stem are refused (which label?)."""
    images: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in images:
            raise ArchspecError(f"images {images[path.stem]} and {path} share the stem '{path.stem}'; "
                                "a label file could belong to either")
        images[path.stem] = path
        if len(images) > MAX_IMAGES:
            raise ArchspecError(f"{folder} holds more than {MAX_IMAGES:,} images")
    return images


def _label_files(folder: Path, images: dict[str, Path]) -> dict[str, Path]:
    labels: dict[str, Path] = {}
    if not folder.is_dir():
        return labels  # no labels/ at all: every image has no objects
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() != ".txt" or path.name.lower() == "classes.txt":
            continue  # classes.txt is the class-name list some tools write next to the labels
        if path.stem not in images:
            raise SpecError(f"label file has no image (looked for {path.stem}{{{','.join(IMAGE_SUFFIXES)}}} "
                            f"in {folder.parent / 'images'})", Location(str(path), 1, 1))
        labels[path.stem] = path
    return labels


def read_yolo_folder(path: str | os.PathLike, size: int | tuple[int, int] | None = None,
                     num_classes: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Images of `path/images/` in name order with the boxes of `path/labels/<stem>.txt`.

    Every image must have one size unless `size` (H = W, or (H, W)) is given, which resizes them;
    normalised boxes stay valid under a resize. An image without a label file has no objects."""
    root = Path(path)
    image_folder = root / "images"
    if not image_folder.is_dir():
        raise ArchspecError(f"{root} has no images/ folder (expected {image_folder}/*.png and {root / 'labels'}/*.txt)")
    images = _image_files(image_folder)
    if not images:
        raise ArchspecError(f"{image_folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    labels = _label_files(root / "labels", images)
    target = _image_size(size) if size is not None else None
    arrays, boxes = [], []
    for stem, image_path in images.items():
        array = read_image(image_path, target)
        if arrays and array.shape != arrays[0].shape:
            raise ArchspecError(f"image {image_path} is {array.shape[1]}x{array.shape[2]} (HxW), the first "
                                f"{arrays[0].shape[1]}x{arrays[0].shape[2]}; pass a size to resize them all")
        if not arrays:
            _check_count(len(images), array.shape[1], array.shape[2], str(root))
        arrays.append(array)
        label = labels.get(stem)
        boxes.append(read_labels(label, num_classes) if label else torch.zeros((0, 5)))
    return torch.from_numpy(np.stack(arrays)), boxes
