"""`archspec explain --case iou | yolo-target | nms | style-cost`: the detection and style-transfer
worked examples. Every expected number is worked by hand in the test (areas, intersections, the
course's target vector y = [pc, bx, by, bh, bw, c1, c2, c3], Gram matrices), never pasted from
archspec's output."""
import pytest

from archspec.explain import CASES, explain_case
from conftest import run_cli

LANGS = ("en", "ko")


def _cli_text(case: str, lang: str) -> str:
    result = run_cli("explain", "--case", case, "--lang", lang)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_new_cases_are_listed():
    assert {"iou", "yolo-target", "nms", "style-cost"} <= set(CASES)


# --- iou -------------------------------------------------------------------------------------------
# A: truth (1,1)-(5,4) is 4 x 3 = 12, prediction (2,2)-(6,5) is 4 x 3 = 12; they overlap on
#    (2,2)-(5,4) = 3 x 2 = 6, union 12 + 12 - 6 = 18, IoU = 1/3 < 0.5.
# B: prediction (1,1)-(4,4) is 3 x 3 = 9, wholly inside the truth: overlap 9, union 12, IoU 3/4.
IOU_BY_HAND = {"A": (12, 12, 6, 18, 1 / 3), "B": (12, 9, 9, 12, 3 / 4)}


@pytest.mark.parametrize("lang", LANGS)
def test_iou_case_prints_the_hand_worked_equations(lang):
    text = _cli_text("iou", lang)
    assert "(5 - 2)·(4 - 2) = 6" in text
    assert "12 + 12 - 6 = 18" in text and "IoU = 6 / 18 = 0.333" in text
    assert "12 + 9 - 9 = 12" in text and "IoU = 9 / 12 = 0.75" in text


def test_iou_case_figures():
    figures = explain_case("iou", "en").figures
    for name, (area_truth, area_pred, overlap, union, iou) in IOU_BY_HAND.items():
        assert figures[name]["areas"] == (area_truth, area_pred)
        assert figures[name]["intersection"] == overlap
        assert figures[name]["union"] == union
        assert figures[name]["iou"] == pytest.approx(iou)
    assert figures["A"]["correct"] is False and figures["B"]["correct"] is True  # IoU >= 0.5 is correct


# --- yolo-target -----------------------------------------------------------------------------------
# The course's car: middle row, right column of the 3x3 grid, bx = 0.4, by = 0.3, bh = 0.5, bw = 0.9,
# class c2 (car): y = [1, 0.4, 0.3, 0.5, 0.9, 0, 1, 0] in that cell, 3x3x8 in all.
CAR_VECTOR = [1, 0.4, 0.3, 0.5, 0.9, 0, 1, 0]
# With anchors (0.5 x 1.5) and (1.5 x 0.5) cells: the pedestrian 0.4 x 1.4 overlaps anchor 1 by
# 0.4·1.4 = 0.56 (IoU 0.56 / 0.75) and anchor 2 by 0.4·0.5 = 0.2 (IoU 0.2 / (0.56 + 0.75 - 0.2));
# the car 1.6 x 0.6 overlaps anchor 1 by 0.5·0.6 = 0.3 (IoU 0.3 / (0.96 + 0.75 - 0.3)) and anchor 2
# by 1.5·0.5 = 0.75 (IoU 0.75 / 0.96). Pedestrian in slot 1, car in slot 2 of the same cell.
ANCHOR_IOUS = [[0.56 / 0.75, 0.2 / 1.11], [0.3 / 1.41, 0.75 / 0.96]]
SHARED_VECTOR = [1, 0.5, 0.6, 1.4, 0.4, 1, 0, 0] + [1, 0.45, 0.55, 0.6, 1.6, 0, 1, 0]


@pytest.mark.parametrize("lang", LANGS)
def test_yolo_target_case_prints_the_course_vectors(lang):
    text = _cli_text("yolo-target", lang)
    assert "3x3x8" in text and "3x3x16 = 3x3x2x8" in text
    assert "y[1, 2] = [1, 0.4, 0.3, 0.5, 0.9, 0, 1, 0]" in text
    assert "bx = 2.4 - 2 = 0.4, by = 1.3 - 1 = 0.3" in text
    assert "y[2, 1] = [1, 0.5, 0.6, 1.4, 0.4, 1, 0, 0, 1, 0.45, 0.55, 0.6, 1.6, 0, 1, 0]" in text
    assert "[0.747, 0.18]" in text and "[0.213, 0.781]" in text


