"""The static receptive field equals the one measured with autograd on the lowered module.

Measurement (independent of the static rules): every conv / linear weight is set to a random
positive value (up to 1 / fan-in, so activations stay small and no ReLU or ReLU6 cuts the
gradient, while channels still differ, so a LayerNorm over them does not give zeros), max pooling
is swapped for average pooling of the same geometry (max pooling passes gradient to one position
only), the input is all ones, and we back-propagate from the centre output position of a node,
found on whichever axes the node holds its positions (channels-last inside ConvNeXt and Swin
blocks). Denormals are flushed, so the e^-100 weights of Swin's masked attention count as none. The non-zero gradient region of the input must equal the static interval of that
position, clipped to the input. Checked for every spec in specs/ whose nodes are spatial, at the
last spatial node and at one a third of the way in (where the field is usually smaller than the
image, so the offset is checked too).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import archspec
from archspec.lower.fx import lower
from archspec.passes.receptive_field import position_layouts, receptive_fields
from conftest import LIBRARY

# the biggest specs are checked at a reduced input to keep CI fast; the rules do not depend on it
SMALLER_INPUT = {"unet": (1, 188, 188), "unet_padded": (3, 64, 64), "densenet121": (3, 96, 96), "vgg19": (3, 96, 96), "vgg16": (3, 96, 96), "vgg16_bn": (3, 96, 96),
                 "vgg11": (3, 96, 96), "densenet169": (3, 96, 96), "resnet152": (3, 128, 128),
                 "resnet101": (3, 128, 128), "efficientnet_b3": (3, 160, 160), "pspnet": (3, 128, 128),
                 "fcn_resnet50": (3, 96, 96), "deeplabv3_resnet50": (3, 96, 96), "yolo_v1": (3, 224, 224),
                 "fast_rcnn_vgg16": (3, 96, 96), "swin_t": (3, 112, 112), "swin_s": (3, 112, 112),
                 "convnext_small": (3, 128, 128), "vit_l_16": (3, 64, 64),
                 # squeezenet's first conv (3x3, stride 2, no padding) never reads the last row of an
                 # even-sized input, while later zero padding maps onto it: at 223 every row is read
                 "squeezenet1_1": (3, 223, 223)}
# specs with a layer that reads where run-time data says: Fast R-CNN's RoI pooling reads where its
# boxes lie, so its static field is global (a box may cover the map) while one measurement sees
# one box; only their spatial nodes, before it, are compared (tests/test_roi.py checks the rest)
READS_BY_DATA = {"fast_rcnn_vgg16"}


def _measured(ir, probes: list[str]) -> dict[str, list[tuple[int, int]]]:
    """The input support of each probe's centre output position (of its whole output, for a
    vector), per axis, from one lowering of the graph with the probes as its outputs."""
    layouts = position_layouts(ir)
    where = {probe: layouts[ir.node(probe).values[0]] for probe in probes}
    ir.outputs = {f"probe{index}": ir.node(probe).values[0] for index, probe in enumerate(probes)}
    ir.named_outputs = True
    module = lower(ir).eval().requires_grad_(False)  # only the input's gradient is measured
    generator = torch.Generator().manual_seed(0)
    for name, sub in list(module.named_modules()):
        parent_name, _, leaf = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        if isinstance(sub, nn.MaxPool2d):
            setattr(parent, leaf, nn.AvgPool2d(sub.kernel_size, sub.stride, sub.padding, ceil_mode=sub.ceil_mode))
        elif isinstance(sub, nn.AdaptiveMaxPool2d):
            setattr(parent, leaf, nn.AdaptiveAvgPool2d(sub.output_size))
        elif isinstance(sub, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            with torch.no_grad():
                sub.weight.uniform_(0.0, 1.0 / sub.weight[0].numel(), generator=generator)
                if sub.bias is not None:
                    sub.bias.fill_(0.0)
        elif type(sub) is nn.Module:  # a learned tensor no layer owns: ConvNeXt's layer scale of 1e-6
            with torch.no_grad():  # would shrink deep paths to denormals, which read as no gradient
                for tensor in sub.parameters(recurse=False):
                    tensor.uniform_(0.5, 1.5, generator=generator)
    inputs = {name: torch.ones(1, *ir.shapes[node], requires_grad=True) for name, node in ir.inputs.items()}
    source = next(iter(inputs.values()))
    outputs = module(**inputs)
    supports = {}
    for index, probe in enumerate(probes):
        out = outputs[f"probe{index}"][0]
        asked = out if where[probe] is None else _centre(out, where[probe])
        # weighted: the plain sum of a LayerNorm's outputs over what it normalises is always 0
        weights = torch.rand(asked.shape, generator=generator) + 0.5
        (grad,) = torch.autograd.grad((asked * weights).sum(), source, retain_graph=True)
        support = (grad[0].abs().sum(0) > 0).nonzero()
        assert len(support), f"no input position influences {probe}"
        supports[probe] = [(int(support[:, axis].min()), int(support[:, axis].max())) for axis in range(2)]
    return supports


def _centre(out, layout):
    """The output's values at its centre position (every other axis kept)."""
    rows, columns = layout
    index = [slice(None)] * out.dim()
    index[rows], index[columns] = out.shape[rows] // 2, out.shape[columns] // 2
    return out[tuple(index)]


def _static(ir, probe: str) -> list[tuple[int, int]]:
    field = receptive_fields(ir, [probe])[probe]
    size = ir.shapes[next(iter(ir.inputs.values()))][1:]
    return [(max(0, math.ceil(lo)), min(n - 1, math.floor(hi))) for (lo, hi), n in zip(field.centre_interval, size)]


