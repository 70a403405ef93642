"""The `boxes` detection data: generated images whose boxes are checked against their own pixels,
and YOLO txt folders read back, with one located error for each kind of bad input."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from archspec.errors import ArchspecError, SpecError  # noqa: E402
from archspec.train.boxes_data import make_boxes, read_yolo_folder  # noqa: E402

SIZE = 48


@pytest.fixture(scope="module")
def generated():
    return make_boxes(60, SIZE, seed=7)


def _pixel_edges(row: torch.Tensor, height: int, width: int) -> tuple[int, int, int, int]:
    """The box as pixel edges (x0, y0, x1, y1), x1/y1 exclusive; generated boxes lie on pixel edges."""
    _, cx, cy, w, h = row.tolist()
    edges = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
    assert all(abs(e - round(e)) < 1e-4 for e in edges), edges
    return tuple(int(round(e)) for e in edges)


def _colour_mask(image: torch.Tensor, y: int, x: int) -> torch.Tensor:
    """Every pixel of the image with the colour found at (y, x)."""
    return (image == image[:, y, x][:, None, None]).all(dim=0)


def _extent(mask: torch.Tensor) -> tuple[int, int, int, int]:
    rows, cols = torch.nonzero(mask.any(dim=1)).flatten(), torch.nonzero(mask.any(dim=0)).flatten()
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def test_same_seed_same_data_other_seed_other_data(generated):
    images, boxes = generated
    again_images, again_boxes = make_boxes(60, SIZE, seed=7)
    assert torch.equal(images, again_images)
    assert all(torch.equal(a, b) for a, b in zip(boxes, again_boxes))
    other_images, _ = make_boxes(60, SIZE, seed=8)
    assert not torch.equal(images, other_images)


def test_structure_classes_and_counts(generated):
    images, boxes = generated
    assert images.shape == (60, 3, SIZE, SIZE) and images.dtype == torch.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert len(boxes) == 60
    counts = [len(b) for b in boxes]
    assert min(counts) >= 1 and max(counts) <= 3 and len(set(counts)) > 1  # several objects per image
    classes = torch.cat(boxes)[:, 0]
    assert set(classes.tolist()) == {0.0, 1.0, 2.0}  # all three kinds occur in 60 images


def test_every_box_is_tight_around_its_own_pixels(generated):
    """The object's mask is every pixel with the colour at its box centre (inside each of the three
    shapes); its pixel extent must be the box, exactly."""
    images, boxes = generated
    for image, rows in zip(images, boxes):
        shapes = torch.zeros(SIZE, SIZE, dtype=torch.bool)
        for row in rows:
            x0, y0, x1, y1 = _pixel_edges(row, SIZE, SIZE)
            mask = _colour_mask(image, (y0 + y1) // 2, (x0 + x1) // 2)
            assert _extent(mask) == (x0, y0, x1, y1)
            assert not (mask & shapes).any()  # no pixel belongs to two objects
            shapes |= mask
        background = ~shapes
        corner = torch.nonzero(background)[0]
        assert torch.equal(_colour_mask(image, int(corner[0]), int(corner[1])), background)


def test_single_object_box_is_the_extent_of_every_non_background_pixel(generated):
    images, boxes = generated
    singles = [(image, rows) for image, rows in zip(images, boxes) if len(rows) == 1]
    assert len(singles) >= 5
    for image, rows in singles:
        x0, y0, x1, y1 = _pixel_edges(rows[0], SIZE, SIZE)
        # a pixel just outside the box (the box never covers the whole image) is background
        outside = (0, 0) if (x0, y0) != (0, 0) else (SIZE - 1, SIZE - 1)
        shape_pixels = ~_colour_mask(image, *outside)
        assert _extent(shape_pixels) == (x0, y0, x1, y1)


def test_classes_mean_their_shapes(generated):
    """Fill of the box by the shape's pixels: a square fills it, a circle pi/4 of it, a triangle 1/2
    (pixel rounding moves the two curved cases by a few per cent at these sizes)."""
    images, boxes = generated
    expected = {0: math.pi / 4, 1: 1.0, 2: 0.5}
    for image, rows in zip(images, boxes):
        for row in rows:
            x0, y0, x1, y1 = _pixel_edges(row, SIZE, SIZE)
            mask = _colour_mask(image, (y0 + y1) // 2, (x0 + x1) // 2)
            fill = mask.sum().item() / ((x1 - x0) * (y1 - y0))
            assert fill == pytest.approx(expected[int(row[0])], abs=0.1)


def test_boxes_overlap_only_a_little(generated):
    from torchvision.ops import box_convert, box_iou

    _, boxes = generated
    overlapping = 0
    for rows in boxes:
        corners = box_convert(rows[:, 1:], "cxcywh", "xyxy")
        iou = box_iou(corners, corners).fill_diagonal_(0)
        assert iou.max() <= 0.15 + 1e-6
        overlapping += int((iou > 0).any())
    assert overlapping > 0  # a little overlap is allowed, and happens


def _write_folder(root: Path, images: torch.Tensor, boxes: list[torch.Tensor], skip_label: int | None = None):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i, (image, rows) in enumerate(zip(images, boxes)):
        pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"img{i:03d}.png")
        if i != skip_label:
            lines = [f"{int(r[0])} " + " ".join(f"{v:.9g}" for v in r[1:].tolist()) for r in rows]
            (root / "labels" / f"img{i:03d}.txt").write_text("\n".join(lines) + "\n")


def test_written_yolo_folder_reads_back_equal(tmp_path, generated):
    images, boxes = generated[0][:12], generated[1][:12]
    _write_folder(tmp_path, images, boxes, skip_label=3)
    read_images, read_boxes = read_yolo_folder(tmp_path)
    # PNG stores 8 bits a channel: what comes back is the image rounded to 1/255
    assert torch.equal(read_images, (images * 255).round() / 255)
    assert read_boxes[3].shape == (0, 5)  # the image without a label file has no objects
    for i, (got, want) in enumerate(zip(read_boxes, boxes)):
        if i != 3:
            assert torch.equal(got, want)


def test_yolo_folder_resizes_to_a_given_size(tmp_path, generated):
    _write_folder(tmp_path, generated[0][:2], generated[1][:2])
    read_images, read_boxes = read_yolo_folder(tmp_path, size=(32, 40))
    assert read_images.shape == (2, 3, 32, 40)
    assert torch.equal(read_boxes[0], generated[1][0])  # normalised boxes do not change


def _folder_with_label(tmp_path: Path, text: str) -> Path:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    (tmp_path / "labels" / "a.txt").write_text(text)
    return tmp_path / "labels" / "a.txt"


@pytest.mark.parametrize("text, line, column, words", [
    ("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2\n", 2, 1, "expected 5 values"),
    ("0 0.5 0.5 0.2 0.2\n\n2 0.5 1.5 0.2 0.2\n", 3, 7, "cy 1.5 is outside [0, 1]"),
    ("0 0.5 -0.1 0.2 0.2\n", 1, 7, "cy -0.1 is outside [0, 1]"),
    ("0 0.5 0.5 nan 0.2\n", 1, 11, "w nan is outside [0, 1]"),
    ("0 0.5 0.5 wide 0.2\n", 1, 11, "w 'wide' is not a number"),
    ("x 0.5 0.5 0.2 0.2\n", 1, 1, "class 'x'"),
    ("-1 0.5 0.5 0.2 0.2\n", 1, 1, "class '-1'"),
    ("0 0.5 0.5 0.2 0\n", 1, 15, "h is 0"),
])
def test_bad_label_line_is_one_located_error(tmp_path, text, line, column, words):
    label = _folder_with_label(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        read_yolo_folder(tmp_path)
    assert caught.value.loc.file == str(label)
    assert (caught.value.loc.line, caught.value.loc.column) == (line, column)
    assert words in caught.value.message
    assert str(caught.value).startswith(f"{label}:{line}:{column} ")


def test_class_beyond_the_known_classes_is_located(tmp_path):
    label = _folder_with_label(tmp_path, "0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n")
    with pytest.raises(SpecError, match="class 3 is not below the 3 classes") as caught:
        read_yolo_folder(tmp_path, num_classes=3)
    assert (caught.value.loc.file, caught.value.loc.line) == (str(label), 2)


def test_missing_images_folder(tmp_path):
    (tmp_path / "labels").mkdir()
    with pytest.raises(ArchspecError, match=r"has no images/ folder"):
        read_yolo_folder(tmp_path)


def test_label_without_an_image(tmp_path):
    _folder_with_label(tmp_path, "0 0.5 0.5 0.2 0.2\n")
    orphan = tmp_path / "labels" / "b.txt"
    orphan.write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(SpecError, match="label file has no image") as caught:
        read_yolo_folder(tmp_path)
    assert caught.value.loc.file == str(orphan)


def test_images_of_different_sizes_need_a_size(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "images" / "b.png")
    with pytest.raises(ArchspecError, match=r"b\.png is 20x30 .*pass a size"):
        read_yolo_folder(tmp_path)
    assert read_yolo_folder(tmp_path, size=24)[0].shape == (2, 3, 24, 24)


def test_oversized_label_file_and_too_many_objects_are_refused(tmp_path, monkeypatch):
    from archspec.train import boxes_data

    label = _folder_with_label(tmp_path, "0 0.5 0.5 0.2 0.2\n" * 5)
    monkeypatch.setattr(boxes_data, "MAX_OBJECTS", 4)
    with pytest.raises(SpecError, match="more than 4 objects") as caught:
        read_yolo_folder(tmp_path)
    assert caught.value.loc.line == 5
    monkeypatch.setattr(boxes_data, "MAX_LABEL_BYTES", 50)
    with pytest.raises(SpecError, match="cannot read the label file.*limit is 50 bytes") as caught:
        read_yolo_folder(tmp_path)
    assert caught.value.loc.file == str(label)


def test_absurd_generated_counts_and_sizes_are_refused():
    with pytest.raises(ArchspecError, match="more than the limit"):
        make_boxes(10**9, 32, seed=0)
    with pytest.raises(ArchspecError, match="bytes in memory"):
        make_boxes(90_000, 4096, seed=0)
    with pytest.raises(ArchspecError, match="image size"):
        make_boxes(1, 100_000, seed=0)
    with pytest.raises(ArchspecError, match="at least 1"):
        make_boxes(0, 32, seed=0)