def test_yolo_target_case_figures():
    figures = explain_case("yolo-target", "en").figures
    toy, anchored = figures["toy"], figures["anchors"]
    assert toy["shape"] == (3, 3, 8) and toy["cell"] == (1, 2)
    assert toy["vector"] == pytest.approx(CAR_VECTOR, abs=1e-6)
    assert toy["others_zero"]
    assert anchored["shape"] == (3, 3, 16) and anchored["cell"] == (2, 1)
    assert anchored["vector"] == pytest.approx(SHARED_VECTOR, abs=1e-6)
    assert anchored["anchors"] == [1, 2]
    for got, expected in zip(anchored["anchor_ious"], ANCHOR_IOUS):
        assert got == pytest.approx(expected, abs=1e-6)


# --- nms -------------------------------------------------------------------------------------------
# Box 0 (10,20)-(50,50) is 40 x 30 = 1200. Box 1 (12,22)-(52,52): overlap 38 x 28 = 1064, union
# 2400 - 1064. Box 2 (8,18)-(46,48) is 38 x 30 = 1140: overlap 36 x 28 = 1008, union 1200 + 1140 - 1008.
# Box 3 (60,20)-(90,45) and box 4 (62,22)-(92,47) are 30 x 25 = 750: overlap 28 x 23 = 644.
# Box 5, a pedestrian (14,20)-(44,50), is 30 x 30 = 900, inside box 0: IoU 900 / 1200, but another
# class. Greedy by pc: keep 0 (0.9), drop 1 and 2; keep 3 (0.8), drop 4; keep 5 (0.75).
NMS_IOUS = {(0, 1): 1064 / 1336, (0, 2): 1008 / 1332, (3, 4): 644 / 856, (0, 5): 900 / 1200, (0, 3): 0.0}


@pytest.mark.parametrize("lang", LANGS)
def test_nms_case_prints_what_is_kept(lang):
    text = _cli_text("nms", lang)
    for pair in ((0, 1), (0, 2), (3, 4)):  # same class, above the threshold: dropped
        assert f"= {NMS_IOUS[pair]:.3f} > 0.5" in text, pair
    assert "(IoU = 0.75)" in text  # the pedestrian inside box 0: noted, not dropped
    assert text.splitlines()[-1].endswith("0, 3, 5")


def test_nms_case_figures():
    figures = explain_case("nms", "en").figures
    assert figures["kept"] == [0, 3, 5]
    for (i, j), iou in NMS_IOUS.items():
        assert figures["iou"][i][j] == pytest.approx(iou)


# --- style-cost ------------------------------------------------------------------------------------
# Channels (2 x 2 each): C = [1,2,0,1],[0,1,1,0]; S = [1,0,1,0],[0,1,0,1]; G = [1,1,0,0],[1,0,0,1].
# Content: C - G = [0,1,0,1],[-1,1,1,-1], squares sum to 6, halved: 3.
# Gram: G(S) = [[1+1, 0], [0, 1+1]] = [[2,0],[0,2]]; G(G) = [[2, 1], [1, 2]] (channel 1·2 = 1·1).
# Style: (0 + 1 + 1 + 0) / (2·2·2·2)² = 2 / 256 = 0.0078125. J = 10·3 + 40·0.0078125 = 30.3125.
@pytest.mark.parametrize("lang", LANGS)
def test_style_cost_case_prints_the_costs(lang):
    text = _cli_text("style-cost", lang)
    assert "½·(0 + 1 + 0 + 1 + 1 + 1 + 1 + 1) = 3" in text
    assert "G(S) = [[2, 0], [0, 2]]" in text and "G(G) = [[2, 1], [1, 2]]" in text
    assert "(0 + 1 + 1 + 0) / 256 = 0.0078125" in text
    assert "10·3 + 40·0.0078125 = 30.3125" in text


def test_style_cost_case_figures():
    figures = explain_case("style-cost", "en").figures
    assert figures["content"] == 3
    assert figures["gram_S"] == [[2, 0], [0, 2]] and figures["gram_G"] == [[2, 1], [1, 2]]
    assert figures["style"] == pytest.approx(2 / 256)
    assert figures["total"] == pytest.approx(10 * 3 + 40 * 2 / 256)


@pytest.mark.parametrize("case", ["iou", "yolo-target", "nms", "style-cost"])
def test_korean_text_differs_but_the_figures_do_not(case):
    english, korean = explain_case(case, "en"), explain_case(case, "ko")
    assert english.text != korean.text
    assert repr(english.figures) == repr(korean.figures)