def _probes(ir) -> list[str]:
    """Six spatial nodes spread evenly to the last, each moved back to the nearest spatial node
    whose field is not global, and the first vector node (a flatten or a global pooling; later
    ones can end in a softmax, whose outputs sum to 1: a sum without gradient)."""
    fields = receptive_fields(ir)
    layouts = position_layouts(ir)
    spatial = [n.id for n in ir.nodes() if not n.is_input and layouts[n.values[0]] is not None]
    chosen = []
    for start in sorted({len(spatial) * k // 6 - 1 for k in range(1, 7)} - {-1}):
        for node in reversed(spatial[: start + 1]):
            if fields[node] is not None and not fields[node].is_global:
                chosen.append(node)
                break
    vectors = [n.id for n in ir.nodes() if not n.is_input and layouts[n.values[0]] is None and fields[n.id] is not None]
    chosen += vectors[:1]
    return sorted(set(chosen), key=ir.order.index)


@pytest.mark.parametrize("spec", LIBRARY, ids=lambda p: p.stem)
def test_static_receptive_field_equals_gradient_support(spec):
    torch.set_flush_denormal(True)
    loaded = archspec.load_spec(spec)
    shape = SMALLER_INPUT.get(spec.stem)
    inputs = {next(iter(loaded.document.inputs)): shape} if shape else None
    ir = archspec.compile_spec(loaded, inputs=inputs)
    probes = _probes(ir)
    if spec.stem in READS_BY_DATA:
        probes = [probe for probe in probes if len(ir.node(probe).shapes[0]) == 3]
    if not probes:
        pytest.skip("no node depends on the first input")
    measured = _measured(archspec.compile_spec(loaded, inputs=inputs), probes)
    for probe in probes:
        assert _static(ir, probe) == measured[probe], probe


REGROUP = """
name: regroup
inputs: {x: [9, 4, 4]}
layers:
  - reshape: {name: regroup, shape: [16, 3, 3]}  # 144 elements in memory order, 16 channels of 3x3
  - conv: {name: head, out: 2, kernel: 3, padding: 1}
"""


def test_a_reshape_that_regroups_a_map_has_a_global_field(write_spec):
    # regroup's position (1, 1) holds flat elements 9c + 4 (c = 0..15) of the input: rows
    # (9c + 4) // 4 % 4 and columns (9c + 4) % 4 take every value, so it reads the whole 4x4 map
    # (its field was reported as 1x1 while reshape counted as elementwise)
    ir = archspec.compile_spec(write_spec(REGROUP))
    measured = _measured(archspec.compile_spec(write_spec(REGROUP)), ["regroup", "head"])
    fields = receptive_fields(ir)
    for node in ("regroup", "head"):
        assert measured[node] == [(0, 3), (0, 3)], node
        assert fields[node].is_global and fields[node].size == (4, 4), node
        assert _static(ir, node) == measured[node], node


def test_a_reshape_to_the_same_shape_reads_the_same_positions(write_spec):
    spec = write_spec("""
        name: same
        inputs: {x: [4, 8, 8]}
        layers:
          - conv: {name: before, out: 4, kernel: 3, padding: 1}
          - reshape: {name: kept, shape: [4, 8, 8]}
          - conv: {name: after, out: 4, kernel: 3, padding: 1}
        """)
    fields = receptive_fields(archspec.compile_spec(spec))
    measured = _measured(archspec.compile_spec(spec), ["kept", "after"])
    assert not fields["after"].is_global and fields["after"].size == (5, 5)  # two 3x3 convs: 1 + 2 + 2
    assert fields["kept"].size == (3, 3)
    assert measured == {"kept": [(3, 5), (3, 5)], "after": [(2, 6), (2, 6)]}  # around the centre (4, 4)
    assert {node: _static(archspec.compile_spec(spec), node) for node in measured} == measured


def test_resnet18_figures_by_hand():
    # each layer: size += (k - 1) * jump_before; jump *= stride. The 1x1 projections lie inside
    # the main path's field, so the union adds nothing.
    ir = archspec.compile_spec("specs/resnet18.yaml")
    fields = receptive_fields(ir, ["conv1", "maxpool1", "layer1.1.relu2", "layer2.1.relu2", "layer3.1.relu2", "layer4.1.relu2"])
    stem = 1 + 6 * 1  # conv1 7x7: 7, jump 2
    pool = stem + 2 * 2  # maxpool 3x3 at jump 2: 11, jump 4
    layer1 = pool + 4 * (2 * 4)  # four 3x3 convs at jump 4: 43
    layer2 = layer1 + 2 * 4 + 3 * (2 * 8)  # its stride-2 conv reads at jump 4, then jump 8: 99
    layer3 = layer2 + 2 * 8 + 3 * (2 * 16)  # 211
    layer4 = layer3 + 2 * 16 + 3 * (2 * 32)  # 435
    expected = {"conv1": (stem, 2), "maxpool1": (pool, 4), "layer1.1.relu2": (layer1, 4),
                "layer2.1.relu2": (layer2, 8), "layer3.1.relu2": (layer3, 16), "layer4.1.relu2": (layer4, 32)}
    for node, (size, jump) in expected.items():
        assert fields[node].size == (size, size), node
        assert fields[node].jump == (jump, jump), node
    assert fields["layer4.1.relu2"].size == (435, 435)


def test_vector_nodes_see_the_whole_map():
    ir = archspec.compile_spec("specs/lenet5.yaml")
    field = receptive_fields(ir, ["fc5"])["fc5"]
    assert field.is_global
    # pool2's positions 0..4 at jump 4 with size 16: [0 - 7.5 + 7.5, 4*4 + 15] -> 0..31
    assert field.size == (32, 32)
