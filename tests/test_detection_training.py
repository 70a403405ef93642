"""Detection that trains: grid layouts (anchors, YOLO v1's shared classes), per-class NMS against
torchvision.ops.nms, mAP against pycocotools, the detection data sets, and the train / evaluate /
detect commands end to end."""
import json
import math
from pathlib import Path

import pytest
import torch
from torchvision import ops
from typer.testing import CliRunner

from archspec.cli import app
from archspec.detect.evaluation import mean_average_precision
from archspec.detect.layout import GridLayout, layout_of
from archspec.detect.loss import responsible, yolo_loss
from archspec.errors import ArchspecError
from archspec.spec.detection_head import DetectionHead

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
runner = CliRunner()


def test_v1_layout_copies_the_shared_class_scores_into_each_box_slot():
    layout = GridLayout(grid_size=2, num_classes=3, boxes=2)
    assert layout.channels == 2 * 5 + 3 and layout.shares_classes
    output = torch.arange(13 * 2 * 2, dtype=torch.float32).reshape(1, 13, 2, 2)
    slots = layout.as_slots(output)
    assert slots.shape == (1, 2, 2, 2, 8)
    cell = output[0, :, 1, 0]  # row 1, column 0
    assert torch.equal(slots[0, 1, 0, 0], torch.cat((cell[0:5], cell[10:13])))
    assert torch.equal(slots[0, 1, 0, 1], torch.cat((cell[5:10], cell[10:13])))


def test_v1_object_goes_to_the_box_that_overlaps_it_best():
    # one cell, two predicted boxes [pc, bx, by, bh, bw, class]: the first far off to the corner,
    # the second on the object; the object (centre 0.5, 0.5, 0.4 x 0.4 cells) goes to the second
    prediction = torch.tensor([[0.9, 0.1, 0.1, 0.2, 0.2, 0.0],
                               [0.1, 0.5, 0.5, 0.5, 0.5, 0.0]]).reshape(1, 1, 1, 2, 6)
    target = torch.tensor([1.0, 0.5, 0.5, 0.4, 0.4, 1.0]).reshape(1, 1, 1, 1, 6)
    assigned = responsible(prediction, target)
    assert torch.equal(assigned[0, 0, 0, 1], target[0, 0, 0, 0])
    assert torch.all(assigned[0, 0, 0, 0] == 0)  # the other box is trained towards pc = 0
    # and the loss: box 2 against the object, box 1's pc against 0 (lambda_noobj 0.5):
    # 5 * ((sqrt .5 - sqrt .4)^2 * 2) + (1 - 0.1)^2 + 0.5 * 0.9^2 + (1 - 0)^2
    expected = 5 * 2 * (math.sqrt(0.5) - math.sqrt(0.4)) ** 2 + 0.81 + 0.5 * 0.81 + 1
    torch.testing.assert_close(yolo_loss(prediction, assigned, 1), torch.tensor(expected), atol=1e-4, rtol=0)


def test_cells_without_objects_assign_nothing():
    prediction = torch.rand(2, 3, 3, 2, 8)
    assert torch.all(responsible(prediction, torch.zeros(2, 3, 3, 1, 8)) == 0)


@pytest.mark.parametrize("seed", range(4))
def test_detections_are_per_class_nms_of_the_decoded_grid(seed):
    # the reference: every slot above the score, decoded by hand, then torchvision.ops.nms class by class
    generator = torch.Generator().manual_seed(seed)
    layout = GridLayout(grid_size=5, num_classes=3, anchors=((0.8, 0.8), (1.5, 1.5)))
    output = torch.rand(1, layout.channels, 5, 5, generator=generator)
    output[:, [1, 2, 9, 10]] *= 0.9  # centres inside their cells
    found = layout.detections(output, score_threshold=0.3, iou_threshold=0.4)[0]
    slots = output[0].permute(1, 2, 0).reshape(5, 5, 2, 8)
    boxes, scores, labels = [], [], []
    for row in range(5):
        for column in range(5):
            for slot in slots[row, column]:
                if slot[0] >= 0.3:
                    cx, cy = (column + slot[1]) / 5, (row + slot[2]) / 5
                    w, h = slot[4] / 5, slot[3] / 5
                    boxes.append([max(cx - w / 2, 0), max(cy - h / 2, 0), min(cx + w / 2, 1), min(cy + h / 2, 1)])
                    scores.append(slot[0])
                    labels.append(int(slot[5:].argmax()))
    boxes, scores, labels = torch.tensor(boxes), torch.tensor(scores), torch.tensor(labels)
    kept = []
    for label in labels.unique():
        members = torch.nonzero(labels == label).flatten()
        kept += members[ops.nms(boxes[members], scores[members], 0.4)].tolist()
    kept = sorted(kept, key=lambda i: -float(scores[i]))
    torch.testing.assert_close(found["boxes"], boxes[kept])
    assert torch.equal(found["labels"], labels[kept])


