"""Specs with a torchvision counterpart are the same architecture as torchvision's:

- structural (always, from tests/data/torchvision_state_dicts.json, made by
  scripts/dump_torchvision_params.py with torchvision 0.29.1): the same state_dict tensors with
  the same names and shapes in the same order, and the same parameter and buffer totals;
- behavioural (the project's venv installs torchvision 0.29.1 from requirements.lock): torchvision's
  state_dict loads strictly into the lowered module, eval-mode outputs agree within 1e-5 on random
  inputs, and FlopCounterMode counts the same FLOPs. They skip only where torchvision is not
  installed at all, and never in CI; an installed torchvision that fails to import is a failure
  (conftest.py also fails the run if any of them skips while torchvision imports).
"""
from __future__ import annotations

import importlib.util
import json
import os

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import archspec
from conftest import ROOT, SPECS
from torchvision_counterparts import COUNTERPARTS

RECORDED = json.loads((ROOT / "tests" / "data" / "torchvision_state_dicts.json").read_text())["models"]
PRESENT = [name for name in COUNTERPARTS if (SPECS / f"{name}.yaml").exists()]


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


@pytest.mark.parametrize("name", PRESENT)
def test_same_outputs_and_flops_as_torchvision(name):
    torchvision = _torchvision()
    counterpart = COUNTERPARTS[name]
    torch.manual_seed(0)
    reference = torchvision.models.get_model(counterpart.builder, **counterpart.kwargs).eval()
    module = archspec.build_module(SPECS / f"{name}.yaml", inputs={"image": counterpart.input}).eval()
    module.load_state_dict(reference.state_dict())  # strict: every key and shape must match
    x = torch.randn(2, *counterpart.input)
    with torch.no_grad():
        ours, theirs = module(x), reference(x)
    if counterpart.output:
        ours = ours[counterpart.output]
    if counterpart.torchvision_output:
        theirs = theirs[counterpart.torchvision_output]
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    # FLOPs in training mode, where GoogLeNet's auxiliary heads run in both
    module.train(), reference.train()
    with torch.no_grad(), FlopCounterMode(display=False) as ours_counter:
        module(x)
    with torch.no_grad(), FlopCounterMode(display=False) as theirs_counter:
        reference(x)
    assert ours_counter.get_total_flops() == theirs_counter.get_total_flops()
