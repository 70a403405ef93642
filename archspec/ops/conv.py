"""Convolutions: `conv`, `dwconv` (depthwise) and `conv_transpose`."""
from __future__ import annotations

import math

from typing import Literal, Union

from archspec.ops.common import (
    transposed_axes,
    IntPair,
    NonNegativePair,
    PositiveInt,
    factor_text,
    feature_map,
    pair,
    window_output,
    window_text,
)
from archspec.ops.conv_explain import explain_conv, explain_conv_transpose, explain_depthwise
from archspec.ops.field import transposed_ranges
from archspec.ops.registry import Op, OpArgs, Shape, ShapeError, numel
from archspec.ops.transfer import scale_output_rows, scale_transposed_columns

OPS: list[Op] = []  # this module's entries, registered by archspec.ops.catalog


class ConvArgs(OpArgs):
    out: PositiveInt  # output channels (nn.Conv2d's out_channels)
    kernel: IntPair  # kernel size: k, or [kh, kw]
    stride: IntPair = 1  # step of the window: s, or [sh, sw]
    padding: Union[NonNegativePair, Literal["same", "valid"]] = 0  # zeros on each side: p or [ph, pw]; `same` keeps the size (stride 1), `valid` is 0
    dilation: IntPair = 1  # spacing of the kernel taps (atrous convolution)
    groups: PositiveInt = 1  # in and out channels split into this many independent convolutions
    bias: bool = True  # a learned bias (false before a BN)


def _padding(args: ConvArgs) -> tuple[int, int] | str:
    if args.padding == "valid":
        return (0, 0)
    return args.padding if args.padding == "same" else pair(args.padding)


def conv_shape(args: ConvArgs, inputs: list[Shape]) -> Shape:
    channels, height, width = feature_map(inputs, "conv")
    groups = args.groups
    if channels % groups or args.out % groups:
        raise ShapeError(f"groups={groups} must divide both the input channels ({channels}) and out ({args.out})")
    if args.padding == "same":
        if pair(args.stride) != (1, 1):
            raise ShapeError("padding 'same' needs stride 1 (PyTorch's rule); give the padding explicitly")
        return (args.out, height, width)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = pair(args.kernel), pair(args.stride), _padding(args), pair(args.dilation)
    return (
        args.out,
        window_output(height, kh, sh, ph, dh, False, "height"),
        window_output(width, kw, sw, pw, dw, False, "width"),
    )


