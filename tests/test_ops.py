"""Every op of the registry, checked against torch itself.

Each case writes a tiny spec (one input, the op under test, and for merges a few earlier named
layers), compiles it, analyses it for a batch of 2 and lowers it. The static figures must equal
what torch reports for the lowered module: the output shape (and every intermediate shape), the
parameter and buffer counts (per layer, tensor by tensor), the FLOPs counted by
`torch.utils.flop_counter.FlopCounterMode`, and the MACs given by a hand formula written here.
Where the op's meaning is easy to state, the module's output is also compared with a direct
torch.nn / torch.nn.functional computation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from torch.fx.passes.shape_prop import ShapeProp

from archspec.lower.verify import flop_counter

from archspec import SpecError, build_module, compile_spec
from archspec.ops.catalog import all_ops
from archspec.passes.counts import Analysis, analyze

BATCH = 2
Shape = tuple[int, ...]


# --- the harness --------------------------------------------------------------------------------
@dataclass
class Run:
    analysis: Analysis
    module: torch.fx.GraphModule
    x: torch.Tensor
    y: torch.Tensor
    flops: int  # FlopCounterMode's total


def spec_text(layers: list, shape: Shape, name: str = "op_test") -> str:
    return yaml.safe_dump({"name": name, "inputs": {"x": list(shape)}, "layers": layers}, sort_keys=False)


def run_and_compare(write_spec, layers: list, shape: Shape = (4, 8, 8), seed: int = 0) -> Run:
    """Compile, analyse and lower the spec; assert that every static figure equals torch's."""
    path = write_spec(spec_text(layers, shape))
    ir = compile_spec(path)
    analysis = analyze(ir, batch=BATCH)
    torch.manual_seed(seed)
    module = build_module(ir)
    x = torch.randn(BATCH, *shape)
    with torch.no_grad(), flop_counter() as counter:
        y = module(x)
    flops = counter.get_total_flops()

    # output shape (without the batch) and total figures
    assert analysis.outputs["output"] == tuple(y.shape[1:])
    assert analysis.totals.params == sum(p.numel() for p in module.parameters())
    assert analysis.totals.buffers == sum(b.numel() for b in module.buffers())
    assert analysis.totals.flops == flops
    assert analysis.totals.flops == 2 * analysis.totals.macs  # FlopCounterMode's convention

    # every intermediate shape: the lowering emits one fx node per IR node, in IR order, and a
    # node with several outputs is followed by one `getitem` per output
    with torch.no_grad():
        ShapeProp(module).propagate(x.clone())
    # (a free tensor's get_attr feeds its node's call: not a node of its own)
    fx_nodes = [n for n in module.graph.nodes if n.op not in ("output", "get_attr")]
    values = [v for node in ir.nodes() for v in ([node.id] if len(node.values) == 1 else [None, *node.values])]
    assert len(fx_nodes) == len(values)
    for value, fx_node in zip(values, fx_nodes):
        if value is not None:  # the call of a multi-output op gives a tuple; its getitems follow
            assert ir.shapes[value] == tuple(fx_node.meta["tensor_meta"].shape[1:]), value

    # per layer: the tensors the analysis lists are exactly the submodule's, shape for shape
    for layer in analysis.layers:
        if "" in layer.tensors:  # a param: the tensor at the node's own path
            assert layer.tensors == {"": tuple(module.get_parameter(layer.module).shape)}, layer.name
            continue
        sub = _submodule(module, layer.module)
        params = {n: tuple(p.shape) for n, p in sub.named_parameters()} if sub is not None else {}
        buffers = {n: tuple(b.shape) for n, b in sub.named_buffers()} if sub is not None else {}
        assert layer.tensors == params, layer.name
        assert layer.buffer_tensors == buffers, layer.name
        assert layer.figures.params == sum(math.prod(s) for s in params.values())
    return Run(analysis, module, x, y, flops)


def _submodule(module: nn.Module, path: str) -> nn.Module | None:
    try:
        return module.get_submodule(path)
    except AttributeError:
        return None  # lowered to a function call: no tensors


@dataclass
class Case:
    op: str  # the registry name (not an alias) this case covers
    layers: list
    shape: Shape = (4, 8, 8)
    # per-sample MACs of the whole spec, from the input shape and torch's output shape (no batch)
    macs: Callable[[Shape, Shape], int] | int = 0
    # a direct torch computation of the output: reference(module, x) -> tensor
    reference: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None
    id: str = ""


