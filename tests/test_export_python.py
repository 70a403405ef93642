"""`export --format python` (archspec.export.python_source): the standalone file, run here in a
fresh namespace, builds a model into which the lowered module's state_dict (weights moved off
their initial values, batch-norm statistics included) loads strictly, with equal eval outputs;
it never names archspec, black leaves it as it is, and resnet18's reads as torchvision's
resnet.py: the same module names and classes, torchvision's own weights loading into it."""
from __future__ import annotations

import ast
import inspect
import re
from functools import lru_cache

import black
import pytest
import torch
import torch.nn as nn

import archspec
from archspec.errors import SpecError
from archspec.export.python_calls import constructor_call
from archspec.export.python_source import LINE_LENGTH, python_source
from conftest import ROOT, SPECS
from moved_weights import moved_weights

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
# spec -> input shape: small sizes for speed; one spec per kind of structure (residual blocks with
# projections, concatenated branches and several outputs, a `when:` that changes structure,
# crop-and-concat skips, free tensors and attention, channels-last layers with drop path)
CASES = {
    "resnet18": (3, 64, 64),
    "googlenet": (3, 64, 64),
    "mobilenet_v2": (3, 64, 64),
    "unet": (1, 188, 188),
    "vit_tiny_digits": None,
    "convnext_tiny": (3, 32, 32),
}
ALLOWED_IMPORTS = ("torch", "torchvision.ops", "typing", "math", "types")


class Written:
    """One spec: its lowered module, its written source and the model that source builds."""

    def __init__(self, name: str):
        shape = CASES[name]
        self.compiled = archspec.compile(SPECS / f"{name}.yaml", inputs={"": shape} if shape else None)
        self.source = python_source(self.compiled)
        self.namespace: dict = {}
        exec(compile(self.source, f"<{name}.py>", "exec"), self.namespace)  # the file this test generated
        self.class_name = re.findall(r"^class (\w+)\(", self.source, re.M)[-1]  # the model comes last
        self.model = self.namespace[self.class_name]().eval()
        self.lowered = self.compiled.module().eval()
        self.lowered.load_state_dict(moved_weights(self.lowered))


@lru_cache(maxsize=None)
def written(name: str) -> Written:
    return Written(name)


def outputs(result) -> list[torch.Tensor]:
    return list(result.values()) if isinstance(result, dict) else [result]


@pytest.mark.parametrize("name", CASES)
def test_the_lowered_weights_load_strictly_and_the_outputs_are_equal(name):
    case = written(name)
    case.model.load_state_dict(case.lowered.state_dict(), strict=True)
    torch.manual_seed(1)
    batch = 1 if name == "unet" else 2
    inputs = {key: torch.randn(batch, *case.compiled.ir.shapes[value]) for key, value in case.compiled.ir.inputs.items()}
    with torch.no_grad():
        expected, got = case.lowered(**inputs), case.model(**inputs)
    assert isinstance(got, dict) == isinstance(expected, dict)
    for want, have in zip(outputs(expected), outputs(got), strict=True):
        assert have.shape == want.shape
        torch.testing.assert_close(have, want, **TOLERANCE)


@pytest.mark.parametrize("name", CASES)
def test_the_file_stands_alone_and_is_black_formatted(name):
    source = written(name).source
    assert "archspec" not in source.lower()
    imported = [node.module if isinstance(node, ast.ImportFrom) else alias.name
                for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names]
    assert imported and all(any(m == root or m.startswith(root + ".") for root in ALLOWED_IMPORTS) for m in imported)
    assert black.format_str(source, mode=black.Mode(line_length=LINE_LENGTH)) == source


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "convnext_tiny"])
def test_merges_carry_a_shape_comment(name):
    # forward's statements that add, multiply or concatenate (`out += identity`, `x = torch.cat([...])`)
    merge = re.compile(r"^\s+\w+ (\+= |= \w+ [+*] \w+|= torch\.cat\()")
    merges = [line for line in written(name).source.splitlines() if merge.match(line)]
    assert merges and all(re.search(r"# \([\w, ]+\)$", line) for line in merges)


def test_resnet18_has_torchvisions_modules_and_loads_its_weights():
    import torchvision

    case, reference = written("resnet18"), torchvision.models.resnet18().eval()
    ours = {name: type(module).__name__ for name, module in case.model.named_modules() if name}
    theirs = {name: type(module).__name__ for name, module in reference.named_modules() if name}
    assert ours == theirs  # conv1, bn1, relu, maxpool, layer1.0 (BasicBlock) ... avgpool, fc
    case.model.load_state_dict(reference.state_dict(), strict=True)
    image = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(case.model(image), reference(image), **TOLERANCE)


def test_one_class_serves_the_calls_of_a_block_that_differ_in_parameters():
    resnet, googlenet = written("resnet18").source, written("googlenet").source
    assert re.findall(r"^class (\w+)\(", resnet, re.M) == ["BasicBlock", "Resnet18"]
    assert len(re.findall(r"(?<!class )\bBasicBlock\(", resnet)) == 8  # torchvision's layers [2, 2, 2, 2]
    # torchvision's BasicBlock(inplanes, planes, stride=1, downsample=None)
    parameters = inspect.signature(written("resnet18").namespace["BasicBlock"]).parameters
    assert [(name, p.default) for name, p in parameters.items()] == [
        ("in_channels", inspect.Parameter.empty), ("out", inspect.Parameter.empty), ("stride", 1), ("downsample", None)]
    assert len(re.findall(r"= InceptionBlock\(", googlenet)) == 9  # the paper's nine inception modules


def test_the_ir_keeps_each_block_calls_parameters():
    ir = written("resnet18").compiled.ir
    # specs/resnet18.yaml: layer2 is `basic: {out: 128, stride: "2 if i == 0 else 1"}` twice
    assert ir.block_params["layer2.0"] == {"out": 128, "stride": 2}
    assert ir.block_params["layer2.1"] == {"out": 128, "stride": 1}


def test_a_module_whose_arguments_do_not_read_back_is_refused():
    # MultiheadAttention keeps no `bias` attribute: read back at its default, it would build
    # tensors the original lacks, so no call is offered
    assert constructor_call(nn.MultiheadAttention(8, 2, bias=False), "nn.MultiheadAttention") is None
    call = constructor_call(nn.Conv2d(4, 8, 3, stride=2, bias=False), "nn.Conv2d")
    assert (call.args, dict(call.keywords)["stride"], dict(call.keywords)["bias"]) == ((4, 8), 2, False)


def test_a_layer_that_cannot_be_written_is_named(monkeypatch):
    from archspec.export import python_calls

    monkeypatch.setattr(python_calls, "constructor_call", lambda built, callee: None)
    with pytest.raises(SpecError, match=r"cannot write the conv 'conv1' as Python source.*Conv2d") as caught:
        python_source(archspec.compile(SPECS / "lenet5.yaml"))
    written_at = next(k for k, line in enumerate((SPECS / "lenet5.yaml").read_text().splitlines(), 1) if "name: conv1" in line)
    assert caught.value.loc is not None and caught.value.loc.line == written_at


def test_the_committed_resnet18_file_is_current():
    committed = (ROOT / "reports" / "export_resnet18.py").read_text()
    assert committed == python_source(archspec.compile(SPECS / "resnet18.yaml"))
