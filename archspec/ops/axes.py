"""Axis operations between and on activations: `matmul`, `transpose`, `slice`, `select`, `roll`,
`mean` (`permute` is in archspec.ops.reshape).

Dims count without the batch, as everywhere in a spec: on tokens (T, C) dim 0 is T, on a map
(C, H, W) dim 0 is C; negative dims count from the end. None of them has weights; only `matmul`
has FLOPs (FlopCounterMode's bmm: 2 per multiply-accumulate). Receptive fields follow positions
on whichever axes hold them (archspec.ops.field.Layout): reordering axes moves the positions with
them (channels-last and back), a slice of a positional axis reads a strided window, and a roll of
one (wrap-around) or a mean over one reads the whole map, a global field.
"""
from __future__ import annotations

from typing import Optional, Union

from archspec.ops.common import PositiveInt, format_shape
from archspec.ops.field import WHOLE, layout_without, reordered_layout
from archspec.ops import reshape_torch
from archspec.ops.merge import broadcast_shape
from archspec.ops.registry import NoArgs, Op, OpArgs, Saved, Shape, ShapeError, numel, saves_nothing

OPS: list[Op] = []  # this module's entries, registered by archspec.ops.catalog

def axis_of(dim: int, shape: Shape, op: str) -> int:
    """The axis (without the batch) that `dim` names, negative dims from the end."""
    axis = dim if dim >= 0 else len(shape) + dim
    if not 0 <= axis < len(shape):
        raise ShapeError(f"{op} dim {dim} is out of range for shape {format_shape(shape)}")
    return axis


def _torch(name: str, keywords):
    def build(args, inputs):
        import torch

        return getattr(torch, name), keywords(args, inputs)

    return build


def _says(key: str):
    """An explain rule of one sentence: message `key` with the input and output shapes (`cin`,
    `cout`) and the op's arguments by name."""

    def explain(ctx) -> None:
        shapes = {"cin": format_shape(ctx.in_shapes[0]), "cout": format_shape(ctx.out)}
        ctx.line(ctx.msg(key, **shapes, **ctx.args.model_dump()))

    return explain


def _reads_positions_whole(axes, layouts) -> bool:
    """Whether an op over `axes` (a roll, a mean) mixes positions: one of them holds positions."""
    return layouts[0] is not None and bool(set(axes) & set(layouts[0]))


def _same_positions(args, ranges, inputs, output, layouts) -> list:
    return [ranges]


# --- matmul: two activations ------------------------------------------------------------------
def _matmul_shape(args, inputs: list[Shape]) -> Shape:
    left, right = inputs
    if len(left) != len(right) or len(left) < 2:
        raise ShapeError(
            f"matmul needs two inputs of one rank >= 2: {format_shape(left)} from <in0> vs {format_shape(right)} from <in1>",
            hint="give a vector a row axis, e.g. `reshape: {shape: [1, -1]}`",
        )
    if left[-1] != right[-2]:
        raise ShapeError(
            f"matmul needs the last axis of <in0> ({left[-1]}) to equal the second-last of <in1> ({right[-2]}): "
            f"{format_shape(left)} @ {format_shape(right)}"
        )
    batch = broadcast_shape([left[:-2], right[:-2]])
    if batch is None:
        raise ShapeError(f"matmul's leading axes do not broadcast: {format_shape(left)} @ {format_shape(right)}")
    return (*batch, left[-2], right[-1])


def _explain_matmul(ctx) -> None:
    left, right = ctx.in_shapes
    ctx.line(ctx.msg("matmul_product", a=format_shape(left), b=format_shape(right), shape=format_shape(ctx.out)))
    formula, expression = ctx.batched("numel(out)·k", f"{numel(ctx.out)}·{left[-1]}")
    ctx.figure_line("label.macs", formula, ctx.equation(expression, ctx.stats.figures.macs), tag="macs")


OPS.append(
    Op(
        name="matmul",
        summary="matrix product of two activations (torch.matmul) over their last two axes; leading axes broadcast",
        args=NoArgs,
        shape=_matmul_shape,
        macs=lambda a, i, o: numel(o) * i[0][-1],  # k multiply-accumulates per output
        arity=(2, 2),
        function=_torch("matmul", lambda a, i: {}),
        from_torch=reshape_torch.matmul_from_torch,
        saved=lambda a, i, o: Saved(inputs=(0, 1)),
        fresh_output=True,
        receptive_field=lambda a, r, i, o: [WHOLE, WHOLE],  # each output mixes a whole row and column
        family="linear",
        label=lambda a: "matmul",
        explain=_explain_matmul,
    )
)


# --- transpose --------------------------------------------------------------------------------
class TransposeArgs(OpArgs):
    dim0: int
    dim1: int


def _transpose_axes(args: TransposeArgs, inputs: list[Shape]) -> tuple[int, int]:
    return axis_of(args.dim0, inputs[0], "transpose"), axis_of(args.dim1, inputs[0], "transpose")


