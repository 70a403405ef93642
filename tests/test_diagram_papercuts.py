"""Diagram papercuts of issue 17: Inception branches in spec order, no edges across columns,
label lines that do not touch, readable block paths, automatic names only where they help, and
U-Net bridges without a label over a box border.

Geometry comes from graphviz itself (`dot -Tjson` coordinates, a rendered PNG), expectations from
the specs (branch and concat order as written), never from the layout code under test.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from functools import lru_cache

import pytest

from archspec import compile as compile_spec
from archspec.pipeline import compile
from archspec.render.diagram import WRAP_RANKS, diagram_source, layout, render
from archspec.render.dot_nodes import relative
from archspec.render.wrap import connect_columns, wrapped
from conftest import SPECS

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="graphviz's dot is not installed")


@lru_cache(maxsize=None)
def compiled(name: str):
    return compile_spec(SPECS / f"{name}.yaml")


@lru_cache(maxsize=None)
def placed(name: str, depth: int | None = None) -> dict:
    """dot's own layout of the library spec's diagram (`dot -Tjson`)."""
    spec = compiled(name)
    return json.loads(render(diagram_source(spec.ir, spec.analysis, depth=depth), "json"))


def centres(layout_json: dict) -> dict[str, tuple[float, float]]:
    return {o["name"]: tuple(map(float, o["pos"].split(","))) for o in layout_json["objects"] if "pos" in o}


def node_boxes(layout_json: dict) -> dict[str, tuple[float, float, float, float]]:
    """(left, bottom, right, top) of every node, in points (width and height are in inches)."""
    boxes = {}
    for o in layout_json["objects"]:
        if "pos" in o and "width" in o:
            x, y = map(float, o["pos"].split(","))
            half_w, half_h = float(o["width"]) * 36, float(o["height"]) * 36
            boxes[o["name"]] = (x - half_w, y - half_h, x + half_w, y + half_h)
    return boxes


def cluster_boxes(layout_json: dict) -> dict[str, tuple[float, ...]]:
    return {o["name"]: tuple(map(float, o["bb"].split(","))) for o in layout_json["objects"]
            if o["name"].startswith("cluster_") and "bb" in o}


def drawn_edges(layout_json: dict):
    """(tail, head, bezier points) of every visible edge."""
    names = {o["_gvid"]: o["name"] for o in layout_json["objects"]}
    for edge in layout_json.get("edges", []):
        if edge.get("style") != "invis":
            points = [p for draw in edge.get("_draw_", []) if draw["op"] == "b" for p in draw["points"]]
            yield names[edge["tail"]], names[edge["head"]], points


# --- Inception branches left to right in spec order --------------------------------------------------
@needs_dot
def test_googlenet_branches_stand_left_to_right_in_concat_order():
    """Each module's `branches:` (branch1 .. branch4, concatenated in that order) are boxes side by
    side, in that order. Before: 2,3,4,1 in inception3a and 1,3,2,4 in inception4b."""
    ir = compiled("googlenet").ir
    boxes = cluster_boxes(placed("googlenet"))
    modules = sorted({node.scopes[0] for node in ir.nodes() if node.scopes and node.scopes[0].startswith("inception")})
    assert len(modules) == 9
    for module in modules:
        lefts_rights = [boxes[f"cluster_{module}.branch{k}"] for k in range(1, 5)]
        for (_, _, right, _), (left, _, _, _) in zip(lefts_rights, lefts_rights[1:]):
            assert right <= left, module  # each branch's box ends before the next one begins


@needs_dot
@pytest.mark.parametrize("name", ["inception_module", "inception_v3"])
def test_concat_inputs_arrive_left_to_right_in_their_order(name):
    """Every concat of parallel branches gets them from left to right in the order it lists them
    (Inception-v3 wires its branches with `from:`, no branch boxes). Left out: the 1x3 / 3x1 pair
    inside one branch of Mixed_7b and Mixed_7c, which graphviz may swap (a tie for its crossing
    count that it breaks either way; reported in the issue)."""
    ir = compiled(name).ir
    where = centres(placed(name))
    checked = 0
    for node in ir.nodes():
        if node.op != "concat" or re.fullmatch(r"Mixed_7[bc]\.branch3x3(dbl)?", node.id):
            continue
        xs = [where[ir.producer(value)][0] for value in node.inputs]
        assert xs == sorted(xs), node.id
        checked += 1
    assert checked == {"inception_module": 1, "inception_v3": 11}[name]


# --- columns: connectors, no edges across -------------------------------------------------------------
@pytest.mark.parametrize("name", ["densenet121", "efficientnet_b0", "resnet152", "inception_v3"])
def test_no_drawn_edge_joins_two_columns(name):
    ir = compiled(name).ir
    plan, column = wrapped(layout(ir), WRAP_RANKS)
    assert len(set(column.values())) > 1
    assert all(column[edge.tail] == column[edge.head] for edge in plan.edges)
    # every edge that crossed is still there, as tail -> connector and connector -> head
    cut = {(e.tail, e.head, e.kind) for e in layout(ir).edges} - {(e.tail, e.head, e.kind) for e in plan.edges}
    assert cut
    arriving = {(e.tail, e.head): e for e in plan.edges if e.tail.startswith("[from column ")}
    for tail, head, kind in cut:
        number = column[head] + 1
        assert f"[to column {number}] {tail}" in plan.units
        assert arriving[(f"[from column {column[tail] + 1}] {tail}", head)].kind == kind


def test_the_edges_of_one_unit_into_one_column_share_one_pair_of_connectors():
    """DenseNet: the last concat of a column feeds the next column's norm1 and, dashed, its concat."""
    ir = compiled("densenet121").ir
    plan, _ = wrapped(layout(ir), WRAP_RANKS)
    tail = "features.denseblock2.denselayer8.cat"
    leaving = [e for e in plan.edges if e.tail == tail]
    assert [(e.head, e.kind) for e in leaving][-1] == ("[to column 2] " + tail, "data")  # the main path's style
    arriving = {e.head: e.kind for e in plan.edges if e.tail == "[from column 1] " + tail}
    assert arriving == {"features.denseblock2.denselayer9.norm1": "data", "features.denseblock2.denselayer9.cat": "shortcut"}
    unchanged = layout(ir)
    assert connect_columns(unchanged, dict.fromkeys(unchanged.units, 0))[0] is unchanged  # one column: nothing to do


