"""Fully connected layer: `linear` (nn.Linear, applied to the last axis of any shape).

A vector (F,) gives (out,); any other shape (..., F) gives (..., out) as nn.Linear does, the same
weights applied along the last axis at every other position: rows (Fast R-CNN's fc6 on
(K, C·7·7), one row per RoI), tokens (T, C), or a channels-last map (H, W, C) after a `permute`
(ConvNeXt's MLP). On a (C, H, W) map that would mix the width: the explanation says so, and the
hint is to `flatten` (a classifier) or `permute` to channels-last (a per-position MLP). A BN
folds into a linear only on a vector (trait `last_axis`). Its receptive field: a vector output
is global; where the last axis holds channels (channels-last) each position reads its own; where
it holds positions (the W of a (C, H, W) map) each output reads its whole row."""
from __future__ import annotations

import math

from archspec.ops.common import PositiveInt
from archspec.ops.field import read_whole_along
from archspec.ops.registry import Op, OpArgs, Shape, numel
from archspec.ops.transfer import linear_as_conv, scale_output_rows

OPS: list[Op] = []  # this module's entries, registered by archspec.ops.catalog


class LinearArgs(OpArgs):
    out: PositiveInt  # output features (nn.Linear's out_features)
    bias: bool = True  # a learned bias


def _shape(args: LinearArgs, inputs: list[Shape]) -> Shape:
    (shape,) = inputs
    return (*shape[:-1], args.out)


def _params(args: LinearArgs, inputs: list[Shape]) -> dict[str, Shape]:
    tensors = {"weight": (args.out, inputs[0][-1])}
    if args.bias:
        tensors["bias"] = (args.out,)
    return tensors


def _build(args: LinearArgs, inputs: list[Shape]):
    import torch.nn as nn

    return nn.Linear(inputs[0][-1], args.out, bias=args.bias)


def _last_axis_field(args: LinearArgs, ranges, inputs: list[Shape], output: Shape, layouts) -> list:
    return [read_whole_along(ranges, layouts[0], inputs[0], {len(inputs[0]) - 1})]


def _explain_linear(ctx) -> None:
    """n_in·n_out weights (+ n_out biases) and n_in·n_out MACs, times the rows for an input of
    rank >= 2 (the same layer applied to each row)."""
    n_in, n_out = ctx.in_shapes[0][-1], ctx.out[-1]
    rows = numel(ctx.in_shapes[0][:-1])
    params = ctx.stats.figures.params
    ctx.line(ctx.msg("linear_shape", nin=n_in, nout=n_out))
    if len(ctx.in_shapes[0]) == 3:  # (H, W, C) channels-last, or the width of a (C, H, W) map
        ctx.line(ctx.msg("linear_last_axis", n=n_in, rows=ctx.num(rows)))
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
        gemm_dims=lambda args, inputs, batch: (batch * math.prod(inputs[0][:-1]), inputs[0][-1], args.out),  # rows, in, out
        label=lambda a: f"linear {a.out}",
        family="linear",
        traits=frozenset({"weighted", "last_axis"}),
        summary="fully connected layer (nn.Linear) on the last axis: (F,) -> (out,), (..., F) -> (..., out): rows, tokens, a channels-last (H, W, C) map",
        fold_affine=scale_output_rows,
        convolutional=linear_as_conv,
        args=LinearArgs,
        shape=_shape,
        params=_params,
        macs=lambda a, i, o: numel(o) * i[0][-1],  # in_features MACs per output, every row
        extra_ops=lambda a, i, o: numel(o) if a.bias else 0,
        module=_build,
        from_torch=lambda c: ({"out": c.module.out_features, "bias": c.module.bias is not None} if c.is_("nn.Linear") else
                              {"out": c.tensors["weight"][0], "bias": "bias" in c.tensors}  # a module's own F.linear (timm's Linear)
                              if c.is_("F.linear") and "weight" in c.tensors else None),
        fresh_output=True,
        receptive_field=_last_axis_field,
        layout=lambda a, i, layouts: layouts[0],
        aliases=("fc",),
    )
)
