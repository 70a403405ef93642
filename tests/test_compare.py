"""`compare`, `diff` and `sweep`: every figure against an independent computation (the analysis of
each variant compiled on its own, hand arithmetic, the papers' tables, or torch's state_dicts).

The commands run in-process through typer's CliRunner; torch is only used to check the
checkpoint-compatibility section of `diff` against real `load_state_dict` calls.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import archspec
from archspec.cli import app
from archspec.commands.sweep import split_values
from archspec.passes.counts import analyze
from archspec.passes.memory import estimate_memory
from conftest import ROOT, SPECS

RESNET18 = str(SPECS / "resnet18.yaml")
RESNET34 = str(SPECS / "resnet34.yaml")
MOBILENET = str(SPECS / "mobilenet_v1.yaml")
EFFICIENTNET = str(SPECS / "efficientnet_b0.yaml")
RESNET18_NODES = 69  # the input and 68 ops


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def ok_json(*args: str):
    result = invoke(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def failure(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 1, result.stdout
    assert "Traceback" not in result.stderr
    return result.stderr


def expected(spec, params=None, inputs=None, batch=1, dtype="fp32", optimizer="sgd") -> dict:
    """The figures of one variant, compiled and analysed on its own (not through the commands)."""
    ir = archspec.compile_spec(spec, params, inputs)
    analysis = analyze(ir, batch=batch)
    memory = estimate_memory(ir, batch=batch, dtype=dtype, optimizer=optimizer)
    t = analysis.totals
    width = {"fp32": 4, "bf16": 2, "fp16": 2}[dtype]
    return {
        "analysis": analysis,
        "params": t.params,
        "trainable": t.trainable,
        "macs": t.macs,
        "flops": t.flops,
        "activations": t.activations,
        "activation_bytes": t.activations * width,
        "inference_peak": memory.inference_peak,
        "training_peak": memory.training_peak,
        "depth": analysis.depth,
        "outputs": {k: list(v) for k, v in analysis.outputs.items()},
    }


FIGURES = ("params", "trainable", "macs", "flops", "activations", "activation_bytes", "inference_peak", "training_peak")


# --- help and registration -----------------------------------------------------------------------------
@pytest.mark.parametrize("command, option", [("compare", "--depth"), ("diff", "--old-set"), ("sweep", "--zip")])
def test_every_command_has_help(command, option):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.stdout and option in result.stdout and "--format" in result.stdout


def test_the_commands_do_not_import_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from archspec.cli import app\n"
        "runner = CliRunner()\n"
        "for args in (['compare', 'specs/resnet18.yaml', 'specs/resnet34.yaml'],\n"
        "             ['diff', 'specs/resnet18.yaml', '--new-set', 'num_classes=10', '--format', 'markdown'],\n"
        "             ['sweep', 'specs/lenet5.yaml', '--input', '3x32x32,3x64x64', '--format', 'csv']):\n"
        "    assert runner.invoke(app, args).exit_code == 0, args\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --- compare -------------------------------------------------------------------------------------------
def test_compare_resnet18_resnet34_totals_and_stages():
    data = ok_json("compare", RESNET18, RESNET34)
    assert [s["label"] for s in data["specs"]] == ["resnet18", "resnet34"]
    for spec, path in zip(data["specs"], (RESNET18, RESNET34)):
        want = expected(path)
        for key in FIGURES + ("depth",):
            assert spec[key] == want[key], key
        assert spec["inputs"] == {"image": [3, 224, 224]} and spec["outputs"] == {"output": [1000]}
        assert spec["unmatched_stages"] == []
        # the stages of each spec sum to its totals
        cells = [row["specs"][data["specs"].index(spec)] for row in data["stages"]]
        assert sum(c["params"] for c in cells) == spec["params"]
        assert sum(c["macs"] for c in cells) == spec["macs"]
        assert sum(c["flops"] for c in cells) == spec["flops"]
        # a stage block's figures are the analysis' roll-up of that block
        blocks = {b.name: b.figures for b in want["analysis"].blocks}
        for row, cell in zip(data["stages"], cells):
            if row["name"] in blocks:
                assert (cell["params"], cell["macs"]) == (blocks[row["name"]].params, blocks[row["name"]].macs)
    assert [row["name"] for row in data["stages"]] == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]
    # torchvision's figures, and hand arithmetic for layer1 (basic blocks of two 64->64 3x3 convs + BN at 56x56)
    assert data["specs"][0]["params"] == 11_689_512 and data["specs"][1]["params"] == 21_797_672
    layer1 = next(row for row in data["stages"] if row["name"] == "layer1")["specs"]
    block_params = 2 * (64 * 64 * 9) + 2 * (2 * 64)
    block_macs = 2 * (56 * 56 * 64 * 64 * 9)
    assert [c["params"] for c in layer1] == [2 * block_params, 3 * block_params] == [147_968, 221_952]
    assert [c["macs"] for c in layer1] == [2 * block_macs, 3 * block_macs]
    conv1 = next(row for row in data["stages"] if row["name"] == "conv1")["specs"]
    assert conv1[0] == conv1[1] and conv1[0]["macs"] == 112 * 112 * 64 * 3 * 49


def test_compare_applies_set_input_batch_and_memory_options():
    args = ("compare", RESNET18, RESNET34, "--set", "num_classes=10", "--input", "3x64x64", "--batch", "4",
            "--dtype", "bf16", "--optimizer", "adam")
    data = ok_json(*args)
    assert (data["batch"], data["dtype"], data["optimizer"], data["set"]) == (4, "bf16", "adam", {"num_classes": 10})
    for spec, path in zip(data["specs"], (RESNET18, RESNET34)):
        want = expected(path, {"num_classes": 10}, {"image": (3, 64, 64)}, batch=4, dtype="bf16", optimizer="adam")
        assert {k: spec[k] for k in FIGURES} == {k: want[k] for k in FIGURES}
        assert spec["inputs"] == {"image": [3, 64, 64]} and spec["outputs"] == {"output": [10]}


def test_compare_aligns_stages_by_name_and_lists_the_unmatched():
    data = ok_json("compare", EFFICIENTNET, str(SPECS / "mobilenet_v2.yaml"))
    names = [row["name"] for row in data["stages"]]
    # the `features` seq is opened: its blocks are the stages, aligned row by row
    assert names == [f"features.{i}" for i in range(19)] + ["classifier"]
    efficientnet, mobilenet = data["specs"]
    assert efficientnet["unmatched_stages"] == []
    assert mobilenet["unmatched_stages"] == [f"features.{i}" for i in range(9, 19)]
    assert all(row["specs"][0] is None for row in data["stages"] if row["name"] in mobilenet["unmatched_stages"])
    for index, spec in enumerate(data["specs"]):
        cells = [row["specs"][index] for row in data["stages"] if row["specs"][index]]
        assert sum(c["params"] for c in cells) == spec["params"]
        assert sum(c["macs"] for c in cells) == spec["macs"]
    want = expected(EFFICIENTNET)["analysis"]
    stage7 = next(b for b in want.blocks if b.name == "features.7").figures
    assert data["stages"][7]["specs"][0]["params"] == stage7.params


def test_compare_opens_a_lone_repeat_vgg11_vs_vgg16():
    data = ok_json("compare", str(SPECS / "vgg11.yaml"), str(SPECS / "vgg16.yaml"))
    # features (seq) > vgg_stage1 (the repeat of the five stages, alone in it) > the stages
    assert [row["name"] for row in data["stages"]] == [f"features.vgg_stage1.{i}" for i in range(5)] + ["classifier"]
    first = data["stages"][0]["specs"]
    conv = lambda cin, cout: cin * cout * 9 + cout  # noqa: E731  3x3 conv with bias
    assert [c["params"] for c in first] == [conv(3, 64), conv(3, 64) + conv(64, 64)] == [1_792, 38_720]
    assert [c["macs"] for c in first] == [224 * 224 * 64 * 27, 224 * 224 * 64 * (27 + 576)]
    classifier = 512 * 7 * 7 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    assert [c["params"] for c in data["stages"][-1]["specs"]] == [classifier, classifier] == [123_642_856] * 2
    assert [s["params"] for s in data["specs"]] == [132_863_336, 138_357_544]  # torchvision's vgg11, vgg16


def test_compare_stage_depth_and_unrelated_specs():
    data = ok_json("compare", RESNET18, RESNET34, "--depth", "2")
    names = [row["name"] for row in data["stages"]]
    assert names[:4] == ["conv1", "bn1", "layer1.0", "layer1.1"]
    assert "layer1.2" in names and data["specs"][0]["unmatched_stages"] == []
    assert data["specs"][1]["unmatched_stages"] == ["layer1.2", "layer2.2", "layer2.3", "layer3.2", "layer3.3", "layer3.4", "layer3.5", "layer4.2"]
    assert sum(row["specs"][1]["params"] for row in data["stages"] if row["specs"][1]) == 21_797_672
    # nothing in common: every stage is unmatched, and the totals are still each spec's own
    data = ok_json("compare", RESNET18, str(SPECS / "densenet121.yaml"))
    assert data["specs"][1]["params"] == expected(SPECS / "densenet121.yaml")["params"] == 7_978_856
    assert "features.denseblock1" in data["specs"][1]["unmatched_stages"]
    assert "layer1" in data["specs"][0]["unmatched_stages"]


def test_compare_table_and_markdown_show_the_figures():
    table = invoke("compare", RESNET18, RESNET34)
    assert table.exit_code == 0, table.stderr
    for text in ("resnet18", "resnet34", "11,689,512", "21,797,672", "layer4", "Training step peak", "8,393,728"):
        assert text in table.stdout
    markdown = invoke("compare", RESNET18, RESNET34, "--format", "markdown")
    assert markdown.exit_code == 0
    assert "| Params | 11,689,512 | 21,797,672 |" in markdown.stdout
    assert "| `layer1` | 147,968 | 462,422,016 | 221,952 | 693,633,024 |" in markdown.stdout
    # the same spec twice gets told apart by its path
    twice = ok_json("compare", RESNET18, RESNET18)
    assert twice["specs"][0]["label"] != twice["specs"][1]["label"]


def test_compare_errors(write_spec):
    assert "at least two specs" in failure("compare", RESNET18)
    assert "--format" in failure("compare", RESNET18, RESNET34, "--format", "yaml")
    assert "--dtype" in failure("compare", RESNET18, RESNET34, "--dtype", "fp8")
    assert "does-not-exist.yaml" in failure("compare", RESNET18, "does-not-exist.yaml")
    bad = write_spec(
        """\
        name: bad
        inputs: {image: [3, 32, 32]}
        layers:
          - conv: {out: 8, kernal: 3}
        """
    )
    message = failure("compare", RESNET18, str(bad))
    assert f"{bad}:4:" in message and "kernal" in message
    assert "hint" in failure("compare", RESNET18, RESNET34, "--set", "num_clases=10")


# --- diff ----------------------------------------------------------------------------------------------
OLD_PAIR = """\
name: tiny_old
inputs: {image: [3, 16, 16]}
layers:
  - conv: {name: c1, out: 8, kernel: 3, padding: 1}
  - bn: {name: b1}
  - relu
  - conv: {name: c2, out: 16, kernel: 3, padding: 1}
  - relu
  - conv: {name: proj, out: 16, kernel: 1}
  - global_avgpool
  - linear: {name: head, out: 10}
