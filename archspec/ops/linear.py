"""Fully connected layer: `linear` (nn.Linear, applied to the last dimension)."""
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
    if len(shape) != 1:
        raise ShapeError(
            f"linear needs a vector but gets shape {format_shape(shape)}; add `flatten` or `global_avgpool` before it"
        )
    return (args.out,)


def _params(args: LinearArgs, inputs: list[Shape]) -> dict[str, Shape]:
    tensors = {"weight": (args.out, inputs[0][-1])}
    if args.bias:
        tensors["bias"] = (args.out,)
    return tensors


def _build(args: LinearArgs, inputs: list[Shape]):
    import torch.nn as nn

    return nn.Linear(inputs[0][-1], args.out, bias=args.bias)


def _explain_linear(ctx) -> None:
    """n_in·n_out weights (+ n_out biases) and n_in·n_out MACs."""
    n_in, n_out = ctx.in_shapes[0][-1], ctx.out[-1]
    params = ctx.stats.figures.params
    ctx.line(ctx.msg("linear_shape", nin=n_in, nout=n_out))
    if ctx.owns_weights and ctx.args.bias:
        ctx.figure_line("label.params", "n_in·n_out + n_out", ctx.equation(f"{n_in}·{n_out} + {n_out}", params))
    elif ctx.owns_weights:
        ctx.figure_line("label.params", "n_in·n_out", ctx.equation(f"{n_in}·{n_out}", params), ctx.msg("no_bias"))
    formula, expression = ctx.batched("n_in·n_out", f"{n_in}·{n_out}")
    ctx.figure_line("label.macs", formula, ctx.equation(expression, ctx.stats.figures.macs), tag="macs")


OPS.append(
    Op(
        name="linear",
        explain=_explain_linear,
        label=lambda a: f"linear {a.out}",
        family="linear",
        traits=frozenset({"weighted"}),
        summary="fully connected layer (nn.Linear) on a vector",
        fold_affine=scale_output_rows,
        convolutional=linear_as_conv,
        args=LinearArgs,
        shape=_shape,
        params=_params,
        macs=lambda a, i, o: numel(o) * i[0][-1],  # in_features MACs per output
        extra_ops=lambda a, i, o: numel(o) if a.bias else 0,
        module=_build,
        fresh_output=True,
        aliases=("fc",),
    )
)
