"""Elementwise activations, softmax, dropout and identity: shape-preserving, parameter-free."""
from __future__ import annotations

from typing import Literal

from archspec.ops.common import Probability, format_shape, number_text
from archspec.ops.field import read_whole_along
from archspec.ops.registry import (
    NoArgs,
    Op,
    OpArgs,
    Saved,
    Shape,
    ShapeError,
    numel,
    saves_input,
    saves_nothing,
    saves_output,
)

OPS: list[Op] = []  # this module's entries, registered by archspec.ops.catalog


def _same_shape(args, inputs: list[Shape]) -> Shape:
    return inputs[0]


def _one_per_element(args, inputs, output) -> int:
    return numel(output)


def _explain_activation(ctx) -> None:
    ctx.line(ctx.msg("activation", op=ctx.node.op, shape=format_shape(ctx.out)))


def _activation(name: str, summary: str, args: type[OpArgs], function, aliases: tuple[str, ...] = (), saved=saves_input,
                in_place=None, label=None, from_torch=None, module=None) -> None:
    """Register an elementwise op lowered to a torch function (1 op per element in --all-ops).
    `saved`: relu, sigmoid and tanh keep their output for backward, the others their input.
    `in_place`: the op's in-place form (`Op.in_place_form`), when its backward needs only its result."""
    OPS.append(
        Op(
            name=name,
            explain=_explain_activation,
            summary=summary,
            args=args,
            shape=_same_shape,
            extra_ops=_one_per_element,
            function=function,
            aliases=aliases,
            saved=saved,
            in_place=(lambda a, i: True) if in_place else None,
            in_place_form=in_place or None,
            family="activation",
            label=label,
            source=_module_source(module, function) if module else None,
            from_torch=from_torch,
            traits=frozenset({"elementwise", "pass_through", "activation"}),
        )
    )


def _relu_(function, keywords):
    import torch

    return torch.relu_, keywords


def _inplace_keyword(function, keywords):
    return function, {**keywords, "inplace": True}


def _module_source(callee: str, function):
    """`export --format python` writes an activation as its module, with the function's keyword
    arguments, in place where the lowering runs it so (torchvision's `nn.ReLU(inplace=True)`)."""

    def source(args, inputs, in_place):
        from archspec.ops.source import module

        return module(callee, **function(args, inputs)[1], **({"inplace": True} if in_place else {}))

    return source


def _torch(path: str, keywords=lambda args: {}):
    """A function builder: `torch.<path>` (or `torch.nn.functional.<path>` for "F.<path>"),
    with keyword arguments taken from the op's args. `path` is archspec's own text, never a spec's."""

    def build(args, inputs):
        import torch
        import torch.nn.functional as F

        namespace = F if path.startswith("F.") else torch
        return getattr(namespace, path.removeprefix("F.")), keywords(args)

    return build


class LeakyReluArgs(OpArgs):
    negative_slope: float = 0.01  # the slope for negative inputs


class GeluArgs(OpArgs):
    approximate: Literal["none", "tanh"] = "none"  # `tanh`: GELU's tanh approximation (nn.GELU's approximate)


class SoftmaxArgs(OpArgs):
    dim: int = 0  # 0 = channels (the first dimension after the batch)


class DropoutArgs(OpArgs):
    p: Probability = 0.5  # in training, the probability of zeroing an element (dropout) or a sample's path (drop_path)


_activation("relu", "rectified linear unit max(x, 0)", NoArgs, _torch("relu"), saved=saves_output, in_place=_relu_, module="nn.ReLU",
            from_torch=lambda c: c.plain("nn.ReLU", "F.relu", "F.relu_", "torch.relu", "torch.relu_", "Tensor.relu", "Tensor.relu_"))
