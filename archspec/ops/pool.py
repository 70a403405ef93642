"""Pooling: `maxpool`, `avgpool`, `adaptive_avgpool`, `adaptive_maxpool`, `global_avgpool`."""
from __future__ import annotations

from typing import Optional

from archspec.ops.common import IntPair, NonNegativePair, feature_map, format_shape, pair, pair_text, window_output, window_text
from archspec.ops.field import adaptive_ranges
from archspec.ops.registry import NoArgs, Op, OpArgs, Saved, Shape, ShapeError, numel, saves_input, saves_nothing

OPS: list[Op] = []  # this module's entries, registered by archspec.ops.catalog


class PoolArgs(OpArgs):
    kernel: IntPair  # window size: k, or [kh, kw]
    stride: Optional[IntPair] = None  # default: the kernel size (non-overlapping)
    padding: NonNegativePair = 0  # implicit padding on each side (-inf for max, zeros for avg)
    ceil_mode: bool = False  # round the output size up, not down


class MaxPoolArgs(PoolArgs):
    dilation: IntPair = 1


class AvgPoolArgs(PoolArgs):
    count_include_pad: bool = True  # the padded zeros count in the average's divisor


def _geometry(args: PoolArgs):
    kernel = pair(args.kernel)
    stride = pair(args.stride) if args.stride is not None else kernel
    dilation = pair(getattr(args, "dilation", 1))
    return kernel, stride, pair(args.padding), dilation


def _pool_shape(args: PoolArgs, inputs: list[Shape]) -> Shape:
    channels, height, width = feature_map(inputs, "pooling")
    kernel, stride, padding, dilation = _geometry(args)
    for axis, k, p in zip(("height", "width"), kernel, padding):
        # PyTorch compares with the undilated kernel (kW / 2 >= padW), also for dilated max pooling
        if p > k // 2:
            raise ShapeError(f"padding {p} must be at most half the kernel {k} along {axis} (PyTorch's rule)")
    return (
        channels,
        window_output(height, kernel[0], stride[0], padding[0], dilation[0], args.ceil_mode, "height"),
        window_output(width, kernel[1], stride[1], padding[1], dilation[1], args.ceil_mode, "width"),
    )


def _window_ops(args: PoolArgs, inputs, output) -> int:
    # one comparison (max) or addition (avg) per window element
    return numel(output) * numel(pair(args.kernel))


def _build_maxpool(args: MaxPoolArgs, inputs: list[Shape]):
    import torch.nn as nn

    kernel, stride, padding, dilation = _geometry(args)
    return nn.MaxPool2d(kernel, stride, padding, dilation=dilation, ceil_mode=args.ceil_mode)


def _build_avgpool(args: AvgPoolArgs, inputs: list[Shape]):
    import torch.nn as nn

    kernel, stride, padding, _ = _geometry(args)
    return nn.AvgPool2d(kernel, stride, padding, ceil_mode=args.ceil_mode, count_include_pad=args.count_include_pad)


def _pool_from_torch(kind: str):
    """nn.MaxPool2d / nn.AvgPool2d and F.max_pool2d / F.avg_pool2d; the stride is left out where it is the kernel."""
    module_name, functions = ("nn.MaxPool2d", ("F.max_pool2d", "torch.max_pool2d")) if kind == "max" else ("nn.AvgPool2d", ("F.avg_pool2d",))

    def match(call):
        if call.is_(module_name):
            pool = call.module
            found = {"kernel": pool.kernel_size, "stride": pool.stride, "padding": pool.padding, "ceil_mode": pool.ceil_mode}
            extra = {"dilation": pool.dilation} if kind == "max" else {"count_include_pad": pool.count_include_pad}
            refused = getattr(pool, "return_indices", False) or getattr(pool, "divisor_override", None)
        elif call.is_(*functions):
            found = {"kernel": call.arg(1, "kernel_size"), "stride": call.arg(2, "stride"), "padding": call.arg(3, "padding", 0)}
            if kind == "max":
                found["ceil_mode"], extra = call.arg(5, "ceil_mode", False), {"dilation": call.arg(4, "dilation", 1)}
            else:
                found["ceil_mode"], extra = call.arg(4, "ceil_mode", False), {"count_include_pad": call.arg(5, "count_include_pad", True)}
            refused = call.arg(6, "return_indices" if kind == "max" else "divisor_override")
        else:
            return None
        if refused:
            return call.refuse("pooling with return_indices or divisor_override")
        found = {key: call.compact(value) for key, value in {**found, **extra}.items()}
        if found["stride"] in (None, [], found["kernel"]):
            del found["stride"]
        return found

    return match


def _window_label(name: str):
    """`maxpool 3x3/2`; the stride shown is the kernel's when none is given."""

    def label(args: PoolArgs) -> str:
        return f"{name} {window_text(args.kernel, args.kernel if args.stride is None else args.stride)}"

    return label


def _explain_pool(ctx) -> None:
    """maxpool, avgpool: the window's output size; no parameters."""
    args = ctx.args
    kernel, stride, padding, dilation = _geometry(args)
    if args.stride is None:
        s = stride[0] if stride[0] == stride[1] else f"{stride[0]}x{stride[1]}"
        ctx.line(ctx.msg("pool_stride_default", s=s))
    ctx.window_sizes(kernel, stride, padding, dilation, args.ceil_mode)
    ctx.line(ctx.msg("channels_pool", c=ctx.out[0]))
    ctx.line(ctx.msg("params_pool"), "params")