def _transpose_shape(args: TransposeArgs, inputs: list[Shape]) -> Shape:
    first, second = _transpose_axes(args, inputs)
    shape = list(inputs[0])
    shape[first], shape[second] = shape[second], shape[first]
    return tuple(shape)


def _transposed_layout(args: TransposeArgs, inputs: list[Shape], layouts) -> tuple | None:
    order = list(range(len(inputs[0])))
    first, second = _transpose_axes(args, inputs)
    order[first], order[second] = second, first
    return reordered_layout(layouts[0], order)


OPS.append(
    Op(
        name="transpose",
        summary="swap two axes after the batch (torch.transpose), e.g. tokens (T, C) -> (C, T)",
        args=TransposeArgs,
        shape=_transpose_shape,
        function=_torch("transpose", lambda a, i: {"dim0": _transpose_axes(a, i)[0] + 1, "dim1": _transpose_axes(a, i)[1] + 1}),
        from_torch=reshape_torch.transpose_from_torch,
        saved=saves_nothing,
        receptive_field=_same_positions,  # the positions move with their axes
        layout=_transposed_layout,
        family="other",
        label=lambda a: f"transpose {a.dim0},{a.dim1}",
        explain=_says("transpose_dims"),
        traits=frozenset({"view"}),
    )
)


# --- slice and select: x[:, a:b:s] and x[:, i] ----------------------------------------------------
class SliceArgs(OpArgs):
    dim: int = 0
    start: Optional[int] = None  # Python's slice: negative counts from the end, out of range clamps
    stop: Optional[int] = None
    step: PositiveInt = 1  # torch slices take no negative step


def _slice_range(args: SliceArgs, inputs: list[Shape]) -> tuple[int, range]:
    axis = axis_of(args.dim, inputs[0], "slice")
    kept = range(inputs[0][axis])[args.start : args.stop : args.step]
    if not kept:
        raise ShapeError(f"slice {args.start}:{args.stop}:{args.step} of dim {args.dim} ({inputs[0][axis]}) is empty")
    return axis, kept


def _slice_shape(args: SliceArgs, inputs: list[Shape]) -> Shape:
    axis, kept = _slice_range(args, inputs)
    return (*inputs[0][:axis], len(kept), *inputs[0][axis + 1 :])


def _slice_field(args: SliceArgs, ranges, inputs: list[Shape], output: Shape, layouts) -> list:
    """Output position o of a sliced positional axis reads position start + o·step: a strided window."""
    axis, kept = _slice_range(args, inputs)
    if layouts[0] is None or axis not in layouts[0]:
        return [ranges]
    moved, which = list(ranges), layouts[0].index(axis)
    low, high = moved[which]
    moved[which] = (kept.start + low * kept.step, kept.start + high * kept.step)
    return [tuple(moved)]


def _index(axis: int, key) -> tuple:
    return (slice(None),) * (axis + 1) + (key,)  # the batch, the axes before, then the key


def _slice_label(args: SliceArgs) -> str:
    bounds = f"{'' if args.start is None else args.start}:{'' if args.stop is None else args.stop}"
    return f"slice {args.dim}[{bounds}{'' if args.step == 1 else f':{args.step}'}]"


OPS.append(
    Op(
        name="slice",
        summary="keep start:stop:step of one axis (x[:, 1::2]; Python's rules for negative and out-of-range bounds)",
        args=SliceArgs,
        shape=_slice_shape,
        function=lambda a, i: (sliced, {"index": _index(_slice_range(a, i)[0], slice(a.start, a.stop, a.step))}),
        from_torch=reshape_torch.slice_from_torch,
        saved=saves_nothing,
        receptive_field=_slice_field,
        layout=lambda a, i, layouts: layouts[0],
        family="other",
        label=_slice_label,
        explain=lambda ctx: ctx.line(ctx.msg("slice_kept", bounds=_slice_label(ctx.args).split("[", 1)[1][:-1], dim=ctx.args.dim,
                                             cin=format_shape(ctx.in_shapes[0]), cout=format_shape(ctx.out))),
        traits=frozenset({"view"}),
    )
)


def sliced(x, index: tuple):
    """x[index], for the generated code (a tensor method: no torch import here)."""
    return x[index]


class SelectArgs(OpArgs):
    dim: int = 0
    index: int  # negative counts from the end


def _select_index(args: SelectArgs, inputs: list[Shape]) -> tuple[int, int]:
    axis = axis_of(args.dim, inputs[0], "select")
    size = inputs[0][axis]
    if not -size <= args.index < size:
        raise ShapeError(f"select index {args.index} is out of range for dim {args.dim} of size {size}")
    return axis, args.index % size


def _without_axes(axes: list[int], layouts) -> tuple | None:
    """The layout once `axes` are dropped: None when one of them held positions."""
    if layouts[0] is None or set(axes) & set(layouts[0]):
        return None
    return layout_without(layouts[0], axes)


