"""YOLO v1's sum-squared-error loss on the course's targets (Redmon et al. 2016, eq. 3).

Over every slot of every cell, with obj the slots whose target pc is 1:

    lambda_coord * sum_obj [(bx - bx^)^2 + (by - by^)^2 + (sqrt bh - sqrt bh^)^2 + (sqrt bw - sqrt bw^)^2]
  + sum_obj (pc - pc^)^2  +  lambda_noobj * sum_noobj (pc - pc^)^2
  + sum_obj sum_c (c - c^)^2

summed, then divided by the batch size. As the course says, components 2-8 (box and classes) are
ignored where pc = 0: they are taken only from the obj slots, so their gradient there is exactly 0.
Variants, documented: the confidence target is pc itself (v1 uses the IoU of the predicted box),
and class scores live in every slot (the course's anchor layout) rather than once per cell. A
predicted size may go negative early in training, so its root is taken as sign(x) sqrt(|x| + eps).
"""
import torch

from archspec.detect.boxes import box_iou, cxcywh_to_xyxy
from archspec.detect.targets import BH, BW, BX, BY, PC, slot_size

LAMBDA_COORD = 5.0
LAMBDA_NOOBJ = 0.5
ROOT_EPS = 1e-6  # keeps the root's gradient finite at 0


def signed_root(values: torch.Tensor) -> torch.Tensor:
    return torch.sign(values) * torch.sqrt(values.abs() + ROOT_EPS)


def responsible(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """YOLO v1's assignment: each object (the one slot of a cell's target, (N, S, S, 1, 5 + C)) goes
    to the one of the cell's B predicted boxes (N, S, S, B, 5 + C) whose box overlaps it best
    (IoU in the cell's frame); the cell's other boxes are trained towards pc = 0."""
    boxes = prediction.shape[-2]
    assigned = torch.zeros(*target.shape[:3], boxes, target.shape[-1], dtype=target.dtype, device=target.device)
    cells = torch.nonzero(target[..., 0, PC] == 1, as_tuple=True)
    if not len(cells[0]):
        return assigned
    with torch.no_grad():  # the choice is made, not learned
        wanted = target[cells][:, 0]  # (K, 5 + C)
        predicted = prediction[cells].float()  # (K, B, 5 + C)

        def frame(values: torch.Tensor) -> torch.Tensor:  # (.., [bx, by, bh, bw]) -> xyxy in cell units
            sizes = torch.stack((values[..., BW], values[..., BH]), dim=-1).clamp(min=0)
            return cxcywh_to_xyxy(torch.cat((values[..., BX:BY + 1], sizes), dim=-1))

        overlaps = box_iou(frame(predicted).reshape(-1, 4), frame(wanted))  # (K * B, K)
        k = torch.arange(len(wanted), device=target.device)
        best = overlaps.reshape(len(wanted), boxes, len(wanted))[k, :, k].argmax(dim=1)
    assigned[cells + (best,)] = wanted
    return assigned


def yolo_loss(prediction: torch.Tensor, target: torch.Tensor, num_classes: int,
              lambda_coord: float = LAMBDA_COORD, lambda_noobj: float = LAMBDA_NOOBJ) -> torch.Tensor:
    """Loss of a prediction against targets in the layout of `targets`: (N, S, S, A * (5 + C)), or
    slots (N, S, S, A, 5 + C) as archspec.detect.layout gives them."""
    size = slot_size(num_classes)
    predicted = prediction.reshape(-1, size)
    wanted = target.reshape(-1, size)
    has_object = wanted[:, PC] == 1
    obj_pred, obj_want = predicted[has_object], wanted[has_object]  # indexing: no gradient elsewhere
    centre = ((obj_pred[:, BX:BX + 2] - obj_want[:, BX:BX + 2]) ** 2).sum()
    sizes = ((signed_root(obj_pred[:, BX + 2:5]) - torch.sqrt(obj_want[:, BX + 2:5])) ** 2).sum()
    classes = ((obj_pred[:, 5:] - obj_want[:, 5:]) ** 2).sum()
    confidence = ((obj_pred[:, PC] - obj_want[:, PC]) ** 2).sum()
    no_object = (predicted[~has_object, PC] ** 2).sum()  # target pc is 0 there
    total = lambda_coord * (centre + sizes) + confidence + lambda_noobj * no_object + classes
    return total / prediction.shape[0]
