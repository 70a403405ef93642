"""Detection building blocks: YOLO targets against the course's worked cases, the loss's pc masking
and IoU by hand. (Box conversion, IoU and NMS are torchvision.ops' own; per-class NMS of decoded
grids is checked against torchvision.ops.nms in test_detection_training.py.)"""
import pytest
import torch

from archspec.detect.boxes import box_iou, shape_iou
from archspec.detect.loss import yolo_loss
from archspec.detect.targets import decode, encode, grid_from_conv

def test_one_object_fills_its_midpoint_cell_in_the_3x3x8_toy():
    # A 90 x 90 image cut 3 x 3 (cells of 30 px). A car (class c2) centred at (45, 75) px, 36 wide
    # and 15 high: its midpoint is in column 1, row 2, at (15, 15) px from that cell's corner.
    box = torch.tensor([[45 / 90, 75 / 90, 36 / 90, 15 / 90]])
    target = encode(box, torch.tensor([1]), grid_size=3, num_classes=3)
    assert target.shape == (3, 3, 8)
    # y = [pc, bx, by, bh, bw, c1, c2, c3]: bx = by = 15/30, bh = 15/30, bw = 36/30
    torch.testing.assert_close(target[2, 1], torch.tensor([1, 0.5, 0.5, 0.5, 1.2, 0, 1, 0]))
    others = torch.ones(3, 3, dtype=torch.bool)
    others[2, 1] = False
    assert torch.all(target[others] == 0)  # no object: pc = 0 and the "?" entries left at 0


# Two anchors in cell units (w, h): anchor 1 tall (a pedestrian's shape), anchor 2 wide (a car's).
ANCHORS = torch.tensor([[0.5, 1.5], [1.5, 0.5]])


def test_anchor_chosen_by_shape_iou_worked_by_hand():
    # pedestrian 0.4 x 1.2 cells: with anchor 1, 0.48 / (0.48 + 0.75 - 0.48) = 0.64;
    # with anchor 2, (0.4 * 0.5) / (0.48 + 0.75 - 0.2) = 0.2 / 1.03
    iou = shape_iou(torch.tensor([[0.4, 1.2]]), ANCHORS)
    torch.testing.assert_close(iou, torch.tensor([[0.64, 0.2 / 1.03]]))


def test_one_object_with_two_anchors_goes_to_its_cell_and_anchor():
    # a car 1.2 x 0.45 cells centred in cell (row 0, column 2) of a 3 x 3 grid: anchor 2
    # (IoU 0.54 / 0.75 = 0.72 against 0.225 / 1.065 for anchor 1)
    box = torch.tensor([[2.5 / 3, 0.25 / 3, 1.2 / 3, 0.45 / 3]])
    target = encode(box, torch.tensor([1]), grid_size=3, num_classes=3, anchors=ANCHORS)
    assert target.shape == (3, 3, 16)
    assert torch.all(target[0, 2, :8] == 0)
    torch.testing.assert_close(target[0, 2, 8:], torch.tensor([1, 0.5, 0.25, 0.45, 1.2, 0, 1, 0]))
    assert target.abs().sum() == target[0, 2].abs().sum()


def test_two_objects_in_one_cell_go_to_two_anchors():
    # the course's picture: a pedestrian and a car with almost the same midpoint, in cell (1, 1)
    pedestrian = [1.5 / 3, 1.5 / 3, 0.4 / 3, 1.2 / 3]
    car = [1.55 / 3, 1.6 / 3, 1.2 / 3, 0.45 / 3]
    target = encode(torch.tensor([car, pedestrian]), torch.tensor([1, 0]), 3, 3, anchors=ANCHORS)
    upper, lower = target[1, 1, :8], target[1, 1, 8:]  # anchor 1 (tall), anchor 2 (wide)
    torch.testing.assert_close(upper, torch.tensor([1, 0.5, 0.5, 1.2, 0.4, 1, 0, 0]))
    torch.testing.assert_close(lower, torch.tensor([1, 0.55, 0.6, 0.45, 1.2, 0, 1, 0]))


