"""Graph rewrites (archspec.rewrite, `archspec rewrite`): each rule checked by running the lowered
module before and after the rewrite, with the weights mapped by the weight helpers.

- fold_bn: ResNet-18 and a small spec whose BatchNorms get random statistics (eval mode): the
  outputs agree within 1e-5 (relative), and the rewritten IR's static parameters and MACs are the
  ones the fold implies;
- convolutionalize: the course's sliding-window example. The 14x14x3 classifier, rewritten and
  run on a 16x16x3 image, gives a 2x2x4 grid whose cell (i, j) is the original classifier on the
  crop [2i:2i+14, 2j:2j+14];
- strip_dropout: dropout and identity nodes go, the outputs (in eval mode) stay;
- the flat spec written back loads again with the same shapes, parameters, MACs and weights;
- the CLI writes the spec and exits 0, bad input exits 1 with a one-line error.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, SPECS, run_cli
from typer.testing import CliRunner

from archspec import compile_spec
from archspec.cli import app
from archspec.lower.fx import lower
from archspec.passes.counts import analyze
from archspec.rewrite import (
    CONVOLUTIONALIZE,
    FOLD_BN,
    PASSES,
    RULES,
    STRIP_DROPOUT,
    Rule,
    apply_rewrites,
    convolutionalize_weights,
    flat_names,
    flat_state_dict,
    fold_bn_weights,
    ir_to_spec_yaml,
    transfer_weights,
)

RESNET18 = SPECS / "resnet18.yaml"
SLIDING = SPECS / "sliding_window_classifier.yaml"
TOLERANCE = 1e-5


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def trained(ir, seed: int = 0) -> torch.nn.Module:
    """The lowered module with random weights and random BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    module = lower(ir)
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, torch.nn.modules.batchnorm._BatchNorm):
                if sub.track_running_stats:
                    sub.running_mean.normal_(0.0, 0.5)
                    sub.running_var.uniform_(0.5, 2.0)
                if sub.affine:
                    sub.weight.normal_(1.0, 0.3)
                    sub.bias.normal_(0.0, 0.3)
            elif isinstance(sub, (torch.nn.Conv2d, torch.nn.Linear)) and sub.bias is not None:
                sub.bias.normal_(0.0, 0.1)
    return module.eval()


def agree(actual: torch.nn.Module, expected: torch.nn.Module, shape: tuple[int, ...], seed: int) -> bool:
    """The two modules give the same outputs, within TOLERANCE, on one seeded random batch."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return relative_error(actual(x), expected(x)) < TOLERANCE


def rewritten(module_before, ir_before, ir_after, weights=transfer_weights) -> torch.nn.Module:
    module = lower(ir_after)
    module.load_state_dict(weights(module_before, ir_before, ir_after))  # strict: every tensor mapped
    return module.eval()


def ops(ir) -> list[str]:
    return [node.op for node in ir.nodes()]


def check_windows(grid, classifier, x, window: int, cells: int, stride: int = 2) -> torch.Tensor:
    """Cell (i, j) of the grid's output is the classifier on the crop at (stride·i, stride·j)."""
    with torch.no_grad():
        out = grid(x)
        for i in range(cells):
            for j in range(cells):
                crop = x[:, :, stride * i : stride * i + window, stride * j : stride * j + window]
                assert relative_error(out[:, :, i, j], classifier(crop)) < TOLERANCE
    return out


def write_flat(ir, tmp_path, filename: str = "flat.yaml"):
    path = tmp_path / filename
    path.write_text(ir_to_spec_yaml(ir))
    return path


# --- the rules are data ------------------------------------------------------------------------------
def test_rules_are_documented_data_that_compose():
    assert RULES == [rule for rules in PASSES.values() for rule in rules]
    assert set(PASSES) == {"fold_bn", "convolutionalize", "strip_dropout"}
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    for rule in RULES:
        # patterns name traits and hooks of the op entries, never an op (issue 13)
        assert isinstance(rule, Rule) and "->" in rule.doc and rule.pattern.op is None
        assert rule.pattern.trait or rule.pattern.has
    # a rule list may nest lists (passes); the input IR is never modified
    ir = compile_spec(RESNET18)
    order, nodes = list(ir.order), {n.id: (n.op, n.args, list(n.inputs)) for n in ir.nodes()}
    new, report = apply_rewrites(ir, [STRIP_DROPOUT, [FOLD_BN]])
    assert ir.order == order and {n.id: (n.op, n.args, list(n.inputs)) for n in ir.nodes()} == nodes
    assert report.after == analyze(new).totals and report.before == analyze(ir).totals
    # nothing left to match: a second run changes nothing
    again, second = apply_rewrites(new, RULES)
    assert not second.changed and again.order == new.order