def conv_params(args: ConvArgs, inputs: list[Shape]) -> dict[str, Shape]:
    tensors = {"weight": (args.out, inputs[0][0] // args.groups, *pair(args.kernel))}
    if args.bias:
        tensors["bias"] = (args.out,)
    return tensors


def conv_macs(args: ConvArgs, inputs: list[Shape], output: Shape) -> int:
    # every output element takes (C_in / groups) * kh * kw multiply-accumulates
    return numel(output) * (inputs[0][0] // args.groups) * numel(pair(args.kernel))


def conv_window(args: ConvArgs, inputs: list[Shape]):
    kernel, stride, dilation = pair(args.kernel), pair(args.stride), pair(args.dilation)
    if args.padding == "same":
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    else:
        padding = _padding(args)
    return kernel, stride, padding, dilation


def _bias_ops(args, inputs, output):
    return numel(output) if args.bias else 0


def _build_conv(args: ConvArgs, inputs: list[Shape]):
    import torch.nn as nn

    return nn.Conv2d(
        inputs[0][0],
        args.out,
        pair(args.kernel),
        stride=pair(args.stride),
        padding=_padding(args),
        dilation=pair(args.dilation),
        groups=args.groups,
        bias=args.bias,
    )


def _conv_from_torch(call):
    """nn.Conv2d with zero padding; its in-channels come from the input, as conv's do."""
    if not call.is_("nn.Conv2d"):
        return None
    conv = call.module
    if conv.padding_mode != "zeros":
        return call.refuse(f"Conv2d padding_mode '{conv.padding_mode}' (conv pads with zeros)")
    padding = conv.padding if isinstance(conv.padding, str) else call.compact(conv.padding)
    return {"out": conv.out_channels, "kernel": call.compact(conv.kernel_size), "stride": call.compact(conv.stride),
            "padding": padding, "dilation": call.compact(conv.dilation), "groups": conv.groups, "bias": conv.bias is not None}


def _conv_label(name: str):
    """`conv 3x3/2, 128`, with `(dil 2, groups 4)` where those are not 1 (conv and conv_transpose)."""

    def label(args: ConvArgs | ConvTransposeArgs) -> str:
        extras = []
        if pair(args.dilation) != (1, 1):
            extras.append(f"dil {factor_text(args.dilation)}")
        if args.groups != 1:
            extras.append(f"groups {args.groups}")
        text = f"{name} {window_text(args.kernel, args.stride)}, {args.out}"
        return text + (f" ({', '.join(extras)})" if extras else "")

    return label


OPS.append(
    Op(
        name="conv",
        explain=explain_conv,
        # one group per input channel is a depthwise convolution: its own kernel on a CPU
        kernel=lambda args, inputs: "depthwise" if args.groups > 1 and args.groups == inputs[0][0] else "windowed_gemm",
        # per group: (in channels x kernel window, out channels); few output pixels are the
        # weights' re-layout's (archspec.passes.latency), not the product's
        gemm_dims=lambda args, inputs, batch: (inputs[0][0] // args.groups * math.prod(pair(args.kernel)), args.out // args.groups),
        label=_conv_label("conv"),
        family="conv",
        traits=frozenset({"weighted"}),
        summary="2-D convolution (nn.Conv2d); in-channels come from the input",
        fold_affine=scale_output_rows,
        args=ConvArgs,
        shape=conv_shape,
        params=conv_params,
        macs=conv_macs,
        extra_ops=_bias_ops,
        module=_build_conv,
        from_torch=_conv_from_torch,
        window=conv_window,
        fresh_output=True,
    )
)


# --- depthwise: groups = in_channels; out defaults to in_channels x multiplier ---------------
class DepthwiseArgs(OpArgs):
    kernel: IntPair
    stride: IntPair = 1
    padding: Union[NonNegativePair, Literal["same", "valid"]] = 0
    dilation: IntPair = 1
    multiplier: PositiveInt = 1  # output channels per input channel: out = in_channels x multiplier
    bias: bool = True


def _as_conv(args: DepthwiseArgs, inputs: list[Shape]) -> ConvArgs:
    channels = feature_map(inputs, "dwconv")[0]
    return ConvArgs.model_construct(
        out=channels * args.multiplier,
        kernel=args.kernel,
        stride=args.stride,
        padding=args.padding,
        dilation=args.dilation,
        groups=channels,
        bias=args.bias,
    )


def _dwconv_label(args: DepthwiseArgs) -> str:
    """`dwconv 3x3/2`, with `, x2` for a channel multiplier."""
    multiplier = f", x{args.multiplier}" if args.multiplier != 1 else ""
    return f"dwconv {window_text(args.kernel, args.stride)}{multiplier}"


OPS.append(
    Op(
        name="dwconv",
        explain=explain_depthwise,
        kernel=lambda args, inputs: "depthwise",
        label=_dwconv_label,
        family="conv",
        traits=frozenset({"weighted"}),
        summary="depthwise 2-D convolution: one filter per input channel (groups = C_in)",
        fold_affine=scale_output_rows,
        args=DepthwiseArgs,
        shape=lambda a, i: conv_shape(_as_conv(a, i), i),
        params=lambda a, i: conv_params(_as_conv(a, i), i),
        macs=lambda a, i, o: conv_macs(_as_conv(a, i), i, o),
        extra_ops=_bias_ops,
        module=lambda a, i: _build_conv(_as_conv(a, i), i),
        window=lambda a, i: conv_window(_as_conv(a, i), i),
        fresh_output=True,
    )
)


# --- transposed convolution ------------------------------------------------------------------
class ConvTransposeArgs(OpArgs):
    out: PositiveInt  # output channels (nn.ConvTranspose2d's out_channels)
    kernel: IntPair
    stride: IntPair = 1
    padding: NonNegativePair = 0  # removed from each side of the output (nn.ConvTranspose2d's padding)
    output_padding: NonNegativePair = 0  # added to one side of the output: picks among the sizes a stride > 1 allows
    dilation: IntPair = 1
    groups: PositiveInt = 1
    bias: bool = True


def _transposed_shape(args: ConvTransposeArgs, inputs: list[Shape]) -> Shape:
    channels, height, width = feature_map(inputs, "conv_transpose")
    if channels % args.groups or args.out % args.groups:
        raise ShapeError(f"groups={args.groups} must divide both the input channels ({channels}) and out ({args.out})")
    sizes = []
    for axis, n, (k, s, p, op, d) in zip(("height", "width"), (height, width), transposed_axes(args)):
        if op >= max(s, d):
            raise ShapeError(f"output_padding {op} must be smaller than stride {s} or dilation {d} ({axis})")
        # (n - 1)s - 2p + d(k - 1) + output_padding + 1
        size = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        if size <= 0:
            raise ShapeError(f"output {axis} would be {size}: padding {p} is too large")
        sizes.append(size)
    return (args.out, *sizes)


def _transposed_macs(args: ConvTransposeArgs, inputs: list[Shape], output: Shape) -> int:
    # every input element is scattered to (C_out / groups) * kh * kw outputs
    return numel(inputs[0]) * (args.out // args.groups) * numel(pair(args.kernel))


def _transposed_params(args: ConvTransposeArgs, inputs: list[Shape]) -> dict[str, Shape]:
    tensors = {"weight": (inputs[0][0], args.out // args.groups, *pair(args.kernel))}
    if args.bias:
        tensors["bias"] = (args.out,)
    return tensors


def _transposed_from_torch(call):
    if not call.is_("nn.ConvTranspose2d"):
        return None
    conv = call.module
    if conv.padding_mode != "zeros":
        return call.refuse(f"ConvTranspose2d padding_mode '{conv.padding_mode}'")
    return {"out": conv.out_channels, "kernel": call.compact(conv.kernel_size), "stride": call.compact(conv.stride),
            "padding": call.compact(conv.padding), "output_padding": call.compact(conv.output_padding),
            "dilation": call.compact(conv.dilation), "groups": conv.groups, "bias": conv.bias is not None}


def _build_transposed(args: ConvTransposeArgs, inputs: list[Shape]):
    import torch.nn as nn

    return nn.ConvTranspose2d(
        inputs[0][0],
        args.out,
        pair(args.kernel),
        stride=pair(args.stride),
        padding=pair(args.padding),
        output_padding=pair(args.output_padding),
        groups=args.groups,
        bias=args.bias,
        dilation=pair(args.dilation),
    )


def _transposed_field(args: ConvTransposeArgs, ranges, inputs: list[Shape], output: Shape):
    return [transposed_ranges(ranges, pair(args.kernel), pair(args.stride), pair(args.padding), pair(args.dilation))]


OPS.append(
    Op(
        name="conv_transpose",
        explain=explain_conv_transpose,
        label=_conv_label("conv_transpose"),
        family="conv",
        traits=frozenset({"weighted"}),
        summary="transposed 2-D convolution (nn.ConvTranspose2d), e.g. U-Net's 2x2 up-convolution",
        fold_affine=scale_transposed_columns,
        args=ConvTransposeArgs,
        shape=_transposed_shape,
        params=_transposed_params,
        macs=_transposed_macs,
        extra_ops=_bias_ops,
        module=_build_transposed,
        from_torch=_transposed_from_torch,
        receptive_field=_transposed_field,
        fresh_output=True,
        aliases=("deconv", "upconv"),
    )
)
