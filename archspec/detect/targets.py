"""YOLO targets as the course gives them, and decoding a prediction grid back into boxes.

Layout. An image is cut into an S x S grid; each cell has A slots (one per anchor box, A = 1
without anchors) of `5 + C` values, in the course's order

    y = [pc, bx, by, bh, bw, c1, ..., cC]

so the target for one image is a tensor (S, S, A * (5 + C)), indexed [row, column, channel], with
slot `a` in channels `a * (5 + C) : (a + 1) * (5 + C)`. The course's toy is 3 x 3 x 8 (one slot,
three classes) and 3 x 3 x 16 with two anchors. A conv head gives (N, A * (5 + C), S, S): use
`grid_from_conv` to reach this layout.

Units. Boxes come in as (cx, cy, w, h) normalised to the image, as YOLO txt labels are. An object
belongs to the cell holding its midpoint; bx, by are the midpoint relative to that cell's top-left
corner, in cell units (0 <= bx, by <= 1); bh, bw are the height and width in cell units (they may
exceed 1). Anchors are (w, h) shapes in cell units. Slots with no object are all zero (the
course's "?" entries, which the loss ignores).
"""
import torch

from archspec.detect.boxes import shape_iou

PC, BX, BY, BH, BW = range(5)  # offsets within a slot; the class scores follow from 5 on


def slot_size(num_classes: int) -> int:
    return 5 + num_classes


def grid_from_conv(output: torch.Tensor) -> torch.Tensor:
    """(N, A * (5 + C), S, S) from a conv head -> (N, S, S, A * (5 + C)), the target layout."""
    return output.permute(0, 2, 3, 1)


def assign_anchors(sizes: torch.Tensor, anchors: torch.Tensor | None) -> torch.Tensor:
    """Each object's anchor: the one whose (w, h) shape, centred on the object, has the highest IoU."""
    if anchors is None:
        return torch.zeros(len(sizes), dtype=torch.long)
    return shape_iou(sizes, anchors).argmax(dim=1)


def encode(boxes: torch.Tensor, labels: torch.Tensor, grid_size: int, num_classes: int,
           anchors: torch.Tensor | None = None) -> torch.Tensor:
    """Target (S, S, A * (5 + C)) for one image's objects: `boxes` (K, 4) cxcywh normalised, `labels` (K,).

    When two objects land in the same cell and slot, the first keeps it and the later one is
    dropped: the course names this case and leaves the tie-break to the implementation."""
    num_anchors = 1 if anchors is None else len(anchors)
    size = slot_size(num_classes)
    target = torch.zeros(grid_size, grid_size, num_anchors, size)
    scaled = boxes * grid_size  # everything in cell units from here on
    columns = scaled[:, 0].floor().long().clamp(0, grid_size - 1)  # cx = 1 belongs to the last cell
    rows = scaled[:, 1].floor().long().clamp(0, grid_size - 1)
    slots = assign_anchors(scaled[:, 2:], anchors)
    for k in range(len(boxes)):
        cell = target[rows[k], columns[k], slots[k]]
        if cell[PC] == 1:
            continue
        cell[PC] = 1
        cell[BX] = scaled[k, 0] - columns[k]
        cell[BY] = scaled[k, 1] - rows[k]
        cell[BH] = scaled[k, 3]
        cell[BW] = scaled[k, 2]
        cell[5 + labels[k]] = 1
    return target.reshape(grid_size, grid_size, num_anchors * size)


def decode(grid: torch.Tensor, num_classes: int, score_threshold: float = 0.5):
    """Boxes in one image's grid (S, S, A * (5 + C)) whose pc is at least `score_threshold`.

    Returns (boxes (K, 4) cxcywh normalised to the image, scores = pc (K,), labels = the class with
    the highest score (K,)), ordered by row, column, then slot. Values are read as they are: YOLO v1
    regresses them directly, with no sigmoid or exponential."""
    grid_size = grid.shape[0]
    slots = grid.reshape(grid_size, grid_size, -1, slot_size(num_classes))
    rows, columns, anchors = torch.nonzero(slots[..., PC] >= score_threshold, as_tuple=True)
    found = slots[rows, columns, anchors]  # (K, 5 + C)
    cx = (columns + found[:, BX]) / grid_size
    cy = (rows + found[:, BY]) / grid_size
    # a size regressed below 0 (early in training) is a box of no extent, not an inside-out one
    sizes = found[:, [BW, BH]].clamp(min=0) / grid_size
    boxes = torch.stack((cx, cy, sizes[:, 0], sizes[:, 1]), dim=-1)
    return boxes, found[:, PC], found[:, 5:].argmax(dim=1)