OPS.append(
    Op(
        name="select",
        summary="take one index of one axis and drop the axis (x[:, 0]: ViT's class token)",
        args=SelectArgs,
        shape=lambda a, i: (*i[0][: _select_index(a, i)[0]], *i[0][_select_index(a, i)[0] + 1 :]),
        function=_torch("select", lambda a, i: {"dim": _select_index(a, i)[0] + 1, "index": _select_index(a, i)[1]}),
        from_torch=reshape_torch.select_from_torch,
        saved=saves_nothing,
        # selecting along a positional axis leaves positions on one axis only: none the pass follows
        receptive_field=_same_positions,
        layout=lambda a, i, layouts: _without_axes([_select_index(a, i)[0]], layouts),
        family="other",
        label=lambda a: f"select {a.dim}[{a.index}]",
        explain=_says("select_index"),
        traits=frozenset({"view"}),
    )
)


# --- roll: Swin's cyclic shift ------------------------------------------------------------------
class RollArgs(OpArgs):
    shifts: Union[int, list[int]]
    dims: Union[int, list[int]]


def _roll_axes(args: RollArgs, inputs: list[Shape]) -> tuple[list[int], list[int]]:
    shifts = [args.shifts] if isinstance(args.shifts, int) else list(args.shifts)
    dims = [args.dims] if isinstance(args.dims, int) else list(args.dims)
    if len(shifts) != len(dims):
        raise ShapeError(f"roll needs one shift per dim: shifts {shifts}, dims {dims}")
    return shifts, [axis_of(dim, inputs[0], "roll") for dim in dims]


OPS.append(
    Op(
        name="roll",
        summary="shift along axes with wrap-around (torch.roll; Swin's shifted windows)",
        args=RollArgs,
        shape=lambda a, i: (_roll_axes(a, i), i[0])[1],
        function=_torch("roll", lambda a, i: {"shifts": _roll_axes(a, i)[0], "dims": [axis + 1 for axis in _roll_axes(a, i)[1]]}),
        from_torch=reshape_torch.roll_from_torch,
        saved=saves_nothing,
        # a roll of a positional axis wraps positions around the border: the whole map (global)
        receptive_field=lambda a, r, i, o, layouts: [WHOLE if _reads_positions_whole(_roll_axes(a, i)[1], layouts) else r],
        layout=lambda a, i, layouts: layouts[0],
        family="other",
        label=lambda a: f"roll {a.shifts}",
        explain=_says("roll_shift"),
    )
)


# --- mean over given axes -----------------------------------------------------------------------
class MeanArgs(OpArgs):
    dims: Union[int, list[int]]
    keepdim: bool = False


def _mean_axes(args: MeanArgs, inputs: list[Shape]) -> list[int]:
    dims = [args.dims] if isinstance(args.dims, int) else list(args.dims)
    axes = sorted({axis_of(dim, inputs[0], "mean") for dim in dims})
    if len(axes) != len(dims):
        raise ShapeError(f"mean dims {dims} name an axis twice")
    return axes


def _mean_shape(args: MeanArgs, inputs: list[Shape]) -> Shape:
    axes = _mean_axes(args, inputs)
    if args.keepdim:
        return tuple(1 if k in axes else s for k, s in enumerate(inputs[0]))
    return tuple(s for k, s in enumerate(inputs[0]) if k not in axes) or (1,)


def _mean_function(args: MeanArgs, inputs: list[Shape]):
    import torch

    axes = _mean_axes(args, inputs)
    if len(axes) == len(inputs[0]) and not args.keepdim:
        return mean_to_vector, {"dims": tuple(axis + 1 for axis in axes)}  # keep a (1,) per sample
    return torch.mean, {"dim": tuple(axis + 1 for axis in axes), "keepdim": args.keepdim}


def mean_to_vector(x, dims: tuple):
    """The mean over every axis but the batch, as (N, 1): a per-sample value keeps one axis."""
    return x.mean(dim=dims).unsqueeze(1)


def _mean_layout(args: MeanArgs, inputs: list[Shape], layouts) -> tuple | None:
    """Kept dims keep every axis in place; otherwise the averaged axes go (and with a positional
    one, the positions)."""
    return layouts[0] if args.keepdim else _without_axes(_mean_axes(args, inputs), layouts)


OPS.append(
    Op(
        name="mean",
        summary="mean over the given axes (torch.mean), `keepdim` to keep them as size 1",
        args=MeanArgs,
        shape=_mean_shape,
        extra_ops=lambda a, i, o: numel(i[0]),  # one addition per input element
        function=_mean_function,
        from_torch=reshape_torch.mean_from_torch,
        saved=saves_nothing,  # the backward spreads the gradient evenly: it needs only the sizes
        # averaging a positional axis reads it whole (global); over channels each position keeps its place
        receptive_field=lambda a, r, i, o, layouts: [WHOLE if _reads_positions_whole(_mean_axes(a, i), layouts) else r],
        layout=_mean_layout,
        family="pool",
        label=lambda a: f"mean {a.dims}",
        explain=_says("mean_over"),
    )
)
