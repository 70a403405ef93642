"""The command line: --help, the JSON contract of `report`, its options, `build`'s artifacts,
`validate` exit codes and messages, `ops`, and that `report` / `validate` never import torch.

Most commands run in-process through typer's CliRunner (fast); what depends on the process
(exit codes seen by a shell, stderr, imported modules, torch) runs as a subprocess (`run_cli`).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from archspec.cli import app
from conftest import LIBRARY, ROOT, SPECS, run_cli

LENET = str(SPECS / "lenet5.yaml")
RESNET = str(SPECS / "resnet18.yaml")

# the course's table for LeNet-5 (3x32x32 input): parameters of the weighted layers
LENET_PARAMS = {"conv1": 456, "conv2": 2_416, "fc3": 48_120, "fc4": 10_164, "fc5": 850}
LENET_ORDER = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten1", "fc3", "relu3", "fc4", "relu4", "fc5"]
RESNET_PARAMS = 11_689_512
RESNET_FLOPS = 3_628_146_688  # FlopCounterMode at 1x3x224x224, as torchvision's resnet18

TOP_KEYS = {"name", "inputs", "outputs", "params", "buffers", "macs", "flops", "activations", "layers", "blocks"}
LAYER_KEYS = {"name", "op", "output_shape", "params", "macs", "flops"}
SUMMED = ("params", "trainable", "buffers", "macs", "flops", "all_ops", "activations")


def invoke(*args: str, cwd=None, monkeypatch=None):
    if cwd is not None:
        monkeypatch.chdir(cwd)
    return CliRunner().invoke(app, list(args))


def report_json(*args: str):
    result = invoke("report", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def check_contract(data: dict, by_prefix: bool = True) -> None:
    """One report object: the keys the README promises, consistent totals and block roll-ups.

    A block's layers are found by name prefix (`layer1.` for `layer1`). `by_prefix=False` is for
    specs whose layers are renamed (`seq` with `index_names`): then a block is checked only where
    its prefix finds its layers, plus the roll-up bound that holds in any case."""
    assert TOP_KEYS <= set(data)
    assert {"total", "trainable"} <= set(data["params"])
    assert data["params"]["trainable"] <= data["params"]["total"]
    for shapes in (data["inputs"], data["outputs"]):
        assert shapes and all(isinstance(s, list) and all(isinstance(d, int) and d > 0 for d in s) for s in shapes.values())
    layers = data["layers"]
    assert layers
    for layer in layers:
        assert LAYER_KEYS <= set(layer), layer
        assert all(isinstance(layer[k], int) and layer[k] >= 0 for k in ("params", "macs", "flops"))
    # totals are the sums of the leaf ops
    assert data["params"]["total"] == sum(layer["params"] for layer in layers)
    assert data["macs"] == sum(layer["macs"] for layer in layers)
    assert data["flops"] == sum(layer["flops"] for layer in layers)
    # blocks at one nesting depth are disjoint: together they hold at most all the layers
    for depth in {block["depth"] for block in data["blocks"]}:
        level = [block for block in data["blocks"] if block["depth"] == depth]
        assert sum(block["layers"] for block in level) <= len(layers)
        for key in ("params", "macs", "flops"):
            assert sum(block[key] for block in level) <= sum(layer[key] for layer in layers)
    # each block rolls up exactly the layers under its path
    for block in data["blocks"]:
        inside = [layer for layer in layers if layer["name"].startswith(block["name"] + ".")]
        if not by_prefix and len(inside) != block["layers"]:
            continue
        assert inside, block["name"]
        assert block["layers"] == len(inside)
        for key in SUMMED:
            assert block[key] == sum(layer[key] for layer in inside), (block["name"], key)
        assert block["output_shape"] == inside[-1]["output_shape"]


def table_header(text: str) -> str:
    return next(line for line in text.splitlines() if "Layer" in line and "Op" in line)


# --- help ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command, option",
    [("validate", "--set"), ("report", "--format"), ("build", "--out"), ("ops", "--help")],
)
def test_every_command_has_help(command, option):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.stdout and command in result.stdout
    assert option in result.stdout


def test_top_level_help_lists_the_commands_in_a_process():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("validate", "report", "build", "ops"):
        assert command in result.stdout


# --- report: the JSON contract -------------------------------------------------------------------
def test_report_json_lenet5_matches_the_course_table():
    result = run_cli("report", "specs/lenet5.yaml", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # exactly one JSON object on stdout, nothing else
    assert isinstance(data, dict)
    check_contract(data)
    assert data["name"] == "lenet5"
    assert data["inputs"] == {"image": [3, 32, 32]}
    assert data["outputs"] == {"output": [10]}
    assert data["params"]["total"] == data["params"]["trainable"] == 62_006 == sum(LENET_PARAMS.values())
    assert [layer["name"] for layer in data["layers"]] == LENET_ORDER
    by_name = {layer["name"]: layer for layer in data["layers"]}
    assert {name: by_name[name]["params"] for name in LENET_PARAMS} == LENET_PARAMS
    assert all(layer["params"] == 0 for layer in data["layers"] if layer["name"] not in LENET_PARAMS)
    assert by_name["conv1"]["output_shape"] == [6, 28, 28]
    assert by_name["pool2"]["output_shape"] == [16, 5, 5]
    assert by_name["flatten1"]["output_shape"] == [400]
    # conv1: 6*28*28 outputs x 5*5*3 MACs; FLOPs are 2 x MACs for conv/linear
    assert by_name["conv1"]["macs"] == 6 * 28 * 28 * 75 == 352_800
    assert by_name["conv1"]["flops"] == 2 * 352_800
    assert data["macs"] == 352_800 + 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    assert data["flops"] == 2 * data["macs"]
    assert data["buffers"] == 0
    assert data["blocks"] == []


def test_report_json_resnet18_matches_torchvision():
    data = report_json(RESNET)
    check_contract(data)
    assert data["name"] == "resnet18"
    assert data["params"]["total"] == RESNET_PARAMS
    assert data["flops"] == RESNET_FLOPS
    assert data["macs"] * 2 == RESNET_FLOPS
    assert data["outputs"] == {"output": [1000]}
    # running mean + var per BN channel (4,800 channels) and one num_batches_tracked per BN (20)
    assert data["buffers"] == 2 * 4_800 + 20
    blocks = {block["name"]: block for block in data["blocks"]}
    assert {"layer1", "layer2", "layer3", "layer4", "layer1.0", "layer4.1", "layer2.0.downsample"} <= set(blocks)
    assert blocks["layer1"]["kind"] == "repeat" and blocks["layer1.0"]["kind"] == "basic"
    assert blocks["layer2.0.downsample"]["kind"] == "projection"
    assert blocks["layer4"]["output_shape"] == [512, 7, 7]
    # stage parameters, by hand: two basic blocks of 3x3 convs + BN, plus a projection from layer2 on
    basic = lambda c_in, c: 9 * c_in * c + 2 * c + 9 * c * c + 2 * c  # noqa: E731
    project = lambda c_in, c: c_in * c + 2 * c  # noqa: E731
    assert blocks["layer1"]["params"] == 2 * basic(64, 64)
    assert blocks["layer2"]["params"] == basic(64, 128) + project(64, 128) + basic(128, 128)
    assert blocks["layer4"]["params"] == basic(256, 512) + project(256, 512) + basic(512, 512)
    fc = next(layer for layer in data["layers"] if layer["name"] == "fc")
    assert fc["params"] == 512 * 1000 + 1000 and fc is data["layers"][-1]


def test_report_json_several_specs_is_a_list():
    data = report_json(LENET, RESNET)
    assert isinstance(data, list) and [d["name"] for d in data] == ["lenet5", "resnet18"]
    for item in data:
        check_contract(item)
    assert data[1]["params"]["total"] == RESNET_PARAMS


def test_report_json_without_specs_covers_the_library(monkeypatch):
    result = invoke("report", "--format", "json", cwd=ROOT, monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    library = sorted(SPECS.glob("*.yaml"))
    assert isinstance(data, list) and len(data) == len(library) >= 2
    for item in data:
        check_contract(item, by_prefix=item["name"] in ("lenet5", "resnet18"))
    assert {"lenet5", "resnet18"} <= {item["name"] for item in data}


# --- report: options ----------------------------------------------------------------------------
def test_report_table_and_flops_columns():
    plain = invoke("report", LENET)
    assert plain.exit_code == 0, plain.stderr
    assert "conv1" in plain.stdout and "62,006" in plain.stdout
    header = table_header(plain.stdout)
    assert "Params" in header and "FLOPs" not in header and "MACs" not in header
    flops = invoke("report", LENET, "--flops", "--format", "table")
    assert flops.exit_code == 0
    header = table_header(flops.stdout)
    assert "MACs" in header and "FLOPs" in header
    assert "352,800" in flops.stdout and "705,600" in flops.stdout  # conv1's MACs and FLOPs


def test_report_depth_1_folds_the_stages():
    result = invoke("report", RESNET, "--depth", "1", "--format", "markdown")
    assert result.exit_code == 0, result.stderr
    rows = [line.split("|")[1].strip().strip("`") for line in result.stdout.splitlines() if line.startswith("| `")]
    assert rows == ["conv1", "bn1", "relu1", "maxpool1", "layer1", "layer2", "layer3", "layer4", "global_avgpool1", "fc"]
    assert "| `layer2` | repeat | 128x28x28 | 525,568 |" in result.stdout
    table = invoke("report", RESNET, "--depth", "1")
    assert table.exit_code == 0
    assert "layer3" in table.stdout and "layer3.0" not in table.stdout and "conv2" not in table.stdout
    full = invoke("report", RESNET)
    assert "layer3.0.conv2" in full.stdout


def test_report_markdown():
    result = invoke("report", LENET, "--format", "markdown", "--flops")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "# lenet5"
    assert "| Layer | Op | Output | Params | MACs | FLOPs |" in lines
    assert "| `conv1` | conv | 6x28x28 | 456 | 352,800 | 705,600 |" in lines
    assert "| `fc5` | linear | 10 | 850 | 840 | 1,680 |" in lines
    assert "| params | 62,006 (62,006 trainable) |" in lines
    library = invoke("report", LENET, RESNET, "--format", "markdown")
    assert library.exit_code == 0
    assert any(line.startswith("| Spec | Input | Output | Params |") for line in library.stdout.splitlines())
    assert any(line.startswith("| lenet5 |") and "62,006" in line for line in library.stdout.splitlines())
    assert any(line.startswith("| resnet18 |") and "11,689,512" in line for line in library.stdout.splitlines())


def test_report_all_ops():
    data = report_json(RESNET, "--all-ops")
    assert data["all_ops"] > data["flops"]  # BN, ReLU, pooling and adds add work
    for layer in data["layers"]:
        assert layer["all_ops"] >= layer["flops"], layer["name"]
    relu = next(layer for layer in data["layers"] if layer["op"] == "relu")
    assert relu["flops"] == 0 and relu["all_ops"] == 64 * 112 * 112  # one op per output element
    table = invoke("report", RESNET, "--all-ops")
    assert "All ops" in table_header(table.stdout)
    markdown = invoke("report", LENET, "--all-ops", "--format", "markdown")
    assert "| Layer | Op | Output | Params | All ops |" in markdown.stdout


def test_report_input_changes_shapes_and_flops_not_params():
    base, small = report_json(RESNET), report_json(RESNET, "--input", "3x64x64")
    assert small["inputs"] == {"image": [3, 64, 64]}
    assert small["params"] == base["params"]
    assert small["layers"][0]["output_shape"] == [64, 32, 32]
    assert small["blocks"][-1]["output_shape"] == [512, 2, 2]
    # every conv output shrinks by (64/224)^2 = 4/49; the fc (2 x 512 x 1000 FLOPs) does not
    fc = 2 * 512 * 1000
    assert small["flops"] == (base["flops"] - fc) * 4 // 49 + fc == 297_115_648
    # LeNet flattens, so its fc3 grows with the input: 16x13x13 = 2,704 features
    lenet = report_json(LENET, "--input", "3x64x64")
    by_name = {layer["name"]: layer for layer in lenet["layers"]}
    assert by_name["flatten1"]["output_shape"] == [2_704]
    assert by_name["fc3"]["params"] == 2_704 * 120 + 120
    assert lenet["params"]["total"] == 62_006 - 48_120 + 2_704 * 120 + 120


def test_report_named_input():
    data = report_json(LENET, "--input", "image=3x36x36")
    assert data["inputs"] == {"image": [3, 36, 36]}
    assert data["layers"][0]["output_shape"] == [6, 32, 32]


def test_report_batch_scales_counts_not_params():
    one, four = report_json(RESNET), report_json(RESNET, "--batch", "4")
    assert four["params"] == one["params"] and four["buffers"] == one["buffers"]
    assert four["flops"] == 4 * one["flops"] == 4 * RESNET_FLOPS
    assert four["macs"] == 4 * one["macs"]
    assert four["activations"]["elements"] == 4 * one["activations"]["elements"]
    assert [layer["params"] for layer in four["layers"]] == [layer["params"] for layer in one["layers"]]
    assert [layer["flops"] for layer in four["layers"]] == [4 * layer["flops"] for layer in one["layers"]]


def test_report_set_num_classes():
    data = report_json(RESNET, "--set", "num_classes=10")
    fc = next(layer for layer in data["layers"] if layer["name"] == "fc")
    assert fc["params"] == 512 * 10 + 10
    assert fc["output_shape"] == [10] and data["outputs"] == {"output": [10]}
    assert data["params"]["total"] == RESNET_PARAMS - (512 * 1000 + 1000) + (512 * 10 + 10) == 11_181_642
    lenet = report_json(LENET, "--set", "num_classes=100")
    assert lenet["params"]["total"] == 62_006 - 850 + 84 * 100 + 100


def test_report_and_validate_do_not_import_torch():
    code = (
        "import sys\n"
        "from archspec.cli import app\n"
        "app(['report', 'specs/resnet18.yaml', '--format', 'json'], standalone_mode=False)\n"
        "app(['report', 'specs/lenet5.yaml', '--flops', '--all-ops'], standalone_mode=False)\n"
        "app(['validate', 'specs/resnet18.yaml', 'specs/lenet5.yaml'], standalone_mode=False)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('NO TORCH')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("NO TORCH")
    assert '"flops": 3628146688' in result.stdout


# --- report: bad options ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "xml"], "--format must be table, json or markdown, not 'xml'"),
        (["--set", "num_clases=10"], "--set names 'num_clases', which is not a parameter of lenet5"),
        (["--set", "num_classes"], "--set expects NAME=VALUE"),
        (["--input", "3x3y32"], "--input expects CxHxW"),
        (["--input", "3x0x32"], "--input sizes must be positive"),
        (["--input", "label=3x32x32"], "--input names 'label', which is not an input of the spec"),
    ],
)
def test_report_bad_options(args, message):
    result = invoke("report", LENET, *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an escaped exception


# --- build --------------------------------------------------------------------------------------
def test_build_lenet5_writes_the_artifacts(tmp_path):
    out = tmp_path / "artifacts"
    result = run_cli("build", "specs/lenet5.yaml", "--out", str(out))
    assert result.returncode == 0, result.stderr
    for what in ("output shapes", "parameters", "buffers", "FLOPs"):
        assert f"ok  torch agrees on {what}" in result.stdout
    assert "MISMATCH" not in result.stdout and "Traceback" not in result.stderr
    written = {p.name for p in out.iterdir()}
    assert {"module.py", "summary.json", "summary.md"} <= written
    assert not any(name.endswith(".tmp") for name in written)  # atomic writes leave no temporaries
    summary = json.loads((out / "summary.json").read_text())
    check_contract(summary)
    assert summary["name"] == "lenet5" and summary["params"]["total"] == 62_006
    assert summary == report_json(LENET) | {"summary": summary["summary"], "paper": summary["paper"]}
    markdown = (out / "summary.md").read_text()
    assert markdown.startswith("# lenet5") and "| `fc3` | linear | 120 | 48,120 |" in markdown
    module = (out / "module.py").read_text()
    compile(module, "module.py", "exec")  # the generated forward is valid Python
    assert "def forward(self, image)" in module


def test_build_refuses_over_the_memory_limit(tmp_path):
    # estimated from the static analysis, before torch builds anything
    result = invoke("build", LENET, "--out", str(tmp_path / "x"), "--memory-limit", "0.0001")
    assert result.exit_code == 1
    assert "over the 0.0001 GiB limit" in result.stderr
    assert not (tmp_path / "x").exists()


# --- validate -----------------------------------------------------------------------------------
def test_validate_the_library():
    library = sorted(SPECS.glob("*.yaml"))
    assert set(LIBRARY) <= set(library)
    result = run_cli("validate", *map(str, library))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == len(library) and all(line.startswith("ok  ") for line in lines)
    assert any("lenet5.yaml: 12 ops, 62,006 params, output output 10" in line for line in lines)
    assert any("resnet18.yaml" in line and "11,689,512 params" in line for line in lines)


BAD_SPEC = """\
name: bad
inputs: {image: [3, 32, 32]}
layers:
  - conv: {out: 8, kernel: 3}
  - relu: {from: conv2}
