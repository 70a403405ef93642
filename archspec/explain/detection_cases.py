"""The course's detection and style-transfer worked examples (`explain --case iou`, `yolo-target`,
`nms`, `style-cost`).

The inputs (boxes, scores, activations) are the example's; every number computed from them comes
from the library's own code (archspec.detect.boxes, archspec.detect.targets, archspec.style.costs),
so the text shows what training and detection compute. torch is imported inside the functions, as
everywhere in explain/. `figures` holds the numbers shown, for tests to hold against hand work.
"""
from __future__ import annotations

from typing import Any, Callable

from archspec.explain.messages import Messages

IOU_THRESHOLD = 0.5  # the course: IoU >= 0.5 counts as correct; NMS drops overlaps above it

# (name, ground truth, prediction), boxes (x1, y1, x2, y2) in pixels
IOU_PAIRS = (
    ("A", (1.0, 1.0, 5.0, 4.0), (2.0, 2.0, 6.0, 5.0)),
    ("B", (1.0, 1.0, 5.0, 4.0), (1.0, 1.0, 4.0, 4.0)),
)

# The course's car: in the middle row, right column of a 3x3 grid, with bx = 0.4, by = 0.3,
# bh = 0.5, bw = 0.9 in cell units; given here as a label is, normalised to the image.
GRID = 3
CLASSES = 3
CAR = 1  # class index: c1 pedestrian, c2 car, c3 motorcycle
PEDESTRIAN = 0
TOY_CAR = ((2 + 0.4) / GRID, (1 + 0.3) / GRID, 0.9 / GRID, 0.5 / GRID)
# Two anchors (w, h in cells): tall and thin, then wide; a pedestrian and a car share one cell.
ANCHORS = ((0.5, 1.5), (1.5, 0.5))
SHARED_CELL = (
    (PEDESTRIAN, ((1 + 0.5) / GRID, (2 + 0.6) / GRID, 0.4 / GRID, 1.4 / GRID)),
    (CAR, ((1 + 0.45) / GRID, (2 + 0.55) / GRID, 1.6 / GRID, 0.6 / GRID)),
)

# Detections (x1, y1, x2, y2, pc, class): three on one car, two on another, one pedestrian.
DETECTIONS = (
    (10, 20, 50, 50, 0.9, CAR),
    (12, 22, 52, 52, 0.6, CAR),
    (8, 18, 46, 48, 0.7, CAR),
    (60, 20, 90, 45, 0.8, CAR),
    (62, 22, 92, 47, 0.7, CAR),
    (14, 20, 44, 50, 0.75, PEDESTRIAN),
)

# Tiny activations (n_C channels, each n_H x n_W = 2 x 2) of the content, style and generated images.
ACTIVATIONS = {
    "C": ((1, 2, 0, 1), (0, 1, 1, 0)),
    "S": ((1, 0, 1, 0), (0, 1, 0, 1)),
    "G": ((1, 1, 0, 0), (1, 0, 0, 1)),
}
ALPHA, BETA = 10, 40


def fmt(x: float, digits: int = 3) -> str:
    """A value as the course writes it: whole numbers bare, others to `digits` decimals."""
    x = float(x)
    if abs(x - round(x)) < 1e-9:
        return str(int(round(x)))
    return f"{x:.{digits}f}".rstrip("0")


def _box(box) -> str:
    return "(" + ", ".join(fmt(v) for v in box) + ")"


def _vector(values) -> str:
    return "[" + ", ".join(fmt(v) for v in values) + "]"


# --- iou ---------------------------------------------------------------------------------------
def _iou_pair(msg: Messages, name: str, truth, pred) -> tuple[list[str], dict]:
    import torch

    from archspec.detect.boxes import box_area, box_iou

    boxes = torch.tensor([truth, pred], dtype=torch.float64)
    a1, a2 = box_area(boxes).tolist()
    iou = box_iou(boxes[:1], boxes[1:]).item()
    top_left = torch.max(boxes[0, :2], boxes[1, :2]).tolist()
    bottom_right = torch.min(boxes[0, 2:], boxes[1, 2:]).tolist()
    overlap = box_area(torch.tensor([top_left + bottom_right])).item()
    union = a1 + a2 - overlap
    sides = f"({fmt(bottom_right[0])} - {fmt(top_left[0])})·({fmt(bottom_right[1])} - {fmt(top_left[1])})"
    lines = [
        msg("iou_pair", name=name, truth=_box(truth), pred=_box(pred)),
        "  " + msg("iou_areas", w1=f"{fmt(truth[2])} - {fmt(truth[0])}", h1=f"{fmt(truth[3])} - {fmt(truth[1])}",
                   a1=fmt(a1), w2=f"{fmt(pred[2])} - {fmt(pred[0])}", h2=f"{fmt(pred[3])} - {fmt(pred[1])}", a2=fmt(a2)),
        "  " + msg("iou_overlap", box=_box(top_left + bottom_right), eq=f"{sides} = {fmt(overlap)}"),
        "  " + msg("iou_union", a1=fmt(a1), a2=fmt(a2), inter=fmt(overlap), union=fmt(union)),
        "  " + msg("iou_value", inter=fmt(overlap), union=fmt(union), iou=fmt(iou)),
        "  " + msg("iou_correct" if iou >= IOU_THRESHOLD else "iou_wrong", t=IOU_THRESHOLD),
    ]
    figures = {"areas": (a1, a2), "intersection": overlap, "union": union, "iou": iou,
               "correct": iou >= IOU_THRESHOLD}
    return lines, figures


