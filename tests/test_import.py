"""`archspec import`: a PyTorch model -> a spec, checked against the model itself.

The oracles are torch and torchvision: the built module takes the model's own state_dict
strictly, its eval outputs match the model's within 1e-5 (after the model's norm layers get
random statistics), its static FLOPs equal FlopCounterMode's count on the model, and the folded
blocks repeat as torchvision's published configurations say (ResNet-50 [3, 4, 6, 3], DenseNet-121
[6, 12, 24, 16]). Small inputs keep it quick; scripts/import_report.py runs every torchvision
classification and segmentation model and the timm families (reports/import.md).
"""
from __future__ import annotations

import copy
import os
import textwrap

import pytest
import torch
import yaml
from typer.testing import CliRunner

import archspec
from archspec.cli import app
from archspec.importer.check import randomised_norms, verify
from archspec.lower.verify import flop_counter
from archspec.importer.convert import import_model
from archspec.importer.target import load_model, parse_kwargs
from conftest import SPECS

if not os.environ.get("CI"):
    pytest.importorskip("torchvision")  # in CI, where it is installed, an import error is a failure

SEGMENTATION = {"weights_backbone": None, "aux_loss": False}
MODELS = {  # target -> (factory keywords, input)
    "torchvision.models:resnet50": ({}, (3, 32, 32)),
    "torchvision.models:densenet121": ({}, (3, 32, 32)),
    "torchvision.models:mobilenet_v2": ({}, (3, 32, 32)),
    "torchvision.models.segmentation:fcn_resnet50": (SEGMENTATION, (3, 32, 32)),
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Each model, imported once: (model, spec path, spec text)."""
    folder = tmp_path_factory.mktemp("imported")
    found = {}
    for target, (kwargs, shape) in MODELS.items():
        torch.manual_seed(0)
        model = load_model(target, kwargs)
        result = import_model(model, shape, target.rpartition(":")[2], target)
        assert not result.problems, [p.line() for p in result.problems]
        path = folder / f"{target.rpartition(':')[2]}.yaml"
        path.write_text(result.text)
        found[target] = (model, path, result.text)
    return found


def _outputs(result):
    return result if isinstance(result, dict) else {"output": result}


@pytest.mark.parametrize("target", list(MODELS))
def test_the_chain_holds(imported, target):
    """build -> strict load of the model's state_dict -> eval outputs within 1e-5 -> FLOPs equal."""
    model, path, _ = imported[target]
    shape = MODELS[target][1]
    reference = randomised_norms(copy.deepcopy(model), seed=3).eval()
    module = archspec.build_module(path, inputs={"x": shape})
    module.load_state_dict(reference.state_dict(), strict=True)
    module.eval()
    example = torch.randn(2, *shape)
    with torch.no_grad():
        theirs, ours = _outputs(reference(example)), _outputs(module(x=example))
    assert set(theirs) == set(ours)
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-5)
    with flop_counter() as counter:  # FlopCounterMode, with torch's SDPA formula for the CPU kernel too
        reference(torch.zeros(1, *shape))
    assert archspec.analyze_spec(path, inputs={"x": shape}).totals.flops == counter.get_total_flops()
    assert verify(model, path, shape).exact  # the command's own check agrees


@pytest.mark.parametrize("name", ["resnet50", "densenet121", "mobilenet_v2"])
def test_generated_specs_are_at_most_one_and_a_half_times_the_library_specs(imported, name):
    text = imported[f"torchvision.models:{name}"][2]
    written = len((SPECS / f"{name}.yaml").read_text().splitlines())
    assert len(text.splitlines()) <= 1.5 * written, text


def _calls(items, callee):
    for item in items:
        if isinstance(item, dict) and callee in item:
            yield item[callee] or {}
        for args in (item.values() if isinstance(item, dict) else []):
            if isinstance(args, dict) and isinstance(args.get("layers"), list):
                yield from _calls(args["layers"], callee)


def test_resnet50_folds_into_one_bottleneck_repeated_as_torchvision_configures_it(imported):
    spec = yaml.safe_load(imported["torchvision.models:resnet50"][2])
    assert len(spec["blocks"]) == 1
    (block,) = spec["blocks"]
    assert [call["repeat"] for call in _calls(spec["layers"], block)] == [3, 4, 6, 3]  # torchvision's resnet50 layers
    assert "downsample" not in imported["torchvision.models:resnet50"][2]  # the projection is the add's `project: auto`


def test_densenet121_repeats_its_dense_layer_per_block(imported):
    spec = yaml.safe_load(imported["torchvision.models:densenet121"][2])
    dense_layer = next(name for name, block in spec["blocks"].items() if "concat" in str(block["layers"]))
    runs = [call for block in spec["blocks"].values() for call in _calls(block["layers"], dense_layer)]
    depth_calls = [call for call in _calls(spec["layers"], next(n for n, b in spec["blocks"].items()
                                                                  if dense_layer in str(b["layers"])))]
    assert runs and runs[0]["name"] == "denselayer{i + 1}"  # torchvision's names: denselayer1, denselayer2, ...
    assert [call["depth"] for call in depth_calls] == [6, 12, 24, 16]  # DenseNet-121's block_config