"""
NEW_PAIR = """\
name: tiny_new
inputs: {image: [3, 16, 16]}
layers:
  - conv: {name: c1, out: 8, kernel: 3, padding: 1}
  - bn: {name: b1}
  - relu
  - conv: {name: c2, out: 32, kernel: 3, padding: 1}
  - relu
  - conv: {name: c3, out: 32, kernel: 3, padding: 1, bias: false}
  - global_avgpool
  - linear: {name: head, out: 10}
"""


def check_diff_consistency(data: dict, old: dict, new: dict) -> None:
    """Per-node figures against each side's own analysis; node deltas sum to the total deltas."""
    width = {"fp32": 4, "bf16": 2, "fp16": 2}[data["dtype"]]
    per_layer = [{l.name: l.figures for l in side["analysis"].layers} for side in (old, new)]
    for node in data["nodes"]:
        for side, layers in zip(("old", "new"), per_layer):
            f = layers.get(node["name"])
            if f is None:
                continue  # absent on that side (or a graph input)
            assert node[side] == {"params": f.params, "macs": f.macs, "flops": f.flops, "activation_bytes": f.activations * width}
        assert node["delta"] == {k: node["new"][k] - node["old"][k] for k in node["delta"]}
    for key in FIGURES + ("depth",):
        assert data["totals"][key] == {"old": old[key], "new": new[key], "delta": new[key] - old[key]}, key
    for key, total in (("params", "params"), ("macs", "macs"), ("flops", "flops"), ("activation_bytes", "activation_bytes")):
        assert sum(n["delta"][key] for n in data["nodes"]) == data["totals"][total]["delta"], key


