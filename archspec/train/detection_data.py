"""The detection data sets of `archspec train/evaluate`: the generated `boxes` set (`boxes` or
`boxes:COUNT`) and a YOLO txt folder (`images/` plus `labels/`), as DataSets.

Their labels are padded tensors (N, K, 5) of rows [class, cx, cy, w, h] normalised to the image
(archspec.train.boxes_data), with class -1 on the padding rows, so that a batch of them is
indexed like any other labels. Images are resized to the spec's input and normalised to [-1, 1].
"""
from __future__ import annotations

from pathlib import Path

import torch

from archspec.errors import ArchspecError
from archspec.spec.reading import read_bounded_text
from archspec.train.boxes_data import CLASS_NAMES, MAX_IMAGES, make_boxes, read_yolo_folder
from archspec.train.dataset import SPLIT_SEED, DataSet, normalise, split

BOXES = "boxes"
BOXES_COUNT = 2000  # generated images, unless fewer fit BOXES_BUDGET
BOXES_BUDGET = 1 << 30  # float32 bytes of generated images: at 448x448 about 450 fit
MIN_BOXES = 10  # fewer leaves no test images to speak of
CLASSES_FILE = "classes.txt"  # the class names, one a line, that labelling tools write


def is_boxes(name: str) -> bool:
    return name == BOXES or name.startswith(BOXES + ":")


def is_yolo_folder(path: Path) -> bool:
    try:
        return (path / "images").is_dir()
    except OSError:
        return False


def boxes_count(name: str, shape: tuple[int, ...]) -> int:
    """How many images `boxes` (BOXES_COUNT, or fewer at large sizes) or `boxes:COUNT` generates."""
    if name == BOXES:
        per_image = 4 * max(1, shape[0]) * shape[1] * shape[2]
        return max(MIN_BOXES, min(BOXES_COUNT, BOXES_BUDGET // per_image))
    text = name[len(BOXES) + 1:]
    if not text.isdigit() or not MIN_BOXES <= int(text) <= MAX_IMAGES:
        raise ArchspecError(f"--data {name}: the count after 'boxes:' is a whole number from {MIN_BOXES} to "
                            f"{MAX_IMAGES:,}")
    return int(text)


def padded(boxes: list[torch.Tensor]) -> torch.Tensor:
    """Per-image (k, 5) rows as one (N, K, 5) tensor, K the most objects in an image, class -1 padding."""
    most = max([len(b) for b in boxes] + [1])
    rows = torch.full((len(boxes), most, 5), -1.0)
    for i, image in enumerate(boxes):
        rows[i, :len(image)] = image
    return rows


def _as_data_set(name: str, images: torch.Tensor, boxes: list[torch.Tensor], class_names: list[str]) -> DataSet:
    train, test = split(len(images))
    rows = padded(boxes)
    x = normalise(images)
    return DataSet(name, "detection", x[train], rows[train], x[test], rows[test], len(class_names),
                   class_names=class_names)


def boxes_set(name: str, shape: tuple[int, ...]) -> DataSet:
    """Circles, squares and triangles, 1 to 3 an image, at the spec's input size."""
    if shape[0] != 3:
        raise ArchspecError(f"--data boxes has colour images (3 channels); the spec's input is {shape}")
    images, boxes = make_boxes(boxes_count(name, shape), (shape[1], shape[2]), seed=SPLIT_SEED)
    return _as_data_set(BOXES, images, boxes, list(CLASS_NAMES))


def class_names_of(root: Path) -> list[str] | None:
    """The names in labels/classes.txt (or classes.txt beside images/), where there is one."""
    for candidate in (root / "labels" / CLASSES_FILE, root / CLASSES_FILE):
        if candidate.is_file():
            names = [line.strip() for line in read_bounded_text(candidate, 1 << 20).splitlines() if line.strip()]
            return names or None
    return None


def yolo_folder_set(root: Path, shape: tuple[int, ...], num_classes: int | None = None) -> DataSet:
    """A YOLO txt folder resized to the spec's input; the classes are classes.txt's names, else
    the spec's count (a label at or above it is an error), else 0..the largest label."""
    if shape[0] != 3:
        raise ArchspecError(f"--data {root}: its images are read as colour (3 channels); the spec's input is {shape}")
    names = class_names_of(root)
    count = len(names) if names else num_classes
    images, boxes = read_yolo_folder(root, size=(shape[1], shape[2]), num_classes=count)
    if len(images) < 2:
        raise ArchspecError(f"--data {root}: {len(images)} image; a train/test split needs at least 2")
    if names is None:
        largest = max((int(b[:, 0].max()) for b in boxes if len(b)), default=0)
        names = [str(i) for i in range(count or largest + 1)]
    return _as_data_set(root.name, images, boxes, names)


def footprint(name: str, shape: tuple[int, ...]) -> tuple[int | None, int, int | None]:
    """(images, bytes, classes) of a detection set before loading: images as float32 at the
    spec's input size, a working copy, and the generated or decoded originals."""
    pixels = 3 * shape[1] * shape[2] if len(shape) == 3 else 0
    if is_boxes(name):
        count = boxes_count(name, shape)
        return count, count * pixels * 4 * 3, len(CLASS_NAMES)
    root = Path(name)
    images = [p for p in (root / "images").iterdir()]
    names = class_names_of(root)
    return len(images), len(images) * pixels * 4 * 3, len(names) if names else None