def _references(items):
    for item in items:
        for args in item.values() if isinstance(item, dict) else []:
            if isinstance(args, dict):
                if "from" in args:
                    yield from args["from"] if isinstance(args["from"], list) else [args["from"]]
                if isinstance(args.get("layers"), list):
                    yield from _references(args["layers"])


@pytest.mark.parametrize("target", list(MODELS))
def test_wiring_is_by_name(imported, target):
    spec = yaml.safe_load(imported[target][2])
    lists = [spec["layers"], *(block["layers"] for block in spec.get("blocks", {}).values())]
    references = [ref for items in lists for ref in _references(items)]
    assert references and all(isinstance(ref, str) for ref in references)


def _invoke(*args):
    return CliRunner().invoke(app, list(args))


def test_a_users_file_imports_and_checks(tmp_path):
    (tmp_path / "model.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Gate(nn.Module):
            def __init__(self, channels):
                super().__init__()
                self.fc = nn.Conv2d(channels, channels, 1)

            def forward(self, x):
                return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))

        class Net(nn.Module):
            def __init__(self, width=8, classes=5):
                super().__init__()
                self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
                self.gates = nn.Sequential(Gate(width), Gate(width))
                self.head = nn.Linear(width, classes)

            def forward(self, x):
                x = self.stem(x)
                x = x + self.gates(x)
                return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

        def build(width=8, classes=5):
            return Net(width, classes)
    """))
    out = tmp_path / "net.yaml"
    result = _invoke("import", f"{tmp_path / 'model.py'}:build", "--out", str(out), "--input", "3x16x16",
                     "--arg", "width=6", "--arg", "classes=3")
    assert result.exit_code == 0, result.output
    assert "flops: ok" in result.output and "outputs: ok" in result.output
    spec = yaml.safe_load(out.read_text())
    assert "gate" in spec["blocks"]  # the two Gate modules are one block


def test_a_forward_that_fx_cannot_trace_is_exported_instead(tmp_path):
    """`if x.shape[-1] > 8` stops torch.fx (a traced size in control flow); torch.export runs it."""
    (tmp_path / "branchy.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, 3, padding=1)
                self.bn = nn.BatchNorm2d(8)
                self.fc = nn.Linear(8, 4)

            def forward(self, x):
                x = torch.relu(self.bn(self.conv(x)))
                if x.shape[-1] > 8:
                    x = nn.functional.max_pool2d(x, 2)
                return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

        def build():
            return Net()
    """))
    with pytest.raises(Exception):
        torch.fx.symbolic_trace(load_model(f"{tmp_path / 'branchy.py'}:build"))
    out = tmp_path / "net.yaml"
    result = _invoke("import", f"{tmp_path / 'branchy.py'}:build", "--out", str(out), "--input", "3x16x16")
    assert result.exit_code == 0, result.output
    assert "outputs: ok" in result.output and "flops: ok" in result.output
    assert "maxpool: {kernel: 2}" in out.read_text()  # the branch taken at 16x16


def test_unsupported_nodes_are_all_listed_and_nothing_is_written(tmp_path):
    (tmp_path / "model.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)

            def forward(self, x):
                x = torch.fft.fft2(self.conv(x)).real
                return self.conv(torch.relu(x[:, :3]) * 2)  # conv again: shared weights

        def build():
            return Net()
    """))
    out = tmp_path / "net.yaml"
    result = _invoke("import", f"{tmp_path / 'model.py'}:build", "--out", str(out), "--input", "3x8x8")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith(("fft_fft2:", "getattr_1:", "mul:", "conv_1:"))]
    assert len(lines) == 4, result.output  # every unsupported node, one line each
    assert "torch.fft.fft2" in lines[0] and "operator.mul" in lines[2] and "shared weights" in lines[3]
    assert "Traceback" not in result.output and not out.exists()


def test_blocks_none_writes_a_flat_spec_that_is_still_exact(tmp_path):
    out = tmp_path / "flat.yaml"
    result = _invoke("import", "torchvision.models:resnet18", "--out", str(out), "--input", "3x32x32", "--blocks", "none")
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(out.read_text())
    assert "blocks" not in spec and "repeat:" not in out.read_text()
    assert "layer4" in out.read_text() and "load: ok" in result.output and "flops: ok" in result.output


def test_bad_targets_and_arguments_are_clear_errors(tmp_path):
    assert parse_kwargs(["num_classes=10", "weights=None", "mode=fast"]) == {"num_classes": 10, "weights": None, "mode": "fast"}
    for args, message in ((["nocolon"], "is not MODULE:FACTORY"), (["no_such_package_xyz:build"], "cannot import"),
                          ([f"{tmp_path / 'missing.py'}:build"], "no file"), (["torchvision.models:no_such_model"], "no_such_model"),
                          (["torchvision.models:resnet18", "--blocks", "some"], "--blocks must be")):
        result = _invoke("import", *args, "--out", str(tmp_path / "x.yaml"))
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output