@needs_dot
@pytest.mark.parametrize("name", ["densenet121", "efficientnet_b0"])
def test_full_depth_columns_have_no_edge_through_empty_space_or_over_nodes(name):
    """Before: an edge from the bottom of one column to the top of the next zigzagged down
    through the empty space below the shorter column (densenet121: 8227 of 9440 pt tall) and
    ran over other nodes. Now no edge is taller than a quarter of the drawing, and no edge's
    spline (its control points) runs inside a node it does not join."""
    layout_json = placed(name)
    height = float(layout_json["bb"].split(",")[3])
    boxes = node_boxes(layout_json)
    for tail, head, points in drawn_edges(layout_json):
        ys = [y for _, y in points]
        assert max(ys) - min(ys) < height / 4, (tail, head)
        for node, (left, bottom, right, top) in boxes.items():
            if node in (tail, head) or node == "legend":
                continue
            inside = [(x, y) for x, y in points if left + 2 < x < right - 2 and bottom + 2 < y < top - 2]
            assert not inside, (tail, head, node)


@needs_dot
def test_columns_start_at_the_top_left_to_right():
    layout_json = placed("densenet121")
    where = centres(layout_json)
    plan, column = wrapped(layout(compiled("densenet121").ir), WRAP_RANKS)
    count = len(set(column.values()))
    assert count == 4
    spans = [[where[u][0] for u in plan.units if column[u] == k] for k in range(count)]
    for this, following in zip(spans, spans[1:]):
        assert max(this) < min(following)
    tops = [max(where[u][1] for u in plan.units if column[u] == k) for k in range(count)]
    assert max(tops) - min(tops) < 40  # the first unit of each (the image, the connectors) on one rank