def check_checkpoint_against_torch(checkpoint: dict, old_module, new_module) -> None:
    """The static checkpoint section against real state_dicts and load_state_dict."""
    torch = pytest.importorskip("torch")
    loads = {i["key"] for i in checkpoint["loads"]}
    changed = {i["key"] for i in checkpoint["changed_shape"]}
    added = {i["key"] for i in checkpoint["new"]}
    removed = {i["key"] for i in checkpoint["removed"]}
    with torch.no_grad():  # give OLD distinct values everywhere, buffers included
        for value in old_module.state_dict().values():
            value.copy_(torch.randint(2, 9, value.shape) if value.dtype == torch.long else torch.randn(value.shape))
    old_sd, new_sd = old_module.state_dict(), new_module.state_dict()
    assert set(old_sd) == loads | changed | removed and set(new_sd) == loads | changed | added
    assert loads == {k for k in old_sd if k in new_sd and old_sd[k].shape == new_sd[k].shape}
    for item in checkpoint["changed_shape"]:
        assert list(old_sd[item["key"]].shape) == item["old"] and list(new_sd[item["key"]].shape) == item["new"]
    result = new_module.load_state_dict({k: old_sd[k] for k in loads}, strict=False)
    # torch leaves a BatchNorm's num_batches_tracked out of missing_keys (it fills in 0 for old checkpoints)
    assert set(result.missing_keys) == {k for k in changed | added if not k.endswith(".num_batches_tracked")}
    assert not result.unexpected_keys
    loaded = new_module.state_dict()
    assert all(torch.equal(loaded[k], old_sd[k]) for k in loads)
    for key in changed:  # copying a tensor whose shape changed fails
        with pytest.raises(RuntimeError, match="size mismatch"):
            new_module.load_state_dict({key: old_sd[key]}, strict=False)
    assert checkpoint["summary"]["loads"] == len(loads)
    assert checkpoint["summary"]["loaded_elements"] == sum(old_sd[k].numel() for k in loads)