# --- fold BatchNorm ---------------------------------------------------------------------------------------
def test_fold_bn_resnet18():
    ir = compile_spec(RESNET18)
    folded, report = apply_rewrites(ir, FOLD_BN)
    bns = [n for n in ir.nodes() if n.op == "bn"]
    assert len(bns) == 20 and "bn" not in ops(folded)
    summary = report.by_rule()["fold_bn"]
    assert summary.applied == 20 and sorted(summary.removed) == sorted(n.id for n in bns)
    assert "conv1" in summary.replaced and "layer2.0.downsample.0" in summary.replaced
    assert all(n.args.bias for n in folded.nodes() if n.op == "conv")

    # static analysis: each BN's γ, β go (2C), each bias-free conv gains a bias (C); MACs stay
    before, after = analyze(ir).totals, analyze(folded).totals
    channels = sum(ir.shapes[n.id][0] for n in bns)
    assert after.params == before.params - 2 * channels + channels == 11_684_712
    assert after.macs == before.macs == 1_814_073_344
    assert after.buffers == 0 and (report.before, report.after) == (before, after)

    module = trained(ir)
    module_after = rewritten(module, ir, folded, fold_bn_weights)
    assert sum(p.numel() for p in module_after.parameters()) == after.params
    # the lowered module reads sizes at run time: a 64x64 input keeps the CPU test quick
    assert agree(module_after, module, (2, 3, 64, 64), seed=1)


FOLD_SPEC = """
name: fold_cases
inputs: {image: [3, 12, 12]}
layers:
  - conv: {name: c1, out: 8, kernel: 3, padding: 1, bias: false}
  - bn: {name: b1}
  - relu
  - conv: {name: c2, out: 8, kernel: 3, padding: 1}          # has a bias already
  - bn: {name: b2, eps: 0.001}
  - dwconv: {name: dw, kernel: 3, padding: 1, bias: false}
  - bn: {name: b3, affine: false}
  - conv: {name: c4, out: 8, kernel: 1}                       # read by the add too: not folded
  - bn: {name: b4}
  - add: {name: sum, from: [b4, c4]}
  - bn: {name: b5}                                            # after an add: nothing to fold into
  - global_avgpool
  - linear: {name: fc, out: 6, bias: false}
  - bn: {name: b6}                                            # BatchNorm1d, folded into fc
"""


def test_fold_bn_small_spec_with_random_statistics(write_spec):
    ir = compile_spec(write_spec(FOLD_SPEC))
    folded, report = apply_rewrites(ir, FOLD_BN)
    by_rule = report.by_rule()
    assert sorted(by_rule["fold_bn"].removed) == ["b1", "b2", "b3"]
    assert by_rule["fold_bn_linear"].removed == ["b6"]
    assert [n.id for n in folded.nodes() if n.op == "bn"] == ["b4", "b5"]
    before, after = analyze(ir).totals, analyze(folded).totals
    # γ, β of b1, b2, b6 go (b3 has none); c1, dw and fc gain a bias (c2 had one)
    assert after.params == before.params - (16 + 16 + 12) + (8 + 8 + 6)
    assert after.macs == before.macs
    assert [c.note for c in report.changes][:1] == ["folded b1 into c1"]

    module = trained(ir, seed=3)
    module_after = rewritten(module, ir, folded)
    assert agree(module_after, module, (4, 3, 12, 12), seed=2)


def test_fold_bn_leaves_shared_weights_alone():
    # siamese: the encoder's convs and BNs are applied twice (reuse), so folding one call site
    # would change the other's weights
    ir = compile_spec(SPECS / "siamese.yaml")
    folded, report = apply_rewrites(ir, FOLD_BN)
    assert not report.changed and folded.order == ir.order