def conv_macs(kernel: tuple[int, int], groups: int = 1) -> Callable[[Shape, Shape], int]:
    """H_out * W_out * C_out * (C_in / groups) * kh * kw."""
    kh, kw = kernel
    return lambda i, o: o[1] * o[2] * o[0] * (i[0] // groups) * kh * kw


def transposed_macs(out: int, kernel: tuple[int, int], groups: int = 1) -> Callable[[Shape, Shape], int]:
    """Every input element is scattered to (C_out / groups) * kh * kw outputs."""
    kh, kw = kernel
    return lambda i, o: i[0] * i[1] * i[2] * (out // groups) * kh * kw


def crop_centre(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top, left = (t.shape[-2] - height) // 2, (t.shape[-1] - width) // 2
    return t[..., top : top + height, left : left + width]


def pad_centre(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    dh, dw = height - t.shape[-2], width - t.shape[-1]
    return F.pad(t, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


def torch_attention(ours: nn.Module, x: torch.Tensor, heads: int) -> torch.Tensor:
    """torch's own nn.MultiheadAttention with our tensors, called as torchvision's ViT calls it."""
    reference = nn.MultiheadAttention(x.shape[-1], heads, batch_first=True).eval()
    reference.load_state_dict(ours.state_dict())  # strict: the same names and shapes
    return reference(x, x, x, need_weights=False)[0]


def torchvision_window_attention(ours: nn.Module, x: torch.Tensor, heads: int, window: int, shift: int) -> torch.Tensor:
    """torchvision's Swin attention module built on its own, with our tensors (a strict load)."""
    from torchvision.models.swin_transformer import ShiftedWindowAttention

    reference = ShiftedWindowAttention(x.shape[-1], [window, window], [shift, shift], heads).eval()
    reference.load_state_dict(ours.state_dict())
    return reference(x)


def torchvision_partition_attention(ours: nn.Module, x: torch.Tensor, head_dim: int, partition: str, size: int) -> torch.Tensor:
    """torchvision's MaxViT attention layer built on its own, with our tensors (a strict load)."""
    from torchvision.models.maxvit import PartitionAttentionLayer

    channels, height, width = x.shape[1:]
    reference = PartitionAttentionLayer(channels, head_dim, size, partition, (height, width), 4, nn.GELU, nn.LayerNorm, 0.0, 0.0, 0.0).eval()
    reference.load_state_dict(ours.state_dict())
    return reference(x)


def merged_by_hand(ours: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Swin's patch merging: pad H and W to even, concatenate the 2x2 group (rows first), norm, linear."""
    x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))
    grouped = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
    normed = F.layer_norm(grouped, grouped.shape[-1:], ours.norm.weight, ours.norm.bias)
    return normed @ ours.reduction.weight.T


CASES: list[Case] = [
    # --- conv ---------------------------------------------------------------------------------
    Case("conv", [{"conv": {"out": 6, "kernel": 3}}], macs=conv_macs((3, 3))),
    Case("conv", [{"conv": {"out": 6, "kernel": 3, "padding": 1, "stride": 2, "bias": False}}], macs=conv_macs((3, 3))),
    Case("conv", [{"conv": {"out": 8, "kernel": 3, "padding": 1, "groups": 2}}], macs=conv_macs((3, 3), 2)),
    Case("conv", [{"conv": {"out": 4, "kernel": 3, "padding": 2, "dilation": 2, "groups": 4}}], macs=conv_macs((3, 3), 4)),
    Case("conv", [{"conv": {"out": 6, "kernel": [3, 5], "stride": [1, 2], "padding": [1, 0]}}], macs=conv_macs((3, 5))),
    Case("conv", [{"conv": {"out": 6, "kernel": 3, "padding": "same"}}], macs=conv_macs((3, 3))),
    Case("conv", [{"conv": {"out": 6, "kernel": 4, "padding": "same", "dilation": 2, "bias": False}}], macs=conv_macs((4, 4))),
    Case("conv", [{"conv": {"out": 6, "kernel": 3, "padding": "valid"}}], macs=conv_macs((3, 3))),
    Case("conv", [{"conv": {"out": 5, "kernel": 1, "stride": 3}}], shape=(4, 7, 7), macs=conv_macs((1, 1))),
    Case(
        "conv",
        [{"conv": {"out": 3, "kernel": 3, "stride": 2, "padding": [1, 2], "dilation": [3, 1]}}],
        shape=(2, 9, 11),
        macs=conv_macs((3, 3)),
        reference=lambda m, x: F.conv2d(x, m.conv1.weight, m.conv1.bias, stride=2, padding=(1, 2), dilation=(3, 1)),
    ),
    # --- dwconv --------------------------------------------------------------------------------
    Case(
        "dwconv",
        [{"dwconv": {"kernel": 3, "padding": 1}}],
        macs=conv_macs((3, 3), 4),
        reference=lambda m, x: F.conv2d(x, m.dwconv1.weight, m.dwconv1.bias, padding=1, groups=4),
    ),
    Case("dwconv", [{"dwconv": {"kernel": 3, "multiplier": 2, "stride": 2, "bias": False}}], macs=conv_macs((3, 3), 4)),
    Case("dwconv", [{"dwconv": {"kernel": 5, "multiplier": 3, "padding": "same"}}], shape=(2, 6, 6), macs=conv_macs((5, 5), 2)),
    Case("dwconv", [{"dwconv": {"kernel": [1, 3], "dilation": 2, "padding": "valid"}}], macs=conv_macs((1, 3), 4)),
    # --- conv_transpose -----------------------------------------------------------------------
    Case("conv_transpose", [{"conv_transpose": {"out": 6, "kernel": 2, "stride": 2}}], macs=transposed_macs(6, (2, 2))),
    Case(
        "conv_transpose",
        [{"conv_transpose": {"out": 6, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1}}],
        macs=transposed_macs(6, (3, 3)),
        reference=lambda m, x: F.conv_transpose2d(
            x, m.conv_transpose1.weight, m.conv_transpose1.bias, stride=2, padding=1, output_padding=1
        ),
    ),
    Case(
        "conv_transpose",
        [{"conv_transpose": {"out": 6, "kernel": 3, "groups": 2, "bias": False}}],
        macs=transposed_macs(6, (3, 3), 2),
    ),
    Case(
        "conv_transpose",
        [{"conv_transpose": {"out": 4, "kernel": 3, "stride": 2, "dilation": 2, "output_padding": 1}}],
        shape=(2, 5, 5),
        macs=transposed_macs(4, (3, 3)),
    ),
    Case("conv_transpose", [{"deconv": {"out": 2, "kernel": [2, 3], "stride": [2, 1]}}], macs=transposed_macs(2, (2, 3))),
    Case("conv_transpose", [{"upconv": {"out": 4, "kernel": 2, "stride": 2, "groups": 4}}], macs=transposed_macs(4, (2, 2), 4)),
    # --- linear --------------------------------------------------------------------------------
    Case(
        "linear",
        ["flatten", {"linear": {"out": 10}}],
        shape=(4, 3, 3),
        macs=4 * 3 * 3 * 10,
        reference=lambda m, x: F.linear(x.flatten(1), m.linear1.weight, m.linear1.bias),
    ),
    Case("linear", ["global_avgpool", {"fc": {"out": 5, "bias": False}}], macs=4 * 5),
    Case("linear", [{"linear": {"out": 7}}, {"linear": {"out": 3}}], shape=(12,), macs=12 * 7 + 7 * 3),
    Case(  # a channels-last map (H, W, C): the MLP of a ConvNeXt block
        "linear",
        [{"permute": {"dims": [1, 2, 0]}}, {"linear": {"out": 6}}],
        macs=8 * 8 * 4 * 6,
        reference=lambda m, x: F.linear(x.permute(0, 2, 3, 1), m.linear1.weight, m.linear1.bias),
    ),
    Case(  # rows: the last dimension, as nn.Linear
        "linear",
        [{"reshape": {"shape": [6, 8]}}, {"linear": {"out": 5}}],
        shape=(48,),
        macs=6 * 8 * 5,
        reference=lambda m, x: F.linear(x.reshape(-1, 6, 8), m.linear1.weight, m.linear1.bias),
    ),
    # --- normalisation ---------------------------------------------------------------------------
    Case("bn", ["bn"]),
    Case("bn", [{"bn": {"affine": False, "eps": 0.001, "momentum": 0.5}}]),
    Case("bn", [{"bn": {"track_running_stats": False}}]),
    Case("bn", ["flatten", "bn"], shape=(4, 2, 2)),
    Case("bn", [{"batchnorm": {"affine": False}}], shape=(6,)),
    Case(
        "groupnorm",
        [{"groupnorm": {"groups": 2}}],
        reference=lambda m, x: F.group_norm(x, 2, m.groupnorm1.weight, m.groupnorm1.bias),
    ),
    Case("groupnorm", [{"groupnorm": {"groups": 4, "affine": False}}], reference=lambda m, x: F.group_norm(x, 4)),
    Case("groupnorm", [{"groupnorm": {"groups": 1, "eps": 0.01}}]),
    Case("layernorm", [{"layernorm": {"over": "last"}}], reference=lambda m, x: F.layer_norm(x, (8,))),
    Case("layernorm", ["layernorm"], shape=(5, 8), reference=lambda m, x: F.layer_norm(x, (8,))),  # tokens (T, C)
    Case(  # LayerNorm2d: the channels at each position (ConvNeXt), eps as torchvision's
        "layernorm",
        [{"layernorm": {"over": "channels", "eps": 1e-6}}],
        reference=lambda m, x: F.layer_norm(x.permute(0, 2, 3, 1), (4,), m.layernorm1.weight, m.layernorm1.bias, 1e-6).permute(0, 3, 1, 2),
    ),
    Case(  # channels-last: permute, then the last axis
        "layernorm",
        [{"permute": {"dims": [1, 2, 0]}}, {"layernorm": {"over": "last", "affine": False}}],
        reference=lambda m, x: F.layer_norm(x.permute(0, 2, 3, 1), (4,)),
    ),
    Case("layernorm", [{"layernorm": {"dims": 2}}], reference=lambda m, x: F.layer_norm(x, (8, 8))),
    Case("layernorm", [{"layernorm": {"dims": 3}}], reference=lambda m, x: F.layer_norm(x, (4, 8, 8))),
    Case("layernorm", [{"layernorm": {"dims": 3, "affine": False}}]),
    Case("layernorm", ["flatten", "layernorm"], shape=(3, 2, 2), reference=lambda m, x: F.layer_norm(x.flatten(1), (12,))),
    Case("lrn", ["lrn"], shape=(6, 4, 4), reference=lambda m, x: F.local_response_norm(x, 5)),
    Case(
        "lrn",
        [{"lrn": {"size": 3, "alpha": 0.001, "beta": 0.5, "k": 2.0}}],
        reference=lambda m, x: F.local_response_norm(x, 3, alpha=0.001, beta=0.5, k=2.0),
    ),
    # --- activations, softmax, dropout, identity -------------------------------------------------
    Case("relu", ["relu"], reference=lambda m, x: F.relu(x)),
    Case("relu6", ["relu6"], reference=lambda m, x: x.clamp(0, 6)),
    Case("leaky_relu", ["leaky_relu"], reference=lambda m, x: F.leaky_relu(x, 0.01)),
    Case("leaky_relu", [{"leaky_relu": {"negative_slope": 0.2}}], reference=lambda m, x: torch.where(x > 0, x, 0.2 * x)),
    Case("sigmoid", ["sigmoid"], reference=lambda m, x: 1 / (1 + torch.exp(-x))),
    Case("tanh", ["tanh"], reference=lambda m, x: torch.tanh(x)),
    Case("gelu", ["gelu"], reference=lambda m, x: F.gelu(x)),
    Case("gelu", [{"gelu": {"approximate": "tanh"}}], reference=lambda m, x: F.gelu(x, approximate="tanh")),
    Case("silu", ["silu"], reference=lambda m, x: x * torch.sigmoid(x)),
    Case("silu", ["swish"], shape=(5,), reference=lambda m, x: x * torch.sigmoid(x)),
    Case("hardswish", ["hardswish"], reference=lambda m, x: x * F.relu6(x + 3) / 6),
    Case("hardsigmoid", ["hardsigmoid"], reference=lambda m, x: F.relu6(x + 3) / 6),
    Case("softmax", ["softmax"], reference=lambda m, x: torch.softmax(x, dim=1)),
    Case("softmax", [{"softmax": {"dim": 2}}], reference=lambda m, x: torch.softmax(x, dim=3)),
    Case("softmax", [{"softmax": {"dim": -1}}], reference=lambda m, x: torch.softmax(x, dim=3), id="softmax-last-dim"),
    Case("softmax", ["flatten", "softmax"], shape=(2, 3, 3), reference=lambda m, x: torch.softmax(x.flatten(1), dim=1)),
    Case("dropout", ["dropout"]),
    Case("dropout", [{"dropout": {"p": 0.3}}], shape=(10,)),
    Case("drop_path", ["drop_path"]),
    Case("drop_path", [{"stochastic_depth": {"p": 0.2}}], shape=(6,)),
    Case("identity", ["identity"], reference=lambda m, x: x),
    # --- pooling -------------------------------------------------------------------------------
    Case("maxpool", [{"maxpool": {"kernel": 2}}], reference=lambda m, x: F.max_pool2d(x, 2)),
    Case("maxpool", [{"maxpool": {"kernel": 3, "stride": 2, "padding": 1}}], reference=lambda m, x: F.max_pool2d(x, 3, 2, 1)),
    Case(
        "maxpool",
        [{"maxpool": {"kernel": 3, "stride": 2, "ceil_mode": True}}],
        reference=lambda m, x: F.max_pool2d(x, 3, 2, ceil_mode=True),
    ),
    Case("maxpool", [{"maxpool": {"kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True}}], shape=(3, 7, 7)),
    Case("maxpool", [{"maxpool": {"kernel": 3, "stride": 1, "padding": 1, "dilation": 2}}], shape=(3, 9, 9)),
    Case("maxpool", [{"maxpool": {"kernel": [2, 3], "stride": [2, 1]}}], shape=(3, 6, 9)),
    Case("avgpool", [{"avgpool": {"kernel": 2}}], reference=lambda m, x: F.avg_pool2d(x, 2)),
    Case(
        "avgpool",
        [{"avgpool": {"kernel": 3, "stride": 2, "padding": 1, "count_include_pad": False}}],
        reference=lambda m, x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
    ),
    Case("avgpool", [{"avgpool": {"kernel": 3, "stride": 2, "ceil_mode": True}}], shape=(3, 8, 8)),
    Case("avgpool", [{"avgpool": {"kernel": 2, "stride": 3, "padding": 1, "ceil_mode": True}}], shape=(3, 7, 7)),
    Case("avgpool", [{"avgpool": {"kernel": 2, "stride": 1}}], shape=(3, 5, 6)),
    Case("adaptive_avgpool", ["adaptive_avgpool"], reference=lambda m, x: x.mean((2, 3), keepdim=True)),
    Case("adaptive_avgpool", [{"adaptive_avgpool": {"size": 3}}], reference=lambda m, x: F.adaptive_avg_pool2d(x, 3)),
    Case("adaptive_avgpool", [{"adaptive_avgpool": {"size": [2, 5]}}], shape=(3, 7, 9)),
    Case("adaptive_avgpool", [{"adaptive_avgpool": {"size": 12}}]),
    Case("adaptive_maxpool", ["adaptive_maxpool"], reference=lambda m, x: x.amax((2, 3), keepdim=True)),
    Case("adaptive_maxpool", [{"adaptive_maxpool": {"size": [3, 4]}}], reference=lambda m, x: F.adaptive_max_pool2d(x, (3, 4))),
    Case("adaptive_maxpool", [{"adaptive_maxpool": {"size": 10}}], shape=(2, 7, 7)),
    Case("global_avgpool", ["global_avgpool"], reference=lambda m, x: x.mean((2, 3))),
    Case("global_avgpool", ["global_avgpool"], shape=(3, 5, 7), reference=lambda m, x: x.mean((2, 3))),
    # RoI pooling reads its K boxes from a second input; this harness has one, so the boxes are the
    # input's 80 values as 16 rows of 5 (arbitrary boxes; tests/test_roi.py checks the values)
    Case("roi_pool", [{"reshape": {"name": "boxes", "shape": [16, 5]}}, {"roi_pool": {"from": ["x", "boxes"], "output": 2}}], shape=(5, 4, 4)),
    Case("roi_align", [{"reshape": {"name": "boxes", "shape": [16, 5]}}, {"roi_align": {"from": ["x", "boxes"], "output": [2, 3]}}], shape=(5, 4, 4)),
    # --- flatten -------------------------------------------------------------------------------
    Case("flatten", ["flatten"], reference=lambda m, x: x.reshape(BATCH, -1)),
    Case("flatten", ["flatten", "flatten"], shape=(2, 3, 5), reference=lambda m, x: x.reshape(BATCH, -1)),
    # --- reshape -------------------------------------------------------------------------------
    Case("reshape", [{"reshape": {"shape": [16, 16]}}], reference=lambda m, x: x.reshape(BATCH, 16, 16)),
    Case("reshape", [{"reshape": {"shape": [2, -1, 4]}}], reference=lambda m, x: x.reshape(BATCH, 2, 32, 4)),
    Case(
        "reshape",
        ["flatten", {"linear": {"out": 48}}, {"reshape": {"shape": [3, 4, 4]}}, {"conv": {"out": 2, "kernel": 3}}],
        shape=(2, 3, 3),
        macs=18 * 48 + 2 * 2 * 2 * 3 * 3 * 3,
        id="reshape-vector-to-feature-map",
    ),
    # --- add -----------------------------------------------------------------------------------
    Case(
        "add",
        [{"relu": {"name": "a"}}, {"sigmoid": {"name": "b", "from": "x"}}, {"add": {"from": ["a", "b"]}}],
        reference=lambda m, x: F.relu(x) + torch.sigmoid(x),
    ),
    Case(
        "add",
        [{"relu": {"name": "a"}}, {"tanh": {"name": "b", "from": "x"}}, {"add": {"from": ["a", "b", "x"]}}],
        reference=lambda m, x: F.relu(x) + torch.tanh(x) + x,
        id="add-three-inputs",
    ),
    Case(
        "add",
        [{"maxpool": {"kernel": 2, "name": "small"}}, {"add": {"from": ["x", "small"], "fit": "crop"}}],
        reference=lambda m, x: x[..., 2:6, 2:6] + F.max_pool2d(x, 2),
        id="add-fit-crop",
    ),
    Case(
        "add",
        [{"maxpool": {"kernel": 2, "name": "small"}}, {"add": {"from": ["x", "small"], "fit": "pad"}}],
        reference=lambda m, x: x + F.pad(F.max_pool2d(x, 2), (2, 2, 2, 2)),
        id="add-fit-pad",
    ),
    Case(
        "add",
        [{"conv": {"out": 3, "kernel": 2, "name": "c"}}, {"add": {"from": ["x", "c", "x"], "fit": "crop"}}],
        shape=(3, 7, 7),
        macs=6 * 6 * 3 * 3 * 2 * 2,
        # 7 -> 6: (7 - 6) // 2 = 0 rows/columns dropped before, 1 after
        reference=lambda m, x: 2 * x[..., 0:6, 0:6] + m.c(x),
        id="add-fit-crop-odd",
    ),
    Case(
        "add",
        [{"conv": {"out": 3, "kernel": 2, "name": "c"}}, {"add": {"from": ["c", "x"], "fit": "pad"}}],
        shape=(3, 7, 7),
        macs=6 * 6 * 3 * 3 * 2 * 2,
        reference=lambda m, x: F.pad(m.c(x), (0, 1, 0, 1)) + x,
        id="add-fit-pad-odd",
    ),
    # --- mul -----------------------------------------------------------------------------------
    Case(
        "mul",
        [{"adaptive_avgpool": {"name": "gate"}}, {"sigmoid": {"name": "s"}}, {"mul": {"from": ["x", "s"]}}],
        reference=lambda m, x: x * torch.sigmoid(x.mean((2, 3), keepdim=True)),
        id="mul-broadcast-c11",
    ),
    Case("mul", [{"multiply": {"from": ["x", "x"]}}], reference=lambda m, x: x * x),
    Case(
        "mul",
        [{"global_avgpool": {"name": "g"}}, {"linear": {"out": 4, "name": "w"}}, {"mul": {"from": ["w", "g"]}}],
        macs=4 * 4,
        reference=lambda m, x: m.w(x.mean((2, 3))) * x.mean((2, 3)),
    ),
    # --- add broadcasting: a (C, 1, 1) term -------------------------------------------------------
    Case(
        "add",
        [{"adaptive_avgpool": {"name": "m"}}, {"add": {"from": ["x", "m"]}}],
        reference=lambda m, x: x + x.mean((2, 3), keepdim=True),
        id="add-broadcast-c11",
    ),
    # --- param: a learned tensor, its key the node's path -----------------------------------------
    Case(  # ConvNeXt's layer_scale (C, 1, 1) times a map
        "param",
        [{"conv": {"out": 4, "kernel": 1, "name": "c"}}, {"param": {"name": "scale", "shape": [4, 1, 1], "value": 0.5}},
         {"mul": {"from": ["scale", "c"]}}],
        macs=conv_macs((1, 1)),
        reference=lambda m, x: 0.5 * m.c(x),
    ),
    Case(  # ViT's class token: (1, 1, C) expanded to the batch, in front of the tokens
        "param",
        [{"param": {"name": "token", "shape": [1, 1, 8], "init": "ones", "batch": "expand"}}, {"concat": {"from": ["token", "x"]}}],
        shape=(5, 8),
        reference=lambda m, x: torch.cat([torch.ones(2, 1, 8), x], dim=1),
    ),
    Case(  # ViT's position embedding (1, T, C): its leading 1 broadcasts over the batch
        "param",
        [{"param": {"name": "pos", "shape": [1, 5, 8], "init": "normal", "std": 0.02, "batch": "leading"}},
         {"add": {"from": ["x", "pos"]}}],
        shape=(5, 8),
        reference=lambda m, x: x + m.pos,
    ),
    # --- concat --------------------------------------------------------------------------------
    Case(
        "concat",
        [{"conv": {"out": 3, "kernel": 1, "name": "a"}}, {"concat": {"from": ["x", "a"]}}],
        macs=8 * 8 * 3 * 4,
        reference=lambda m, x: torch.cat([x, m.a(x)], dim=1),
    ),
    Case(
        "concat",
        [{"relu": {"name": "a"}}, {"cat": {"from": ["x", "a", "x"]}}],
        reference=lambda m, x: torch.cat([x, F.relu(x), x], dim=1),
    ),
    Case(
        "concat",
        [{"conv": {"out": 2, "kernel": 3, "name": "a"}}, {"concat": {"from": ["x", "a"], "fit": "crop"}}],
        macs=6 * 6 * 2 * 4 * 3 * 3,
        reference=lambda m, x: torch.cat([crop_centre(x, 6, 6), m.a(x)], dim=1),
        id="concat-fit-crop",
    ),
    Case(
        "concat",
        [{"conv": {"out": 2, "kernel": 2, "name": "a"}}, {"concat": {"from": ["a", "x"], "fit": "crop"}}],
        shape=(3, 9, 8),
        macs=8 * 7 * 2 * 3 * 2 * 2,
        reference=lambda m, x: torch.cat([m.a(x), x[..., 0:8, 0:7]], dim=1),
        id="concat-fit-crop-odd",
    ),
    Case(
        "concat",
        [{"conv": {"out": 2, "kernel": 3, "name": "a"}}, {"concat": {"from": ["a", "x"], "fit": "pad"}}],
        macs=6 * 6 * 2 * 4 * 3 * 3,
        reference=lambda m, x: torch.cat([pad_centre(m.a(x), 8, 8), x], dim=1),
        id="concat-fit-pad",
    ),
    Case("concat", [{"concat": {"from": ["x", "x"], "dim": 2}}], reference=lambda m, x: torch.cat([x, x], dim=3)),
    Case("concat", [{"concat": {"from": ["x", "x"], "dim": -2}}], reference=lambda m, x: torch.cat([x, x], dim=-2)),
    Case(
        "concat",
        [{"flatten": {"name": "f"}}, {"global_avgpool": {"name": "g", "from": "x"}}, {"concat": {"from": ["f", "g"]}}],
        reference=lambda m, x: torch.cat([x.flatten(1), x.mean((2, 3))], dim=1),
    ),
    Case(
        "concat",
        [{"flatten": {"name": "f"}}, {"global_avgpool": {"name": "g", "from": "x"}}, {"concat": {"from": ["f", "g"], "fit": "crop"}}],
        # `fit` aligns feature maps only; vectors are concatenated as they are
        reference=lambda m, x: torch.cat([x.flatten(1), x.mean((2, 3))], dim=1),
        id="concat-vectors-fit-crop",
    ),
    Case(
        "concat",
        [{"flatten": {"name": "f"}}, {"global_avgpool": {"name": "g", "from": "x"}}, {"concat": {"from": ["g", "f"], "fit": "pad"}}],
        reference=lambda m, x: torch.cat([x.mean((2, 3)), x.flatten(1)], dim=1),
        id="concat-vectors-fit-pad",
    ),
    # --- upsample ------------------------------------------------------------------------------
    Case("upsample", [{"upsample": {"scale": 2}}], reference=lambda m, x: x.repeat_interleave(2, 2).repeat_interleave(2, 3)),
    Case(
        "upsample",
        [{"upsample": {"scale": 2, "mode": "bilinear"}}],
        reference=lambda m, x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
    ),
    Case(
        "upsample",
        [{"upsample": {"scale": 1.5, "mode": "bilinear", "align_corners": True}}],
        shape=(2, 7, 5),
        reference=lambda m, x: F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=True),
    ),
    Case("upsample", [{"upsample": {"scale": 0.5}}], shape=(2, 7, 9), reference=lambda m, x: F.interpolate(x, scale_factor=0.5)),
    Case("upsample", [{"upsample": {"size": [5, 11]}}], reference=lambda m, x: F.interpolate(x, size=(5, 11))),
    Case(
        "upsample",
        [{"interpolate": {"size": 12, "mode": "bicubic"}}],
        reference=lambda m, x: F.interpolate(x, size=(12, 12), mode="bicubic", align_corners=False),
    ),
    Case(
        "upsample",
        [{"maxpool": {"kernel": 2, "name": "small"}}, {"upsample": {"from": ["small", "x"]}}],
        reference=lambda m, x: F.interpolate(F.max_pool2d(x, 2), size=(8, 8)),
        id="upsample-second-input",
    ),
    Case(
        "upsample",
        [{"maxpool": {"kernel": 3, "name": "small"}}, {"upsample": {"from": ["small", "x"], "mode": "bilinear"}}],
        shape=(2, 9, 7),
        reference=lambda m, x: F.interpolate(F.max_pool2d(x, 3), size=(9, 7), mode="bilinear"),
        id="upsample-second-input-bilinear",
    ),
    # --- crop ----------------------------------------------------------------------------------
    Case("crop", [{"crop": {"size": 5}}], reference=lambda m, x: x[..., 1:6, 1:6]),
    Case("crop", [{"crop": {"size": [3, 8]}}], reference=lambda m, x: x[..., 2:5, :]),
    Case(
        "crop",
        [{"maxpool": {"kernel": 2, "name": "small"}}, {"crop": {"from": ["x", "small"]}}],
        reference=lambda m, x: x[..., 2:6, 2:6],
        id="crop-second-input",
    ),
    Case(
        "crop",
        [{"avgpool": {"kernel": 2, "name": "small"}}, {"center_crop": {"from": ["x", "small"]}}],
        shape=(2, 7, 9),
        reference=lambda m, x: x[..., 2:5, 2:6],
        id="crop-second-input-odd",
    ),
    # --- pad -----------------------------------------------------------------------------------
    Case("pad", [{"pad": {"amount": 1}}], reference=lambda m, x: F.pad(x, (1, 1, 1, 1))),
    Case("pad", [{"pad": {"amount": [1, 2, 0, 3], "value": 0.5}}], reference=lambda m, x: F.pad(x, (1, 2, 0, 3), value=0.5)),
    Case(
        "pad",
        [{"maxpool": {"kernel": 2, "name": "small"}}, {"pad": {"from": ["small", "x"]}}],
        reference=lambda m, x: F.pad(F.max_pool2d(x, 2), (2, 2, 2, 2)),
        id="pad-second-input",
    ),
    Case(
        "pad",
        [{"conv": {"out": 2, "kernel": 2, "name": "c"}}, {"pad": {"from": ["c", "x"]}}],
        shape=(3, 7, 10),
        macs=6 * 9 * 2 * 3 * 2 * 2,
        reference=lambda m, x: F.pad(m.c(x), (0, 1, 0, 1)),
        id="pad-second-input-odd",
    ),
    # --- channel_shuffle -------------------------------------------------------------------------
    Case("channel_shuffle", [{"channel_shuffle": {"groups": 2}}], shape=(6, 4, 4), reference=lambda m, x: nn.ChannelShuffle(2)(x)),
    Case(
        "channel_shuffle",
        [{"channel_shuffle": {"groups": 3}}],
        shape=(6, 2, 3),
        # channels [0..5] in 3 groups of 2 -> [0, 2, 4, 1, 3, 5]
        reference=lambda m, x: x[:, [0, 2, 4, 1, 3, 5]],
    ),
    # --- split, chunk (several outputs, read as `node.k`), permute, mish ------------------------
    Case("split", [{"split": {"sizes": [1, 3]}}], reference=lambda m, x: torch.split(x, [1, 3], dim=1)[0]),
    Case(
        "split",
        [{"split": {"sizes": [1, 3], "name": "s"}}, {"relu": {"from": "s.1"}}],
        reference=lambda m, x: torch.relu(torch.split(x, [1, 3], dim=1)[1]),
    ),
    Case(
        "chunk",
        [{"chunk": {"chunks": 2, "name": "k"}}, {"add": {"from": ["k.0", "k.1"]}}],
        reference=lambda m, x: sum(torch.chunk(x, 2, dim=1)),
    ),
    Case("permute", [{"permute": {"dims": [1, 2, 0]}}], reference=lambda m, x: x.permute(0, 2, 3, 1)),
    # --- axis ops and attention (archspec.ops.axes, archspec.ops.attention) ----------------------
    Case("transpose", [{"transpose": {"dim0": 0, "dim1": -1}}], reference=lambda m, x: x.transpose(1, 3)),
    Case("slice", [{"slice": {"dim": 1, "start": 1, "stop": -1, "step": 2}}], reference=lambda m, x: x[:, :, 1:-1:2]),
    Case("slice", [{"slice": {"dim": -1, "start": -3}}], shape=(5, 8), reference=lambda m, x: x[:, :, -3:]),
    Case("select", [{"select": {"dim": 0, "index": 0}}], shape=(5, 8), reference=lambda m, x: x[:, 0]),  # ViT's class token
    Case("select", [{"select": {"dim": 2, "index": -1}}], reference=lambda m, x: x[:, :, :, -1]),
    Case("roll", [{"roll": {"shifts": [-3, -3], "dims": [1, 2]}}], reference=lambda m, x: torch.roll(x, (-3, -3), (2, 3))),
    Case("roll", [{"roll": {"shifts": 2, "dims": 0}}], shape=(5, 8), reference=lambda m, x: torch.roll(x, 2, 1)),
    Case("mean", [{"mean": {"dims": [1, 2]}}], reference=lambda m, x: x.mean((2, 3))),
    Case("mean", [{"mean": {"dims": 0, "keepdim": True}}], shape=(5, 8), reference=lambda m, x: x.mean(1, keepdim=True)),
    Case(  # Q·Kᵀ of tokens: T·T·C multiply-accumulates
        "matmul",
        [{"transpose": {"dim0": 0, "dim1": 1, "name": "kt"}}, {"matmul": {"from": ["x", "kt"]}}],
        shape=(5, 8),
        macs=5 * 5 * 8,
        reference=lambda m, x: x @ x.transpose(1, 2),
    ),
    Case("matmul", [{"matmul": {"from": ["x", "x"]}}], shape=(4, 8, 8), macs=4 * 8 * 8 * 8, reference=lambda m, x: x @ x),
    Case(  # tokens (T, d) = (5, 8), 2 heads: 4·T·d² + 2·T²·d MACs (projections, then Q·Kᵀ and A·V)
        "attention",
        [{"attention": {"heads": 2}}],
        shape=(5, 8),
        macs=4 * 5 * 8 * 8 + 2 * 5 * 5 * 8,
        reference=lambda m, x: torch_attention(m.attention1, x, heads=2),
    ),
    Case(  # a 6x5 map padded to 8x8 (64 tokens) in 4x4 windows (N = 16), C = 8: 4·64·C² + 2·64·N·C
        "window_attention",
        [{"window_attention": {"heads": 2, "window": 4, "shift": 2}}],
        shape=(6, 5, 8),
        macs=4 * 64 * 8 * 8 + 2 * 64 * 16 * 8,
        reference=lambda m, x: torchvision_window_attention(m.window_attention1, x, heads=2, window=4, shift=2),
    ),
    Case(  # 7x9x4 -> 4x5x8 (padded to even): 4·5 positions · 16 · 8
        "patch_merging",
        [{"patch_merging": {}}],
        shape=(7, 9, 4),
        macs=4 * 5 * 16 * 8,
        reference=lambda m, x: merged_by_hand(m.patch_merging1, x),
    ),
    Case(  # MaxViT grid attention, C = 8, an 8x8 map (T = 64) in a 4x4 grid (N = 16): attention 4·T·C², MLP 8·T·C², 2·T·N·C
        "partition_attention",
        [{"partition_attention": {"head_dim": 4, "partition": "grid", "size": 4}}],
        shape=(8, 8, 8),
        macs=(4 + 8) * 64 * 8 * 8 + 2 * 64 * 16 * 8,
        reference=lambda m, x: torchvision_partition_attention(m.partition_attention1, x, head_dim=4, partition="grid", size=4),
    ),
    Case("mish", ["mish"], reference=lambda m, x: F.mish(x)),
]


def _case_id(case: Case, index: int) -> str:
    return case.id or f"{case.op}-{index}"


@pytest.mark.parametrize("case", [pytest.param(c, id=_case_id(c, i)) for i, c in enumerate(CASES)])
def test_op_against_torch(write_spec, case: Case):
    run = run_and_compare(write_spec, case.layers, case.shape)
    out = tuple(run.y.shape[1:])
    macs = case.macs(case.shape, out) if callable(case.macs) else case.macs
    assert run.analysis.totals.macs == BATCH * macs
    # every output of every op node (a split's pieces each count)
    assert run.analysis.totals.activations == sum(math.prod(shape) for layer in run.analysis.layers for shape in layer.output_shapes) * BATCH
    if case.reference is not None:
        with torch.no_grad():
            expected = case.reference(run.module, run.x)
        assert expected.shape == run.y.shape
        torch.testing.assert_close(run.y, expected)


def test_every_registered_op_has_cases():
    names = {op.name for op in all_ops().values()}
    covered = {case.op for case in CASES}
    assert names - covered == set(), f"ops without a test case: {sorted(names - covered)}"
    assert covered - names == set()
    # each case's spec really uses the op it claims to cover (directly or by an alias)
    for case in CASES:
        used = {next(iter(item)) if isinstance(item, dict) else item for item in case.layers}
        assert any(all_ops()[u].name == case.op for u in used if u in all_ops()), case


@pytest.mark.parametrize(
    "alias, canonical, layers",
    [
        ("deconv", "conv_transpose", [{"ALIAS": {"out": 3, "kernel": 2, "stride": 2}}]),
        ("upconv", "conv_transpose", [{"ALIAS": {"out": 3, "kernel": 2, "stride": 2}}]),
        ("fc", "linear", ["flatten", {"ALIAS": {"out": 3}}]),
        ("batchnorm", "bn", ["ALIAS"]),
        ("swish", "silu", ["ALIAS"]),
        ("multiply", "mul", [{"ALIAS": {"from": ["x", "x"]}}]),
        ("cat", "concat", [{"ALIAS": {"from": ["x", "x"]}}]),
        ("interpolate", "upsample", [{"ALIAS": {"scale": 2}}]),
        ("center_crop", "crop", [{"ALIAS": {"size": 3}}]),
        ("stochastic_depth", "drop_path", [{"ALIAS": {"p": 0.1}}]),
    ],
)
def test_aliases_mean_the_same_op(write_spec, alias, canonical, layers):
    assert all_ops()[alias] is all_ops()[canonical]

    def spelled(name):
        return [
            name if item == "ALIAS" else ({name: v for v in item.values()} if isinstance(item, dict) and "ALIAS" in item else item)
            for item in layers
        ]

    a = analyze(compile_spec(write_spec(spec_text(spelled(alias), (4, 6, 6)), "alias.yaml")), batch=BATCH)
    b = analyze(compile_spec(write_spec(spec_text(spelled(canonical), (4, 6, 6)), "canonical.yaml")), batch=BATCH)
    assert a.outputs == b.outputs
    assert a.totals == b.totals
    assert [layer.op for layer in a.layers] == [layer.op for layer in b.layers]
    aliases = {op.name: op.aliases for op in all_ops().values()}
    assert alias in aliases[canonical]


def test_all_aliases_are_listed_above():
    listed = {"deconv", "upconv", "fc", "batchnorm", "swish", "multiply", "cat", "interpolate", "center_crop", "stochastic_depth"}
    registered = {name for name, op in all_ops().items() if name != op.name}
    assert registered == listed


def test_dropout_is_identity_in_eval_mode(write_spec):
    run = run_and_compare(write_spec, [{"dropout": {"p": 0.5}}])
    run.module.eval()
    with torch.no_grad():
        torch.testing.assert_close(run.module(run.x), run.x)
    run.module.train()
    with torch.no_grad():
        y = run.module(run.x)
    # training mode: zeros where dropped, x / (1 - p) where kept
    kept = y != 0
    torch.testing.assert_close(y[kept], run.x[kept] * 2)


def test_drop_path_drops_whole_samples(write_spec):
    run = run_and_compare(write_spec, [{"drop_path": {"p": 0.5}}], shape=(3, 4, 4))
    run.module.eval()
    with torch.no_grad():
        torch.testing.assert_close(run.module(run.x), run.x)
    run.module.train()
    torch.manual_seed(1)
    x = torch.randn(64, 3, 4, 4)
    with torch.no_grad():
        y = run.module(x)
    # each sample is either dropped entirely or kept and scaled by 1 / (1 - p)
    for sample_in, sample_out in zip(x, y):
        assert torch.equal(sample_out, torch.zeros_like(sample_out)) or torch.allclose(sample_out, 2 * sample_in)
    dropped = sum(bool((s == 0).all()) for s in y)
    assert 0 < dropped < 64


def test_reshape_errors(write_spec):
    assert_mentions(spec_error(write_spec, [{"reshape": {"shape": [3, -1]}}]), "cannot reshape", "4x8x8", "256")
    assert_mentions(spec_error(write_spec, [{"reshape": {"shape": [16, 15]}}]), "cannot reshape")
    assert_mentions(spec_error(write_spec, [{"reshape": {"shape": [-1, -1]}}]), "at most one -1")
    assert_mentions(spec_error(write_spec, [{"reshape": {"shape": [0, 256]}}]), "positive sizes")


def test_batchnorm_normalises_per_channel(write_spec):
    run = run_and_compare(write_spec, ["bn"], shape=(3, 5, 5))
    # train mode, affine weight 1 and bias 0: zero mean, unit (biased) variance per channel
    per_channel = run.y.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_channel.var(1, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)


# --- the course's spatial-size figures ------------------------------------------------------------
def conv_size(n: int, f: int, p: int, s: int) -> int:
    """floor((n + 2p - f) / s) + 1."""
    return (n + 2 * p - f) // s + 1


@pytest.mark.parametrize(
    "n, channels, f, p, s, filters, expected",
    [
        (6, 1, 3, 0, 1, 1, 4),  # 6x6 * 3x3 -> 4x4
        (6, 1, 3, 1, 1, 1, 6),  # 'same' padding p = (f - 1) / 2
        (7, 1, 3, 0, 2, 1, 3),  # 7x7, f 3, stride 2 -> 3x3
        (32, 3, 5, 0, 1, 6, 28),  # LeNet-5's first layer
        (39, 3, 3, 0, 1, 10, 37),  # the course's ConvNet example: 39 -> 37 -> 17 -> 7
        (37, 10, 5, 0, 2, 20, 17),
        (17, 20, 5, 0, 2, 40, 7),
        (5, 2, 2, 1, 3, 2, 2),
        (224, 3, 7, 3, 2, 4, 112),  # ResNet's stem
    ],
)
def test_conv_output_size_formula(write_spec, n, channels, f, p, s, filters, expected):
    assert conv_size(n, f, p, s) == expected
    layers = [{"conv": {"out": filters, "kernel": f, "padding": p, "stride": s}}]
    run = run_and_compare(write_spec, layers, shape=(channels, n, n))
    assert run.analysis.outputs["output"] == (filters, expected, expected)
    assert run.analysis.totals.params == (f * f * channels + 1) * filters
    assert run.analysis.totals.macs == BATCH * expected * expected * filters * channels * f * f


def test_lenet_first_layer_course_figures(write_spec):
    # 32x32x3 input, 6 filters of 5x5: 28x28x6 activations and (5*5*3 + 1) * 6 = 456 parameters
    analysis = analyze(compile_spec(write_spec(spec_text([{"conv": {"out": 6, "kernel": 5}}], (3, 32, 32)))))
    assert analysis.outputs["output"] == (6, 28, 28)
    assert analysis.totals.params == 456
    assert analysis.layers[0].tensors == {"weight": (6, 3, 5, 5), "bias": (6,)}
    assert analysis.totals.activations == 28 * 28 * 6


def test_lenet_course_table(write_spec):
    """The course's LeNet-5 table of activation shapes and parameters."""
    layers = [
        {"conv": {"out": 6, "kernel": 5, "name": "conv1"}},
        {"maxpool": {"kernel": 2, "name": "pool1"}},
        {"conv": {"out": 16, "kernel": 5, "name": "conv2"}},
        {"maxpool": {"kernel": 2, "name": "pool2"}},
        "flatten",
        {"linear": {"out": 120, "name": "fc3"}},
        {"linear": {"out": 84, "name": "fc4"}},
        {"linear": {"out": 10, "name": "fc5"}},
    ]
    run = run_and_compare(write_spec, layers, shape=(3, 32, 32))
    by_name = {layer.name: layer for layer in run.analysis.layers}
    expected = {
        "conv1": ((6, 28, 28), 456),
        "pool1": ((6, 14, 14), 0),
        "conv2": ((16, 10, 10), 2416),
        "pool2": ((16, 5, 5), 0),
        "flatten1": ((400,), 0),
        "fc3": ((120,), 48120),
        "fc4": ((84,), 10164),
        "fc5": ((10,), 850),
    }
    for name, (shape, params) in expected.items():
        assert by_name[name].output_shape == shape, name
        assert by_name[name].figures.params == params, name
    assert run.analysis.totals.params == 456 + 2416 + 48120 + 10164 + 850


@pytest.mark.parametrize("n, f, s", [(28, 2, 2), (32, 2, 2), (7, 3, 2), (13, 3, 3)])
def test_pool_output_size_formula(write_spec, n, f, s):
    run = run_and_compare(write_spec, [{"maxpool": {"kernel": f, "stride": s}}], shape=(2, n, n))
    assert run.analysis.outputs["output"] == (2, conv_size(n, f, 0, s), conv_size(n, f, 0, s))


@pytest.mark.parametrize("n, f, s, p, op", [(4, 3, 2, 1, 0), (5, 2, 2, 0, 0), (3, 3, 1, 0, 0), (4, 3, 2, 1, 1)])
def test_conv_transpose_output_size_formula(write_spec, n, f, s, p, op):
    # (n - 1) s - 2p + f + output_padding
    layers = [{"conv_transpose": {"out": 2, "kernel": f, "stride": s, "padding": p, "output_padding": op}}]
    run = run_and_compare(write_spec, layers, shape=(3, n, n))
    size = (n - 1) * s - 2 * p + f + op
    assert run.analysis.outputs["output"] == (2, size, size)


# --- errors -----------------------------------------------------------------------------------
def spec_error(write_spec, layers: list, shape: Shape = (4, 8, 8)) -> SpecError:
    """Compile the spec, expecting a SpecError (any other exception fails the test)."""
    path = write_spec(spec_text(layers, shape))
    with pytest.raises(SpecError) as info:
        compile_spec(path)
    return info.value


def assert_mentions(error: SpecError, *words: str) -> None:
    text = str(error)
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


@pytest.mark.parametrize("op", ["conv", "dwconv", "conv_transpose", "maxpool", "avgpool"])
def test_stride_zero(write_spec, op):
    args = {"kernel": 2, "stride": 0}
    if op in ("conv", "conv_transpose"):
        args["out"] = 4
    error = spec_error(write_spec, [{op: args}])
    assert_mentions(error, "stride")
    assert error.node == f"{op}1"


def test_stride_zero_in_a_pair(write_spec):
    assert_mentions(spec_error(write_spec, [{"conv": {"out": 4, "kernel": 3, "stride": [1, 0]}}]), "stride")


@pytest.mark.parametrize(
    "layers, shape, words",
    [
        ([{"conv": {"out": 4, "kernel": 5}}], (4, 3, 3), ["kernel 5", "larger", "padded input", "3+2*0"]),
        ([{"conv": {"out": 4, "kernel": [1, 7], "padding": 1}}], (4, 8, 4), ["kernel 7", "larger", "width"]),
        ([{"conv": {"out": 4, "kernel": 3, "dilation": 3}}], (4, 6, 6), ["kernel 3", "dilated to 7", "larger"]),
        ([{"dwconv": {"kernel": 9}}], (4, 8, 8), ["kernel 9", "larger"]),
        ([{"maxpool": {"kernel": 4}}], (4, 3, 3), ["kernel 4", "larger"]),
        ([{"avgpool": {"kernel": 3, "padding": 1}}, {"avgpool": {"kernel": 3}}], (4, 1, 1), ["kernel 3", "larger"]),
    ],
)
def test_kernel_larger_than_padded_input(write_spec, layers, shape, words):
    assert_mentions(spec_error(write_spec, layers, shape), *words)


@pytest.mark.parametrize(
    "layers, words",
    [
        ([{"conv": {"out": 6, "kernel": 1, "groups": 3}}], ["groups=3", "(4)"]),
        ([{"conv": {"out": 6, "kernel": 1, "groups": 4}}], ["groups=4", "out (6)"]),
        ([{"conv_transpose": {"out": 6, "kernel": 1, "groups": 4}}], ["groups=4", "(6)"]),
        ([{"groupnorm": {"groups": 3}}], ["groups=3", "(4)"]),
        ([{"channel_shuffle": {"groups": 3}}], ["groups=3", "(4)"]),
    ],
)
def test_groups_must_divide_channels(write_spec, layers, words):
    assert_mentions(spec_error(write_spec, layers), *words)


@pytest.mark.parametrize("op", ["conv", "dwconv", "maxpool", "avgpool", "upsample", "crop", "pad", "channel_shuffle", "groupnorm"])
def test_spatial_op_after_flatten(write_spec, op):
    args = {
        "conv": {"out": 4, "kernel": 3},
        "dwconv": {"kernel": 3},
        "maxpool": {"kernel": 2},
        "avgpool": {"kernel": 2},
        "upsample": {"scale": 2},
        "crop": {"size": 2},
        "pad": {"amount": 1},
        "channel_shuffle": {"groups": 2},
        "groupnorm": {"groups": 2},
    }[op]
    error = spec_error(write_spec, ["flatten", {op: args}])
    assert_mentions(error, "(C, H, W)", "256", "flatten")
    assert error.node == f"{op}1"


def test_linear_on_a_feature_map_acts_on_its_last_axis(write_spec):
    """Any rank is accepted, as nn.Linear: on a (C, H, W) map it mixes the width (W -> out), and
    the explanation says it acts along the last axis."""
    run = run_and_compare(write_spec, [{"conv": {"out": 2, "kernel": 3}}, {"linear": {"out": 10}}])
    assert run.analysis.outputs["output"] == (2, 6, 10)
    explained = explain_text(write_spec, [{"conv": {"out": 2, "kernel": 3}}, {"linear": {"out": 10}}])
    assert "along the last axis (6 values) at each of the 12 other positions" in explained


def explain_text(write_spec, layers: list, shape: Shape = (4, 8, 8)) -> str:
    from archspec.explain import explain_spec

    return explain_spec(write_spec(spec_text(layers, shape), "explained.yaml"), lang="en")


def test_layernorm_on_a_map_must_say_its_axes(write_spec):
    """A bare layernorm on a (C, H, W) map would normalise its width: refused, naming both choices."""
    error = spec_error(write_spec, ["layernorm"])
    assert_mentions(error, "layernorm", "4x8x8", "over: channels", "over: last")
    assert error.hint and "width" in error.hint
    assert_mentions(spec_error(write_spec, [{"layernorm": {"over": "channels", "dims": 2}}]), "over: channels", "no `dims`")
    assert_mentions(spec_error(write_spec, [{"layernorm": {"over": "channels"}}], shape=(4, 8)), "(C, H, W)", "4x8")


def test_concat_with_mismatched_spatial_sizes_names_both_producers(write_spec):
    layers = [
        {"conv": {"out": 2, "kernel": 3, "name": "enc"}},
        {"maxpool": {"kernel": 2, "name": "down", "from": "x"}},
        {"concat": {"from": ["enc", "down"], "name": "bridge"}},
    ]
    error = spec_error(write_spec, layers)
    assert_mentions(error, "'enc'", "6x6", "'down'", "4x4", "concat")
    assert error.node == "bridge"
    assert error.hint and "fit" in error.hint


def test_concat_of_vector_and_feature_map(write_spec):
    layers = [{"global_avgpool": {"name": "g"}}, {"concat": {"from": ["x", "g"]}}]
    assert_mentions(spec_error(write_spec, layers), "concat", "'x'", "'g'")


def test_add_with_mismatched_shapes_names_both_producers(write_spec):
    layers = [{"conv": {"out": 6, "kernel": 1, "name": "wide"}}, {"add": {"from": ["x", "wide"]}}]
    error = spec_error(write_spec, layers)
    assert_mentions(error, "add", "4x8x8", "'x'", "6x8x8", "'wide'")
    assert error.hint and "project" in error.hint


def test_add_with_mismatched_spatial_sizes(write_spec):
    layers = [{"maxpool": {"kernel": 2, "name": "small"}}, {"add": {"from": ["x", "small"]}}]
    assert_mentions(spec_error(write_spec, layers), "4x8x8", "4x4x4", "'small'")


def test_fit_does_not_align_channels(write_spec):
    layers = [{"conv": {"out": 3, "kernel": 3, "name": "c"}}, {"add": {"from": ["x", "c"], "fit": "crop"}}]
    assert_mentions(spec_error(write_spec, layers), "4x6x6", "3x6x6")


def test_mul_with_unbroadcastable_shapes(write_spec):
    layers = [{"conv": {"out": 3, "kernel": 1, "name": "c"}}, {"mul": {"from": ["x", "c"]}}]
    assert_mentions(spec_error(write_spec, layers), "mul", "'x'", "'c'", "4x8x8", "3x8x8")


@pytest.mark.parametrize("order", [["x", "g"], ["g", "x"]])
def test_mul_with_inputs_of_different_ranks(write_spec, order):
    # (C,) * (C, H, W) with H == W == C would broadcast without the batch, but torch aligns the
    # batch dimension of the vector with H: the spec must be refused, not fail at run time
    layers = [{"global_avgpool": {"name": "g"}}, {"mul": {"from": order}}]
    error = spec_error(write_spec, layers, shape=(4, 4, 4))
    assert_mentions(error, "mul", "same rank", "'x'", "'g'", "4x4x4")


@pytest.mark.parametrize(
    "layers, shape, words",
    [
        ([{"upsample": {"scale": 0.1}}], (4, 8, 8), ["upsample", "0x0", "empty"]),
        ([{"upsample": {"scale": 0.2}}], (4, 8, 3), ["1x0"]),
        ([{"conv_transpose": {"out": 2, "kernel": 3, "padding": 3}}], (4, 2, 2), ["would be", "padding 3"]),
    ],
)
def test_output_size_rounding_to_zero(write_spec, layers, shape, words):
    assert_mentions(spec_error(write_spec, layers, shape), *words)


@pytest.mark.parametrize(
    "layers, words",
    [
        ([{"conv": {"out": 4, "kernel": 3, "stride": 2, "padding": "same"}}], ["same", "stride 1"]),
        ([{"conv_transpose": {"out": 4, "kernel": 3, "stride": 2, "output_padding": 2}}], ["output_padding 2", "stride 2"]),
        ([{"maxpool": {"kernel": 2, "padding": 2}}], ["padding 2", "half the kernel"]),
        ([{"maxpool": {"kernel": 3, "padding": 2, "dilation": 2}}], ["padding 2", "half the kernel"]),
        ([{"upsample": {"scale": 2, "size": 4}}], ["exactly one"]),
        (["upsample"], ["exactly one"]),
        ([{"crop": {"size": 9}}], ["cannot crop", "8x8", "9x9"]),
        (["crop"], ["crop needs"]),
        ([{"avgpool": {"kernel": 2, "name": "s"}}, {"pad": {"from": ["s", "x"], "amount": 1}}], ["exactly one"]),
        ([{"avgpool": {"kernel": 2, "name": "s"}}, {"pad": {"from": ["x", "s"]}}], ["cannot pad", "8x8", "4x4"]),
        ([{"global_avgpool": {"name": "g"}}, {"upsample": {"from": ["x", "g"]}}], ["second input", "(C, H, W)"]),
        ([{"layernorm": {"dims": 4}}], ["dims=4", "3 dimensions"]),
        ([{"concat": {"from": ["x", "x"], "dim": 3}}], ["dim 3", "out of range"]),
        ([{"softmax": {"dim": 3}}], ["dim 3", "out of range"]),
        ([{"softmax": {"dim": -4}}], ["dim -4", "out of range"]),
        ([{"conv": {"out": 4, "kernel": 3, "strides": 2}}], ["no argument 'strides'", "'stride'"]),
        ([{"conv": {"kernel": 3}}], ["needs argument 'out'"]),
        ([{"conv": {"out": 4, "kernel": 3, "padding": "full"}}], ["padding"]),
        ([{"dropout": {"p": 1.5}}], ["'p'"]),
        ([{"add": {}}], ["add takes at least 2"]),
        ([{"mul": {"from": ["x", "x", "x"]}}], ["mul takes 2"]),
        ([{"relu": {"from": ["x", "x"]}}], ["relu takes 1"]),
        ([{"upsample": {"from": ["x", "x", "x"], "scale": 2}}], ["1 to 2"]),
        ([{"bn": {"eps": 0}}], ["'eps'"]),
    ],
)
def test_bad_arguments(write_spec, layers, words):
    assert_mentions(spec_error(write_spec, layers), *words)


def test_bn_on_a_matrix(write_spec):
    assert_mentions(spec_error(write_spec, ["bn"], shape=(4, 8)), "bn", "4x8")


@pytest.mark.parametrize(
    "op, kernel, dilation",
    [("maxpool", 2, 1), ("maxpool", 3, 1), ("maxpool", 3, 2), ("maxpool", 4, 3), ("maxpool", 5, 2), ("avgpool", 2, 1), ("avgpool", 5, 1)],
)
def test_pool_padding_accepted_statically_runs_in_torch(write_spec, op, kernel, dilation):
    """Every padding the static check accepts must be one PyTorch accepts (and vice versa):
    PyTorch wants pad <= kernel / 2 with the undilated kernel, even for dilated max pooling."""
    accepted = []
    for padding in range(dilation * (kernel - 1) + 2):
        args = {"kernel": kernel, "stride": 1, "padding": padding}
        if op == "maxpool":
            args["dilation"] = dilation
        try:
            compile_spec(write_spec(spec_text([{op: args}], (2, 12, 12))))
        except SpecError as error:
            assert_mentions(error, f"padding {padding}", "half the kernel")
            continue
        run_and_compare(write_spec, [{op: args}], shape=(2, 12, 12))
        accepted.append(padding)
    assert accepted == list(range(kernel // 2 + 1))