def test_diff_num_classes_changes_only_fc():
    assert len(archspec.compile_spec(RESNET18).order) == RESNET18_NODES
    data = ok_json("diff", RESNET18, RESNET18, "--new-set", "num_classes=10")
    assert data["new"]["set"] == {"num_classes": 10} and data["old"]["set"] == {}
    assert data["counts"] == {"added": 0, "removed": 0, "changed": 1, "rewired": 0, "unchanged": RESNET18_NODES - 1}
    (fc,) = data["nodes"]
    assert fc["name"] == "fc" and fc["status"] == "changed"
    assert {c["field"]: (c["old"], c["new"]) for c in fc["changes"]} == {"args.out": (1000, 10), "output_shape": ([1000], [10])}
    # hand arithmetic: 990 fewer outputs of a 512-input linear layer
    assert fc["delta"] == {"params": -990 * 513, "macs": -990 * 512, "flops": -2 * 990 * 512, "activation_bytes": -990 * 4}
    check_diff_consistency(data, expected(RESNET18), expected(RESNET18, {"num_classes": 10}))
    ckpt = data["checkpoint"]
    assert ckpt["changed_shape"] == [{"key": "fc.weight", "old": [1000, 512], "new": [10, 512]}, {"key": "fc.bias", "old": [1000], "new": [10]}]
    assert ckpt["new"] == [] and ckpt["removed"] == [] and ckpt["summary"]["loads"] == 120
    check_checkpoint_against_torch(ckpt, archspec.build_module(RESNET18), archspec.build_module(RESNET18, num_classes=10))


def test_diff_resnet18_to_resnet34_adds_blocks_and_keeps_every_old_tensor():
    data = ok_json("diff", RESNET18, RESNET34)
    new_blocks = ("layer1.2.", "layer2.2.", "layer2.3.", "layer3.2.", "layer3.3.", "layer3.4.", "layer3.5.", "layer4.2.")
    added = [n["name"] for n in data["nodes"] if n["status"] == "added"]
    assert added and all(name.startswith(new_blocks) for name in added)
    assert len(added) == 8 * 7  # conv, bn, relu, conv, bn, add, relu per basic block
    assert data["counts"]["removed"] == data["counts"]["changed"] == 0
    rewired = {n["name"]: n["changes"][0] for n in data["nodes"] if n["status"] == "rewired"}
    assert rewired["layer2.0.conv1"] == {"field": "inputs", "old": ["layer1.1.relu2"], "new": ["layer1.2.relu2"]}
    assert data["totals"]["params"]["delta"] == 21_797_672 - 11_689_512
    check_diff_consistency(data, expected(RESNET18), expected(RESNET34))
    ckpt = data["checkpoint"]
    assert ckpt["changed_shape"] == [] and ckpt["removed"] == []
    assert ckpt["summary"]["loads"] == ckpt["summary"]["old_tensors"] == 122
    assert {i["key"] for i in ckpt["new"]} == {
        k for k in archspec.build_module(RESNET34).state_dict() if k.startswith(new_blocks)
    }
    check_checkpoint_against_torch(ckpt, archspec.build_module(RESNET18), archspec.build_module(RESNET34))


