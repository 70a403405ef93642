"""The `rpn_head` block (specs/blocks/rpn.yaml, used by specs/rpn_head.yaml) is torchvision's
Faster R-CNN RPNHead: the same parameters, a strict state_dict load, the same outputs and FLOPs."""
from __future__ import annotations

import torch
from archspec.lower.verify import flop_counter

from archspec.pipeline import compile as compile_spec
from conftest import SPECS

SPEC = SPECS / "rpn_head.yaml"
CHANNELS, ANCHORS, SIZE = 256, 3, 50  # the spec's defaults: RPNHead(256, 3) on a 50x50 map


def _reference():
    from torchvision.models.detection.rpn import RPNHead

    torch.manual_seed(0)
    return RPNHead(CHANNELS, ANCHORS).eval()


def _module():
    return compile_spec(SPEC).module().eval()


def test_parameters_derived_by_hand():
    c, a = CHANNELS, ANCHORS
    shared = c * c * 3 * 3 + c          # 3x3 conv with bias
    objectness = c * a + a              # 1x1 conv, one logit per anchor
    deltas = c * 4 * a + 4 * a          # 1x1 conv, (dx, dy, dw, dh) per anchor
    assert shared + objectness + deltas == 593_935
    figures = compile_spec(SPEC).analysis.totals
    assert figures.params == figures.trainable == shared + objectness + deltas
    assert figures.buffers == 0
    assert sum(p.numel() for p in _reference().parameters()) == shared + objectness + deltas


def test_parameters_follow_the_block_params():
    c, a = 64, 9
    figures = compile_spec(SPEC, {"channels": c, "anchors": a}, {"features": [c, 20, 20]}).analysis.totals
    assert figures.params == (c * c * 9 + c) + (c * a + a) + (c * 4 * a + 4 * a)


def test_torchvision_state_dict_loads_strictly():
    reference, module = _reference(), _module()
    theirs = reference.state_dict()
    # the block is named `head` in the spec; inside it the names are torchvision's own
    assert list(module.get_submodule("head").state_dict()) == list(theirs)
    module.load_state_dict({f"head.{key}": value for key, value in theirs.items()})  # strict


def test_same_outputs_as_torchvision():
    reference, module = _reference(), _module()
    module.load_state_dict({f"head.{key}": value for key, value in reference.state_dict().items()})
    x = torch.randn(2, CHANNELS, SIZE, SIZE)
    with torch.no_grad():
        ours = module(features=x)
        objectness, deltas = reference([x])  # one feature level: two one-element lists
    assert ours["objectness"].shape == (2, ANCHORS, SIZE, SIZE)
    assert ours["deltas"].shape == (2, 4 * ANCHORS, SIZE, SIZE)
    torch.testing.assert_close(ours["objectness"], objectness[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours["deltas"], deltas[0], rtol=1e-6, atol=1e-6)


def test_static_flops_equal_flop_counter_on_torchvision():
    with torch.no_grad(), flop_counter() as counter:
        _reference()([torch.randn(1, CHANNELS, SIZE, SIZE)])
    assert compile_spec(SPEC).analysis.totals.flops == counter.get_total_flops()
    # and by hand: 2 FLOPs per multiply-accumulate, over every output position
    c, a, hw = CHANNELS, ANCHORS, SIZE * SIZE
    assert counter.get_total_flops() == 2 * hw * (c * c * 9 + c * a + c * 4 * a)

