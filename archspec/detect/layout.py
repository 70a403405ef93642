"""How a detection head's output grid reads, from the spec's `detection` key, and what training and
inference do with it: targets for a batch, slots of a prediction, and the detections of an image.

Every layout is brought to one form, slots: (N, S, S, slots, 5 + C), each slot
`[pc, bx, by, bh, bw, c1..cC]` (archspec.detect.targets). An anchor layout already is that form;
YOLO v1's (B boxes, then C class scores shared by the cell) copies the class scores into each of
its B slots, and its target has a single slot that the loss gives to the box predictor that
overlaps the object best (archspec.detect.loss.responsible).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from archspec.detect.boxes import batched_nms, clip_to_unit, cxcywh_to_xyxy
from archspec.detect.targets import decode, encode, grid_from_conv

SCORE_THRESHOLD = 0.05  # for mAP: low scores rank last and cost nothing (COCO keeps up to 100 per image)
IOU_THRESHOLD = 0.5  # non-max suppression within a class


@dataclass(frozen=True)
class GridLayout:
    grid_size: int
    num_classes: int
    anchors: tuple[tuple[float, float], ...] | None = None
    boxes: int = 1
    output: str = "output"  # the spec output holding the grid

    @property
    def slots(self) -> int:
        return len(self.anchors) if self.anchors else self.boxes

    @property
    def shares_classes(self) -> bool:
        """YOLO v1: several boxes per cell and one set of class scores."""
        return not self.anchors and self.boxes > 1

    @property
    def channels(self) -> int:
        if self.shares_classes:
            return 5 * self.boxes + self.num_classes
        return self.slots * (5 + self.num_classes)

    def describe(self) -> str:
        if self.shares_classes:
            return f"{self.boxes} boxes x 5 + {self.num_classes} shared class scores"
        return f"{self.slots} slot{'s' if self.slots > 1 else ''} x (5 + {self.num_classes})"

    def anchor_tensor(self) -> torch.Tensor | None:
        return torch.tensor(self.anchors, dtype=torch.float32) if self.anchors else None

    def as_slots(self, output: torch.Tensor) -> torch.Tensor:
        """A head's output (N, channels, S, S) as (N, S, S, slots, 5 + C)."""
        grid = grid_from_conv(output)
        n, s = grid.shape[0], self.grid_size
        if not self.shares_classes:
            return grid.reshape(n, s, s, self.slots, 5 + self.num_classes)
        boxes = grid[..., :5 * self.boxes].reshape(n, s, s, self.boxes, 5)
        classes = grid[..., None, 5 * self.boxes:].expand(n, s, s, self.boxes, self.num_classes)
        return torch.cat((boxes, classes), dim=-1)

    def target_slots(self) -> int:
        """Slots of a target: one per anchor; one per cell for YOLO v1 (the loss picks the box)."""
        return 1 if self.shares_classes else self.slots

    def targets(self, rows: torch.Tensor) -> torch.Tensor:
        """(N, S, S, target slots, 5 + C) targets from padded labels (N, K, 5) of rows
        [class, cx, cy, w, h] (class -1: padding)."""
        anchors = None if self.shares_classes else self.anchor_tensor()
        grids = []
        for image in rows.cpu():
            objects = image[image[:, 0] >= 0]
            grid = encode(objects[:, 1:], objects[:, 0].long(), self.grid_size, self.num_classes, anchors)
            grids.append(grid.reshape(self.grid_size, self.grid_size, self.target_slots(), -1))
        return torch.stack(grids).to(rows.device)

    def detections(self, output: torch.Tensor, score_threshold: float = SCORE_THRESHOLD,
                   iou_threshold: float = IOU_THRESHOLD) -> list[dict[str, torch.Tensor]]:
        """Per image of a head's output (N, channels, S, S): the boxes (xyxy, normalised to the
        image and clipped to it) whose pc reaches `score_threshold`, after non-max suppression within each class,
        by decreasing score; with their scores (pc) and labels."""
        slots = self.as_slots(output.detach().float().cpu())
        found = []
        for grid in slots:
            boxes, scores, labels = decode(grid.reshape(self.grid_size, self.grid_size, -1), self.num_classes,
                                           score_threshold)
            boxes = clip_to_unit(cxcywh_to_xyxy(boxes))
            keep = batched_nms(boxes, scores, labels, iou_threshold)
            found.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return found


def ground_truth(rows: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Per image of padded labels (N, K, 5): the boxes (xyxy, normalised) and labels."""
    truth = []
    for image in rows.cpu():
        objects = image[image[:, 0] >= 0]
        truth.append({"boxes": cxcywh_to_xyxy(objects[:, 1:]), "labels": objects[:, 0].long()})
    return truth


def layout_of(head, params: dict, outputs: dict[str, tuple[int, ...]], spec_name: str) -> GridLayout:
    """The layout a spec's `detection` key (archspec.spec.detection_head.DetectionHead) gives its
    output, checked against the output's shape (channels, S, S)."""
    from archspec.errors import ArchspecError

    if head is None:
        raise ArchspecError(f"{spec_name} has `task: detection` but no `detection:` key saying how its output "
                            "reads; add e.g. `detection: {classes: 3}` (see the README's detection section)")
    name = head.output or next(iter(outputs))
    if name not in outputs:
        raise ArchspecError(f"detection.output '{name}' is not an output of {spec_name} ({', '.join(outputs)})")
    counts = {}
    for key, value in head.counts().items():
        counts[key] = params.get(value) if isinstance(value, str) else value
        if isinstance(counts[key], bool) or not isinstance(counts[key], int) or counts[key] < 1:
            raise ArchspecError(f"detection.{key} names '{value}', which is not a positive whole-number parameter "
                                f"of {spec_name}")
    shape = outputs[name]
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ArchspecError(f"the detection output '{name}' of {spec_name} is {'x'.join(map(str, shape))}; "
                            "a grid head gives (channels, S, S)")
    anchors = tuple(tuple(anchor) for anchor in head.anchors) if head.anchors else None
    layout = GridLayout(shape[1], counts["classes"], anchors, counts["boxes"], name)
    if shape[0] != layout.channels:
        raise ArchspecError(f"the detection output '{name}' of {spec_name} has {shape[0]} channels; its "
                            f"`detection` key asks for {layout.describe()} = {layout.channels}")
    return layout