def test_diff_hand_written_pair(write_spec):
    old, new = write_spec(OLD_PAIR, "old.yaml"), write_spec(NEW_PAIR, "new.yaml")
    data = ok_json("diff", str(old), str(new))
    by_name = {n["name"]: n for n in data["nodes"]}
    assert {n: e["status"] for n, e in by_name.items()} == {
        "c2": "changed", "relu2": "changed", "proj": "removed", "c3": "added", "global_avgpool1": "changed", "head": "changed",
    }
    assert data["counts"]["unchanged"] == 4  # image, c1, b1, relu1
    assert {c["field"]: (c["old"], c["new"]) for c in by_name["c2"]["changes"]} == {
        "args.out": (16, 32), "output_shape": ([16, 16, 16], [32, 16, 16])}
    assert {c["field"]: (c["old"], c["new"]) for c in by_name["global_avgpool1"]["changes"]} == {
        "input_shapes": ([[16, 16, 16]], [[32, 16, 16]]), "output_shape": ([16], [32]), "inputs": (["proj"], ["c3"])}
    assert [c["field"] for c in by_name["head"]["changes"]] == ["input_shapes"]
    # hand arithmetic (16x16 maps throughout)
    assert by_name["c2"]["delta"]["params"] == (32 * 8 * 9 + 32) - (16 * 8 * 9 + 16) == 1_168
    assert by_name["proj"]["delta"]["params"] == -(16 * 16 + 16)
    assert by_name["c3"]["delta"]["params"] == 32 * 32 * 9
    assert by_name["head"]["delta"]["params"] == 10 * 32 - 10 * 16
    assert data["totals"]["params"]["delta"] == 1_168 - 272 + 9_216 + 160 == 10_272
    assert by_name["c2"]["delta"]["macs"] == 256 * 16 * 8 * 9
    assert by_name["c3"]["delta"]["macs"] == 256 * 32 * 32 * 9
    assert data["totals"]["macs"]["delta"] == 256 * 16 * 8 * 9 - 256 * 16 * 16 + 256 * 32 * 32 * 9 + 160 == 2_588_832
    assert data["totals"]["activation_bytes"]["delta"] == 4 * (16 * 256 + 16 * 256 - 16 * 256 + 32 * 256 + 16) == 49_216
    check_diff_consistency(data, expected(old), expected(new))
    ckpt = data["checkpoint"]
    assert [i["key"] for i in ckpt["loads"]] == [
        "c1.weight", "c1.bias", "b1.weight", "b1.bias", "b1.running_mean", "b1.running_var", "b1.num_batches_tracked", "head.bias"]
    assert ckpt["changed_shape"] == [
        {"key": "c2.weight", "old": [16, 8, 3, 3], "new": [32, 8, 3, 3]},
        {"key": "c2.bias", "old": [16], "new": [32]},
        {"key": "head.weight", "old": [10, 16], "new": [10, 32]},
    ]
    assert ckpt["new"] == [{"key": "c3.weight", "shape": [32, 32, 3, 3]}]
    assert ckpt["removed"] == [{"key": "proj.weight", "shape": [16, 16, 1, 1]}, {"key": "proj.bias", "shape": [16]}]
    check_checkpoint_against_torch(ckpt, archspec.build_module(old), archspec.build_module(new))
    # the text forms name every change
    table = invoke("diff", str(old), str(new))
    assert table.exit_code == 0, table.stderr
    for text in ("out 16 → 32", "c2.weight  16x8x3x3 → 32x8x3x3", "proj  weight 16x16x1x1, bias 16", "c3  weight 32x32x3x3", "+10,272"):
        assert text in table.stdout, text
    markdown = invoke("diff", str(old), str(new), "--format", "markdown")
    assert "| - | `proj` | conv | output 16x16x16 | -272 | -65,536 | -16.00 KiB |" in markdown.stdout


def test_diff_one_spec_under_two_settings():
    data = ok_json("diff", MOBILENET, "--old-set", "alpha=0.5", "--new-set", "alpha=1.0")
    assert data["old"]["path"] == data["new"]["path"] == MOBILENET
    half, full = expected(MOBILENET, {"alpha": 0.5}), expected(MOBILENET, {"alpha": 1.0})
    check_diff_consistency(data, half, full)
    assert data["totals"]["params"] == {"old": 1_331_592, "new": 4_231_976, "delta": 4_231_976 - 1_331_592}
    ckpt = data["checkpoint"]
    # only the tensors whose size does not depend on the width still load: fc's bias and BN's counters
    assert {i["key"] for i in ckpt["loads"]} == {"fc.bias"} | {k for k in archspec.build_module(MOBILENET).state_dict() if k.endswith("num_batches_tracked")}
    assert ckpt["new"] == ckpt["removed"] == []
    check_checkpoint_against_torch(ckpt, archspec.build_module(MOBILENET, alpha=0.5), archspec.build_module(MOBILENET))
    # --set applies to both sides, --old-input / --new-input to one
    data = ok_json("diff", RESNET18, "--set", "num_classes=10", "--old-input", "3x64x64")
    assert data["old"]["inputs"] == {"image": [3, 64, 64]} and data["new"]["inputs"] == {"image": [3, 224, 224]}
    assert data["old"]["set"] == data["new"]["set"] == {"num_classes": 10}
    check_diff_consistency(data, expected(RESNET18, {"num_classes": 10}, {"image": (3, 64, 64)}), expected(RESNET18, {"num_classes": 10}))
    assert data["checkpoint"]["summary"]["loads"] == 122  # the input size changes no weight


