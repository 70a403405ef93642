"""Ops that move or resize data without weights: `flatten`, `upsample`, `crop`, `pad`,
`channel_shuffle`. Ops that can take a second input use its spatial size as their target."""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field
from typing_extensions import Annotated

from archspec.ops.common import IntPair, NonNegativeInt, PositiveInt, feature_map, format_shape, number_text, pair, pair_text
from archspec.ops.field import WHOLE, reordered_layout, resized_ranges, shifted_ranges
from archspec.ops.source import INPUTS, Call, Written
from archspec.ops.registry import NoArgs, Op, OpArgs, Shape, ShapeError, numel, saves_nothing
from archspec.ops import reshape_torch
from archspec.ops.reshape_explain import (explain_channel_shuffle, explain_crop, explain_flatten, explain_reshape,
                                          explain_upsample, pad_explainer)

OPS: list[Op] = []  # this module's entries, registered by archspec.ops.catalog


def _function(name: str, keywords=lambda args, inputs: {}):
    """A function builder for archspec.lower.runtime.<name> (archspec's own helper, never a spec's)."""

    def build(args, inputs):
        from archspec.lower import runtime

        return getattr(runtime, name), keywords(args, inputs)

    return build


OPS.append(
    Op(
        name="flatten",
        explain=explain_flatten,
        family="other",
        saved=saves_nothing,
        summary="flatten everything after the batch dimension into a vector",
        traits=frozenset({"flattens"}),
        args=NoArgs,
        shape=lambda a, i: (numel(i[0]),),
        function=_function("flatten"),
        source=lambda a, i, in_place: Written(then=Call("torch.flatten", (INPUTS, 1))),
        from_torch=reshape_torch.flatten_from_torch,
    )
)


class ReshapeArgs(OpArgs):
    shape: list[int]  # without the batch; one entry may be -1 (inferred)


