"""The explanations of the data-moving ops of archspec.ops.reshape (`flatten`, `reshape`,
`upsample`, `crop`, `pad`, `channel_shuffle`; their entries' `explain` rules, kept apart from
that module for its length).

Each rule takes the explain context (archspec.explain.context.ExplainContext). Nothing here
imports archspec.explain or archspec.ops.reshape, so no import comes back to the op modules.
"""
from __future__ import annotations

from archspec.ops.common import format_shape
from archspec.ops.registry import numel


def explain_flatten(ctx) -> None:
    expression = "·".join(str(s) for s in ctx.in_shapes[0])
    ctx.line(ctx.msg("flatten_size", eq=ctx.equation(expression, ctx.out[0])))


def explain_reshape(ctx) -> None:
    ctx.line(ctx.msg("reshape", n=ctx.num(numel(ctx.in_shapes[0])), shape=format_shape(ctx.out)))


def explain_upsample(ctx) -> None:
    """By a scale: floor(n·scale) per axis; to a size, or to a second input's size."""
    args = ctx.args
    cin, cout = format_shape(ctx.in_shapes[0]), format_shape(ctx.out)
    hw = f"{ctx.out[1]}x{ctx.out[2]}"
    if args.scale is not None:
        for axis, (n, out) in ctx.per_axis(list(zip(ctx.in_shapes[0][1:], ctx.out[1:]))):
            eq = ctx.identity(f"{out} = floor({n}·{args.scale})")
            ctx.line(ctx.msg("upsample_scale", mode=args.mode, scale=args.scale, axes=ctx.msg(f"axis.{axis}"), eq=eq))
            ctx.set_axis_figure("out", axis, out)
    elif args.size is not None:
        ctx.line(ctx.msg("upsample_size", mode=args.mode, hw=hw, cin=cin, cout=cout))
    else:
        ctx.line(ctx.msg("upsample_match", mode=args.mode, other=ctx.node.inputs[1], hw=hw, cin=cin, cout=cout))


def explain_crop(ctx) -> None:
    cin, cout = format_shape(ctx.in_shapes[0]), format_shape(ctx.out)
    if ctx.args.size is None:
        ctx.line(ctx.msg("crop_match", other=ctx.node.inputs[1], cin=cin, cout=cout))
    else:
        ctx.line(ctx.msg("crop", cin=cin, cout=cout))


def pad_explainer(amounts):
    """The rule of `pad`, given the op's own `amounts(args, inputs)` -> F.pad's (left, right,
    top, bottom): n + before + after per axis."""

    def explain_pad(ctx) -> None:
        _, height, width = ctx.in_shapes[0]
        _, out_h, out_w = ctx.out
        left, right, top, bottom = amounts(ctx.args, ctx.in_shapes)
        for axis, (n, before, after, out) in ctx.per_axis([(height, top, bottom, out_h), (width, left, right, out_w)]):
            eq = ctx.identity(f"{out} = {n} + {before} + {after}")
            ctx.line(ctx.msg("pad_size", axes=ctx.msg(f"axis.{axis}"), eq=eq))
            ctx.set_axis_figure("out", axis, out)

    return explain_pad


def explain_channel_shuffle(ctx) -> None:
    channels, groups = ctx.out[0], ctx.args.groups
    ctx.line(ctx.msg("channel_shuffle_groups", c=channels, g=groups, per=channels // groups))