"""


def test_validate_a_bad_spec_in_a_process(write_spec):
    bad = write_spec(BAD_SPEC, "bad.yaml")
    result = run_cli("validate", str(bad))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {bad}:5:18 node 'relu1': unknown reference 'conv2'\n  hint: did you mean 'conv1'?\n"
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_validate_reports_every_bad_spec_and_checks_the_good_ones(write_spec):
    bad = write_spec(BAD_SPEC, "bad.yaml")
    missing = bad.parent / "missing.yaml"
    result = invoke("validate", LENET, str(bad), str(missing), RESNET)
    assert result.exit_code == 1
    assert result.stdout.count("ok  ") == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2
    assert errors[0].startswith(f"error: {bad}:5:18 ")
    assert errors[1] == f"error: no such file: {missing}"


def test_validate_set_applies_to_the_spec():
    result = invoke("validate", LENET, "--set", "num_classes=100")
    assert result.exit_code == 0
    assert "69,656 params, output output 100" in result.stdout
    result = invoke("validate", LENET, "--set", "num_classes=0")
    assert result.exit_code == 1
    assert "node 'fc5'" in result.stderr and "'out'" in result.stderr


def test_validate_needs_a_spec():
    result = invoke("validate")
    assert result.exit_code == 2  # usage error from the argument parser
    assert "Traceback" not in result.output


# --- ops ----------------------------------------------------------------------------------------
def test_ops_lists_the_ops():
    result = invoke("ops")
    assert result.exit_code == 0
    first_column = {line.split("│")[1].strip() for line in result.stdout.splitlines() if line.startswith("│")}
    names = {name.strip() for cell in first_column for name in cell.split(",") if name.strip()}
    assert {"conv", "linear", "bn", "concat", "add", "relu", "maxpool", "flatten"} <= names
    conv_row = next(line for line in result.stdout.splitlines() if line.startswith("│ conv "))
    assert "out, kernel, stride, padding" in conv_row