# --- convolutionalize --------------------------------------------------------------------------------------
def test_sliding_window_classifier_as_convolutions(tmp_path):
    """The course's example: FC 400, FC 400, FC 4 as 5x5, 1x1, 1x1 convs; at 16x16x3 the output is
    2x2x4 and each cell is the classifier on one 14x14 window (stride 2)."""
    ir = compile_spec(SLIDING)
    assert ir.shapes[ir.outputs["output"]] == (4,)
    conv, report = apply_rewrites(ir, CONVOLUTIONALIZE)
    assert ops(conv) == ["input", "conv", "relu", "maxpool", "conv", "relu", "conv", "relu", "conv", "softmax"]
    kernels = {n.id: n.args.kernel for n in conv.nodes() if n.op == "conv"}
    assert kernels == {"conv1": 5, "fc1": 5, "fc2": 1, "fc3": 1}
    assert conv.shapes["fc1"] == (400, 1, 1) and conv.shapes[conv.outputs["output"]] == (4, 1, 1)
    assert report.by_rule()["fc_to_conv"].replaced == ["fc1", "fc2", "fc3"]
    assert report.by_rule()["output_map"].removed == ["flatten1"]
    # the same parameters and MACs at the original size
    assert analyze(conv).totals.params == analyze(ir).totals.params == 323_620
    assert analyze(conv).totals.macs == analyze(ir).totals.macs == 441_600

    classifier = trained(ir, seed=5)
    state = convolutionalize_weights(classifier, ir, conv)
    assert state["fc1.weight"].shape == (400, 16, 5, 5) and state["fc3.weight"].shape == (4, 400, 1, 1)

    # the rewritten spec, written and loaded again at 16x16x3
    path = write_flat(conv, tmp_path)
    big = compile_spec(path, inputs={"image": (3, 16, 16)})
    assert big.shapes[big.outputs["output"]] == (4, 2, 2)
    grid = lower(big)
    grid.load_state_dict(flat_state_dict(state, conv))
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    assert check_windows(grid.eval(), classifier, x, window=14, cells=2).shape == (2, 4, 2, 2)
    with torch.no_grad():
        # and at the original size, the same numbers as the classifier
        small = x[:, :, :14, :14]
        assert relative_error(rewritten(classifier, ir, conv)(small).flatten(1), classifier(small)) < TOLERANCE


HEAD_SPEC = """
name: head_cases
inputs: {image: [3, 12, 12]}
layers:
  - conv: {name: c1, out: 8, kernel: 3}        # 8x10x10
  - maxpool: {kernel: 2}                       # 8x5x5
  - flatten
  - linear: {name: fc1, out: 32}
  - bn: {name: bn1}                            # BatchNorm1d between the FC layers
  - relu
  - dropout: {p: 0.3}
  - linear: {name: fc2, out: 10}
  - softmax: {dim: -1}
"""


@pytest.mark.parametrize("rules", ["convolutionalize", "all"])
def test_convolutionalize_moves_flatten_past_bn_dropout_softmax(write_spec, tmp_path, rules):
    ir = compile_spec(write_spec(HEAD_SPEC))
    chosen = CONVOLUTIONALIZE if rules == "convolutionalize" else RULES
    conv, report = apply_rewrites(ir, chosen)
    assert "flatten" not in ops(conv) and "linear" not in ops(conv)
    if rules == "all":  # bn1 reaches fc1 once both are maps, and folds; the dropout goes
        assert "bn" not in ops(conv) and "dropout" not in ops(conv)
    classifier = trained(ir, seed=7)
    state = transfer_weights(classifier, ir, conv)
    big = compile_spec(write_flat(conv, tmp_path), inputs={"image": (3, 16, 16)})
    assert big.shapes[big.outputs["output"]] == (10, 3, 3)  # stride 2: (16 - 12) / 2 + 1 windows a side
    grid = lower(big)
    grid.load_state_dict(flat_state_dict(state, conv))
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(8))
    check_windows(grid.eval(), classifier, x, window=12, cells=3)


def test_convolutionalize_needs_a_flatten_before_a_linear():
    # ResNet's classifier reads a global average (a vector), not a flattened map: nothing to do
    ir = compile_spec(RESNET18)
    same, report = apply_rewrites(ir, CONVOLUTIONALIZE)
    assert not report.changed and ops(same) == ops(ir)


