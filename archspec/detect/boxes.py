"""Box formats, IoU and (per-class) non-max suppression.

These come from `torchvision.ops` (box_convert, box_area, box_iou, nms, batched_nms), a runtime
dependency for exactly this; only `shape_iou`, the course's anchor matching, has no counterpart
there. Boxes are float tensors of shape (K, 4), either `cxcywh` (centre x, centre y, width,
height) or `xyxy` (left, top, right, bottom).
"""
import torch
from torchvision import ops


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    return ops.box_convert(boxes, "cxcywh", "xyxy")


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    return ops.box_convert(boxes, "xyxy", "cxcywh")


def clip_to_unit(boxes: torch.Tensor) -> torch.Tensor:
    """xyxy boxes normalised to an image, clipped to it (a box may reach past the edge)."""
    return ops.clip_boxes_to_image(boxes, (1, 1))


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of each xyxy box, (K,)."""
    return ops.box_area(boxes)


def box_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every xyxy box in `boxes_a` (N) with every one in `boxes_b` (M): (N, M)."""
    return ops.box_iou(boxes_a, boxes_b)


def shape_iou(sizes_a: torch.Tensor, sizes_b: torch.Tensor) -> torch.Tensor:
    """IoU of (w, h) shapes placed on a common centre, (N, M): how anchors are matched to objects."""
    overlap = torch.min(sizes_a[:, None, :], sizes_b[None, :, :])
    intersection = overlap[..., 0] * overlap[..., 1]
    area_a = sizes_a[:, 0] * sizes_a[:, 1]
    area_b = sizes_b[:, 0] * sizes_b[:, 1]
    return intersection / (area_a[:, None] + area_b[None, :] - intersection)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-max suppression over xyxy boxes: keep the most probable box, drop every box whose
    IoU with it is above `iou_threshold`, repeat. Returns kept indices by decreasing score."""
    return ops.nms(boxes, scores, iou_threshold)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """Non-max suppression within each class separately (a car never suppresses a pedestrian).
    Returns kept indices by decreasing score."""
    return ops.batched_nms(boxes, scores, labels, iou_threshold)