def _reshape_shape(args: ReshapeArgs, inputs: list[Shape]) -> Shape:
    total = numel(inputs[0])
    unknown = [i for i, s in enumerate(args.shape) if s == -1]
    if len(unknown) > 1 or any(s < 1 and s != -1 for s in args.shape) or not args.shape:
        raise ShapeError(f"reshape `shape` takes positive sizes and at most one -1, got {args.shape}")
    known = numel([s for s in args.shape if s != -1])
    if (total % known) if unknown else (known != total):
        raise ShapeError(f"cannot reshape {format_shape(inputs[0])} ({total} elements) to {args.shape}")
    return tuple(total // known if s == -1 else s for s in args.shape)


def _reshape_field(args: ReshapeArgs, ranges, inputs: list[Shape], output: Shape) -> list:
    """A reshape regroups the elements in memory order, so one output position gathers elements
    from rows (or columns) far apart: its field is the whole input map, a global field (unless
    the shape is unchanged)."""
    return [ranges if inputs[0] == output else WHOLE]


OPS.append(
    Op(
        name="reshape",
        explain=explain_reshape,
        family="other",
        saved=saves_nothing,
        summary="reshape everything after the batch (e.g. YOLO's 1470 -> 30x7x7)",
        args=ReshapeArgs,
        shape=_reshape_shape,
        function=_function("reshape", lambda a, i: {"shape": _reshape_shape(a, i)}),
        from_torch=reshape_torch.reshape_from_torch,
        receptive_field=_reshape_field,
        traits=frozenset({"view"}),
    )
)


# --- upsample ---------------------------------------------------------------------------------
class UpsampleArgs(OpArgs):
    scale: Optional[Annotated[float, Field(gt=0)]] = None  # output size = input size x scale (give scale or size)
    size: Optional[IntPair] = None  # output size: s, or [h, w]
    mode: Literal["nearest", "bilinear", "bicubic"] = "nearest"  # interpolation
    align_corners: Optional[bool] = None  # bilinear and bicubic: F.interpolate's align_corners


def _target_from_second_input(inputs: list[Shape], op: str) -> tuple[int, int] | None:
    if len(inputs) < 2:
        return None
    if len(inputs[1]) != 3:
        raise ShapeError(f"{op}'s second input gives the target size and must be (C, H, W), not {format_shape(inputs[1])}")
    return inputs[1][1], inputs[1][2]


def _upsample_size(args: UpsampleArgs, inputs: list[Shape]) -> tuple[int, int]:
    channels, height, width = feature_map(inputs, "upsample")
    chosen = [x is not None for x in (args.scale, args.size, _target_from_second_input(inputs, "upsample"))]
    if sum(chosen) != 1:
        raise ShapeError("upsample needs exactly one of `scale`, `size` or a second input whose size to match")
    if args.scale is not None:
        size = (int(height * args.scale), int(width * args.scale))  # PyTorch floors
    elif args.size is not None:
        size = pair(args.size)
    else:
        size = _target_from_second_input(inputs, "upsample")
    if min(size) < 1:
        raise ShapeError(f"upsampled size {size[0]}x{size[1]} is empty")
    return size


def _upsample_keywords(args: UpsampleArgs, inputs: list[Shape]) -> dict:
    keywords = {"mode": args.mode}
    if args.mode != "nearest":
        keywords["align_corners"] = bool(args.align_corners)
    if args.scale is not None:
        keywords["scale_factor"] = args.scale
    elif args.size is not None:
        keywords["size"] = pair(args.size)
    return keywords


def _upsample_label(args: UpsampleArgs) -> str:
    """`upsample x2 bilinear`, `upsample to 56x56 nearest`, or `to size` (a second input's)."""
    if args.scale is not None:
        how = f"x{number_text(args.scale)}"
    elif args.size is not None:
        how = f"to {pair_text(args.size)}"
    else:
        how = "to size"
    return f"upsample {how} {args.mode}"


OPS.append(
    Op(
        name="upsample",
        explain=explain_upsample,
        label=_upsample_label,
        family="resize",
        saved=saves_nothing,  # interpolation backward needs only the sizes
        summary="resize by `scale`, to `size`, or to a second input's size (F.interpolate)",
        args=UpsampleArgs,
        shape=lambda a, i: (i[0][0], *_upsample_size(a, i)),
        extra_ops=lambda a, i, o: 0 if a.mode == "nearest" else 4 * numel(o),  # 4 taps per output
        arity=(1, 2),
        function=_function("resize", _upsample_keywords),
        from_torch=reshape_torch.upsample_from_torch,
        receptive_field=lambda a, r, i, o: [resized_ranges(r, i[0][1:], o[1:], two_taps=a.mode != "nearest")]
        + [None] * (len(i) - 1),  # a second input only gives the size
        aliases=("interpolate",),
    )
)


# --- crop and pad -----------------------------------------------------------------------------
class CropArgs(OpArgs):
    size: Optional[IntPair] = None  # target (height, width); or give a second input


def _crop_size(args: CropArgs, inputs: list[Shape]) -> tuple[int, int]:
    channels, height, width = feature_map(inputs, "crop")
    target = pair(args.size) if args.size is not None else _target_from_second_input(inputs, "crop")
    if target is None:
        raise ShapeError("crop needs `size` or a second input whose size to match")
    if target[0] > height or target[1] > width:
        raise ShapeError(f"cannot crop {height}x{width} to the larger {target[0]}x{target[1]}")
    return target


OPS.append(
    Op(
        name="crop",
        explain=explain_crop,
        family="resize",
        saved=saves_nothing,
        summary="centre crop to `size` or to a second input's size (U-Net bridges)",
        args=CropArgs,
        shape=lambda a, i: (i[0][0], *_crop_size(a, i)),
        arity=(1, 2),
        function=_function("center_crop", lambda a, i: {"size": _crop_size(a, i)}),
        receptive_field=lambda a, r, i, o: [shifted_ranges(r, [(n - m) // 2 for n, m in zip(i[0][1:], o[1:])])]
        + [None] * (len(i) - 1),
        aliases=("center_crop",),
        traits=frozenset({"view"}),
    )
)


class PadArgs(OpArgs):
    # int: the same on every side; [left, right, top, bottom] as F.pad; or give a second
    # input to pad (centred) up to its size
    amount: Optional[Union[NonNegativeInt, tuple[NonNegativeInt, NonNegativeInt, NonNegativeInt, NonNegativeInt]]] = None
    value: float = 0.0


def _pad_amounts(args: PadArgs, inputs: list[Shape]) -> tuple[int, int, int, int]:
    channels, height, width = feature_map(inputs, "pad")
    target = _target_from_second_input(inputs, "pad")
    if (args.amount is None) == (target is None):
        raise ShapeError("pad needs exactly one of `amount` or a second input whose size to match")
    if target is not None:
        if target[0] < height or target[1] < width:
            raise ShapeError(f"cannot pad {height}x{width} to the smaller {target[0]}x{target[1]}")
        dh, dw = target[0] - height, target[1] - width
        return (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)
    amount = args.amount
    return (amount,) * 4 if isinstance(amount, int) else tuple(amount)


def _pad_shape(args: PadArgs, inputs: list[Shape]) -> Shape:
    left, right, top, bottom = _pad_amounts(args, inputs)
    channels, height, width = inputs[0]
    return (channels, height + top + bottom, width + left + right)


OPS.append(
    Op(
        name="pad",
        explain=pad_explainer(_pad_amounts),
        family="resize",
        saved=saves_nothing,
        summary="constant padding by `amount` or up to a second input's size",
        args=PadArgs,
        shape=_pad_shape,
        arity=(1, 2),
        function=_function("pad", lambda a, i: {"amounts": _pad_amounts(a, i), "value": a.value}),
        from_torch=reshape_torch.pad_from_torch,
        receptive_field=lambda a, r, i, o: [shifted_ranges(r, [-_pad_amounts(a, i)[2], -_pad_amounts(a, i)[0]])]
        + [None] * (len(i) - 1),
    )
)


# --- channel shuffle (ShuffleNet) --------------------------------------------------------------
class ChannelShuffleArgs(OpArgs):
    groups: PositiveInt


def _shuffle_shape(args: ChannelShuffleArgs, inputs: list[Shape]) -> Shape:
    channels = feature_map(inputs, "channel_shuffle")[0]
    if channels % args.groups:
        raise ShapeError(f"groups={args.groups} must divide the channels ({channels})")
    return inputs[0]


OPS.append(
    Op(
        name="channel_shuffle",
        explain=explain_channel_shuffle,
        label=lambda a: f"channel_shuffle {a.groups}",
        family="other",
        saved=saves_nothing,
        summary="interleave channels across `groups` (ShuffleNet)",
        args=ChannelShuffleArgs,
        shape=_shuffle_shape,
        function=_function("channel_shuffle", lambda a, i: {"groups": a.groups}),
        from_torch=reshape_torch.channel_shuffle_from_torch,
    )
)


# --- split and chunk: one input, several outputs ----------------------------------------------
class SplitArgs(OpArgs):
    # channels per piece, in order (torch.split with a list); they must add up to the input's
    sizes: Annotated[list[PositiveInt], Field(min_length=2)]
    dim: int = 0  # 0 = channels (the first dimension after the batch)



def _split_axis(dim: int, shape: Shape, op: str) -> int:
    """The axis (without the batch) a split cuts: channels of a map, any axis of a vector or tokens."""
    axis = dim if dim >= 0 else len(shape) + dim
    if not 0 <= axis < len(shape):
        raise ShapeError(f"{op} dim {dim} is out of range for shape {format_shape(shape)}")
    if len(shape) == 3 and axis != 0:
        raise ShapeError(f"{op} cuts a (C, H, W) map along its channels only (dim 0), not dim {dim}")
    return axis


def _pieces(shape: Shape, axis: int, sizes: list[int]) -> list[Shape]:
    return [(*shape[:axis], size, *shape[axis + 1:]) for size in sizes]


def _split_shapes(args: SplitArgs, inputs: list[Shape]) -> list[Shape]:
    shape = inputs[0]
    axis = _split_axis(args.dim, shape, "split")
    if sum(args.sizes) != shape[axis]:
        raise ShapeError(f"split sizes {args.sizes} add up to {sum(args.sizes)}, not the {shape[axis]} of the input")
    return _pieces(shape, axis, args.sizes)


def _torch_function(name: str, keywords):
    def build(args, inputs):
        import torch

        return getattr(torch, name), keywords(args)

    return build


def _batch_dim(dim: int) -> int:
    return dim + 1 if dim >= 0 else dim  # dims count without the batch


OPS.append(
    Op(
        name="split",
        summary="split the channels into pieces of the given sizes, one output each (torch.split; ShuffleNet v2)",
        args=SplitArgs,
        shape=_split_shapes,
        outputs=lambda a, i: len(a.sizes),
        function=_torch_function("split", lambda a: {"split_size_or_sections": list(a.sizes), "dim": _batch_dim(a.dim)}),
        from_torch=reshape_torch.split_from_torch,
        saved=saves_nothing,  # the backward concatenates the gradients: it needs only the sizes
        family="other",
        label=lambda a: "split " + "/".join(map(str, a.sizes)),
        traits=frozenset({"view"}),
    )
)


class ChunkArgs(OpArgs):
    chunks: Annotated[int, Field(ge=2)]  # torch.chunk: pieces of ceil(n / chunks), the last smaller
    dim: int = 0


def _chunk_sizes(args: ChunkArgs, inputs: list[Shape]) -> list[int]:
    """torch.chunk's pieces: ceil(n / chunks) each while the input lasts (so possibly fewer pieces)."""
    shape = inputs[0]
    total = shape[_split_axis(args.dim, shape, "chunk")]
    step = -(-total // args.chunks)
    return [min(step, total - start) for start in range(0, total, step)]


def _chunk_shapes(args: ChunkArgs, inputs: list[Shape]) -> list[Shape]:
    return _pieces(inputs[0], _split_axis(args.dim, inputs[0], "chunk"), _chunk_sizes(args, inputs))


OPS.append(
    Op(
        name="chunk",
        summary="split the channels into N nearly equal pieces, one output each (torch.chunk)",
        args=ChunkArgs,
        shape=_chunk_shapes,
        outputs=lambda a, i: len(_chunk_sizes(a, i)),
        function=_torch_function("chunk", lambda a: {"chunks": a.chunks, "dim": _batch_dim(a.dim)}),
        from_torch=reshape_torch.chunk_from_torch,
        saved=saves_nothing,
        family="other",
        label=lambda a: f"chunk {a.chunks}",
        traits=frozenset({"view"}),
    )
)


# --- permute: reorder the axes ------------------------------------------------------------------
class PermuteArgs(OpArgs):
    dims: list[int]  # a permutation of the axes without the batch: [1, 2, 0] makes (C, H, W) -> (H, W, C)


def _permute_shape(args: PermuteArgs, inputs: list[Shape]) -> Shape:
    shape = inputs[0]
    if sorted(args.dims) != list(range(len(shape))):
        raise ShapeError(f"permute dims {args.dims} are not a permutation of the {len(shape)} axes of {format_shape(shape)}")
    return tuple(shape[axis] for axis in args.dims)


def _permuted_layout(args: PermuteArgs, inputs: list[Shape], layouts) -> tuple | None:
    """Positions move with their axes: (C, H, W) -> [1, 2, 0] holds them on axes 0 and 1."""
    return reordered_layout(layouts[0], args.dims)


OPS.append(
    Op(
        name="permute",
        summary="reorder the axes after the batch (torch.permute), e.g. (C, H, W) -> (H, W, C) for channels-last",
        args=PermuteArgs,
        shape=_permute_shape,
        function=_torch_function("permute", lambda a: {"dims": (0, *(axis + 1 for axis in a.dims))}),
        from_torch=reshape_torch.permute_from_torch,
        receptive_field=lambda a, ranges, i, o, layouts: [ranges],  # every position keeps its own
        layout=_permuted_layout,
        saved=saves_nothing,  # the backward permutes the gradient back
        family="other",
        label=lambda a: "permute " + ",".join(map(str, a.dims)),
        traits=frozenset({"view"}),
    )
)
