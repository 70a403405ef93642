"""Diagrams: the DOT structure (clusters, labels, edge kinds, legend, depth folding, the U of an
encoder-decoder), rendering with graphviz's `dot` where it is installed, and the one-line error
(exit 1, no traceback) where it is not.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archspec.cli import app
from archspec import compile as compile_spec
from archspec.errors import ArchspecError
from archspec.ops.catalog import entries
from archspec.ops.registry import FAMILIES as OP_FAMILIES
from archspec.pipeline import compile
from archspec.render import diagram as diagram_module
from archspec.render.diagram import WRAP_RANKS, build_artifacts, classify_edges, columns, diagram_source, layout, render
from archspec.render.wrap import wrapped
from conftest import LIBRARY, ROOT, SPECS

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="graphviz's dot is not installed")


@lru_cache(maxsize=None)
def compiled(name: str):
    spec = compile_spec(SPECS / f"{name}.yaml")
    return spec.ir, spec.analysis


def source(name: str, **options) -> str:
    ir, analysis = compiled(name)
    return diagram_source(ir, analysis, **options)


def node_ids(dot: str) -> list[str]:
    """Ids of the node statements (not edges, not attribute lines) of a DOT text."""
    ids = []
    for line in dot.splitlines():
        match = re.match(r'\s*("(?:[^"\\]|\\.)*"|[A-Za-z_][\w.]*) \[', line)
        if match and "->" not in line:
            ids.append(match.group(1).strip('"'))
    return ids


def edges(dot: str) -> dict[tuple[str, str], str]:
    """(tail, head) -> attribute text, for every edge statement."""
    found = {}
    for line in dot.splitlines():
        match = re.match(r'\s*("[^"]*"|\S+) -> ("[^"]*"|\S+) \[(.*)\]\s*$', line)
        if match:
            found[(match.group(1).strip('"'), match.group(2).strip('"'))] = match.group(3)
    return found


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


# --- labels and structure -------------------------------------------------------------------------
def test_resnet18_labels_ops_with_their_key_arguments():
    dot = source("resnet18")
    for text in ("conv 7x7/2, 64", "maxpool 3x3/2", "linear 1000", "conv 3x3/2, 128", "conv 1x1/2, 128", "conv 3x3, 512"):
        assert f"<B>{text}</B>" in dot, text
    assert "rankdir=TB" in dot


def test_every_block_and_stage_is_a_nested_labelled_cluster():
    ir, _ = compiled("resnet18")
    dot = source("resnet18")
    scopes = {scope for node in ir.nodes() for scope in node.scopes}
    for scope in scopes:
        assert f'subgraph "cluster_{scope}"' in dot or f"subgraph cluster_{scope} " in dot, scope
    # nesting: layer1.0 opens inside layer1, before layer1 closes
    outer = dot.index("cluster_layer1")
    inner = dot.index("cluster_layer1.0")
    assert outer < inner < dot.index("cluster_layer2")
    assert "layer1 · 2x basic" in dot and "layer1.0 · basic" in dot and "downsample · projection" in dot


def test_edges_carry_the_tensor_shapes():
    found = edges(source("resnet18"))
    assert 'label=" 3x224x224 "' in found[("image", "conv1")]
    assert 'label=" 64x56x56 "' in found[("maxpool1", "layer1.0.conv1")]
    assert 'label=" 512 "' in found[("global_avgpool1", "fc")]
    assert 'label=" 1000 "' in found[("fc", "[output] output")]
    unlabelled = [key for key, attrs in found.items() if "label=" not in attrs]
    assert unlabelled == []


def test_residuals_are_dashed_into_round_adds():
    dot = source("resnet18")
    found = edges(dot)
    assert "style=dashed" in found[("maxpool1", "layer1.0.add1")]  # identity shortcut
    assert "style=dashed" not in found[("layer1.0.bn2", "layer1.0.add1")]  # main path
    assert "style=dashed" in found[("layer1.1.relu2", "layer2.0.downsample.0")]  # projection shortcut
    add = next(line for line in dot.splitlines() if line.strip().startswith('"layer1.0.add1" ['))
    assert "shape=circle" in add and 'label="+"' in add


def test_parallel_branches_meet_in_a_concat_trapezium():
    dot = source("inception_module")
    concat = next(line for line in dot.splitlines() if line.strip().startswith('"inception3a.concat" ['))
    assert "shape=invtrapezium" in concat
    found = edges(dot)
    branch_ends = [tail for (tail, head) in found if head == "inception3a.concat"]
    assert len(branch_ends) == 4
    assert all("style=" not in found[(tail, "inception3a.concat")] for tail in branch_ends)  # branches, not shortcuts
    for cluster in ("cluster_inception3a", "inception3a.b1", "inception3a.b2", "inception3a.b3", "inception3a.b4"):
        assert cluster in dot


def test_legend_names_the_families_drawn():
    dot = source("resnet18")
    assert "cluster_legend" in dot
    legend = dot[dot.index("cluster_legend"):]
    for words in ("convolution", "normalisation", "activation", "pooling", "linear", "merge", "shortcut"):
        assert words in legend, words
    assert "resize" not in legend and "bridge (encoder" not in legend  # none drawn in ResNet-18
    assert "bridge (encoder" in source("unet")[source("unet").index("cluster_legend"):]


def test_leaky_relu_is_labelled_with_its_slope(tmp_path):
    """Regression: the label read `slope`, but the argument is `negative_slope`."""
    spec = tmp_path / "leaky.yaml"
    spec.write_text("name: leaky\ninputs: {x: [3, 8, 8]}\nlayers:\n  - leaky_relu: {negative_slope: 0.2}\n")
    assert "<B>leaky_relu 0.2</B>" in diagram_source(compile(spec).ir)


def test_every_op_family_has_a_look_of_its_own_and_a_place_in_the_legend():
    looks = diagram_module.FAMILIES
    assert list(looks) == ["input", *OP_FAMILIES, "block", "run"]  # the legend's order
    assert len({look.fill for look in looks.values()}) == len(looks)
    for op in entries():
        assert diagram_module.family(op.name) == op.family


def test_ops_of_one_family_share_a_colour():
    dot = source("googlenet")
    fills = {}
    for line in dot.splitlines():
        match = re.search(r'tooltip="[^:"]+: (\w+),', line)
        colour = re.search(r'fillcolor="(#[0-9a-f]{6})"', line)
        if match and colour:
            fills.setdefault(diagram_module.family(match.group(1)), set()).add(colour.group(1))
    assert {"conv", "norm", "activation", "pool", "linear", "merge"} <= set(fills)
    assert all(len(colours) == 1 for colours in fills.values()), fills
    assert len({next(iter(c)) for c in fills.values()}) == len(fills)  # and families differ


def test_depth_folds_blocks_into_single_nodes():
    full, stages, blocks = (node_ids(source("resnet152", depth=d)) for d in (None, 1, 2))
    assert len(full) > 500 and len(stages) < 20 and len(stages) < len(blocks) < len(full)
    assert {"[block] layer1", "[block] layer4"} <= set(stages)
    assert "[block] layer3.35" in blocks and "layer3.35.conv1" not in blocks
    depth2 = source("resnet152", depth=2)
    assert "cluster_layer3" in depth2 and "cluster_layer3.0" not in depth2
    assert "36x bottleneck" in source("resnet152", depth=1)  # a folded stage says what it repeats
    # the edges between folded blocks are the plain main path, labelled with the shape
    found = edges(source("resnet18", depth=2))
    assert 'label=" 64x56x56 "' in found[("[block] layer1.0", "[block] layer1.1")]
    assert "style=dashed" not in found[("[block] layer1.0", "[block] layer1.1")]


def test_depth_matches_report_folding():
    ir, analysis = compiled("resnet18")
    from archspec.render.report import layer_rows

    rows = {row.name for row in layer_rows(analysis, 2)}
    drawn = {i.removeprefix("[block] ") for i in node_ids(source("resnet18", depth=2))}
    assert rows <= drawn


def test_params_option_adds_figures_to_the_nodes():
    assert " params · " not in source("lenet5")
    dot = source("lenet5", params=True)
    conv1 = next(line for line in dot.splitlines() if line.strip().startswith("conv1 ["))
    assert "456 params · 353K MACs" in conv1  # the course's LeNet-5: 6 x (3 x 5 x 5) + 6; 28 x 28 x 6 x 75


def test_rankdir_lr_and_bad_rankdir():
    assert "rankdir=LR" in source("lenet5", rankdir="LR")
    ir, analysis = compiled("lenet5")
    with pytest.raises(ArchspecError, match="--rankdir must be TB or LR"):
        diagram_source(ir, analysis, rankdir="up")


def test_every_library_spec_gives_a_diagram():
    for path in LIBRARY:
        ir, analysis = compiled(path.stem)
        for depth in (None, 1):
            dot = diagram_source(ir, analysis, depth=depth)
            assert dot.startswith("digraph") and "cluster_legend" in dot, path


def test_a_very_long_drawing_is_cut_into_columns():
    ir, _ = compiled("resnet152")
    plan = layout(ir)
    column = columns(plan, WRAP_RANKS)
    assert 3 <= len(set(column.values())) <= 8
    dot = source("resnet152")
    assert "(continued)" in dot  # a stage cut in two is two boxes
    # and the edges between columns end and start again at connectors (tests/test_diagram_papercuts.py)
    assert '"[to column 2] layer2.7.relu3"' in dot and '"[from column 1] layer2.7.relu3"' in dot
    assert "(continued)" not in source("resnet152", wrap=None)
    assert set(columns(layout(compiled("resnet18")[0]), WRAP_RANKS).values()) == {0}  # short: one column
    assert set(columns(layout(compiled("unet")[0]), 10).values()) == {0}  # a U is never cut


@needs_dot
def test_columns_stand_side_by_side():
    ir, analysis = compiled("resnet34")
    _, column = wrapped(layout(ir), WRAP_RANKS)  # the units and the connectors that open column 2
    assert set(column.values()) == {0, 1}
    placed = json.loads(render(diagram_source(ir, analysis), "json"))
    where = {obj["name"]: tuple(map(float, obj["pos"].split(","))) for obj in placed["objects"] if "pos" in obj}
    right_of_first = min(where[u][0] for u, c in column.items() if c == 1)
    assert max(where[u][0] for u, c in column.items() if c == 0) < right_of_first
    tops = [max(where[u][1] for u, c in column.items() if c == k) for k in (0, 1)]
    assert abs(tops[0] - tops[1]) < 80  # both start at the top


# --- encoder-decoder: bridges and the U ------------------------------------------------------------------
UNET_LEVELS = [("enc1.relu2", "dec1.bridge"), ("enc2.conv.relu2", "dec2.bridge"), ("enc3.conv.relu2", "dec3.bridge"), ("enc4.conv.relu2", "dec4.bridge")]


def test_unet_bridges_are_drawn_across_on_one_rank():
    dot = source("unet")
    found = edges(dot)
    for encoder, decoder in UNET_LEVELS:
        attrs = found[(encoder, decoder)]
        assert "#e07b00" in attrs and "style=dashed" in attrs  # the bridge style
        same = re.search(r'\{\s*rank=same\s*"' + re.escape(encoder) + r'"\s*"' + re.escape(decoder) + r'"\s*\}', dot)
        assert same, (encoder, decoder)
    assert "newrank=true" in dot
    # the decoder is laid out upwards: its edges are written reversed and drawn back
    assert "dir=back" in found[("dec4.bridge", "dec4.up")]


def test_bridges_only_where_a_path_goes_down_and_back_up():
    kinds = {name: set(classify_edges(compiled(name)[0]).values()) for name in ("unet", "tiny_unet", "pspnet", "densenet121", "resnet18", "googlenet")}
    assert "bridge" in kinds["unet"] and "bridge" in kinds["tiny_unet"]
    for name in ("pspnet", "densenet121", "resnet18", "googlenet"):  # fan-outs, dense and residual links
        assert "bridge" not in kinds[name], name
    assert "size" in kinds["pspnet"]  # upsample to the input's size: a dotted size reference
    assert layout(compiled("pspnet")[0]).turn is None


@needs_dot
@pytest.mark.parametrize("depth", [None, 1])
def test_unet_is_laid_out_as_a_u(depth):
    """dot's own coordinates: each bridge is horizontal, encoder left of decoder; the bottom is lowest."""
    dot = source("unet", depth=depth)
    placed = json.loads(render(dot, "json"))
    where = {obj["name"]: tuple(map(float, obj["pos"].split(","))) for obj in placed["objects"] if "pos" in obj}
    pairs = UNET_LEVELS if depth is None else [(f"[block] enc{k}", f"[block] dec{k}") for k in range(1, 5)]
    for encoder, decoder in pairs:
        (ex, ey), (dx, dy) = where[encoder], where[decoder]
        assert abs(ey - dy) < 1 and ex < dx, (encoder, decoder)
    levels = [where[encoder][1] for encoder, _ in pairs]
    assert levels == sorted(levels, reverse=True)  # level 1 at the top (graphviz y grows upwards)
    bottom = where["bottom.conv.relu2" if depth is None else "[block] bottom"][1]
    assert bottom < min(levels)
    assert where["[output] output"][1] > where[pairs[-1][1]][1]  # the decoder climbs back up to the output


