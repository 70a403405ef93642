"""The command line: --help, the JSON contract of `report`, its options, `build`'s artifacts,
`validate` exit codes and messages, `ops`, and that `report` / `validate` never import torch.

Most commands run in-process through typer's CliRunner (fast); what depends on the process
(exit codes seen by a shell, stderr, imported modules, torch) runs as a subprocess (`run_cli`).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from archspec.cli import app
from archspec.errors import ArchspecError
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


# --- issue 17: version, -h, flags, optimizer names, library specs by name ------------------------------
def _commands() -> list[str]:
    import typer.main

    return sorted(typer.main.get_command(app).commands)


def test_version_is_the_packages():
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout == f"archspec {version}\n" and result.stderr == ""


def test_dash_h_is_help_on_the_app_and_every_command():
    assert {"validate", "report", "build", "explain", "train", "bench", "diagram", "export"} <= set(_commands())
    top = invoke("-h")
    assert top.exit_code == 0 and top.stdout == invoke("--help").stdout and "--version" in top.stdout
    for command in _commands():
        short, long = invoke(command, "-h"), invoke(command, "--help")
        assert short.exit_code == 0, (command, short.output)
        assert short.stdout == long.stdout and f"Usage: archspec {command}" in short.stdout, command


def test_flags_take_no_value_in_the_help():
    """No `<bool>` after a flag (it made `--flops true` look right): every boolean option of every
    command reads as a plain flag or --x/--no-x, and its help line names no value."""
    import typer.main

    for name, command in typer.main.get_command(app).commands.items():
        text = invoke(name, "--help").stdout
        assert "<bool>" not in text, name
        for param in command.params:
            if getattr(param, "is_flag", False):
                line = next(line.strip() for line in text.splitlines() if line.strip().startswith(param.opts[0]))
                after = line[len(param.opts[0]):].split()  # the help text, or `/ --no-x`; no value
                assert not after or not after[0].startswith(("<", "BOOL", "[")), (name, line)
    assert "--flops " in invoke("report", "--help").stdout


def test_a_flag_before_the_spec_and_a_stray_true():
    result = invoke("report", "--flops", LENET)
    assert result.exit_code == 0 and "352,800" in result.stdout  # conv1's MACs: the column is there
    stray = invoke("report", "--flops", "true")
    assert stray.exit_code == 1 and stray.stdout == ""
    assert stray.stderr == ("error: no such file: true, and archspec's library has no spec 'true'\n"
                            "  hint: flags take no value: write `--flops`, not `--flops true`\n")


def test_library_specs_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no specs/ here
    data = report_json("resnet18")
    assert data["name"] == "resnet18" and data["params"]["total"] == RESNET_PARAMS
    assert report_json("lenet5.yaml")["params"]["total"] == report_json("archspec:lenet5")["params"]["total"] == 62_006
    validated = invoke("validate", "lenet5", "resnet18")
    assert validated.exit_code == 0 and validated.stdout.count("ok  ") == 2
    wrong = invoke("report", "resnt18")
    assert wrong.exit_code == 1 and "Traceback" not in wrong.output
    assert wrong.stderr.startswith("error: no such file: resnt18, and archspec's library has no spec 'resnt18'\n")
    assert "did you mean 'resnet18'" in wrong.stderr
    missing = invoke("report", "sub/resnet18.yaml")  # a path with folders is a path, never a library name
    assert missing.exit_code == 1 and missing.stderr.startswith("error: no such file: sub/resnet18.yaml")


def test_report_without_specs_elsewhere_is_the_installed_library(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = report_json()
    assert sorted(item["name"] for item in data) == sorted(
        __import__("yaml").safe_load(p.read_text())["name"] for p in SPECS.glob("*.yaml"))


def test_summary_and_paper_head_the_table_and_the_explanation():
    import yaml

    doc = yaml.safe_load((SPECS / "lenet5.yaml").read_text())  # the spec's own words
    heading = [f"lenet5: {doc['summary']}", f"paper: {doc['paper']}"]
    table = invoke("report", LENET)
    assert table.exit_code == 0 and table.stdout.splitlines()[:2] == heading
    assert table.stdout.splitlines()[2].startswith("lenet5 (batch 1)")
    explained = invoke("explain", LENET, "--lang", "en")
    assert explained.exit_code == 0 and explained.stdout.splitlines()[:3] == [*heading, "conv1 (conv): 3x32x32 → 6x28x28"]
    one_node = invoke("explain", LENET, "conv1", "--lang", "en")  # a named node's explanation starts with it
    assert one_node.stdout.startswith("conv1 (conv): 3x32x32 → 6x28x28")
    markdown = invoke("report", LENET, "--format", "markdown")
    assert markdown.stdout.splitlines()[:5] == ["# lenet5", "", doc["summary"], "", f"Paper: {doc['paper']}"]


@pytest.mark.parametrize("optimizer, states", [("sgd", 1), ("adam", 2), ("adamw", 2)])
def test_report_takes_trains_optimizer_names(optimizer, states):
    """One list (archspec.runs.OPTIMIZERS) for `report --optimizer` and `train --optimizer`: state
    tensors per parameter are SGD's momentum (1) and Adam's two moments (torch.optim's state)."""
    from archspec.runs import OPTIMIZERS
    from archspec.train.config import TrainConfig

    assert list(OPTIMIZERS) == ["sgd", "adam", "adamw"]
    memory = report_json(LENET, "--memory", "--optimizer", optimizer)["memory"]
    assert memory["optimizer_state"] == states * 62_006 * 4  # fp32 bytes of every trainable parameter
    TrainConfig(spec=LENET, optimizer=optimizer).check()  # train takes the same name
    for command in ("report", "compare"):
        assert optimizer in invoke(command, "--help").stdout
    assert optimizer in invoke("train", "--help").stdout


def test_a_bad_optimizer_name_lists_the_same_choices_everywhere():
    from archspec.train.config import TrainConfig

    report = invoke("report", LENET, "--memory", "--optimizer", "lion")
    assert report.exit_code == 1 and report.stderr == "error: --optimizer must be sgd, adam or adamw, not 'lion'\n"
    with pytest.raises(ArchspecError, match=r"--optimizer must be one of sgd, adam, adamw, not 'lion'"):
        TrainConfig(spec=LENET, optimizer="lion").check()


def test_diagram_suffix_and_format_must_agree(tmp_path):
    clash = invoke("diagram", LENET, "--out", str(tmp_path / "x.svg"), "--format", "png")
    assert clash.exit_code == 1 and not any(tmp_path.iterdir())
    assert clash.stderr == (f"error: --out {tmp_path / 'x.svg'} is a .svg file but --format is png: drop --format "
                            "(the suffix decides) or name the file .png\n")
    by_suffix = invoke("diagram", LENET, "--out", str(tmp_path / "x.dot"))  # the suffix decides
    assert by_suffix.exit_code == 0 and (tmp_path / "x.dot").read_text().startswith("digraph")
    agreeing = invoke("diagram", LENET, "--out", str(tmp_path / "y.dot"), "--format", "dot")
    assert agreeing.exit_code == 0 and (tmp_path / "y.dot").is_file()


def test_importing_the_cli_loads_no_heavy_module():
    """Start-up (reports/startup.md): the command line, `--version` and `--help` load neither torch
    nor rich, the pipeline's pydantic/networkx/YAML or numpy; each command imports what it uses."""
    code = ("import sys\nimport archspec, archspec.cli\n"
            "print(sorted(m for m in ('torch', 'rich', 'pydantic', 'networkx', 'yaml', 'numpy', 'matplotlib', "
            "'archspec.pipeline', 'archspec.ops.registry') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
    assert "archspec 0.1.0" in run_cli("--version").stdout


# --- report --run: the run must be of the spec; its optimizer and batch are the report's --------------
def _fake_run(folder, spec_text: str | None, optimizer: str = "adamw", batch: int = 64, params=None):
    """A run folder as train writes it, without training: config.json, metrics.jsonl and a
    safetensors checkpoint whose metadata holds the spec's SHA-256 (spec_text None: no checkpoint)."""
    import hashlib

    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"spec": "specs/lenet5.yaml", "optimizer": optimizer,
                                                    "batch_size": batch}))
    rows = [{"epoch": e, "train_loss": 1.0 / e, "test_loss": 1.2 / e, "test_accuracy": 0.5 + e / 10} for e in (1, 2)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    if spec_text is not None:
        build = {"spec": "specs/lenet5.yaml", "params": params or {}, "inputs": {"image": [3, 32, 32]}}
        save_file({"w": np.zeros(1, dtype=np.float32)}, str(folder / "checkpoint.safetensors"),
                  metadata={"spec": spec_text, "spec_sha256": hashlib.sha256(spec_text.encode()).hexdigest(),
                            "build": json.dumps(build)})
    return folder


def test_report_run_refuses_another_specs_run(tmp_path):
    run = _fake_run(tmp_path / "run", (SPECS / "lenet5.yaml").read_text())
    result = invoke("report", RESNET, "--run", str(run), "--format", "html", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and not (tmp_path / "out").exists()
    assert result.stderr.startswith(f"error: --run {run} is a run of another spec (it trained specs/lenet5.yaml)")
    assert "hint: report the spec that was trained: specs/lenet5.yaml" in result.stderr


def test_report_run_uses_the_runs_optimizer_batch_and_build(tmp_path):
    run = _fake_run(tmp_path / "run", (SPECS / "lenet5.yaml").read_text(), "adamw", 64, params={"num_classes": 100})
    result = invoke("report", LENET, "--run", str(run), "--format", "html", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    page = (tmp_path / "out" / "report.html").read_text()
    assert "sgd, weights" not in page and "batch 1<" not in page and "batch 64" in page
    assert re.search(r"adamw?, weights \+ grads", page)  # the memory card counts Adam-family state
    assert "69,656" in page  # LeNet-5 with 100 classes (the run's build): 62,006 - 850 + 84*100 + 100
    given = invoke("report", LENET, "--run", str(run), "--format", "html", "--out", str(tmp_path / "o2"),
                   "--batch", "2", "--optimizer", "sgd")  # the command line wins
    assert given.exit_code == 0 and "batch 2" in (tmp_path / "o2" / "report.html").read_text()


def test_report_run_without_a_checkpoint_warns(tmp_path):
    run = _fake_run(tmp_path / "run", None)
    result = invoke("report", LENET, "--run", str(run), "--format", "html", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"warning: --run {run}: no checkpoint with the spec's SHA-256 there")
    assert "batch 64" in (tmp_path / "out" / "report.html").read_text()