def test_diff_of_a_spec_with_itself_is_empty():
    data = ok_json("diff", RESNET18)
    assert data["nodes"] == [] and data["counts"]["unchanged"] == RESNET18_NODES
    assert all(t["delta"] == 0 for t in data["totals"].values())
    assert data["checkpoint"]["summary"]["loads"] == 122
    result = invoke("diff", RESNET18)
    assert result.exit_code == 0 and "0 added, 0 removed, 0 changed" in result.stdout


def test_diff_errors():
    assert "hint" in failure("diff", RESNET18, "--new-set", "num_clases=10")
    assert "missing.yaml" in failure("diff", RESNET18, "missing.yaml")
    assert "--format" in failure("diff", RESNET18, RESNET34, "--format", "csv")
    assert "--input" in failure("diff", RESNET18, "--new-input", "3xAx4")


# --- sweep ---------------------------------------------------------------------------------------------
ALPHAS = [0.25, 0.5, 0.75, 1.0]
SIZES = [128, 160, 224]


def sweep_json(*args: str) -> dict:
    return ok_json("sweep", *args)


def test_sweep_mobilenet_grid_matches_each_variant_compiled_alone():
    data = sweep_json(MOBILENET, "--set", "alpha=" + ",".join(map(str, ALPHAS)), "--input", ",".join(f"3x{s}x{s}" for s in SIZES))
    rows = data["rows"]
    assert [(r["set"]["alpha"], r["inputs"]["image"][1]) for r in rows] == [(a, s) for a in ALPHAS for s in SIZES]
    for row in rows:
        size = row["inputs"]["image"][1]
        want = expected(MOBILENET, {"alpha": row["set"]["alpha"]}, {"image": (3, size, size)})
        assert {k: row[k] for k in FIGURES} == {k: want[k] for k in FIGURES}
        assert row["weighted_layers"] == want["depth"] == 28 and row["error"] is None
        assert row["outputs"] == {"output": [1000]}


def test_sweep_mobilenet_width_and_resolution_multipliers():
    """Howard et al.: the width multiplier scales the pointwise convs (nearly all the cost) by
    alpha^2 and the rest by alpha; the resolution multiplier scales every conv by rho^2."""
    data = sweep_json(MOBILENET, "--set", "alpha=" + ",".join(map(str, ALPHAS)), "--set", "resolution=128,160,192,224")
    rows = {(r["set"]["alpha"], r["set"]["resolution"]): r for r in data["rows"]}
    assert len(rows) == 16 and all(r["inputs"]["image"] == [3, res, res] for (_, res), r in rows.items())
    base = expected(MOBILENET)["analysis"]
    pointwise = [l.figures for l in base.layers if l.name.endswith(".pw")]
    pw_params, pw_macs = sum(f.params for f in pointwise), sum(f.macs for f in pointwise)
    fc = next(l.figures for l in base.layers if l.name == "fc")
    other_params = base.totals.params - pw_params - 1000  # conv1, depthwise, BN, fc weight: all ~ alpha
    other_macs = base.totals.macs - pw_macs  # conv1, depthwise, fc: ~ alpha
    for (alpha, res), row in rows.items():
        rho2 = (res / 224) ** 2
        assert row["params"] == alpha**2 * pw_params + alpha * other_params + 1000
        assert row["macs"] == pytest.approx(rho2 * (alpha**2 * pw_macs + alpha * (other_macs - fc.macs)) + alpha * fc.macs, abs=0.5)
        assert row["flops"] == 2 * row["macs"]
    # the paper's Table 6 (width at 224: million mult-adds, million parameters) and Table 7 (resolution at alpha 1)
    table6 = {1.0: (569, 4.2), 0.75: (325, 2.6), 0.5: (149, 1.3), 0.25: (41, 0.5)}
    for alpha, (macs, params) in table6.items():
        assert abs(rows[(alpha, 224)]["macs"] / 1e6 - macs) < 1 and round(rows[(alpha, 224)]["params"] / 1e6, 1) == params
    table7 = {224: 569, 192: 418, 160: 290, 128: 186}
    for res, macs in table7.items():
        assert abs(rows[(1.0, res)]["macs"] / 1e6 - macs) < 1 and round(rows[(1.0, res)]["params"] / 1e6, 1) == 4.2
    # monotone in both multipliers, memory included
    for key in ("macs", "activation_bytes", "inference_peak", "training_peak"):
        for alpha in ALPHAS:
            values = [rows[(alpha, res)][key] for res in (128, 160, 192, 224)]
            assert values == sorted(values) and len(set(values)) == 4
        for res in (128, 224):
            values = [rows[(alpha, res)][key] for alpha in ALPHAS]
            assert values == sorted(values) and len(set(values)) == 4