# relu6 stays out of place: torch's in-place hardtanh_ saves a clone of its input for backward
_activation("relu6", "min(max(x, 0), 6) (MobileNet)", NoArgs, _torch("F.relu6"), module="nn.ReLU6", from_torch=lambda c: c.plain("nn.ReLU6", "F.relu6"))
_activation(
    "leaky_relu",
    "max(x, 0) + slope * min(x, 0)",
    LeakyReluArgs,
    _torch("F.leaky_relu", lambda a: {"negative_slope": a.negative_slope}),
    in_place=_inplace_keyword,
    label=lambda a: f"leaky_relu {number_text(a.negative_slope)}",
    module="nn.LeakyReLU",
    from_torch=lambda c: ({"negative_slope": c.module.negative_slope} if c.is_("nn.LeakyReLU")
                          else {"negative_slope": c.arg(1, "negative_slope", 0.01)} if c.is_("F.leaky_relu") else None),
)
_activation("sigmoid", "logistic sigmoid", NoArgs, _torch("sigmoid"), saved=saves_output, module="nn.Sigmoid",
            from_torch=lambda c: c.plain("nn.Sigmoid", "torch.sigmoid", "F.sigmoid", "Tensor.sigmoid", "Tensor.sigmoid_"))
_activation("tanh", "hyperbolic tangent", NoArgs, _torch("tanh"), saved=saves_output, module="nn.Tanh",
            from_torch=lambda c: c.plain("nn.Tanh", "torch.tanh", "F.tanh", "Tensor.tanh", "Tensor.tanh_"))
_activation(
    "gelu",
    "Gaussian error linear unit",
    GeluArgs,
    _torch("F.gelu", lambda a: {"approximate": a.approximate}),
    module="nn.GELU",
    from_torch=lambda c: ({"approximate": c.module.approximate} if c.is_("nn.GELU")
                          else {"approximate": c.arg(1, "approximate", "none")} if c.is_("F.gelu") else None),
)
_activation("silu", "x * sigmoid(x) (swish, EfficientNet)", NoArgs, _torch("F.silu"), aliases=("swish",), module="nn.SiLU",
            from_torch=lambda c: c.plain("nn.SiLU", "F.silu"))
_activation("hardswish", "x * relu6(x + 3) / 6 (MobileNet v3)", NoArgs, _torch("F.hardswish"), module="nn.Hardswish",
            from_torch=lambda c: c.plain("nn.Hardswish", "F.hardswish"))
_activation("hardsigmoid", "relu6(x + 3) / 6", NoArgs, _torch("F.hardsigmoid"), module="nn.Hardsigmoid",
            from_torch=lambda c: c.plain("nn.Hardsigmoid", "F.hardsigmoid"))


def _softmax_shape(args: SoftmaxArgs, inputs: list[Shape]) -> Shape:
    shape = inputs[0]
    if not -len(shape) <= args.dim < len(shape):
        raise ShapeError(f"softmax dim {args.dim} is out of range for shape {format_shape(shape)}")
    return shape


def _softmax_from_torch(call):
    """torch counts dims with the batch, archspec without: dim 1 is archspec's 0."""
    if call.is_("nn.Softmax"):
        dim = call.module.dim
    elif call.is_("torch.softmax", "F.softmax", "Tensor.softmax"):
        dim = call.arg(1, "dim")
    else:
        return None
    if dim is None or dim == 0:
        return call.refuse("a softmax over the batch axis, or with an implicit dim")
    return {"dim": dim - 1 if dim > 0 else dim}


def _explain_softmax(ctx) -> None:
    ctx.line(ctx.msg("softmax_over", dim=ctx.args.dim, shape=format_shape(ctx.out)))


OPS.append(
    Op(
        name="softmax",
        explain=_explain_softmax,
        family="activation",
        traits=frozenset({"activation", "per_channel"}),
        saved=saves_output,
        summary="softmax along `dim` (0 = channels)",
        unit_map_args=lambda a: {"dim": 0},  # over a vector's features = over a C×1×1 map's channels
        args=SoftmaxArgs,
        shape=_softmax_shape,
        extra_ops=lambda a, i, o: 3 * numel(o),  # exp, sum, divide
        # dims count without the batch: shift non-negative ones past it, keep negative ones
        function=_torch("softmax", lambda a: {"dim": a.dim + 1 if a.dim >= 0 else a.dim}),
        # each output reads its own position, whole along `dim` when that axis holds positions
        receptive_field=lambda a, r, i, o, layouts: [read_whole_along(r, layouts[0], i[0], {a.dim % len(i[0])})],
        layout=lambda a, i, layouts: layouts[0],
        from_torch=_softmax_from_torch,
    )
)


