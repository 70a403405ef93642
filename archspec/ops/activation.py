"""Elementwise activations, softmax, dropout and identity: shape-preserving, parameter-free."""
from __future__ import annotations

from typing import Literal

from archspec.ops.common import Probability, format_shape, number_text
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
                in_place=None, label=None) -> None:
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
            traits=frozenset({"elementwise", "pass_through", "activation"}),
        )
    )


def _relu_(function, keywords):
    import torch

    return torch.relu_, keywords


def _inplace_keyword(function, keywords):
    return function, {**keywords, "inplace": True}


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
    negative_slope: float = 0.01


class GeluArgs(OpArgs):
    approximate: Literal["none", "tanh"] = "none"


class SoftmaxArgs(OpArgs):
    dim: int = 0  # 0 = channels (the first dimension after the batch)


class DropoutArgs(OpArgs):
    p: Probability = 0.5


_activation("relu", "rectified linear unit max(x, 0)", NoArgs, _torch("relu"), saved=saves_output, in_place=_relu_)
# relu6 stays out of place: torch's in-place hardtanh_ saves a clone of its input for backward
_activation("relu6", "min(max(x, 0), 6) (MobileNet)", NoArgs, _torch("F.relu6"))
_activation(
    "leaky_relu",
    "max(x, 0) + slope * min(x, 0)",
    LeakyReluArgs,
    _torch("F.leaky_relu", lambda a: {"negative_slope": a.negative_slope}),
    in_place=_inplace_keyword,
    label=lambda a: f"leaky_relu {number_text(a.negative_slope)}",
)
_activation("sigmoid", "logistic sigmoid", NoArgs, _torch("sigmoid"), saved=saves_output)
_activation("tanh", "hyperbolic tangent", NoArgs, _torch("tanh"), saved=saves_output)
_activation(
    "gelu",
    "Gaussian error linear unit",
    GeluArgs,
    _torch("F.gelu", lambda a: {"approximate": a.approximate}),
)
_activation("silu", "x * sigmoid(x) (swish, EfficientNet)", NoArgs, _torch("F.silu"), aliases=("swish",))
_activation("hardswish", "x * relu6(x + 3) / 6 (MobileNet v3)", NoArgs, _torch("F.hardswish"))
_activation("hardsigmoid", "relu6(x + 3) / 6", NoArgs, _torch("F.hardsigmoid"))


def _softmax_shape(args: SoftmaxArgs, inputs: list[Shape]) -> Shape:
    shape = inputs[0]
    if not -len(shape) <= args.dim < len(shape):
        raise ShapeError(f"softmax dim {args.dim} is out of range for shape {format_shape(shape)}")
    return shape


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
    )
)


def _build_drop_path(args: DropoutArgs, inputs: list[Shape]):
    from archspec.lower.runtime import DropPath

    return DropPath(args.p)


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
    )
)


def _identity(args, inputs):
    from archspec.lower.runtime import identity

    return identity, {}


def _explain_identity(ctx) -> None:
    ctx.line(ctx.msg("identity", shape=format_shape(ctx.out)))


OPS.append(
    Op(name="identity", explain=_explain_identity, summary="passes its input through", args=NoArgs, shape=_same_shape, function=_identity, saved=saves_nothing,
       family="other", traits=frozenset({"elementwise", "pass_through", "removable"}))
)


_activation("mish", "x * tanh(softplus(x)) (YOLOv4)", NoArgs, _torch("F.mish"))