def test_sweep_efficientnet_compound_scaling():
    # --zip: B0..B3 of Tan and Le, Table 2 (torchvision's width / depth / resolution coefficients)
    data = sweep_json(EFFICIENTNET, "--zip", "--set", "width=1.0,1.0,1.1,1.2", "--set", "depth=1.0,1.1,1.2,1.4",
                      "--set", "resolution=224,240,260,300")
    rows = data["rows"]
    assert [r["set"] for r in rows] == [
        {"width": w, "depth": d, "resolution": r} for w, d, r in [(1.0, 1.0, 224), (1.0, 1.1, 240), (1.1, 1.2, 260), (1.2, 1.4, 300)]]
    for row in rows:
        want = expected(EFFICIENTNET, row["set"])
        assert {k: row[k] for k in FIGURES} == {k: want[k] for k in FIGURES}
    # the separately written B3 spec gives the same figures as B0 swept to B3's coefficients
    b3 = expected(SPECS / "efficientnet_b3.yaml")
    assert {k: rows[3][k] for k in FIGURES} == {k: b3[k] for k in FIGURES}
    assert (rows[0]["params"], rows[1]["params"], rows[2]["params"], rows[3]["params"]) == (5_288_548, 7_794_184, 9_109_994, 12_233_232)
    paper = [(5.3e6, 0.39e9), (7.8e6, 0.70e9), (9.2e6, 1.0e9), (12e6, 1.8e9)]  # params, FLOPs (= mult-adds)
    for row, (params, macs) in zip(rows, paper):
        assert row["params"] == pytest.approx(params, rel=0.03) and row["macs"] == pytest.approx(macs, rel=0.03)
    assert [r["inputs"]["image"] for r in rows] == [[3, s, s] for s in (224, 240, 260, 300)]
    # without --zip the axes multiply: 2 x 2 x 2 points, the first axis slowest
    grid = sweep_json(EFFICIENTNET, "--set", "width=1.0,1.2", "--set", "depth=1.0,1.4", "--set", "resolution=224,300")["rows"]
    assert [tuple(r["set"].values()) for r in grid] == [(w, d, r) for w in (1.0, 1.2) for d in (1.0, 1.4) for r in (224, 300)]
    for row in grid:
        assert row["macs"] == expected(EFFICIENTNET, row["set"])["macs"]
    depth_only = [r for r in grid if r["set"]["width"] == 1.0 and r["set"]["resolution"] == 224]
    assert depth_only[1]["weighted_layers"] > depth_only[0]["weighted_layers"]  # depth adds layers


