"""mAP of detections, from torchmetrics' MeanAveragePrecision (pycocotools' COCOeval underneath):
AP is never computed here by hand.

Predictions and ground truth are lists, one dict per image: `boxes` (K, 4) xyxy in pixels,
`labels` (K,), and for predictions `scores` (K,). The figures are COCO's: mAP@[.5:.95] (the mean
over IoU thresholds 0.5, 0.55, ..., 0.95), mAP@0.5 and mAP@0.75, and AP per class at 0.5 and over
[.5:.95]. A class with no object in the ground truth has no AP (NaN), as COCO leaves it out.
"""
from __future__ import annotations

import math

import torch

AP50 = "ap50_"  # key prefixes of the per-class figures
AP = "ap_"


def _metric(**options):
    from torchmetrics.detection import MeanAveragePrecision

    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True, backend="pycocotools",
                                **options)


def _per_class(result: dict, class_names: list[str]) -> dict[int, float]:
    values = result["map_per_class"].reshape(-1).tolist()
    classes = result["classes"].reshape(-1).tolist()
    return {int(c): (v if v >= 0 else math.nan) for c, v in zip(classes, values)}  # -1: no such object


def mean_average_precision(predictions: list[dict[str, torch.Tensor]], truth: list[dict[str, torch.Tensor]],
                           class_names: list[str]) -> dict[str, float]:
    """{"map", "map_50", "map_75", "ap50_<class>", "ap_<class>"} over all images."""
    overall, at_50 = _metric(), _metric(iou_thresholds=[0.5])
    for metric in (overall, at_50):
        metric.update(predictions, truth)
    result, result_50 = overall.compute(), at_50.compute()
    figures = {"map": float(result["map"]), "map_50": float(result["map_50"]), "map_75": float(result["map_75"])}
    every, by_50 = _per_class(result, class_names), _per_class(result_50, class_names)
    for index, name in enumerate(class_names):
        figures[AP50 + name] = by_50.get(index, math.nan)
        figures[AP + name] = every.get(index, math.nan)
    return {key: (value if value >= 0 else math.nan) for key, value in figures.items()}


def per_class(figures: dict[str, float], class_names: list[str]) -> list[tuple[str, float, float]]:
    """(class, AP@0.5, AP@[.5:.95]) rows from `mean_average_precision`'s figures."""
    return [(name, figures.get(AP50 + name, math.nan), figures.get(AP + name, math.nan)) for name in class_names]


def in_pixels(items: list[dict[str, torch.Tensor]], height: int, width: int) -> list[dict[str, torch.Tensor]]:
    """Boxes normalised to the image, scaled to its pixels (COCO's area ranges are in pixels)."""
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    return [{**item, "boxes": item["boxes"] * scale} for item in items]
