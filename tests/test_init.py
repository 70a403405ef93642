"""`init: {scheme: torchvision, family: resnet}` and `zero_init_residual` (issue 14, point 4), against
torchvision itself (the other families: tests/test_init_families.py).

The reference is a freshly built torchvision model (random init). Weights are random, so they are
compared by their per-tensor mean and std within sampling error: for n draws of spread σ the
sample mean has standard error σ / sqrt(n) and the sample std about σ / sqrt(2n) (less for
uniform draws), so the difference of two independent tensors' means has standard error
σ sqrt(2 / n) and that of their stds at most σ / sqrt(n). We allow SIGMAS of those. Constant
tensors (BN γ and β, running statistics) must be equal exactly.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from archspec.errors import SpecError
from archspec.pipeline import compile
from archspec.spec.document import load_spec
from archspec.spec.init_scheme import InitScheme

torchvision = pytest.importorskip("torchvision")

SPECS = Path(__file__).resolve().parents[1] / "specs"
RESNETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
SIGMAS = 6.0  # about 2e-9 per comparison for a normal statistic


def _ours(name: str, **init) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    if not init:
        return compile(SPECS / f"{name}.yaml").module().state_dict()
    loaded = load_spec(SPECS / f"{name}.yaml")
    loaded.document = loaded.document.model_copy(update={"init": InitScheme(**init)})
    return compile(loaded).module().state_dict()


def _theirs(name: str, **kwargs) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return getattr(torchvision.models, name)(**kwargs).state_dict()


def assert_same_distribution(ours: dict, theirs: dict) -> None:
    assert list(ours) == list(theirs)
    for key, reference in theirs.items():
        tensor = ours[key]
        if not reference.is_floating_point() or reference.std() == 0:  # constant: exact
            assert torch.equal(tensor, reference), key
            continue
        n, sigma = reference.numel(), reference.std().item()
        assert abs(tensor.mean().item() - reference.mean().item()) <= SIGMAS * sigma * math.sqrt(2 / n), key
        assert abs(tensor.std().item() - sigma) <= SIGMAS * sigma / math.sqrt(n), key


@pytest.mark.parametrize("name", RESNETS)
def test_resnet_starts_from_torchvisions_distribution(name):
    assert_same_distribution(_ours(name), _theirs(name))


def test_resnet_conv_std_is_kaiming_fan_out():
    # conv1 is 64 x 3 x 7 x 7: fan_out = 64 * 49 = 3136, so σ = sqrt(2 / 3136) = 0.02525;
    # torch's default (kaiming_uniform, a = sqrt 5) would give 1 / sqrt(3 * 147) = 0.0476
    weight = _ours("resnet18")["conv1.weight"]
    assert abs(weight.std().item() - math.sqrt(2 / 3136)) <= SIGMAS * 0.02525 / math.sqrt(2 * weight.numel())


def test_the_default_init_differs_from_torchvision():
    # the comparison can fail: without torchvision's scheme the convs are not resnet's
    ours = _ours("resnet18", scheme="torch")
    with pytest.raises(AssertionError):
        assert_same_distribution(ours, _theirs("resnet18"))


def _zeroed(state: dict) -> set[str]:
    return {key for key, value in state.items() if key.endswith(".weight") and value.dim() == 1 and not value.any()}


@pytest.mark.parametrize("name, blocks", [("resnet18", 2 + 2 + 2 + 2), ("resnet50", 3 + 4 + 6 + 3)])
def test_zero_init_residual_zeroes_each_branch_final_bn(name, blocks):
    ours = _ours(name, scheme="torchvision", family="resnet", zero_init_residual=True)
    theirs = _theirs(name, zero_init_residual=True)
    zeroed = _zeroed(ours)
    assert len(zeroed) == blocks  # one BN per residual block: bn2 (basic) or bn3 (bottleneck)
    assert zeroed == _zeroed(theirs)
    last = "bn2" if name == "resnet18" else "bn3"
    assert all(key.endswith(f"{last}.weight") for key in zeroed)
    for key in zeroed:
        assert torch.count_nonzero(ours[key]) == 0
    # the projection shortcut's BN keeps γ = 1, as in torchvision
    assert torch.equal(ours["layer2.0.downsample.1.weight"], torch.ones(128 if name == "resnet18" else 512))
    assert_same_distribution(ours, theirs)


def _resnet18_with(tmp_path: Path, init: str) -> Path:
    # an `extends` must stay inside the spec's folder: copy resnet18 and its block file there
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "resnet.yaml").write_text((SPECS / "blocks" / "resnet.yaml").read_text())
    (tmp_path / "resnet18.yaml").write_text((SPECS / "resnet18.yaml").read_text())
    spec = tmp_path / "variant.yaml"
    spec.write_text(f"extends: resnet18.yaml\nname: variant\ninit: {init}\n")
    return spec


def test_init_mapping_form_is_read_from_yaml(tmp_path):
    spec = _resnet18_with(tmp_path, "{scheme: torchvision, family: resnet, zero_init_residual: true}")
    compiled = compile(spec)
    assert compiled.ir.init == InitScheme(scheme="torchvision", family="resnet", zero_init_residual=True)
    assert len(_zeroed(compiled.module().state_dict())) == 8


def test_init_mapping_rejects_unknown_options(tmp_path):
    spec = _resnet18_with(tmp_path, "{scheme: torchvision, family: resnet, zero_init: true}")
    with pytest.raises(SpecError, match="unknown key .zero_init."):
        compile(spec)


def test_init_mapping_survives_the_flat_spec_writer(tmp_path):
    from archspec.rewrite.spec_yaml import ir_to_spec_yaml

    ir = compile(_resnet18_with(tmp_path, "{scheme: torchvision, family: resnet, zero_init_residual: true}")).ir
    flat = tmp_path / "flat.yaml"
    flat.write_text(ir_to_spec_yaml(ir))
    again = compile(flat)
    assert again.ir.init == InitScheme(scheme="torchvision", family="resnet", zero_init_residual=True)
    assert len(_zeroed(again.module().state_dict())) == 8  # the flat spec's adds keep the branch first