def test_sweep_csv_round_trips(tmp_path):
    result = invoke("sweep", RESNET18, "--set", "stages=[2,2,2,2],[3,4,6,3]", "--set", "num_classes=10,1000",
                    "--input", "3x64x64,3x224x224", "--batch", "2", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    table = list(csv.reader(io.StringIO(result.stdout)))
    header, body = table[0], table[1:]
    assert header == ["stages", "num_classes", "input", "output", "params", "trainable", "macs", "flops", "activations",
                      "activation_bytes", "inference_peak", "training_peak", "weighted_layers", "error"]
    assert len(body) == 8
    for record in csv.DictReader(io.StringIO(result.stdout)):
        stages, classes = json.loads(record["stages"]), int(record["num_classes"])
        size = int(record["input"].split("x")[1])
        want = expected(RESNET18, {"stages": stages, "num_classes": classes}, {"image": (3, size, size)}, batch=2)
        assert {k: int(record[k]) for k in FIGURES} == {k: want[k] for k in FIGURES}
        assert record["output"] == str(classes) and record["error"] == ""
    assert json.loads(body[-1][0]) == [3, 4, 6, 3] and int(body[-1][4]) == expected(RESNET34)["params"]
    # --out writes the same CSV (stdout stays empty); a json --out holds the JSON
    out = tmp_path / "grid.csv"
    written = invoke("sweep", RESNET18, "--set", "stages=[2,2,2,2],[3,4,6,3]", "--set", "num_classes=10,1000",
                     "--input", "3x64x64,3x224x224", "--batch", "2", "--format", "csv", "--out", str(out))
    assert written.exit_code == 0 and written.stdout == "" and out.read_text() == result.stdout
    as_json = tmp_path / "grid.json"
    assert invoke("sweep", RESNET18, "--input", "3x64x64", "--format", "json", "--out", str(as_json)).exit_code == 0
    assert json.loads(as_json.read_text())["rows"][0]["params"] == 11_689_512


def test_sweep_named_inputs_and_table(write_spec):
    spec = write_spec(
        """\
        name: two_inputs
        inputs: {left: [3, 32, 32], right: [3, 32, 32]}
        layers:
          - conv: {name: a, out: 4, kernel: 3, from: left}
          - conv: {name: b, out: 4, kernel: 3, from: right}
          - concat: {name: both, from: [a, b], fit: crop}
        """
    )
    data = sweep_json(str(spec), "--input", "left=3x16x16,3x20x20", "--input", "right=3x16x16")
    assert [r["inputs"] for r in data["rows"]] == [
        {"left": [3, 16, 16], "right": [3, 16, 16]}, {"left": [3, 20, 20], "right": [3, 16, 16]}]
    for row in data["rows"]:
        want = expected(spec, inputs={k: tuple(v) for k, v in row["inputs"].items()})
        assert row["macs"] == want["macs"] == 4 * 27 * (14 * 14 + (row["inputs"]["left"][1] - 2) ** 2)
    csv_text = invoke("sweep", str(spec), "--input", "left=3x16x16,3x20x20", "--format", "csv").stdout
    assert csv_text.splitlines()[0].startswith("input.left,input.right,output,params,")
    table = invoke("sweep", MOBILENET, "--set", "alpha=0.25,1.0")
    assert table.exit_code == 0
    for text in ("alpha", "0.25", "470,072", "4,231,976", "568.74 M", "Training peak"):
        assert text in table.stdout


def test_sweep_reports_the_points_that_fail():
    result = invoke("sweep", str(SPECS / "lenet5.yaml"), "--input", "3x32x32,3x8x8", "--format", "csv")
    assert result.exit_code == 1
    ok, bad = list(csv.DictReader(io.StringIO(result.stdout)))
    assert int(ok["params"]) == 62_006 and ok["error"] == ""
    assert bad["params"] == "" and "conv2" in bad["error"]
    assert "error: at image 3x8x8:" in result.stderr and "conv2" in result.stderr
    # the same error at every point (a misspelt parameter) is said once, with its hint
    message = failure("sweep", MOBILENET, "--set", "alhpa=0.5,1.0")
    assert message.count("alhpa") == 1 and "did you mean 'alpha'" in message


def test_sweep_option_errors():
    assert "--zip" in failure("sweep", MOBILENET, "--zip", "--set", "alpha=0.5,1.0", "--set", "resolution=128,160,224")
    assert "NAME=VALUE" in failure("sweep", MOBILENET, "--set", "alpha")
    assert "empty value" in failure("sweep", MOBILENET, "--set", "alpha=0.5,,1.0")
    assert "--input" in failure("sweep", MOBILENET, "--input", "3x128x128,big")
    assert "--format" in failure("sweep", MOBILENET, "--format", "markdown")
    many = ",".join(str(n) for n in range(1, 101))
    assert "10,000" in failure("sweep", MOBILENET, "--set", f"num_classes={many}", "--set", f"resolution={many}", "--input", "3x8x8,3x16x16")
    # --zip with one-value axes repeats them
    rows = sweep_json(MOBILENET, "--zip", "--set", "alpha=0.5,1.0", "--set", "num_classes=10")["rows"]
    assert [r["set"] for r in rows] == [{"alpha": 0.5, "num_classes": 10}, {"alpha": 1.0, "num_classes": 10}]


def test_split_values():
    assert split_values("0.25,0.5") == ["0.25", "0.5"]
    assert split_values("[2,2,2,2],[3,4,6,3]") == ["[2,2,2,2]", "[3,4,6,3]"]
    assert split_values("{a: 1, b: 2},'x,y',\"p,q\"") == ["{a: 1, b: 2}", "'x,y'", '"p,q"']
    assert split_values("7") == ["7"]
