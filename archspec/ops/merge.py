"""Ops that merge several inputs: `add` (residuals), `mul` (squeeze-excitation), `concat`.

Mismatched shapes name the producers: a shape rule refers to its inputs as `<in0>`, `<in1>`, ...
and the IR builder replaces those with the producing nodes' names.
"""
from __future__ import annotations

from typing import Literal

from archspec.ops.common import format_shape
from archspec.ops.field import MAP, WHOLE, positional_sizes, shifted_ranges
from archspec.ops.registry import Expansion, NoArgs, Op, OpArgs, Saved, Shape, ShapeError, numel, saves_nothing

OPS: list[Op] = []  # this module's entries, registered by archspec.ops.catalog

Fit = Literal["none", "crop", "pad"]
DEFAULT_MERGE = "concat"  # how a `parallel` joins its branches unless it says `merge:`


class MergeArgs(OpArgs):
    # how spatial sizes that differ are aligned: centre-crop all to the smallest (original
    # U-Net), zero-pad all to the largest, or refuse
    fit: Fit = "none"


class AddArgs(MergeArgs):
    # `auto`: when the last input's shape differs from the first's, insert a 1x1 conv + BN
    # projection on it (ResNet's downsample shortcut); see archspec.ir.build
    project: Literal["auto", "never"] = "never"
    projection_name: str = "downsample"


class ConcatArgs(MergeArgs):
    dim: int = 0  # 0 = channels


def fitted_spatial(fit: str, inputs: list[Shape]) -> tuple[int, ...] | None:
    """The spatial size every input is aligned to, or None when no fitting applies."""
    if fit == "none" or any(len(s) != 3 for s in inputs):
        return None
    pick = min if fit == "crop" else max
    return tuple(pick(s[axis] for s in inputs) for axis in (1, 2))


def _aligned(args: MergeArgs, inputs: list[Shape]) -> list[Shape]:
    target = fitted_spatial(args.fit, inputs)
    if target is None:
        return inputs
    return [(s[0], *target) for s in inputs]


def _add_shape(args: AddArgs, inputs: list[Shape]) -> Shape:
    """Equal shapes (a residual), or shapes of one rank that broadcast: a (C, 1, 1) bias or a
    (1, C) row against (C, H, W) or (T, C), as torch broadcasts them."""
    shapes = _aligned(args, inputs)
    shape = broadcast_shape(shapes)
    if shape is None:
        index = next((i for i, s in enumerate(shapes) if broadcast_shape([shapes[0], s]) is None), 1)
        raise ShapeError(
            f"add needs equal shapes: {format_shape(shapes[0])} from <in0> vs {format_shape(shapes[index])} "
            f"from <in{index}> (or shapes of one rank that broadcast)",
            hint="use `project: auto` for a 1x1 projection shortcut, or `fit: crop|pad` for spatial sizes",
        )
    return shape


def broadcast_shape(shapes: list[Shape]) -> Shape | None:
    """torch's broadcast of per-sample shapes of one rank (sizes equal or 1 per axis), or None.
    Ranks must agree: torch aligns shapes from the right *with* the batch, so a lower rank would
    pair the batch with a feature axis."""
    if len({len(s) for s in shapes}) > 1:
        return None
    result = []
    for sizes in zip(*shapes):
        larger = set(sizes) - {1}
        if len(larger) > 1:
            return None
        result.append(larger.pop() if larger else 1)
    return tuple(result)


def _broadcast(shapes: list[Shape]) -> Shape:
    if len({len(s) for s in shapes}) > 1:
        raise ShapeError(
            "mul needs inputs of the same rank: "
            + " vs ".join(f"{format_shape(s)} from <in{i}>" for i, s in enumerate(shapes)),
            hint="give a channel gate the shape (C, 1, 1), e.g. `adaptive_avgpool` or `reshape: {shape: [C, 1, 1]}`",
        )
    shape = broadcast_shape(shapes)
    if shape is None:
        raise ShapeError(
            "mul needs broadcastable shapes: " + " vs ".join(f"{format_shape(s)} from <in{i}>" for i, s in enumerate(shapes))
        )
    return shape


