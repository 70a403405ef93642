"""Fully connected layer: `linear` (nn.Linear, applied to the last dimension).

A vector (F,) gives (out,); rows (..., F) give (..., out) as nn.Linear does, the same weights
applied to every row (Fast R-CNN's fc6 on (K, C·7·7): one row per RoI). A (C, H, W) feature map
is refused: mixing only its width is almost always a forgotten `flatten`. A non-map output has no
spatial positions of its own, so its receptive field is global (archspec.passes.receptive_field)."""
from __future__ import annotations

from archspec.ops.common import PositiveInt, format_shape
from archspec.ops.registry import Op, OpArgs, Shape, ShapeError, numel
from archspec.ops.transfer import linear_as_conv, scale_output_rows

OPS: list[Op] = []  # this module's entries, registered by archspec.ops.catalog


class LinearArgs(OpArgs):
    out: PositiveInt
    bias: bool = True


def _shape(args: LinearArgs, inputs: list[Shape]) -> Shape:
    (shape,) = inputs
    # a rank-3 value is a (C, H, W) map in the IR: linear there is nearly always a missing flatten
    if len(shape) == 3:
        raise ShapeError(
            f"linear needs a vector (F,) or rows (..., F) but gets the feature map {format_shape(shape)}; "
            "add `flatten` or `global_avgpool` before it"
        )
    return (*shape[:-1], args.out)


def _params(args: LinearArgs, inputs: list[Shape]) -> dict[str, Shape]:
    tensors = {"weight": (args.out, inputs[0][-1])}
    if args.bias:
        tensors["bias"] = (args.out,)
    return tensors


def _build(args: LinearArgs, inputs: list[Shape]):
    import torch.nn as nn

    return nn.Linear(inputs[0][-1], args.out, bias=args.bias)


def _explain_linear(ctx) -> None:
    """n_in·n_out weights (+ n_out biases) and n_in·n_out MACs, times the rows for an input of
    rank >= 2 (the same layer applied to each row)."""
    n_in, n_out = ctx.in_shapes[0][-1], ctx.out[-1]
    rows = numel(ctx.in_shapes[0][:-1])
    params = ctx.stats.figures.params
    ctx.line(ctx.msg("linear_shape", nin=n_in, nout=n_out))
    if ctx.owns_weights and ctx.args.bias:
        ctx.figure_line("label.params", "n_in·n_out + n_out", ctx.equation(f"{n_in}·{n_out} + {n_out}", params))
    elif ctx.owns_weights:
        ctx.figure_line("label.params", "n_in·n_out", ctx.equation(f"{n_in}·{n_out}", params), ctx.msg("no_bias"))
    if len(ctx.in_shapes[0]) == 1:
        formula, expression = ctx.batched("n_in·n_out", f"{n_in}·{n_out}")
    else:
        formula, expression = ctx.batched("rows·n_in·n_out", f"{rows}·{n_in}·{n_out}")
    ctx.figure_line("label.macs", formula, ctx.equation(expression, ctx.stats.figures.macs), tag="macs")


OPS.append(
    Op(
        name="linear",
        explain=_explain_linear,
        label=lambda a: f"linear {a.out}",
        family="linear",
        traits=frozenset({"weighted"}),
        summary="fully connected layer (nn.Linear) on the last dimension: (F,) -> (out,), rows (..., F) -> (..., out); not on a (C, H, W) map",
        fold_affine=scale_output_rows,
        convolutional=linear_as_conv,
        args=LinearArgs,
        shape=_shape,
        params=_params,
        macs=lambda a, i, o: numel(o) * i[0][-1],  # in_features MACs per output, every row
        extra_ops=lambda a, i, o: numel(o) if a.bias else 0,
        module=_build,
        fresh_output=True,
        aliases=("fc",),
    )
)
