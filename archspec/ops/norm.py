"""Normalisation: `bn`, `groupnorm`, `layernorm`, `lrn` (AlexNet's local response norm)."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field

from archspec.ops.common import PositiveInt, feature_map, format_shape
from archspec.ops.field import read_whole_along
from archspec.ops.registry import Op, OpArgs, Saved, Shape, ShapeError, numel
from archspec.ops.transfer import batchnorm_affine

OPS: list[Op] = []  # this module's entries, registered by archspec.ops.catalog

Epsilon = Annotated[float, Field(gt=0.0, le=1.0)]


def _same_shape(args, inputs: list[Shape]) -> Shape:
    return inputs[0]


def _two_per_element(args, inputs, output) -> int:
    # inference form: one scale and one shift per element
    return 2 * numel(output)


# --- batch norm ------------------------------------------------------------------------------
class BatchNormArgs(OpArgs):
    eps: Epsilon = 1e-5  # added to the variance, for stability
    momentum: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1  # weight of each batch in the running statistics
    affine: bool = True  # a learned scale (gamma) and shift (beta) per channel
    track_running_stats: bool = True  # keep running mean and variance, used in eval


def _bn_shape(args: BatchNormArgs, inputs: list[Shape]) -> Shape:
    (shape,) = inputs
    if len(shape) not in (1, 3):
        raise ShapeError(f"bn needs (C, H, W) or (C,) but gets {format_shape(shape)}")
    return shape


def _bn_params(args: BatchNormArgs, inputs: list[Shape]) -> dict[str, Shape]:
    channels = inputs[0][0]
    return {"weight": (channels,), "bias": (channels,)} if args.affine else {}


def _bn_buffers(args: BatchNormArgs, inputs: list[Shape]) -> dict[str, Shape]:
    channels = inputs[0][0]
    if not args.track_running_stats:
        return {}
    return {"running_mean": (channels,), "running_var": (channels,), "num_batches_tracked": ()}


def _bn_from_torch(call):
    """nn.BatchNorm2d on a map, nn.BatchNorm1d on a vector (the rank is the input's)."""
    if call.is_("F.batch_norm") and call.tensors:  # a module's own F.batch_norm (timm's BatchNormAct2d)
        found = {"eps": call.arg(7, "eps", 1e-5), "momentum": call.arg(6, "momentum", 0.1),
                 "affine": "weight" in call.tensors, "track_running_stats": "running_mean" in call.tensors}
    elif call.is_("nn.BatchNorm2d", "nn.BatchNorm1d"):
        norm = call.module
        found = {"eps": norm.eps, "momentum": norm.momentum, "affine": norm.affine, "track_running_stats": norm.track_running_stats}
    else:
        return None
    if found["momentum"] is None:
        return call.refuse("BatchNorm with momentum=None (a cumulative average)")
    return found


def _build_bn(args: BatchNormArgs, inputs: list[Shape]):
    import torch.nn as nn

    cls = nn.BatchNorm2d if len(inputs[0]) == 3 else nn.BatchNorm1d
    return cls(
        inputs[0][0],
        eps=args.eps,
        momentum=args.momentum,
        affine=args.affine,
        track_running_stats=args.track_running_stats,
    )


def _explain_bn(ctx) -> None:
    """Two parameters per channel (scale, shift) and 2·C + 1 buffers (running statistics)."""
    channels = ctx.in_shapes[0][0]
    ctx.line(ctx.msg("bn_shape", shape=format_shape(ctx.out)))
    if not ctx.owns_weights:
        return
    if ctx.stats.tensors:
        ctx.line(ctx.msg("bn_params", eq=ctx.equation(f"2·{channels}", ctx.stats.figures.params)), "params")
    if ctx.stats.buffer_tensors:
        ctx.line(ctx.msg("bn_buffers", eq=ctx.equation(f"2·{channels} + 1", ctx.stats.figures.buffers)), "params")


OPS.append(
    Op(
        name="bn",
        explain=_explain_bn,
        family="norm",
        traits=frozenset({"normalisation", "pass_through", "per_channel"}),
        # input, plus the batch mean and inverse std per channel
        saved=lambda a, i, o: Saved(extra=((2 * i[0][0], "fp32", False),)),
        summary="batch normalisation over channels (nn.BatchNorm2d, or 1d on vectors)",
        affine_at_inference=batchnorm_affine,
        args=BatchNormArgs,
        shape=_bn_shape,
        params=_bn_params,
        buffers=_bn_buffers,
        extra_ops=_two_per_element,
        module=_build_bn,
        from_torch=_bn_from_torch,
        fresh_output=True,
        aliases=("batchnorm",),
    )
)


# --- group norm ------------------------------------------------------------------------------
class GroupNormArgs(OpArgs):
    groups: PositiveInt  # channel groups normalised together (nn.GroupNorm's num_groups)
    eps: Epsilon = 1e-5
    affine: bool = True


def _gn_shape(args: GroupNormArgs, inputs: list[Shape]) -> Shape:
    channels = feature_map(inputs, "groupnorm")[0]
    if channels % args.groups:
        raise ShapeError(f"groups={args.groups} must divide the channels ({channels})")
    return inputs[0]


def _build_gn(args: GroupNormArgs, inputs: list[Shape]):
    import torch.nn as nn

    return nn.GroupNorm(args.groups, inputs[0][0], eps=args.eps, affine=args.affine)


def _explain_groupnorm(ctx) -> None:
    ctx.line(ctx.msg("groupnorm_groups", g=ctx.args.groups, shape=format_shape(ctx.out)))
    ctx.tensor_params()


OPS.append(
    Op(
        name="groupnorm",
        explain=_explain_groupnorm,
        label=lambda a: f"groupnorm {a.groups}",
        family="norm",
        traits=frozenset({"normalisation", "pass_through"}),
        saved=lambda a, i, o: Saved(extra=((2 * a.groups, "fp32", True),)),
        summary="group normalisation (nn.GroupNorm)",
        args=GroupNormArgs,
        shape=_gn_shape,
        params=lambda a, i: {"weight": (i[0][0],), "bias": (i[0][0],)} if a.affine else {},
        extra_ops=_two_per_element,
        module=_build_gn,
        from_torch=lambda c: ({"groups": c.module.num_groups, "eps": c.module.eps, "affine": c.module.affine}
                              if c.is_("nn.GroupNorm") else None),
        fresh_output=True,
    )
)


# --- layer norm ------------------------------------------------------------------------------
class LayerNormArgs(OpArgs):
    # which axes are normalised together: `last` (nn.LayerNorm): the last `dims` axes; `channels`:
    # the C of a (C, H, W) map at each position (torchvision's LayerNorm2d in ConvNeXt). On a
    # rank-3 value with dims 1, `over` must be said: the last axis alone is the W of a (C, H, W) map
    over: Optional[Literal["last", "channels"]] = None
    dims: Optional[PositiveInt] = None  # with `over: last`: how many trailing axes (default 1)
    eps: Epsilon = 1e-5
    affine: bool = True


def _ln_axes(args: LayerNormArgs, inputs: list[Shape]) -> tuple[int, ...]:
    """The axes (without the batch) normalised together, or a ShapeError saying what to write."""
    shape = inputs[0]
    # only the last axis alone of a rank-3 value is ambiguous: the W of (C, H, W) or the C of (H, W, C)
    over = args.over or ("last" if len(shape) != 3 or (args.dims or 1) > 1 else None)
    if over is None:
        raise ShapeError(
            f"layernorm on the rank-3 value {format_shape(shape)} needs `over`: `over: channels` normalises the "
            "channels of a (C, H, W) map at each position; `over: last` the last `dims` axes (the C of a "
            "channels-last (H, W, C) map, or with `dims: 3` all of C, H, W)",
            hint="a bare layernorm there would normalise the width W of a (C, H, W) map",
        )
    if over == "channels":
        if len(shape) != 3 or args.dims is not None:
            raise ShapeError(f"layernorm `over: channels` takes a (C, H, W) map and no `dims`, not {format_shape(shape)}")
        return (0,)
    dims = args.dims or 1
    if dims > len(shape):
        raise ShapeError(f"dims={dims} but the input {format_shape(shape)} has only {len(shape)} dimensions")
    return tuple(range(len(shape) - dims, len(shape)))


def _ln_normalized(args: LayerNormArgs, inputs: list[Shape]) -> Shape:
    return tuple(inputs[0][axis] for axis in _ln_axes(args, inputs))


def _ln_from_torch(call):
    """nn.LayerNorm over the last axes; torchvision's and timm's LayerNorm2d over a map's channels."""
    norm = call.module
    if call.is_("torchvision.models.convnext.LayerNorm2d", "timm.layers.norm.LayerNorm2d"):
        return {"over": "channels", "eps": norm.eps, "affine": norm.elementwise_affine}
    if call.is_("F.layer_norm") and call.tensors:  # a module's own F.layer_norm (timm's LayerNorm)
        shape = call.arg(1, "normalized_shape")
        dims, eps, affine = len(shape) if isinstance(shape, (tuple, list)) else 1, call.arg(4, "eps", 1e-5), "weight" in call.tensors
    elif call.is_("nn.LayerNorm"):
        dims, eps, affine = len(norm.normalized_shape), norm.eps, norm.elementwise_affine
    else:
        return None
    found = {"dims": dims} if dims > 1 else {}
    if len(call.inputs[0]) == 3 and dims == 1:
        found["over"] = "last"
    return {**found, "eps": eps, "affine": affine}


def _build_ln(args: LayerNormArgs, inputs: list[Shape]):
    import torch.nn as nn

    if args.over == "channels":
        from archspec.lower.layers import ChannelsLayerNorm

        return ChannelsLayerNorm(inputs[0][0], eps=args.eps, elementwise_affine=args.affine)
    return nn.LayerNorm(list(_ln_normalized(args, inputs)), eps=args.eps, elementwise_affine=args.affine)


def _explain_layernorm(ctx) -> None:
    if ctx.args.over == "channels":
        ctx.line(ctx.msg("layernorm_channels", c=ctx.out[0], shape=format_shape(ctx.out)))
    else:
        ctx.line(ctx.msg("layernorm_dims", dims=len(_ln_axes(ctx.args, ctx.in_shapes)), shape=format_shape(ctx.out)))
    ctx.tensor_params()


def _ln_label(args: LayerNormArgs) -> str:
    return "layernorm channels" if args.over == "channels" else "layernorm"


OPS.append(
    Op(
        name="layernorm",
        explain=_explain_layernorm,
        label=_ln_label,
        family="norm",
        traits=frozenset({"normalisation", "pass_through"}),
        summary="layer normalisation (nn.LayerNorm): `over: last` the last `dims` axes; `over: channels` "
        "the C of a (C, H, W) map at each position (LayerNorm2d); on a rank-3 value with dims 1 `over` is required",
        args=LayerNormArgs,
        shape=lambda a, i: (_ln_normalized(a, i), i[0])[1],
        params=lambda a, i: (
            {"weight": _ln_normalized(a, i), "bias": _ln_normalized(a, i)} if a.affine else {}
        ),
        extra_ops=_two_per_element,
        module=_build_ln,
        from_torch=_ln_from_torch,
        fresh_output=True,
        # each output reads its own position, whole along a normalised axis that holds positions
        receptive_field=lambda a, r, i, o, layouts: [read_whole_along(r, layouts[0], i[0], set(_ln_axes(a, i)))],
        layout=lambda a, i, layouts: layouts[0],
    )
)


# --- local response norm (AlexNet) -----------------------------------------------------------
class LocalResponseNormArgs(OpArgs):
    size: PositiveInt = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


def _build_lrn(args: LocalResponseNormArgs, inputs: list[Shape]):
    import torch.nn as nn

    return nn.LocalResponseNorm(args.size, alpha=args.alpha, beta=args.beta, k=args.k)


def _explain_lrn(ctx) -> None:
    ctx.line(ctx.msg("lrn_size", size=ctx.args.size, shape=format_shape(ctx.out)))


OPS.append(
    Op(
        name="lrn",
        explain=_explain_lrn,
        family="norm",
        traits=frozenset({"normalisation", "pass_through"}),
        # composite in PyTorch: x, the padded squares, the divisor and its power (about 3 outputs)
        saved=lambda a, i, o: Saved(extra=((3 * numel(o), "act", True),)),
        summary="local response normalisation across channels (AlexNet, nn.LocalResponseNorm)",
        args=LocalResponseNormArgs,
        shape=lambda a, i: (feature_map(i, "lrn"), i[0])[1],
        # sum of `size` squares, then scale, power and divide
        extra_ops=lambda a, i, o: (a.size + 3) * numel(o),
        module=_build_lrn,
        from_torch=lambda c: ({"size": c.module.size, "alpha": c.module.alpha, "beta": c.module.beta, "k": c.module.k}
                              if c.is_("nn.LocalResponseNorm") else None),
    )
)