OPS.append(
    Op(
        name="maxpool",
        explain=_explain_pool,
        label=_window_label("maxpool"),
        family="pool",
        saved=lambda a, i, o: Saved(extra=((numel(o), "int64", True),)),  # input and argmax indices
        summary="max pooling (nn.MaxPool2d); stride defaults to the kernel",
        args=MaxPoolArgs,
        shape=_pool_shape,
        extra_ops=_window_ops,
        module=_build_maxpool,
        from_torch=_pool_from_torch("max"),
        window=lambda a, i: _geometry(a),
    )
)
OPS.append(
    Op(
        name="avgpool",
        explain=_explain_pool,
        label=_window_label("avgpool"),
        family="pool",
        summary="average pooling (nn.AvgPool2d); stride defaults to the kernel",
        args=AvgPoolArgs,
        shape=_pool_shape,
        extra_ops=_window_ops,
        module=_build_avgpool,
        from_torch=_pool_from_torch("avg"),
        window=lambda a, i: _geometry(a),
    )
)


# --- adaptive and global pooling -------------------------------------------------------------
class AdaptiveArgs(OpArgs):
    size: IntPair = 1  # output size: s, or [h, w]


def _adaptive_shape(args: AdaptiveArgs, inputs: list[Shape]) -> Shape:
    channels = feature_map(inputs, "adaptive pooling")[0]
    return (channels, *pair(args.size))


def _build_adaptive(kind: str):
    def build(args: AdaptiveArgs, inputs: list[Shape]):
        import torch.nn as nn

        cls = nn.AdaptiveAvgPool2d if kind == "avg" else nn.AdaptiveMaxPool2d
        return cls(pair(args.size))

    return build


def _adaptive_field(args: AdaptiveArgs, ranges, inputs: list[Shape], output: Shape):
    return [adaptive_ranges(ranges, inputs[0][1:], output[1:])]


def _adaptive_max_saved(args, inputs, output) -> Saved:
    return Saved(extra=((numel(output), "int64", True),))  # input and argmax indices


def _adaptive_label(name: str):
    """`adaptive_avgpool 1x1`: the output size."""

    def label(args: AdaptiveArgs) -> str:
        return f"{name} {pair_text(args.size)}"

    return label


def _adaptive_avg_saved(args, inputs, output) -> Saved:
    # PyTorch computes a 1x1 adaptive average as a mean, whose backward needs only the sizes
    return saves_nothing(args, inputs, output) if output[1:] == (1, 1) else saves_input(args, inputs, output)


def _adaptive_explainer(kind: str):
    def explain(ctx) -> None:
        cin, cout = format_shape(ctx.in_shapes[0]), format_shape(ctx.out)
        size = f"{ctx.out[1]}x{ctx.out[2]}"
        ctx.line(ctx.msg("adaptive", kind=ctx.msg(f"kind.{kind}"), size=size, cin=cin, cout=cout))

    return explain


def _adaptive_from_torch(kind: str):
    module_name, function_name = (f"nn.Adaptive{kind.title()}Pool2d", f"F.adaptive_{kind}_pool2d")

    def match(call):
        if call.is_(module_name):
            size = call.module.output_size
        elif call.is_(function_name):
            size = call.arg(1, "output_size")
        else:
            return None
        sizes = size if isinstance(size, (tuple, list)) else (size,)
        if None in sizes or getattr(call.module, "return_indices", False):
            return call.refuse("adaptive pooling that keeps a size (None) or returns indices")
        return {"size": call.compact(size)}

    return match


for kind in ("avg", "max"):
    OPS.append(
        Op(
            name=f"adaptive_{kind}pool",
            explain=_adaptive_explainer(kind),
            label=_adaptive_label(f"adaptive_{kind}pool"),
            summary=f"adaptive {kind} pooling to a fixed output size (nn.Adaptive{kind.title()}Pool2d)",
            args=AdaptiveArgs,
            shape=_adaptive_shape,
            extra_ops=lambda a, i, o: numel(i[0]),
            module=_build_adaptive(kind),
            from_torch=_adaptive_from_torch(kind),
            receptive_field=_adaptive_field,
            saved=_adaptive_max_saved if kind == "max" else _adaptive_avg_saved,
            family="pool",
        )
    )


def _global_shape(args, inputs: list[Shape]) -> Shape:
    return (feature_map(inputs, "global_avgpool")[0],)


def _global_function(args, inputs):
    from archspec.lower.runtime import global_avgpool

    return global_avgpool, {}


def _global_source(args, inputs, in_place):
    """Written as torchvision writes it: `self.avgpool = nn.AdaptiveAvgPool2d((1, 1))`, then flatten."""
    from archspec.ops.source import INPUTS, Call, Written

    return Written(module=Call("nn.AdaptiveAvgPool2d", ((1, 1),)), then=Call("torch.flatten", (INPUTS, 1)), name="avgpool")


def _explain_global_pool(ctx) -> None:
    _, height, width = ctx.in_shapes[0]
    eq = ctx.equation(f"{height}·{width}", height * width)
    ctx.line(ctx.msg("global_pool", eq=eq, cin=format_shape(ctx.in_shapes[0]), cout=format_shape(ctx.out)))


OPS.append(
    Op(
        name="global_avgpool",
        explain=_explain_global_pool,
        family="pool",
        saved=saves_nothing,  # a mean: its backward needs only the sizes
        summary="average over all positions, giving a (C,) vector (adaptive avg pool to 1 + flatten)",
        args=NoArgs,
        shape=_global_shape,
        extra_ops=lambda a, i, o: numel(i[0]),
        function=_global_function,
        source=_global_source,
    )
)