def _iou(msg: Messages) -> tuple[str, dict]:
    lines, figures = [msg("iou_title")], {}
    for name, truth, pred in IOU_PAIRS:
        pair_lines, figures[name] = _iou_pair(msg, name, truth, pred)
        lines += ["", *pair_lines]
    return "\n".join(lines), figures


# --- yolo-target -------------------------------------------------------------------------------
def _class_name(msg: Messages, label: int) -> str:
    return msg("car") if label == CAR else msg("pedestrian")


def _place(msg: Messages, name: str, box, anchors=None) -> list[str]:
    """How one object finds its cell, and its offsets within it (what `encode` does)."""
    cx, cy, w, h = (GRID * v for v in box)
    row, col = int(cy), int(cx)
    return [
        msg("yolo_object", name=name, cx=fmt(box[0]), cy=fmt(box[1]), w=fmt(box[2]), h=fmt(box[3])),
        "  " + msg("yolo_scaled", s=GRID, sx=fmt(cx), sy=fmt(cy), row=row, col=col),
        "  " + msg("yolo_offsets", sx=fmt(cx), sy=fmt(cy), row=row, col=col,
                   bx=fmt(cx - col), by=fmt(cy - row), bh=fmt(h), bw=fmt(w)),
    ]


def _occupied(target) -> list[tuple[int, int]]:
    import torch

    slots = target.reshape(GRID, GRID, -1, 5 + CLASSES)[..., 0]
    return [tuple(cell) for cell in torch.nonzero(slots.sum(dim=-1) > 0).tolist()]


def _yolo_toy(msg: Messages) -> tuple[list[str], dict]:
    import torch

    from archspec.detect.targets import encode

    target = encode(torch.tensor([TOY_CAR]), torch.tensor([CAR]), GRID, CLASSES)
    ((row, col),) = _occupied(target)
    vector = target[row, col].tolist()
    shape = "x".join(str(s) for s in target.shape)
    lines = [msg("yolo_toy", s=GRID, shape=shape), *_place(msg, msg("car"), TOY_CAR)]
    lines += ["  " + msg("yolo_vector", row=row, col=col, vector=_vector(vector)),
              "  " + msg("yolo_empty", n=GRID * GRID - 1)]
    return lines, {"shape": tuple(target.shape), "cell": (row, col), "vector": vector,
                   "others_zero": int(torch.count_nonzero(target.abs().sum(dim=-1))) == 1}


def _yolo_anchors(msg: Messages) -> tuple[list[str], dict]:
    import torch

    from archspec.detect.boxes import shape_iou
    from archspec.detect.targets import assign_anchors, encode

    labels = torch.tensor([label for label, _ in SHARED_CELL])
    boxes = torch.tensor([box for _, box in SHARED_CELL])
    anchors = torch.tensor(ANCHORS)
    target = encode(boxes, labels, GRID, CLASSES, anchors)
    sizes = boxes[:, 2:] * GRID
    ious, chosen = shape_iou(sizes, anchors), assign_anchors(sizes, anchors)
    shape = "x".join(str(s) for s in target.shape)
    anchor_text = ", ".join(f"{fmt(w)} x {fmt(h)}" for w, h in ANCHORS)
    lines = [msg("yolo_anchor_toy", s=GRID, a=len(ANCHORS), anchors=anchor_text, shape=shape, slot=5 + CLASSES)]
    for k, (label, box) in enumerate(SHARED_CELL):
        name = _class_name(msg, label)
        lines += _place(msg, name, box)
        lines.append("  " + msg("yolo_anchor_iou", name=name, w=fmt(sizes[k, 0]), h=fmt(sizes[k, 1]),
                                ious=_vector(ious[k].tolist()), best=int(chosen[k]) + 1))
    ((row, col),) = _occupied(target)
    vector = target[row, col].tolist()
    lines.append("  " + msg("yolo_anchor_vector", row=row, col=col, vector=_vector(vector)))
    return lines, {"shape": tuple(target.shape), "cell": (row, col), "vector": vector,
                   "anchor_ious": ious.tolist(), "anchors": [int(a) + 1 for a in chosen]}


def _yolo_target(msg: Messages) -> tuple[str, dict]:
    toy_lines, toy = _yolo_toy(msg)
    anchor_lines, anchored = _yolo_anchors(msg)
    lines = [msg("yolo_title", classes=msg("yolo_classes")), "", *toy_lines, "", *anchor_lines]
    return "\n".join(lines), {"toy": toy, "anchors": anchored}