# --- rendering --------------------------------------------------------------------------------------------
@needs_dot
@pytest.mark.parametrize("fmt, magic", [("svg", b"<svg"), ("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_diagram_command_renders(tmp_path, fmt, magic):
    out = tmp_path / f"resnet18.{fmt}"
    result = invoke("diagram", str(SPECS / "resnet18.yaml"), "--depth", "2", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert magic in out.read_bytes()[:400]
    assert (tmp_path / "resnet18.dot").read_text().startswith("digraph resnet18")
    assert f"wrote {out}" in result.stdout


@needs_dot
def test_full_depth_svg_is_one_unclipped_image(tmp_path):
    out = tmp_path / "r18.svg"
    assert invoke("diagram", str(SPECS / "resnet18.yaml"), "--out", str(out), "--params").exit_code == 0
    svg = out.read_text()
    width, height = (float(v) for v in re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups())
    box = [float(v) for v in re.search(r'viewBox="([\d. -]+)"', svg).group(1).split()]
    assert box[2:] == pytest.approx([width, height], abs=1.5)  # scale 1: nothing shrunk or cut
    assert svg.count('class="node"') == 68 + 3  # every op, the input, the output, the legend
    assert "layer4.1.conv2" in svg and "1000" in svg


def test_format_dot_and_folder_out_and_bad_format(tmp_path):
    result = invoke("diagram", str(SPECS / "lenet5.yaml"), "--format", "dot", "--out", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diagram.dot"]
    bad = invoke("diagram", str(SPECS / "lenet5.yaml"), "--format", "gif")
    assert bad.exit_code == 1 and "--format must be one of svg, png, pdf, dot" in bad.stderr
    lr = invoke("diagram", str(SPECS / "lenet5.yaml"), "--rankdir", "sideways", "--out", str(tmp_path / "x.dot"))
    assert lr.exit_code == 1 and "--rankdir must be TB or LR" in lr.stderr


def test_missing_dot_is_one_line_and_exit_1(tmp_path):
    """A PATH without graphviz: the .dot is still written, then one line says how to install dot."""
    empty = tmp_path / "bin"
    empty.mkdir()
    out = tmp_path / "out" / "lenet5.svg"
    env = {**os.environ, "PATH": str(empty)}
    result = subprocess.run(
        [sys.executable, "-m", "archspec", "diagram", "specs/lenet5.yaml", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "apt-get install graphviz" in lines[0] and "brew install graphviz" in lines[0]
    assert (tmp_path / "out" / "lenet5.dot").read_text().startswith("digraph lenet5")
    assert not out.exists()


def test_build_artifacts_never_fail_without_dot(tmp_path, monkeypatch):
    ir, analysis = compiled("lenet5")
    monkeypatch.setattr("shutil.which", lambda name: None)  # no graphviz on the PATH
    written, note = build_artifacts(tmp_path, ir, analysis)
    assert [p.name for p in written] == ["diagram.dot"]
    assert note is not None and "apt-get install graphviz" in note and "\n" not in note


@needs_dot
def test_build_artifacts_write_the_svg_with_dot(tmp_path):
    ir, analysis = compiled("lenet5")
    written, note = build_artifacts(tmp_path, ir, analysis)
    assert [p.name for p in written] == ["diagram.dot", "diagram.svg"] and note is None
    assert "<svg" in (tmp_path / "diagram.svg").read_text()