# --- strip dropout / identity ---------------------------------------------------------------------------
STRIP_SPEC = """
name: strip_cases
inputs: {image: [3, 8, 8]}
outputs: {main: out, side: side}
layers:
  - conv: {name: c1, out: 4, kernel: 3, padding: 1}
  - dropout: {name: d1, p: 0.5}
  - identity: {name: skip}
  - relu
  - add: {name: sum, from: [relu1, d1]}
  - dropout: {name: out, p: 0.2}                # a graph output
  - global_avgpool: {name: pool, from: skip}
  - identity: {name: side}
"""


def test_strip_dropout_and_identity(write_spec):
    ir = compile_spec(write_spec(STRIP_SPEC))
    stripped, report = apply_rewrites(ir, STRIP_DROPOUT)
    assert ops(stripped) == ["input", "conv", "relu", "add", "global_avgpool"]
    assert stripped.outputs == {"main": "sum", "side": "pool"}
    assert sorted(report.by_rule()["strip_dropout"].removed) == ["d1", "out"]
    assert analyze(stripped).totals.params == analyze(ir).totals.params
    module = trained(ir)
    after = rewritten(module, ir, stripped)
    after.train()  # no dropout left: training mode gives the inference outputs
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected, actual = module(x), after(x)
    assert expected.keys() == actual.keys() == {"main", "side"}
    for key in expected:
        assert torch.equal(actual[key], expected[key])


# --- the flat spec written back ----------------------------------------------------------------------------
ROUND_TRIP = ["resnet18", "two_heads", "siamese", "googlenet", "mobilenet_v2", "tiny_unet", "vgg16_bn", "yolo_v1", "densenet121"]


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_flat_spec_round_trip(name, tmp_path):
    ir = compile_spec(SPECS / f"{name}.yaml")
    new, _ = apply_rewrites(ir, RULES)
    again = compile_spec(write_flat(new, tmp_path))
    names = flat_names(new)
    assert again.order == [names[i] for i in new.order]
    for node in new.nodes():
        twin = again.node(names[node.id])
        assert again.shapes[twin.id] == new.shapes[node.id], node.id
        assert (twin.op, twin.inputs) == (node.op, [names[i] for i in node.inputs]), node.id
        # `add: {project: auto}` is the builder's instruction; the flat spec lists the projection
        assert _args(twin) == _args(node), node.id
        assert (twin.module, twin.trainable) == (names[node.module], node.trainable), node.id
    first, second = analyze(new), analyze(again)
    assert first.totals == second.totals
    assert list(first.outputs.values()) == list(second.outputs.values())
    assert again.named_outputs == new.named_outputs or len(new.outputs) > 1
    # the `init:` each spec file names (issue 14: specs with a torchvision counterpart start as it does)
    from archspec.spec.init_scheme import InitScheme

    families = {"resnet18": "resnet", "googlenet": "googlenet", "mobilenet_v2": "mobilenet_v2", "vgg16_bn": "vgg",
                "densenet121": "densenet"}
    expected = (InitScheme(scheme="torchvision", family=families[name]) if name in families
                else {"tiny_unet": "kaiming_normal"}.get(name, "torch"))
    assert again.init == new.init == expected


def _args(node):
    if node.op == "input":
        return node.args
    values = node.args.model_dump()
    if node.op == "add":
        values.pop("project")
    return values


def test_flat_spec_runs_with_the_same_weights(tmp_path):
    # two_heads: named outputs, a frozen stem; folded, then written and loaded as a flat spec
    ir = compile_spec(SPECS / "two_heads.yaml")
    folded, _ = apply_rewrites(ir, RULES)
    module = trained(ir)
    state = transfer_weights(module, ir, folded)
    flat = lower(compile_spec(write_flat(folded, tmp_path)))
    flat.load_state_dict(flat_state_dict(state, folded))
    flat.eval()
    assert not any(p.requires_grad for name, p in flat.named_parameters() if name.startswith("stem_"))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        expected, actual = module(x), flat(x)
    assert expected.keys() == actual.keys() == {"logits", "aux"}
    for key in expected:
        assert relative_error(actual[key], expected[key]) < TOLERANCE


