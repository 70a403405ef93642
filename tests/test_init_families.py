"""`init: {scheme: torchvision, family: F}` for every family but ResNet (tests/test_init.py), and the
`init` key's errors (issue 14, point 4).

Each family's lowered module is compared tensor by tensor with a freshly built torchvision model
(their state_dict names are the same: tests/test_torchvision_equivalence.py), by per-tensor mean
and std within sampling error, constants exactly (test_init.assert_same_distribution). One spec
per family: vgg16_bn has all three of VGG's layer kinds (conv, BN, linear).
"""
from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from archspec.cli import app
from archspec.errors import SpecError
from archspec.pipeline import compile
from archspec.spec.document import load_spec
from archspec.spec.init_scheme import InitScheme
from conftest import SPECS
from test_init import assert_same_distribution
from torchvision_counterparts import COUNTERPARTS

torchvision = pytest.importorskip("torchvision")

# spec -> whether torch's default init already gives torchvision's distribution (no init loop)
FAMILY_SPECS = {
    "alexnet": True,
    "vgg16_bn": False,
    "googlenet": False,
    "densenet121": False,
    "mobilenet_v2": False,
    "shufflenet_v2_x1_0": True,
    "efficientnet_b0": False,
    "fcn_resnet50": False,
    "deeplabv3_resnet50": False,
    "regnet_y_400mf": False,
    "convnext_tiny": False,
    "vit_b_16": False,
    "mobilenet_v3_large": False,
    "squeezenet1_1": False,
    "inception_v3": False,
    "mnasnet1_0": False,
    "resnext50_32x4d": False,
    "efficientnet_v2_s": False,
    "swin_t": False,
    "maxvit_t": False,
}


def _ours(name: str, **init) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    loaded = load_spec(SPECS / f"{name}.yaml")
    if init:
        loaded.document = loaded.document.model_copy(update={"init": InitScheme(**init)})
    return compile(loaded).module().state_dict()


def _theirs(name: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    counterpart = COUNTERPARTS[name]
    return torchvision.models.get_model(counterpart.builder, **counterpart.kwargs).state_dict()


@pytest.mark.parametrize("name", list(FAMILY_SPECS))
def test_each_family_starts_from_torchvisions_distribution(name):
    theirs = _theirs(name)
    assert_same_distribution(_ours(name), theirs)
    # the comparison can fail: torch's default matches only where torchvision has no init loop
    if FAMILY_SPECS[name]:
        assert_same_distribution(_ours(name, scheme="torch"), theirs)
    else:
        with pytest.raises(AssertionError):
            assert_same_distribution(_ours(name, scheme="torch"), theirs)


def test_segmentation_heads_keep_torchs_default():
    # ResNet's scheme over the whole model would give the head's convs kaiming fan_out too
    ours, theirs = _ours("fcn_resnet50", scheme="torchvision", family="resnet"), _theirs("fcn_resnet50")
    with pytest.raises(AssertionError, match="classifier.0.weight"):
        assert_same_distribution(ours, theirs)
    # the head's first conv (512 x 2048 x 3 x 3) at torch's kaiming_uniform(a = sqrt 5):
    # U(±1 / sqrt(fan_in)), std 1 / sqrt(3 fan_in) with fan_in = 2048 * 9
    head = _ours("fcn_resnet50")["classifier.0.weight"]
    assert head.std().item() == pytest.approx((3 * 2048 * 9) ** -0.5, rel=0.01)


def _family_of(builder: str) -> str:
    """The family torchvision builds `builder` in: its module's name (segmentation.fcn -> fcn),
    mobilenetv2, mobilenetv3 and shufflenetv2 spelt with an underscore, vision_transformer as vit,
    swin_transformer as swin, inception as inception_v3 (googlenet.py is Inception v1), as archspec names them."""
    module = torchvision.models.get_model_builder(builder).__module__.rsplit(".", 1)[1]
    return {"mobilenetv2": "mobilenet_v2", "mobilenetv3": "mobilenet_v3", "shufflenetv2": "shufflenet_v2",
            "vision_transformer": "vit", "inception": "inception_v3",
            "swin_transformer": "swin"}.get(module, module)


@pytest.mark.parametrize("name", list(COUNTERPARTS))
def test_every_counterpart_spec_names_its_torchvision_family(name):
    # specs that `extends` another (vgg16, densenet169, efficientnet_b3, resnet34 ...) inherit it
    expected = InitScheme(scheme="torchvision", family=_family_of(COUNTERPARTS[name].builder))
    assert load_spec(SPECS / f"{name}.yaml").document.init == expected


TINY = "name: tiny\n{init}inputs: {{image: [3, 8, 8]}}\nlayers:\n  - conv: {{out: 4, kernel: 3}}\n"
INIT_ERRORS = {  # the init line -> words of the message (all located at the value, line 2 column 7)
    "init: torchvision": ("needs the model family", "{scheme: torchvision, family: resnet}", "vgg, alexnet"),
    "init: {scheme: torchvision}": ("needs `family`", "{scheme: torchvision, family: resnet}", "efficientnet"),
    "init: {scheme: torch, family: vgg}": ("`family`", "scheme: torchvision"),
    "init: {scheme: torchvision, family: vgg, zero_init_residual: true}": ("ResNets only", "family: resnet"),
    "init: [torchvision]": ("a scheme name", "a mapping"),
}


@pytest.mark.parametrize("line", list(INIT_ERRORS))
def test_init_errors_are_located_with_a_hint(line, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.format(init=line + "\n"))
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    assert (caught.value.loc.line, caught.value.loc.column) == (2, 7)
    text = str(caught.value)
    for word in INIT_ERRORS[line]:
        assert word in text, text


def test_an_unknown_family_is_located_at_it(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.format(init="init: {scheme: torchvision, family: vg}\n"))
    with pytest.raises(SpecError, match="did you mean 'vgg'") as caught:
        load_spec(spec)
    assert (caught.value.loc.line, caught.value.loc.column) == (2, 37)


def test_bare_torchvision_fails_validate_with_one_located_error(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.format(init="init: torchvision\n"))
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"{spec}:2:7" in result.stderr and "family: resnet}" in result.stderr


def test_a_segmentation_family_needs_a_backbone_scope(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.format(init="init: {scheme: torchvision, family: fcn}\n"))
    with pytest.raises(SpecError, match="no `backbone`"):
        compile(spec).module()
