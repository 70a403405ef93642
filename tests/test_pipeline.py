"""The one compile pipeline (`archspec.compile` -> `Compiled`), the frozen analysis, the one stage
definition and the one figure registry that every output shares."""
from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import archspec
from archspec.cli import app
from archspec.ir.graph import IRGraph
from archspec.render.figures import FIGURES, human_bytes
from conftest import ROOT, SPECS

LENET = SPECS / "lenet5.yaml"


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


# --- the public API is the pipeline -----------------------------------------------------------------
def test_compile_holds_document_ir_and_analysis():
    compiled = archspec.compile(LENET, params={"num_classes": 7})
    assert compiled.document.name == "lenet5" and isinstance(compiled.ir, IRGraph)
    assert compiled.analysis.outputs == {"output": (7,)}
    # the shorthands give the same results
    assert archspec.compile_spec(LENET, {"num_classes": 7}).order == compiled.ir.order
    assert archspec.analyze_spec(LENET, {"num_classes": 7}).totals == compiled.analysis.totals


def test_an_unnamed_input_is_the_first_input_everywhere():
    """The default-input rule (archspec.pipeline.resolve_inputs) is the same for the API and the CLI."""
    compiled = archspec.compile(LENET, inputs={"": (3, 64, 64)})
    assert compiled.analysis.inputs == {"image": (3, 64, 64)}
    # conv1 5x5 at 64x64 -> 60x60 (64 - 5 + 1), 6 maps: the hand count of its output
    assert compiled.analysis.layers[0].output_shape == (6, 60, 60)
    report = json.loads(invoke("report", str(LENET), "--input", "3x64x64", "--format", "json").stdout)
    assert report["inputs"] == {"image": [3, 64, 64]}
    sweep = json.loads(invoke("sweep", str(LENET), "--input", "3x64x64", "--format", "json").stdout)
    assert sweep["rows"][0]["inputs"] == {"image": [3, 64, 64]}
    # an unnamed shape overrides the first input's (evaluate: --input over the checkpoint's shapes)
    assert archspec.compile(LENET, inputs={"image": (3, 32, 32), "": (3, 64, 64)}).analysis.inputs == {"image": (3, 64, 64)}


def test_passes_run_on_request_once_and_results_are_frozen():
    compiled = archspec.compile(LENET)
    assert compiled.memory() is compiled.memory("fp32", "sgd")
    assert compiled.memory("bf16") is not compiled.memory()
    assert compiled.memory("bf16").params * 2 == compiled.memory().params  # 2 bytes a weight instead of 4
    assert compiled.fields is compiled.fields and compiled.stages is compiled.stages
    analysis = compiled.analysis
    assert not hasattr(analysis, "fields") and not hasattr(analysis, "memory")
    with pytest.raises(dataclasses.FrozenInstanceError):
        analysis.name = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.stages[0].params = 0


@pytest.mark.parametrize("name, weighted", [
    ("lenet5", 2 + 3),  # conv1, conv2, and the three linear layers
    ("resnet18", 1 + 8 * 2 + 1 + 3),  # stem, two convs per basic block, fc, and layer2..4's projections
])
def test_depth_counts_weighted_layers(name, weighted):
    assert archspec.analyze_spec(SPECS / f"{name}.yaml").depth == weighted


def test_a_node_with_two_outputs_gives_both_shapes_in_the_json():
    """ShuffleNet v2's channel split: torchvision's stage2 has 116 channels at 28x28 (224 / 8),
    and `x.chunk(2, dim=1)` gives two halves of 58."""
    report = json.loads(invoke("report", str(SPECS / "shufflenet_v2_x1_0.yaml"), "--format", "json").stdout)
    split = next(layer for layer in report["layers"] if layer["name"] == "stage2.1.halves")
    assert split["output_shapes"] == [[58, 28, 28], [58, 28, 28]] and split["output_shape"] == [58, 28, 28]
    assert all("output_shapes" not in layer for layer in report["layers"] if layer["name"] != split["name"]
               and not layer["name"].endswith("halves"))


# --- one stage definition -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0", "densenet121", "vgg16", "unet"])
def test_stages_sum_to_the_totals(name):
    compiled = archspec.compile(SPECS / f"{name}.yaml")
    totals = compiled.analysis.totals
    assert sum(s.params for s in compiled.stages) == totals.params
    assert sum(s.macs for s in compiled.stages) == totals.macs


def test_efficientnet_has_the_same_stages_in_compare_and_the_html_report(tmp_path):
    """torchvision's EfficientNet-B0: features.0 (the stem), features.1..7 (the seven MBConv
    stages), features.8 (the 1x1 head conv), then the classifier: ten stages."""
    expected = [f"features.{i}" for i in range(9)] + ["classifier"]
    compared = invoke("compare", str(SPECS / "efficientnet_b0.yaml"), str(SPECS / "efficientnet_b0.yaml"), "--format", "json")
    assert compared.exit_code == 0, compared.stderr
    assert [row["name"] for row in json.loads(compared.stdout)["stages"]] == expected
    written = invoke("report", str(SPECS / "efficientnet_b0.yaml"), "--format", "html", "--out", str(tmp_path))
    assert written.exit_code == 0, written.stderr
    page = (tmp_path / "report.html").read_text()
    chart = re.search(r'id="chart-stages">(<svg.*?</svg>)', page, flags=re.DOTALL).group(1)
    labels = set(re.findall(r">\s*([a-z_]+(?:\.\d+)?)\s*</text>", chart)) - {"parameters"}
    assert labels == set(expected)


# --- one figure registry --------------------------------------------------------------------------------
def test_figure_formats():
    assert FIGURES["macs"].text(1_814_073_344) == "1,814,073,344 (1.81 G)"
    assert FIGURES["macs"].compact(1_814_073_344) == "1.81 G"
    assert FIGURES["macs"].delta(-1500) == "-1,500"
    assert FIGURES["training_peak"].delta(3 << 19) == "+1.50 MiB"
    assert FIGURES["params"].text(None) == "-"
    assert human_bytes(-1536) == "-1.50 KiB"


def test_compare_and_diff_show_a_figure_alike():
    """The same spec's figures read the same in compare (one column per spec) and diff (OLD, NEW)."""
    resnet, lenet = str(SPECS / "resnet18.yaml"), str(LENET)
    compare = invoke("compare", lenet, resnet, "--format", "markdown").stdout
    diff = invoke("diff", lenet, resnet, "--format", "markdown").stdout
    for title in ("Params", "MACs", "Training step peak", "Weighted layers"):
        row = next(line for line in compare.splitlines() if line.startswith(f"| {title} |"))
        _, old, new = [cell.strip() for cell in row.strip("|").split("|")]
        assert f"| {title} | {old} | {new} |" in diff, title


def test_render_does_not_import_train():
    """The HTML report reads a training run's rows without importing archspec.train (no cycle)."""
    code = ("import sys, archspec.render.html, archspec.render.formats\n"
            "print([m for m in sys.modules if m.startswith('archspec.train')])")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