# --- nms ---------------------------------------------------------------------------------------
def _nms_steps(msg: Messages, iou, kept: list[int], labels: list[int]) -> list[str]:
    """Why each box went: the kept box of its class it overlaps most, as the greedy pass meets it."""
    lines, gone = [], set()
    for i in kept:
        lines.append(msg("nms_keep", i=i, label=_class_name(msg, labels[i]), score=fmt(DETECTIONS[i][4])))
        for j in range(len(DETECTIONS)):
            lower = DETECTIONS[j][4] < DETECTIONS[i][4]
            if not lower or j in gone or iou[i][j] <= IOU_THRESHOLD:
                continue
            if labels[j] != labels[i]:
                lines.append(msg("nms_other_class", j=j, iou=fmt(iou[i][j]), label=_class_name(msg, labels[j])))
            elif j not in kept:
                gone.add(j)
                lines.append(msg("nms_drop", i=i, j=j, iou=fmt(iou[i][j]), t=IOU_THRESHOLD))
    return lines


def _nms(msg: Messages) -> tuple[str, dict]:
    import torch

    from archspec.detect.boxes import batched_nms, box_iou

    boxes = torch.tensor([d[:4] for d in DETECTIONS], dtype=torch.float64)
    scores = torch.tensor([d[4] for d in DETECTIONS], dtype=torch.float64)
    labels = torch.tensor([d[5] for d in DETECTIONS])
    kept = batched_nms(boxes, scores, labels, IOU_THRESHOLD).tolist()
    iou = box_iou(boxes, boxes).tolist()
    lines = [msg("nms_title", t=IOU_THRESHOLD), ""]
    for i, d in enumerate(DETECTIONS):
        lines.append(msg("nms_box", i=i, label=_class_name(msg, d[5]), score=fmt(d[4]), box=_box(d[:4])))
    lines += ["", *_nms_steps(msg, iou, kept, labels.tolist()), "", msg("nms_result", kept=", ".join(map(str, kept)))]
    return "\n".join(lines), {"kept": kept, "iou": iou}


# --- style-cost --------------------------------------------------------------------------------
def _activation(name: str):
    """(1, n_C, n_H, n_W), as torch lays one image's activation out."""
    import torch

    return torch.tensor(ACTIVATIONS[name], dtype=torch.float64).reshape(1, len(ACTIVATIONS[name]), 2, 2)


def _gram_lines(msg: Messages, name: str) -> tuple[list[str], list[list[float]]]:
    from archspec.style.costs import gram_matrix

    channels = ACTIVATIONS[name]
    gram = gram_matrix(_activation(name)).tolist()
    lines = []
    for k, first in enumerate(channels):
        for k2, second in enumerate(channels):
            products = " + ".join(f"{fmt(a)}·{fmt(b)}" for a, b in zip(first, second))
            lines.append("  " + msg("gram_entry", name=name, k=k + 1, k2=k2 + 1, eq=f"{products} = {fmt(gram[k][k2])}"))
    lines.append("  " + msg("gram_matrix", name=name, matrix="[" + ", ".join(_vector(r) for r in gram) + "]"))
    return lines, gram


def _style_cost(msg: Messages) -> tuple[str, dict]:
    from archspec.style.costs import content_cost, layer_style_cost, total_cost

    n_c, (n_h, n_w) = len(ACTIVATIONS["G"]), (2, 2)
    lines = [msg("style_title"), msg("style_shape", h=n_h, w=n_w, c=n_c)]
    lines += ["  " + msg("style_acts", name=n, channels=", ".join(_vector(ch) for ch in ACTIVATIONS[n])) for n in ACTIVATIONS]
    content = content_cost(_activation("C"), _activation("G")).item()
    squares = [(c - g) ** 2 for cc, gc in zip(ACTIVATIONS["C"], ACTIVATIONS["G"]) for c, g in zip(cc, gc)]
    lines += ["", msg("content_cost", terms=" + ".join(fmt(s) for s in squares), value=fmt(content)), "", msg("gram_title")]
    grams = {}
    for name in ("S", "G"):
        gram_lines, grams[name] = _gram_lines(msg, name)
        lines += gram_lines
    style = layer_style_cost(_activation("S"), _activation("G")).item()
    differences = [(s - g) ** 2 for rs, rg in zip(grams["S"], grams["G"]) for s, g in zip(rs, rg)]
    norm = (2 * n_h * n_w * n_c) ** 2
    total = total_cost(content, style, ALPHA, BETA)
    lines += ["", msg("style_layer", h=n_h, w=n_w, c=n_c, terms=" + ".join(fmt(d) for d in differences),
                      norm=norm, value=fmt(style, 7)),
              msg("style_total", alpha=ALPHA, beta=BETA, content=fmt(content), style=fmt(style, 7), total=fmt(total, 7))]
    figures = {"content": content, "gram_S": grams["S"], "gram_G": grams["G"], "style": style, "total": total}
    return "\n".join(lines), figures


DETECTION_CASES = ("iou", "yolo-target", "nms", "style-cost")
DETECTION_BUILDERS: dict[str, Callable[[Messages], tuple[str, dict[str, Any]]]] = {
    "iou": _iou,
    "yolo-target": _yolo_target,
    "nms": _nms,
    "style-cost": _style_cost,
}