def _concat_shape(args: ConcatArgs, inputs: list[Shape]) -> Shape:
    shapes = _aligned(args, inputs)
    rank = len(shapes[0])
    dim = args.dim if args.dim >= 0 else rank + args.dim
    if not 0 <= dim < rank:
        raise ShapeError(f"concat dim {args.dim} is out of range for shape {format_shape(shapes[0])}")
    for index, shape in enumerate(shapes[1:], start=1):
        rest_a = shapes[0][:dim] + shapes[0][dim + 1 :]
        rest_b = shape[:dim] + shape[dim + 1 :]
        if len(shape) != rank or rest_a != rest_b:
            what = "spatial" if rank == 3 and dim == 0 else "shape"
            show = (lambda s: format_shape(s[1:])) if what == "spatial" and len(shape) == 3 else format_shape
            raise ShapeError(
                f"concat needs equal sizes except along dim {args.dim}: {what} {show(shapes[0])} from <in0> vs "
                f"{show(shape)} from <in{index}>",
                hint="use `fit: crop` (centre-crop to the smaller) or `fit: pad`",
            )
    return shapes[0][:dim] + (sum(s[dim] for s in shapes),) + shapes[0][dim + 1 :]


def _plain_pair(args: AddArgs, inputs: list[Shape]) -> bool:
    """Two inputs: `a + b` in the generated code."""
    return args.fit == "none" and len(inputs) == 2


def _same_shape_pair(args: AddArgs, inputs: list[Shape]) -> bool:
    """Two inputs of one shape: `a += b` when it runs in place (a broadcast sum needs a new tensor)."""
    return _plain_pair(args, inputs) and inputs[0] == inputs[1]