def test_flat_names_are_valid_and_unique():
    ir = compile_spec(SPECS / "densenet121.yaml")
    names = flat_names(ir)
    assert names["features.denseblock1.denselayer1.conv1"] == "features_denseblock1_denselayer1_conv1"
    assert len(set(names.values())) == len(names)
    assert all(len(n) <= 64 and "." not in n for n in names.values())


def test_rewrite_library_does_not_import_torch(tmp_path):
    code = (
        "import sys\n"
        "from archspec import compile_spec\n"
        "from archspec.rewrite import RULES, apply_rewrites, ir_to_spec_yaml\n"
        f"new, report = apply_rewrites(compile_spec({str(RESNET18)!r}), RULES)\n"
        "assert ir_to_spec_yaml(new)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --- the command line --------------------------------------------------------------------------------------
def invoke(*args: str):
    return CliRunner().invoke(app, ["rewrite", *args])


def test_cli_convolutionalize_writes_the_spec(tmp_path):
    out = tmp_path / "sliding.yaml"
    result = invoke(str(SLIDING), "--convolutionalize", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "fc_to_conv x3: replaced 3 (fc1, fc2, fc3)" in text
    assert "params 323,620 -> 323,620" in text and "output output 4x1x1" in text
    assert "at --input 3x16x16 the output is 4x2x2, one cell per 14x14 window, 2 pixel(s) apart" in text
    assert f"wrote {out}" in text
    report = CliRunner().invoke(app, ["report", str(out), "--input", "3x16x16", "--format", "json"])
    assert report.exit_code == 0, report.stderr
    assert json.loads(report.stdout)["outputs"] == {"output": [4, 2, 2]}


def test_cli_fold_bn_default_location(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(str(RESNET18), "--fold-bn", "--strip-dropout", "--input", "3x64x64")
    assert result.exit_code == 0, result.stderr
    assert "strip_dropout: nothing to rewrite" in result.stdout
    assert "fold_bn x20: removed 20 (bn1, layer1.0.bn1" in result.stdout
    assert "params 11,689,512 -> 11,684,712" in result.stdout and "buffers 9,620 -> 0" in result.stdout
    written = tmp_path / "reports" / "resnet18" / "resnet18.rewritten.yaml"
    assert written.is_file()
    again = analyze(compile_spec(written))
    assert again.totals.params == 11_684_712 and again.inputs == {"image": (3, 64, 64)}


def test_cli_bad_input(tmp_path, write_spec):
    cases = [
        ((str(tmp_path / "missing.yaml"), "--fold-bn"), "no such file"),
        ((str(SLIDING),), "choose at least one rewrite"),
        ((str(SLIDING), "--fold-bn", "--out", str(tmp_path)), "is a folder"),
        ((str(SLIDING), "--fold-bn", "--set", "clases=3"), "did you mean 'classes'"),
        ((str(SLIDING), "--fold-bn", "--input", "3x4x4"), "kernel 5 is larger than the padded input"),
        ((str(write_spec("name: bad\ninputs: {image: [3, 8, 8]}\nlayers:\n  - conv: {out: 4, kernal: 3}\n")), "--fold-bn"), "did you mean 'kernel'"),
        ((str(write_spec("name: d\ninputs: {image: [3, 8, 8]}\nlayers: [dropout]\n", "d.yaml")), "--strip-dropout"), "no layers left"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.stdout)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    spec = write_spec(SLIDING.read_text(), "copy.yaml")
    result = invoke(str(spec), "--fold-bn", "--out", str(spec))
    assert result.exit_code == 1 and "is the spec being rewritten" in result.stderr
    assert spec.read_text() == SLIDING.read_text()


def test_cli_exit_codes_as_a_process(tmp_path):
    ok = run_cli("rewrite", str(SLIDING), "--convolutionalize", "--out", str(tmp_path / "x.yaml"))
    assert ok.returncode == 0 and ok.stderr == "" and (tmp_path / "x.yaml").is_file()
    bad = run_cli("rewrite", str(tmp_path / "nope.yaml"), "--fold-bn")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("error: no such file") and "Traceback" not in bad.stderr
    assert (ROOT / "archspec" / "commands" / "rewrite.py").is_file()