# --- label lines ------------------------------------------------------------------------------------------
def ink_bands(png: bytes) -> list[tuple[int, int]]:
    """Runs of pixel rows with text in them, inside a node's box (its border cut away)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    width, height = image.size
    inner = image.crop((int(width * 0.15), 4, int(width * 0.85), height - 4))
    bands: list[list[int]] = []
    for y in range(inner.size[1]):
        darkest = inner.crop((0, y, inner.size[0], y + 1)).getextrema()[0]
        if darkest < 150:  # text (black, #555555); the pool fill is #fce5cd
            if bands and bands[-1][1] == y - 1:
                bands[-1][1] = y
            else:
                bands.append([y, y])
    return [tuple(band) for band in bands]


@needs_dot
def test_a_label_and_its_subtitle_do_not_touch(tmp_path):
    """`adaptive_avgpool 1x1` over `avgpool` (a squeeze-excitation's pool): p, g and _ hang below
    the first line. Rendered by graphviz at 144 dpi, a blank pixel row must part the two lines."""
    pytest.importorskip("PIL")
    spec = tmp_path / "se.yaml"
    spec.write_text("name: se\ninputs: {x: [16, 8, 8]}\nlayers:\n  - adaptive_avgpool: {name: avgpool, size: 1}\n")
    dot = diagram_source(compile(spec).ir)
    defaults = next(line for line in dot.splitlines() if line.strip().startswith("node ["))
    node = next(line for line in dot.splitlines() if line.strip().startswith("avgpool ["))
    assert "adaptive_avgpool 1x1" in node and ">avgpool<" in node
    one_node = "digraph one {\n" + defaults + "\n" + node + "\n}\n"
    png = subprocess.run(["dot", "-Tpng", "-Gdpi=144", "-Gpad=0"], input=one_node.encode(), capture_output=True, check=True).stdout
    bands = ink_bands(png)
    assert len(bands) == 2, bands  # two lines of text with white between them (one band when they touch)


# --- names under the labels ---------------------------------------------------------------------------------
def test_relative_names_start_at_a_word():
    assert relative("features.1.0.block.0.0", ("features", "features.1", "features.1.0", "features.1.0.block", "features.1.0.block.0")) == "block.0.0"
    assert relative("features.1.0", ("features", "features.1")) == "features.1.0"
    assert relative("layer1.0", ("layer1",)) == "layer1.0"
    assert relative("layer1.0.conv1", ("layer1", "layer1.0")) == "conv1"
    assert relative("layer2.0.downsample.0", ("layer2", "layer2.0", "layer2.0.downsample")) == "downsample.0"
    assert relative("fc", ()) == "fc"


def subtitles(dot: str) -> list[str]:
    """The grey name line of every drawn op and the bold first line of every box."""
    return re.findall(r'<FONT POINT-SIZE="(?:9|10)" COLOR="#(?:555555|333333)">(?:<B>)?([^<]+)<', dot)


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_small", "convnext_tiny", "swin_t"])
def test_no_name_or_box_title_is_a_bare_index(name):
    """Before: `0.0`, `1.2` under the convs of EfficientNet's blocks, `1.0 · mbconv` over them."""
    spec = compiled(name)
    dot = diagram_source(spec.ir, spec.analysis)
    names = [text.split(" · ")[0] for text in subtitles(dot)]
    assert names
    assert not [n for n in names if re.fullmatch(r"[\d.]+", n)]


def test_efficientnet_names_read_as_block_paths():
    spec = compiled("efficientnet_b0")
    dot = diagram_source(spec.ir, spec.analysis)
    assert ">block.0.0<" in dot and ">block.3.1<" in dot  # features.2.0.block.0.0 (conv), .block.3.1 (bn)
    assert ">features.2.0 · mbconv<" in dot


def test_an_automatic_name_shows_only_where_weights_point_at_it(tmp_path):
    spec = tmp_path / "shared.yaml"
    spec.write_text(
        "name: shared\ninputs: {x: [3, 8, 8], y: [3, 8, 8]}\noutputs: {a: conv2, b: again, c: stem}\nlayers:\n"
        "  - conv: {out: 4, kernel: 3, from: x}\n"               # conv1: automatic, its weights reused
        "  - reuse: {name: again, node: conv1, from: y}\n"
        "  - conv: {out: 4, kernel: 3, from: x}\n"               # conv2: automatic, nothing points at it
        "  - conv: {name: stem, out: 4, kernel: 3, from: x}\n"   # a name the user gave
    )
    dot = diagram_source(compile(spec).ir)
    label = {m.group(1): m.group(2) for m in re.finditer(r'^\s*(\w+) \[label=<(.*?)> ', dot, re.MULTILINE)}
    assert "conv2" not in label["conv2"]
    assert ">stem<" in label["stem"]
    assert ">conv1<" in label["conv1"] and ">= conv1<" in label["again"]


def test_resnet18_shows_no_automatic_names():
    spec = compiled("resnet18")
    dot = diagram_source(spec.ir, spec.analysis)
    names = set(subtitles(dot))
    assert not names & {"conv1", "conv2", "bn1", "bn2", "relu1", "relu2", "add1"}
    assert {"fc", "downsample.0", "downsample.1"} <= names  # the names the spec gives


# --- U-Net bridges -------------------------------------------------------------------------------------------
@needs_dot
@pytest.mark.parametrize("depth", [None, 2])
def test_unet_bridges_carry_no_label_over_a_box_border(depth):
    """A bridge's label sat across the encoder's box border. The bridge copies the tensor that
    the encoder's own edge below it is labelled with: it is drawn unlabelled, its shape in its
    tooltip, and graphviz writes no text on it."""
    spec = compiled("unet")
    dot = diagram_source(spec.ir, spec.analysis, depth=depth)
    layout_json = placed("unet", depth)
    names = {o["_gvid"]: o["name"] for o in layout_json["objects"]}
    bridges = [e for e in layout_json["edges"] if "#e07b00" in e.get("color", "")]
    assert len(bridges) == 4
    for bridge in bridges:
        tail = names[bridge["tail"]]
        assert "_ldraw_" not in bridge and bridge.get("label", "") == ""  # no text drawn
        shape = bridge["tooltip"].removeprefix("bridge: ")
        below = [e for e in layout_json["edges"] if names[e["tail"]] == tail and e is not bridge]
        assert any(e.get("label", "").strip() == shape for e in below), tail
    assert dot.count('tooltip="bridge: ') == 4