def test_second_object_for_a_taken_slot_is_dropped():
    # the course's unhandled case (same cell, same anchor): the first object keeps the slot
    first, second = [0.5, 0.5, 0.2, 0.2], [0.45, 0.55, 0.25, 0.2]
    target = encode(torch.tensor([first, second]), torch.tensor([0, 2]), 3, 3)
    torch.testing.assert_close(target[1, 1], torch.tensor([1, 0.5, 0.5, 0.6, 0.6, 1, 0, 0]))


def test_midpoint_on_the_far_edge_stays_in_the_last_cell():
    target = encode(torch.tensor([[1.0, 1.0, 0.1, 0.1]]), torch.tensor([2]), 3, 3)
    assert target[2, 2, 0] == 1 and target[2, 2, 1] == 1 and target[2, 2, 2] == 1


def test_box_and_class_gradients_are_exactly_zero_where_pc_is_0():
    torch.manual_seed(0)
    target = encode(torch.tensor([[0.5, 0.5, 0.3, 0.2]]), torch.tensor([0]), 3, 3)[None]
    prediction = torch.randn(1, 3, 3, 8, requires_grad=True)
    yolo_loss(prediction, target, num_classes=3).backward()
    grad = prediction.grad[0]
    empty = target[0, ..., 0] == 0
    assert empty.sum() == 8
    assert torch.all(grad[empty][:, 1:] == 0)  # components 2-8 ignored
    assert torch.all(grad[empty][:, 0] != 0)  # pc still pushed towards 0 (lambda_noobj term)
    assert torch.all(grad[1, 1] != 0)  # the object's cell learns everything


def test_loss_worked_by_hand_on_one_cell():
    # one 1 x 1 grid, one class; target [1, 0.5, 0.5, 0.25, 1, 1], prediction [0.5, 0.5, 0, 1, 1, 0]
    target = torch.tensor([1, 0.5, 0.5, 0.25, 1, 1]).reshape(1, 1, 1, 6)
    prediction = torch.tensor([0.5, 0.5, 0, 1, 1, 0]).reshape(1, 1, 1, 6)
    # 5 * [0 + 0.5^2 + (1 - 0.5)^2 + 0] + (1 - 0.5)^2 + (1 - 0)^2 = 2.5 + 0.25 + 1
    loss = yolo_loss(prediction, target, num_classes=1)
    torch.testing.assert_close(loss, torch.tensor(3.75), atol=1e-5, rtol=0)


def test_iou_worked_by_hand():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0],    # overlap 1, union 4 + 4 - 1 = 7
                      [0.0, 0.0, 2.0, 1.0],    # inside: 2 / 4
                      [2.0, 0.0, 4.0, 2.0],    # touching edges: 0
                      [0.0, 0.0, 2.0, 2.0]])   # the same box: 1
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[1 / 7, 0.5, 0.0, 1.0]]))


def test_decode_inverts_encode():
    # one object per cell of a 4 x 4 grid, two anchors, so none is dropped
    generator = torch.Generator().manual_seed(2)
    cells = torch.randperm(16, generator=generator)[:6]
    offsets = torch.rand(6, 2, generator=generator)
    centres = (torch.stack((cells % 4, cells // 4), dim=1) + offsets) / 4
    sizes = torch.rand(6, 2, generator=generator) * 0.4 + 0.05
    boxes, labels = torch.cat((centres, sizes), dim=1), torch.randint(0, 3, (6,), generator=generator)
    anchors = torch.tensor([[0.5, 1.5], [1.5, 0.5]])
    grid = encode(boxes, labels, grid_size=4, num_classes=3, anchors=anchors)
    found, scores, found_labels = decode(grid, num_classes=3)
    order = torch.argsort(cells)  # cell index = row * 4 + column, the order decode walks in
    torch.testing.assert_close(found, boxes[order])
    assert torch.equal(found_labels, labels[order])
    assert torch.all(scores == 1)


def test_grid_from_conv_puts_channels_last():
    head = torch.arange(2 * 16 * 3 * 3, dtype=torch.float32).reshape(2, 16, 3, 3)
    grid = grid_from_conv(head)
    assert grid.shape == (2, 3, 3, 16)
    assert grid[1, 2, 0, 9] == head[1, 9, 2, 0]