def test_map_equals_pycocotools_on_a_fixed_example():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = [{"boxes": torch.tensor([[10., 10., 50., 50.], [60., 60., 90., 95.]]), "labels": torch.tensor([0, 1])},
             {"boxes": torch.tensor([[5., 20., 40., 70.]]), "labels": torch.tensor([0])}]
    found = [{"boxes": torch.tensor([[12., 8., 52., 49.], [58., 62., 88., 90.], [0., 0., 20., 20.]]),
              "scores": torch.tensor([0.9, 0.75, 0.95]), "labels": torch.tensor([0, 1, 0])},
             {"boxes": torch.tensor([[8., 25., 45., 72.], [5., 20., 40., 50.]]),
              "scores": torch.tensor([0.8, 0.3]), "labels": torch.tensor([0, 0])}]
    figures = mean_average_precision(found, truth, ["a", "b"])

    def xywh(box):
        return [box[0], box[1], box[2] - box[0], box[3] - box[1]]

    annotations, detections = [], []
    for image, (t, f) in enumerate(zip(truth, found)):
        for box, label in zip(t["boxes"].tolist(), t["labels"].tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": image, "category_id": label,
                                "bbox": xywh(box), "area": w * h, "iscrowd": 0})
        for box, label, score in zip(f["boxes"].tolist(), f["labels"].tolist(), f["scores"].tolist()):
            detections.append({"image_id": image, "category_id": label, "bbox": xywh(box), "score": score})
    coco = COCO()
    coco.dataset = {"images": [{"id": 0}, {"id": 1}], "annotations": annotations,
                    "categories": [{"id": 0}, {"id": 1}]}
    coco.createIndex()
    evaluation = COCOeval(coco, coco.loadRes(detections), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    # class a: a false positive ranked first, so its precision never exceeds 2/3 (not a trivial 1.0)
    assert figures["ap50_a"] == pytest.approx(2 / 3, abs=0.01)
    assert figures["map"] == pytest.approx(evaluation.stats[0], abs=1e-6)
    assert figures["map_50"] == pytest.approx(evaluation.stats[1], abs=1e-6)
    assert figures["map_75"] == pytest.approx(evaluation.stats[2], abs=1e-6)
    # per class at IoU 0.5: COCO's AP is the mean of the interpolated precision over 101 recalls
    precision = evaluation.eval["precision"][0, :, :, 0, 2]  # IoU 0.5, recalls, classes, all areas, 100 dets
    for index, name in enumerate(["a", "b"]):
        assert figures[f"ap50_{name}"] == pytest.approx(precision[:, index].mean(), abs=1e-6)


def test_head_errors_are_clear():
    with pytest.raises(ValueError, match="not both"):
        DetectionHead(classes=3, anchors=[(1.0, 1.0)], boxes=2)
    with pytest.raises(ValueError, match="positive"):
        DetectionHead(classes=3, anchors=[(1.0, 0.0)])
    head = DetectionHead(classes="classes", anchors=[(1.0, 1.0), (2.0, 2.0)])
    with pytest.raises(ArchspecError, match=r"8 channels; its `detection` key asks for 2 slots x \(5 \+ 3\) = 16"):
        layout_of(head, {"classes": 3}, {"output": (8, 3, 3)}, "toy")
    with pytest.raises(ArchspecError, match="not a positive whole-number parameter"):
        layout_of(head, {}, {"output": (16, 3, 3)}, "toy")
    with pytest.raises(ArchspecError, match=r"a grid head gives \(channels, S, S\)"):
        layout_of(head, {"classes": 3}, {"output": (16, 3, 4)}, "toy")
    with pytest.raises(ArchspecError, match="no `detection:` key"):
        layout_of(None, {}, {"output": (8, 3, 3)}, "toy")


def test_generated_boxes_set_pads_labels_with_class_minus_one():
    from archspec.train.data import data_classes, load_data

    data = load_data("boxes:20", (3, 64, 64))
    assert data.task == "detection" and data.class_names == ["circle", "square", "triangle"]
    assert data_classes("boxes") == 3
    assert len(data.x_train) + len(data.x_test) == 20 and data.x_train.shape[1:] == (3, 64, 64)
    rows = torch.cat((data.y_train, data.y_test)).reshape(-1, 5)
    real = rows[rows[:, 0] >= 0]
    assert torch.all(rows[rows[:, 0] < 0] == -1)  # padding rows are -1 throughout
    assert set(real[:, 0].tolist()) <= {0, 1, 2} and torch.all((real[:, 1:] > 0) & (real[:, 1:] <= 1))


@pytest.mark.parametrize("name, message", [("boxes:5", "from 10"), ("boxes:x", "whole number")])
def test_boxes_count_is_checked(name, message):
    from archspec.train.data import load_data

    with pytest.raises(ArchspecError, match=message):
        load_data(name, (3, 32, 32))


def test_yolo_folder_reads_images_labels_and_class_names(tmp_path):
    from PIL import Image

    from archspec.train.data import data_classes, load_data

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "classes.txt").write_text("cat\ndog\n")
    for i in range(5):
        Image.new("RGB", (40, 30), (10 * i, 0, 0)).save(tmp_path / "images" / f"{i}.png")
        (tmp_path / "labels" / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.5\n1 0.2 0.3 0.1 0.1\n")
    assert data_classes(str(tmp_path)) == 2
    data = load_data(str(tmp_path), (3, 32, 32))
    assert data.class_names == ["cat", "dog"] and data.x_train.shape[1:] == (3, 32, 32)
    rows = torch.cat((data.y_train, data.y_test))
    assert rows.shape == (5, 2, 5)
    torch.testing.assert_close(rows[:, 1], torch.tensor([[1, 0.2, 0.3, 0.1, 0.1]] * 5))


def _train(spec, out, *extra):
    return runner.invoke(app, ["train", str(SPECS / spec), "--data", "boxes:20", "--epochs", "1", "--batch-size", "8",
                               "--out", str(out), "--no-progress", *extra])


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "toy"
    result = _train("yolo_grid_toy.yaml", out)
    assert result.exit_code == 0, result.output
    return out


def test_training_a_grid_spec_writes_map_and_sample_predictions(toy_run):
    from PIL import Image

    rows = [json.loads(line) for line in (toy_run / "metrics.jsonl").read_text().splitlines()]
    assert {"test_map", "test_map_50", "test_ap50_circle", "test_loss"} <= set(rows[-1])
    assert math.isfinite(rows[-1]["train_loss"])
    with Image.open(toy_run / "predictions.png") as sheet:
        assert sheet.size == (4 * 200, 200)  # the 4 test images of 20 (a 20% split), 200 px each, in one row
    assert "Sample test predictions" in (toy_run / "report.html").read_text()


def test_evaluate_prints_ap_per_class(toy_run):
    result = runner.invoke(app, ["evaluate", str(SPECS / "yolo_grid_toy.yaml"), "--weights", str(toy_run),
                                 "--data", "boxes:20"])
    assert result.exit_code == 0, result.output
    assert "AP@0.5" in result.output and "AP@[.5:.95]" in result.output
    for name in ("circle", "square", "triangle", "map_50"):
        assert name in result.output


def test_detect_prints_boxes_as_json_and_draws_them(toy_run, tmp_path):
    from PIL import Image

    from archspec.detect.draw import to_pil
    from archspec.train.boxes_data import make_boxes

    images, _ = make_boxes(2, (90, 120), seed=3)
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"scene{i}.png")
        to_pil(image).save(paths[-1])
    result = runner.invoke(app, ["detect", str(SPECS / "yolo_grid_toy.yaml"), *map(str, paths), "--weights",
                                 str(toy_run), "--out", str(tmp_path / "drawn"), "--score", "0"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert [r["image"] for r in records] == list(map(str, paths))
    for record in records:
        assert (record["width"], record["height"]) == (120, 90)
        assert record["detections"], "at score 0 every cell reports a box"
        for found in record["detections"]:
            x1, y1, x2, y2 = found["box"]
            assert 0 <= x1 <= x2 <= 120 and 0 <= y1 <= y2 <= 90  # in the image's own pixels
            assert found["class"] in ("circle", "square", "triangle")
        with Image.open(record["drawn"]) as drawn:
            assert drawn.size == (120, 90)


@pytest.mark.parametrize("spec, extra", [("yolo_anchors_toy.yaml", []),
                                         ("yolo_v1.yaml", ["--max-steps", "1", "--batch-size", "2"])])
def test_anchor_and_v1_specs_train(spec, extra, tmp_path):
    result = _train(spec, tmp_path / "run", *extra)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert math.isfinite(rows[-1]["train_loss"]) and "test_map_50" in rows[-1]


@pytest.mark.parametrize("spec, data, message", [
    ("lenet5.yaml", "boxes:20", "has no num_classes|channels/classes|boxes"),
    ("yolo_grid_toy.yaml", "digits", "has no boxes"),
])
def test_tasks_and_data_must_match(spec, data, message, tmp_path):
    result = runner.invoke(app, ["train", str(SPECS / spec), "--data", data, "--epochs", "1", "--out",
                                 str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert any(part in result.output for part in message.split("|")), result.output


def test_augmentation_is_refused_for_detection(tmp_path):
    result = _train("yolo_grid_toy.yaml", tmp_path / "run", "--augment", "flip")
    assert result.exit_code != 0 and "moves pixels but not boxes" in result.output