def _projection(args: AddArgs, inputs: list[Shape]) -> Expansion | None:
    """`project: auto`, ResNet's projection shortcut: a 1x1 conv (stride = the spatial ratio) + BN
    that maps the last input (the shortcut) to the first input's shape, when they differ."""
    if args.project != "auto":
        return None
    main, shortcut = inputs[0], inputs[-1]
    if main == shortcut or len(main) != 3 or len(shortcut) != 3:
        return None  # nothing to do, or not projectable: the shape rule reports the mismatch
    # a 1x1 conv with stride s maps n positions to ceil(n / s), odd sizes included (torchvision)
    strides = [-(-n // m) for n, m in zip(shortcut[1:], main[1:])]
    if any(-(-n // s) != m for n, m, s in zip(shortcut[1:], main[1:], strides)):
        return None
    stride = strides[0] if strides[0] == strides[1] else strides
    conv = ("conv", {"out": main[0], "kernel": 1, "stride": stride, "bias": False})
    return Expansion(slot=len(inputs) - 1, scope=args.projection_name, layers=(conv, ("bn", {})))


def _add_in_place(function, keywords):
    import operator

    return operator.iadd, keywords  # `out += identity`


def _add_function(args: AddArgs, inputs: list[Shape]):
    from archspec.lower import runtime

    if _plain_pair(args, inputs):
        import operator

        return operator.add, {}  # generated code reads `out = bn2 + identity`
    if args.fit == "none":
        return runtime.add_all, {}
    return runtime.add_fitted, {"fit": args.fit}


def _mul_function(args, inputs: list[Shape]):
    import operator

    return operator.mul, {}


def _concat_function(args: ConcatArgs, inputs: list[Shape]):
    import torch

    from archspec.lower import runtime

    if args.fit == "none":
        return torch.cat, {"dim": args.dim + 1 if args.dim >= 0 else args.dim}
    return runtime.concat_fitted, {"dim": args.dim + 1 if args.dim >= 0 else args.dim, "fit": args.fit}


def _merged_layout(args, inputs: list[Shape], layouts) -> tuple | None:
    """Where the merged value holds its positions: where its inputs with positions hold them."""
    return next((layout for layout in layouts if layout is not None), None)


def _merged_field(args, ranges, inputs: list[Shape], output: Shape, layouts):
    """Each input is read at the same positions, shifted by the centre crop / pad of `fit`;
    a broadcast 1x1 input (a squeeze-excitation gate) is read at position 0. An input holding
    its positions on other axes than the merge (or a concat along a positional axis) is read
    whole."""
    merged = _merged_layout(args, inputs, layouts)
    target = fitted_spatial(getattr(args, "fit", "none"), inputs)
    along = getattr(args, "dim", None)
    result = []
    for shape, layout in zip(inputs, layouts):
        if layout is None:
            result.append(ranges)
        elif layout != merged or (along is not None and along % len(shape) in layout) or (target and layout != MAP):
            result.append(WHOLE)
        elif positional_sizes(shape, layout) == (1, 1) and positional_sizes(output, merged) != (1, 1):
            result.append(((0, 0), (0, 0)))
        elif target is not None:
            result.append(shifted_ranges(ranges, [(n - m) // 2 for n, m in zip(shape[1:], target)]))
        else:
            result.append(ranges)
    return result


def _elementwise_ops(args, inputs: list[Shape], output: Shape) -> int:
    return (len(inputs) - 1) * numel(output)


def _fit_note(ctx) -> None:
    target = fitted_spatial(ctx.args.fit, ctx.in_shapes)
    if target is not None:
        ctx.line(ctx.msg(f"fit_{ctx.args.fit}", hw="x".join(str(s) for s in target)))


def _two_tensors(call, names: tuple[str, ...]):
    """`a + b`, `torch.add(a, b)`, `a.add_(b)` on two tensors (a number term is no merge)."""
    if not call.is_(*names):
        return None
    if len(call.inputs) != 2 or len(call.args) != 2 or call.kwargs:
        return call.refuse("a number term (x * 2, x + 1) or an `alpha`: the merge ops take two tensors")
    return {}


def _explain_add(ctx) -> None:
    _fit_note(ctx)
    ctx.line(ctx.msg("add", k=len(ctx.in_shapes), shape=format_shape(ctx.out)))


OPS.append(
    Op(
        name="add",
        explain=_explain_add,
        label=lambda a: "+",  # drawn as a circled +, whatever the fit
        family="merge",
        traits=frozenset({"merge", "residual"}),
        saved=saves_nothing,
        summary="elementwise sum of its inputs (residual connection); shapes of one rank broadcast (a (C, 1, 1) or (1, C) term)",
        args=AddArgs,
        shape=_add_shape,
        extra_ops=_elementwise_ops,
        arity=(2, None),
        function=_add_function,
        from_torch=lambda c: _two_tensors(c, ("operator.add", "operator.iadd", "torch.add", "Tensor.add", "Tensor.add_")),
        fresh_output=True,
        in_place=_same_shape_pair,
        in_place_form=_add_in_place,
        builder_args=("project", "projection_name"),  # the builder inserts the projection itself
        expand=_projection,
        receptive_field=_merged_field,
        layout=_merged_layout,
    )
)
def _explain_mul(ctx) -> None:
    inputs = " × ".join(format_shape(s) for s in ctx.in_shapes)
    ctx.line(ctx.msg("mul", inputs=inputs, shape=format_shape(ctx.out)))


OPS.append(
    Op(
        name="mul",
        explain=_explain_mul,
        label=lambda a: "×",  # drawn as a circled x
        family="merge",
        traits=frozenset({"merge"}),
        saved=lambda a, i, o: Saved(inputs=(0, 1)),
        summary="elementwise product with broadcasting (squeeze-excitation gating)",
        args=NoArgs,
        shape=lambda a, i: _broadcast(i),
        extra_ops=_elementwise_ops,
        arity=(2, 2),
        function=_mul_function,
        from_torch=lambda c: _two_tensors(c, ("operator.mul", "operator.imul", "torch.mul", "Tensor.mul", "Tensor.mul_")),
        fresh_output=True,
        receptive_field=_merged_field,
        layout=_merged_layout,
        aliases=("multiply",),
    )
)
def _concat_from_torch(call):
    """torch.cat along a dim after the batch (torch counts the batch, archspec does not)."""
    if not call.is_("torch.cat", "torch.concat", "torch.concatenate"):
        return None
    dim = call.arg(1, "dim", 0)
    if dim == 0:
        return call.refuse("a concatenation along the batch axis")
    return {"dim": dim - 1 if dim > 0 else dim}


def _explain_concat(ctx) -> None:
    """The concatenated dimension is the sum of the inputs' sizes."""
    _fit_note(ctx)
    rank, dim = len(ctx.out), ctx.args.dim
    axis = dim if dim >= 0 else rank + dim
    eq = ctx.equation(" + ".join(str(shape[axis]) for shape in ctx.in_shapes), ctx.out[axis])
    if rank == 3 and axis == 0:
        ctx.line(ctx.msg("concat_channels", k=len(ctx.in_shapes), eq=eq))
        ctx.line(ctx.msg("concat_spatial", hw=f"{ctx.out[1]}x{ctx.out[2]}"))
    else:
        ctx.line(ctx.msg("concat_dim", k=len(ctx.in_shapes), dim=dim, eq=eq))


OPS.append(
    Op(
        name="concat",
        explain=_explain_concat,
        label=lambda a: "concat" if a.fit == "none" else f"concat ({a.fit})",
        family="merge",
        traits=frozenset({"merge"}),
        saved=saves_nothing,
        summary="concatenation along channels (DenseNet, Inception, U-Net bridges)",
        args=ConcatArgs,
        shape=_concat_shape,
        arity=(2, None),
        function=_concat_function,
        from_torch=_concat_from_torch,
        fresh_output=True,
        inputs_as_list=True,
        receptive_field=_merged_field,
        layout=_merged_layout,
        aliases=("cat",),
    )
)
