"""Specs with a torchvision counterpart are the same architecture as torchvision's:

- structural (always, from tests/data/torchvision_state_dicts.json, made by
  scripts/dump_torchvision_params.py with torchvision 0.29.1): the same state_dict tensors with
  the same names and shapes in the same order, and the same parameter and buffer totals;
- behavioural (the project's venv installs torchvision 0.29.1 from requirements.lock): torchvision's
  model gets random norm affines and BatchNorm statistics measured on a real batch, so that every
  eps and every affine matters; its state_dict then loads strictly into the lowered module, and
  eval-mode outputs agree within 1e-5 relative; every norm layer has torchvision's eps and
  momentum; FlopCounterMode counts the same FLOPs at the standard input size; a family's other
  members, the spec with other parameters, have their builder's state_dict. They skip only where
  torchvision is not installed at all, and never in CI; an installed torchvision that fails to
  import is a failure (conftest.py also fails the run if any of them skips while torchvision imports).
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from archspec.lower.verify import flop_counter

import archspec
from conftest import ROOT, SPECS
from torchvision_counterparts import COUNTERPARTS

RECORDED = json.loads((ROOT / "tests" / "data" / "torchvision_state_dicts.json").read_text())["models"]
PRESENT = [name for name in COUNTERPARTS if (SPECS / f"{name}.yaml").exists()]
NORMS = (_BatchNorm, nn.GroupNorm, nn.LayerNorm)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_xdist_worker():
    """Under pytest-xdist the workers already share the cores: a pool of torch threads in each
    made this file take twice as long (5 min against 2 with `-n 2` on 2 cores)."""
    threads = torch.get_num_threads()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _torchvision():
    if importlib.util.find_spec("torchvision") is None and not os.environ.get("CI"):
        pytest.skip("torchvision is not installed (`make test` installs it from requirements.lock)")
    import torchvision  # installed (or in CI): an import error is a failure, not a skip

    return torchvision


def _module(name: str):
    return archspec.build_module(SPECS / f"{name}.yaml")


@pytest.mark.parametrize("name", PRESENT)
def test_state_dict_matches_torchvision_structure(name):
    module = _module(name)
    ours = [[key, list(value.shape)] for key, value in module.state_dict().items()]
    theirs = RECORDED[name]["state_dict"]
    assert [k for k, _ in ours] == [k for k, _ in theirs], "state_dict keys (or their order) differ"
    assert ours == theirs, "state_dict shapes differ"
    analysis = archspec.analyze_spec(SPECS / f"{name}.yaml")
    assert analysis.totals.params == RECORDED[name]["params"]
    assert analysis.totals.buffers == RECORDED[name]["buffers"]


# --- outputs, after the norm layers are made to matter ------------------------------------------------
@functools.lru_cache(maxsize=8)
def _photos(height: int, width: int) -> torch.Tensor:
    """A real batch: scikit-learn's two bundled photographs (a temple, a flower) and their mirror
    images, resized to height x width and normalised as torchvision's ImageNet transforms do."""
    import numpy as np
    import torch.nn.functional as F
    from sklearn.datasets import load_sample_images

    photos = torch.from_numpy(np.stack(load_sample_images().images)).permute(0, 3, 1, 2).float() / 255
    photos = F.interpolate(torch.cat([photos, photos.flip(-1)]), size=(height, width), mode="bilinear",
                           antialias=True, align_corners=False)
    return (photos - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def calibrate_norms(model: nn.Module, batch: torch.Tensor, seed: int = 0) -> nn.Module:
    """Give every norm layer a random affine (γ ~ U(0.5, 1.5), β ~ N(0, 0.2²)), then BatchNorm
    running statistics measured on `batch` in training mode. At init γ = 1, β = 0, mean 0, var 1,
    under which a wrong eps, or a γ and β loaded into the wrong layer, hardly change the output."""
    generator = torch.Generator().manual_seed(seed)
    norms = [layer for layer in model.modules() if isinstance(layer, NORMS)]
    batchnorms = [layer for layer in norms if isinstance(layer, _BatchNorm)]
    momenta = [layer.momentum for layer in batchnorms]
    with torch.no_grad():
        for layer in norms:
            if getattr(layer, "weight", None) is not None:
                layer.weight.uniform_(0.5, 1.5, generator=generator)
            if getattr(layer, "bias", None) is not None:
                layer.bias.copy_(0.2 * torch.randn(layer.bias.shape, generator=generator))
        for layer in batchnorms:
            layer.reset_running_stats()
            layer.momentum = None  # a cumulative average: after one batch, that batch's statistics
        model.train()(batch)
    for layer, momentum in zip(batchnorms, momenta):
        layer.momentum = momentum
    return model.eval()


def calibrated_pair(name: str):
    """torchvision's model for `name`, calibrated on the photos at the spec's comparison size, the
    lowered spec loaded (strictly) with its state_dict, and the photos."""
    counterpart = COUNTERPARTS[name]
    shape = counterpart.compare_input or counterpart.input
    batch = _photos(*shape[1:])
    torch.manual_seed(0)
    reference = calibrate_norms(_torchvision().models.get_model(counterpart.builder, **counterpart.kwargs), batch)
    module = archspec.build_module(SPECS / f"{name}.yaml", inputs={"image": shape})
    module.load_state_dict(reference.state_dict())  # strict: every key and shape must match
    return reference, module.eval(), batch


def _outputs(name: str, reference: nn.Module, module: nn.Module, batch: torch.Tensor):
    counterpart = COUNTERPARTS[name]
    with torch.no_grad():
        ours, theirs = module(batch), reference(batch)
    if counterpart.output:
        ours = ours[counterpart.output]
    if counterpart.torchvision_output:
        theirs = theirs[counterpart.torchvision_output]
    return ours, theirs


def assert_same_outputs(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """Within 1e-5 relative to each element, or to the output's largest magnitude near zero."""
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())


@pytest.mark.parametrize("name", PRESENT)
def test_same_outputs_as_torchvision_with_measured_norms(name):
    reference, module, batch = calibrated_pair(name)
    ours, theirs = _outputs(name, reference, module, batch)
    assert_same_outputs(ours, theirs)
    # what the outputs cannot show: BN's momentum matters only in training
    for path, theirs_norm in reference.named_modules():
        if isinstance(theirs_norm, NORMS):
            ours_norm = module.get_submodule(path)
            for setting in ("eps", "momentum"):
                assert getattr(ours_norm, setting, None) == getattr(theirs_norm, setting, None), f"{path}.{setting}"


# the comparison can fail: one BatchNorm's eps changed (torch's default against the 0.001 of
# Inception and MobileNet v3) in a spec that is otherwise exact
WRONG_EPS = {"resnet18": ("layer4.1.bn2", 1e-3), "mobilenet_v3_small": ("features.9.block.3.1", 1e-5)}


@pytest.mark.parametrize("name", list(WRONG_EPS))
def test_a_wrong_eps_shows_in_the_outputs(name):
    reference, module, batch = calibrated_pair(name)
    path, eps = WRONG_EPS[name]
    assert module.get_submodule(path).eps != eps
    module.get_submodule(path).eps = eps
    with pytest.raises(AssertionError, match="Tensor-likes are not close"):
        assert_same_outputs(*_outputs(name, reference, module, batch))


@pytest.mark.parametrize("name", PRESENT)
def test_same_flops_as_torchvision_at_the_standard_size(name):
    # in training mode, where GoogLeNet's and Inception v3's auxiliary heads run in both; on the meta
    # device FlopCounterMode counts from shapes alone, so the standard size costs no arithmetic
    # (torchvision's model is built on the CPU: RegNet's builder computes its widths with tensors)
    counterpart = COUNTERPARTS[name]
    reference = _torchvision().models.get_model(counterpart.builder, **counterpart.kwargs).to("meta").train()
    with torch.device("meta"):
        module = archspec.build_module(SPECS / f"{name}.yaml", inputs={"image": counterpart.input}).train()
        x = torch.empty(2, *counterpart.input)  # 2: BatchNorm in training mode needs more than one value
    with torch.no_grad(), flop_counter() as ours_counter:
        module(x)
    with torch.no_grad(), flop_counter() as theirs_counter:
        reference(x)
    assert ours_counter.get_total_flops() == theirs_counter.get_total_flops()


# a family's other members are its spec with other parameters:
# (torchvision's builder, its arguments, the spec, the spec's parameters)
VARIANTS = [
    ("mobilenet_v3_large", {"width_mult": 0.75}, "mobilenet_v3_large", {"width": 0.75}),
    ("mobilenet_v3_small", {"width_mult": 0.5}, "mobilenet_v3_small", {"width": 0.5}),
    ("mnasnet0_5", {}, "mnasnet1_0", {"alpha": 0.5}),
    ("mnasnet1_3", {}, "mnasnet1_0", {"alpha": 1.3}),
    ("resnext101_32x8d", {}, "resnext50_32x4d", {"stages": [3, 4, 23, 3], "width_per_group": 8}),
    ("wide_resnet101_2", {}, "wide_resnet50_2", {"stages": [3, 4, 23, 3]}),
]


@pytest.mark.parametrize("builder, kwargs, spec, params", VARIANTS, ids=[f"{v[0]}{v[1] or ''}" for v in VARIANTS])
def test_a_variant_by_parameters_has_torchvisions_state_dict(builder, kwargs, spec, params):
    with torch.device("meta"):  # shapes only: no weights are drawn
        theirs = _torchvision().models.get_model(builder, **kwargs).state_dict()
        ours = archspec.build_module(SPECS / f"{spec}.yaml", **params).state_dict()
    assert [(key, value.shape) for key, value in ours.items()] == [(key, value.shape) for key, value in theirs.items()]