def _build_dropout(args: DropoutArgs, inputs: list[Shape]):
    import torch.nn as nn

    return nn.Dropout(args.p)


def _dropout_saved(args: DropoutArgs, inputs: list[Shape], output: Shape) -> Saved:
    """The mask; at p = 0 torch returns the input itself and saves nothing."""
    return Saved(inputs=(), extra=((numel(output), "bool", True),) if args.p > 0 else ())


def _explain_dropout(ctx) -> None:
    ctx.line(ctx.msg("dropout_rate", p=ctx.args.p, shape=format_shape(ctx.out)))


OPS.append(
    Op(
        name="dropout",
        explain=_explain_dropout,
        label=lambda a: f"dropout {number_text(a.p)}",
        family="other",
        traits=frozenset({"elementwise", "pass_through", "removable", "stochastic"}),
        saved=_dropout_saved,
        summary="dropout with probability p during training (nn.Dropout)",
        args=DropoutArgs,
        shape=_same_shape,
        module=_build_dropout,
        from_torch=lambda c: {"p": c.module.p} if c.is_("nn.Dropout") else {"p": c.arg(1, "p", 0.5)} if c.is_("F.dropout") else None,
    )
)


def _build_drop_path(args: DropoutArgs, inputs: list[Shape]):
    from archspec.lower.runtime import DropPath

    return DropPath(args.p)


def _drop_path_from_torch(call):
    """torchvision's StochasticDepth(p, "row") and timm's DropPath (scaled by 1 / (1 - p), as ours)."""
    if call.is_("torchvision.ops.stochastic_depth.StochasticDepth"):
        return {"p": call.module.p} if call.module.mode == "row" else call.refuse("StochasticDepth mode 'batch'")
    if call.is_("timm.layers.drop.DropPath"):
        return {"p": call.module.drop_prob} if call.module.scale_by_keep else call.refuse("DropPath without scale_by_keep")
    return None


def _explain_drop_path(ctx) -> None:
    ctx.line(ctx.msg("drop_path_rate", p=ctx.args.p, shape=format_shape(ctx.out)))


OPS.append(
    Op(
        name="drop_path",
        explain=_explain_drop_path,
        label=lambda a: f"drop_path {number_text(a.p)}",
        family="other",
        traits=frozenset({"pass_through", "removable", "stochastic"}),
        saved=lambda a, i, o: Saved(inputs=(), extra=((1, "act", True),)),  # one keep/drop per sample
        summary="stochastic depth: drop a residual branch per sample with probability p (EfficientNet)",
        args=DropoutArgs,
        shape=_same_shape,
        module=_build_drop_path,
        aliases=("stochastic_depth",),
        from_torch=_drop_path_from_torch,
    )
)


def _identity(args, inputs):
    from archspec.lower.runtime import identity

    return identity, {}


def _explain_identity(ctx) -> None:
    ctx.line(ctx.msg("identity", shape=format_shape(ctx.out)))


OPS.append(
    Op(name="identity", explain=_explain_identity, summary="passes its input through", args=NoArgs, shape=_same_shape, function=_identity, saved=saves_nothing,
       family="other", traits=frozenset({"elementwise", "pass_through", "removable"}),
       from_torch=lambda c: c.plain("nn.Identity", "Tensor.contiguous", "Tensor.clone", "Tensor.detach"))
)


_activation("mish", "x * tanh(softplus(x)) (YOLOv4)", NoArgs, _torch("F.mish"), module="nn.Mish", from_torch=lambda c: c.plain("nn.Mish", "F.mish"))
