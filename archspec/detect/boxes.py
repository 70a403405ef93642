"""Box formats, IoU and (per-class) non-max suppression, written in torch.

torchvision is not a runtime dependency, so these follow `torchvision.ops` (box_convert, box_iou,
nms, batched_nms) and are tested against it. Boxes are float tensors of shape (K, 4), either
`cxcywh` (centre x, centre y, width, height) or `xyxy` (left, top, right, bottom).
"""
import torch


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of each xyxy box, (K,)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every xyxy box in `boxes_a` (N) with every one in `boxes_b` (M): (N, M)."""
    top_left = torch.max(boxes_a[:, None, :2], boxes_b[None, :, :2])  # (N, M, 2)
    bottom_right = torch.min(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    overlap = (bottom_right - top_left).clamp(min=0)  # disjoint boxes overlap by 0, not a negative area
    intersection = overlap[..., 0] * overlap[..., 1]
    union = box_area(boxes_a)[:, None] + box_area(boxes_b)[None, :] - intersection
    return intersection / union


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
    order = torch.argsort(scores, descending=True)
    iou = box_iou(boxes[order], boxes[order])
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    kept = []
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        kept.append(rank)
        suppressed |= iou[rank] > iou_threshold
    return order[torch.tensor(kept, dtype=torch.long)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """Non-max suppression within each class separately (a car never suppresses a pedestrian).
    Returns kept indices by decreasing score, as `torchvision.ops.batched_nms` does."""
    kept = [torch.nonzero(labels == label).flatten() for label in torch.unique(labels)]
    kept = [members[nms(boxes[members], scores[members], iou_threshold)] for members in kept]
    kept = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.long)
    return kept[torch.argsort(scores[kept], descending=True)]
