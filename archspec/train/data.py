"""Data sets for `archspec train/evaluate/bench`, all in memory as tensors.

`digits` (scikit-learn's 1,797 real 8x8 handwritten digits), `shapes` (generated segmentation
images with masks, numpy only), `fake` (random tensors, for throughput), an image folder
(`root/<class>/*.png|jpg`), an `.npz` file (arrays `x`, `y`), and the detection sets `boxes` and
a YOLO txt folder (archspec.train.detection_data). Every set is resized to the
spec's input (C, H, W) with `F.interpolate`; grey images are replicated to C channels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from archspec.errors import ArchspecError
from archspec.train import detection_data
from archspec.train.dataset import SPLIT_SEED, DataSet, normalise, split

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
DEVICE_DATA_LIMIT = 2 * 2**30  # bytes of a data set that may live on the GPU


def to_device(data: DataSet, device: torch.device) -> DataSet:
    """On a GPU, an in-memory data set of at most DEVICE_DATA_LIMIT moves there once, so no step
    waits for a host-to-device copy (the built-in sets take 20 MB to 1 GB); elsewhere, as it is."""
    tensors = (data.x_train, data.y_train, data.x_test, data.y_test)
    if device.type != "cuda" or sum(t.numel() * t.element_size() for t in tensors) > DEVICE_DATA_LIMIT:
        return data
    x_train, y_train, x_test, y_test = (t.to(device) for t in tensors)
    return replace(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def fit_images(x: torch.Tensor, shape: tuple[int, ...], mode: str = "bilinear") -> torch.Tensor:
    """(N, c, h, w) float -> (N, C, H, W): resize, replicate grey or average colour channels."""
    channels, height, width = shape
    if x.shape[-2:] != (height, width):
        kwargs = {"align_corners": False} if mode == "bilinear" else {}
        x = F.interpolate(x, size=(height, width), mode=mode, **kwargs)
    if x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1)
        elif channels == 1:
            x = x.mean(dim=1, keepdim=True)
        else:
            raise ArchspecError(f"the data has {x.shape[1]} channels and the spec's input {channels}")
    return x.contiguous()


def digits(shape: tuple[int, ...]) -> DataSet:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ArchspecError("--data digits needs scikit-learn: pip install scikit-learn") from None
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    labels = torch.tensor(bunch.target, dtype=torch.long)
    x = normalise(fit_images(images, shape))
    train, test = split(len(x))
    return DataSet("digits", "classification", x[train], labels[train], x[test], labels[test], 10,
                   default_augment=("crop",))


def shapes(shape: tuple[int, ...], count: int = 1200, seed: int = SPLIT_SEED) -> DataSet:
    """Circles, squares and triangles (1-3 per image) on noisy, shaded backgrounds; the mask marks
    every shape pixel (class 1) against the background (class 0)."""
    channels, height, width = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    images = np.empty((count, 3, height, width), np.float32)
    masks = np.zeros((count, height, width), np.int64)
    for i in range(count):
        base = rng.uniform(0.1, 0.6, size=3).astype(np.float32)
        gradient = rng.uniform(-0.2, 0.2) * (xx / width) + rng.uniform(-0.2, 0.2) * (yy / height)
        image = base[:, None, None] + gradient[None] + rng.normal(0, 0.08, (3, height, width)).astype(np.float32)
        mask = np.zeros((height, width), bool)
        for _ in range(rng.integers(1, 4)):
            kind = rng.integers(3)
            r = rng.uniform(0.08, 0.2) * min(height, width)
            cy, cx = rng.uniform(r, height - r), rng.uniform(r, width - r)
            if kind == 0:  # circle
                inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            elif kind == 1:  # square
                inside = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
            else:  # triangle pointing up
                top, bottom = cy - r, cy + r
                half = (yy - top) / (2 * r) * r
                inside = (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half)
            colour = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
            while np.abs(colour - base).max() < 0.35:  # keep shapes visible against the background
                colour = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
            image[:, inside] = colour[:, None] + rng.normal(0, 0.05, (3, int(inside.sum()))).astype(np.float32)
            mask |= inside
        images[i] = image
        masks[i] = mask
    x = normalise(fit_images(torch.from_numpy(np.clip(images, 0, 1)), shape))
    y = torch.from_numpy(masks)
    train, test = split(count)
    return DataSet("shapes", "segmentation", x[train], y[train], x[test], y[test], 2, ["background", "shape"],
                   default_augment=("flip",))


def fake(shape: tuple[int, ...], num_classes: int = 10, count: int = 512) -> DataSet:
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    x = torch.randn((count, *shape), generator=generator)
    y = torch.randint(0, num_classes, (count,), generator=generator)
    return DataSet("fake", "classification", x[: count * 4 // 5], y[: count * 4 // 5], x[count * 4 // 5:],
                   y[count * 4 // 5:], num_classes)


def image_folder(root: Path, shape: tuple[int, ...]) -> DataSet:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ArchspecError("image folders need Pillow: pip install pillow") from None
    if not root.is_dir():
        raise ArchspecError(f"data folder {root} does not exist")
    classes = _class_folders(root)
    if not classes:
        raise ArchspecError(f"data folder {root} has no class folders (expected {root}/<class>/*.png)")
    images, labels = [], []
    mode = "L" if shape[0] == 1 else "RGB"
    for label, folder in enumerate(classes):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ArchspecError(f"class folder {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for path in files:
            try:
                with Image.open(path) as image:
                    image = image.convert(mode).resize((shape[2], shape[1]))
                    array = np.asarray(image, dtype=np.float32) / 255.0
            except (UnidentifiedImageError, OSError, ValueError) as err:
                raise ArchspecError(f"cannot read image {path}: {err}") from None
            images.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
            labels.append(label)
    x = normalise(fit_images(torch.from_numpy(np.stack(images)), shape))
    y = torch.tensor(labels)
    train, test = split(len(x))
    return DataSet(root.name, "classification", x[train], y[train], x[test], y[test], len(classes),
                   [c.name for c in classes])


def npz(path: Path, shape: tuple[int, ...]) -> DataSet:
    if not path.is_file():
        raise ArchspecError(f"data file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays or "y" not in arrays:
                raise ArchspecError(f"{path}: needs arrays 'x' (images) and 'y' (labels or masks), has {', '.join(arrays.files)}")
            x_np, y_np = arrays["x"], arrays["y"]
    except ArchspecError:
        raise
    except Exception as err:  # a corrupt or non-npz file
        raise ArchspecError(f"cannot read {path}: {err}") from None
    if x_np.ndim == 3:
        x_np = x_np[:, None]
    if x_np.ndim != 4:
        raise ArchspecError(f"{path}: 'x' must be (N, C, H, W) or (N, H, W), got shape {tuple(x_np.shape)}")
    if len(y_np) != len(x_np):
        raise ArchspecError(f"{path}: 'x' has {len(x_np)} samples and 'y' {len(y_np)}")
    if not np.issubdtype(y_np.dtype, np.integer):
        raise ArchspecError(f"{path}: 'y' must hold integer class ids, got {y_np.dtype}")
    x = torch.from_numpy(x_np.astype(np.float32))
    if x_np.dtype == np.uint8:
        x = x / 255.0
    x = fit_images(x, shape)
    y = torch.from_numpy(y_np.astype(np.int64))
    task = "segmentation" if y.ndim == 3 else "classification"
    if task == "segmentation" and y.shape[-2:] != shape[1:]:
        y = F.interpolate(y[:, None].float(), size=shape[1:], mode="nearest")[:, 0].long()
    train, test = split(len(x))
    return DataSet(path.stem, task, x[train], y[train], x[test], y[test], int(y.max()) + 1)


# --- what a data set takes, known before any of it is loaded ---------------------------------------------
DIGITS_COUNT = 1797  # scikit-learn's load_digits
SHAPES_COUNT = 1200
FAKE_COUNT = 512


@dataclass
class DataInfo:
    name: str
    count: int | None  # samples; None where that is only known after loading
    bytes: int  # about what loading takes at the spec's input size (the tensors and a working copy)
    num_classes: int | None  # None where it comes from the data or the spec

    @property
    def test_count(self) -> int | None:
        return None if self.count is None else max(1, int(round(self.count * 0.2)))

    @property
    def train_count(self) -> int | None:
        return None if self.count is None else self.count - (self.test_count or 0)


def data_classes(name: str) -> int | None:
    """The number of classes of a data set where it is known without loading it."""
    if name in ("digits", "shapes"):
        return 10 if name == "digits" else 2
    path = Path(name)
    if detection_data.is_boxes(name) or detection_data.is_yolo_folder(path):
        return footprint_of_detection(name)[2]
    try:
        if path.suffix != ".npz" and path.is_dir():
            return len(_class_folders(path)) or None
    except OSError:
        pass
    return None


def data_footprint(name: str, shape: tuple[int, ...]) -> DataInfo:
    """Samples, classes and about how many bytes `load_data(name, shape)` will allocate: images as
    float32 at the spec's input size, a working copy (resizing, normalising, splitting) and the labels."""
    pixels = int(np.prod(shape, dtype=object)) if shape else 0
    height, width = (shape[1], shape[2]) if len(shape) == 3 else (1, 1)
    per_sample = 2 * pixels * 4 + 8
    if name in ("digits", "fake"):
        count = DIGITS_COUNT if name == "digits" else FAKE_COUNT
        return DataInfo(name, count, count * per_sample, data_classes(name))
    if name == "shapes":  # generated at (3, H, W) float32 with int64 masks, then fitted
        generated = height * width * (3 * 4 + 8 + 8)
        return DataInfo(name, SHAPES_COUNT, SHAPES_COUNT * (per_sample + generated), 2)
    path = Path(name)
    if detection_data.is_boxes(name) or detection_data.is_yolo_folder(path):
        return DataInfo(path.name, *footprint_of_detection(name, shape))
    if path.suffix == ".npz":
        header = _npz_header(path, "x")
        if header is None:
            return DataInfo(path.stem, None, 0, None)
        source, itemsize = header
        count = source[0] if source else 0
        raw = int(np.prod(source[1:], dtype=object)) if len(source) > 1 else 1
        return DataInfo(path.stem, count, count * (per_sample + raw * (itemsize + 4)), None)
    try:
        if path.is_dir():
            classes = _class_folders(path)
            count = sum(1 for folder in classes for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            return DataInfo(path.name, count, count * (per_sample + pixels * 4), len(classes) or None)
    except OSError:
        pass  # an unreadable folder: `image_folder` says so when it loads
    return DataInfo(name, None, 0, None)


def footprint_of_detection(name: str, shape: tuple[int, ...] = (3, 1, 1)) -> tuple[int | None, int, int | None]:
    try:
        return detection_data.footprint(name, shape)
    except OSError:
        return None, 0, None  # an unreadable folder: loading it says so


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _npz_header(path: Path, key: str) -> tuple[tuple[int, ...], int] | None:
    """(shape, item size) of one array of an .npz from its header, without reading the array."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = reader(member)
    except Exception:  # not an npz, no such array, an odd header: `npz` reports it when it loads
        return None
    return tuple(int(d) for d in shape), int(dtype.itemsize)


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def check_fits_in_memory(info: DataInfo, shape: tuple[int, ...]) -> None:
    """Refuse, before allocating, a data set larger than this machine's memory (no --force helps)."""
    total = physical_memory()
    if total and info.bytes > total:
        from archspec.render.report import human_bytes

        raise ArchspecError(
            f"--data {info.name} at {'x'.join(map(str, shape))} ({info.count:,} samples) would take about "
            f"{human_bytes(info.bytes)}, more than this machine's {human_bytes(total)} of memory; use a smaller --input")


def load_data(name: str, shape: tuple[int, ...], num_classes: int | None = None) -> DataSet:
    if len(shape) != 3:
        raise ArchspecError(f"training needs image inputs (C, H, W); the spec's input is {shape}")
    check_fits_in_memory(data_footprint(name, shape), shape)
    if name == "digits":
        return digits(shape)
    if name == "shapes":
        return shapes(shape)
    if name == "fake":
        return fake(shape, num_classes or 10)
    path = Path(name)
    if detection_data.is_boxes(name):
        return detection_data.boxes_set(name, shape)
    if detection_data.is_yolo_folder(path):
        return detection_data.yolo_folder_set(path, shape, num_classes)
    if path.suffix == ".npz":
        return npz(path, shape)
    if path.exists() and path.is_dir():
        return image_folder(path, shape)
    raise ArchspecError(f"--data {name}: not digits, shapes, fake, boxes, an .npz file, an image folder or a YOLO folder "
                        f"({'no such path' if not path.exists() else 'not a folder'})")


# --- augmentation: random parameters drawn for the whole global batch ----------------------------------
AUGMENTS = ("crop", "flip", "colour")


def parse_augment(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if text is None or text == "default":
        return default
    if text in ("none", "off", ""):
        return ()
    names = tuple(t.strip().replace("color", "colour") for t in text.split(","))
    for n in names:
        if n not in AUGMENTS:
            raise ArchspecError(f"--augment: unknown '{n}' (use {', '.join(AUGMENTS)}, none or default)")
    return names


def augment(x: torch.Tensor, y: torch.Tensor, names: tuple[str, ...], generator: torch.Generator,
            global_batch: int, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crop (pad 2, shift), horizontal flip and colour shift. The random numbers are drawn
    for every position of the global batch and this rank takes positions rank::world, so a DDP run
    augments exactly as a single process does."""
    if not names:
        return x, y
    n = x.shape[0]
    shifts = torch.randint(-2, 3, (global_batch, 2), generator=generator)[rank::world][:n]
    # drawn on the CPU (the same numbers on every device), used where the batch is
    flips = (torch.rand(global_batch, generator=generator) < 0.5)[rank::world][:n].to(x.device)
    colour = ((torch.rand(global_batch, x.shape[1], generator=generator) - 0.5)[rank::world][:n] * 0.4).to(x.device)
    segmentation = y.ndim == 3
    if "crop" in names:
        x = x.clone()
        y = y.clone() if segmentation else y
        for i in range(n):
            dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
            x[i] = torch.roll(x[i], (dy, dx), dims=(1, 2))
            if segmentation:
                y[i] = torch.roll(y[i], (dy, dx), dims=(0, 1))
    if "flip" in names:
        x = torch.where(flips[:, None, None, None], x.flip(-1), x)
        if segmentation:
            y = torch.where(flips[:, None, None], y.flip(-1), y)
    if "colour" in names:
        x = x + colour[:, :, None, None]
    return x, y
