"""Tensors and axis operations: `param` (a learned tensor no layer owns), and the axis ops
between activations that transformers need.

`param` and the batch: the IR is per sample (shapes exclude the batch N), but a stored tensor
has no batch. Its `batch` argument says how the stored shape relates to a per-sample value:
- `none` (default): the stored shape is the per-sample shape (ConvNeXt's layer_scale (C, 1, 1));
  the value is the tensor with a leading axis of 1, which broadcasts over N in `mul` and `add`;
- `leading`: the stored dim 0 is 1 and stands for the batch (ViT's pos_embedding (1, 197, 768)):
  the per-sample shape is shape[1:], and the tensor as stored broadcasts over N;
- `expand`: as `leading`, expanded (a view) to the batch of the param's input, for consumers
  that do not broadcast (ViT's class token, `concat`ed in front of the patch tokens).
A param reads nothing of its input but (for `expand`) its batch size. Its numel counts as
parameters, its FLOPs are 0, and its state_dict key is its node's path (`class_token`,
`encoder.pos_embedding`, `features.1.0.layer_scale`), as torchvision's.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from archspec.ops.common import PositiveInt, format_shape
from archspec.ops.registry import Op, OpArgs, Shape, ShapeError, numel, saves_nothing

OPS: list[Op] = []  # this module's entries, registered by archspec.ops.catalog


# --- param: a learned tensor ---------------------------------------------------------------------
class ParamArgs(OpArgs):
    shape: Annotated[list[PositiveInt], Field(min_length=1)]  # the stored tensor's shape, torchvision's
    # how it starts: a constant `value` (the default when `value` is given), zeros, ones, or
    # N(0, std²) (`trunc_normal`: cut at ±2, nn.init.trunc_normal_'s default bounds)
    init: Optional[Literal["constant", "zeros", "ones", "normal", "trunc_normal"]] = None
    value: Optional[float] = None
    std: Annotated[float, Field(gt=0.0)] = 1.0
    batch: Literal["none", "leading", "expand"] = "none"

    @model_validator(mode="after")
    def _init_fits(self) -> "ParamArgs":
        if self.init == "constant" and self.value is None:
            raise ValueError("init `constant` needs a `value`")
        if self.value is not None and self.init not in (None, "constant"):
            raise ValueError(f"`value` goes with init `constant`, not `{self.init}`")
        return self

    @property
    def start(self) -> str:
        """The init in effect: `constant` when only a value is given, else zeros by default."""
        return self.init or ("constant" if self.value is not None else "zeros")


def _param_shape(args: ParamArgs, inputs: list[Shape]) -> Shape:
    stored = tuple(args.shape)
    if args.batch == "none":
        return stored
    if len(stored) < 2 or stored[0] != 1:
        raise ShapeError(
            f"param with batch `{args.batch}` stores the batch as a leading 1, but its shape is {format_shape(stored)}",
            hint="give the shape as torchvision stores it, e.g. [1, 1, 768] for ViT's class token",
        )
    return stored[1:]


def _parameter(args: ParamArgs, inputs: list[Shape]):
    import torch

    data = torch.empty(args.shape)
    start = args.start
    if start == "normal":
        torch.nn.init.normal_(data, std=args.std)
    elif start == "trunc_normal":
        torch.nn.init.trunc_normal_(data, std=args.std)
    else:
        data.fill_({"zeros": 0.0, "ones": 1.0}.get(start, args.value))
    return torch.nn.Parameter(data)


# how the lowered module reads the stored tensor (`batch`): functions of tensor methods only
def with_batch_axis(tensor, like):
    """(C, 1, 1) -> (1, C, 1, 1): a per-sample tensor that broadcasts over the batch."""
    return tensor.unsqueeze(0)


def as_stored(tensor, like):
    """(1, T, C) as stored: its leading 1 broadcasts over the batch."""
    return tensor


def expanded_to_batch(tensor, like):
    """(1, T, C) -> (N, T, C), a view: torchvision's `class_token.expand(n, -1, -1)`."""
    return tensor.expand(like.shape[0], *tensor.shape[1:])


_READS = {"none": with_batch_axis, "leading": as_stored, "expand": expanded_to_batch}


def _param_from_torch(call):
    """A learned tensor read directly (fx's get_attr): its stored shape; a leading 1 of a stored
    (1, T, C) stands for the batch (ViT's pos_embedding), anything else is per sample."""
    if call.is_("Tensor.expand") and call.kind == "attribute":  # stored (1, T, C) expanded to the batch
        return {"shape": list(call.tensors[""]), "batch": "expand"}
    if not call.is_("Tensor.attribute"):
        return None
    shape = list(call.output)
    return {"shape": shape, "batch": "leading" if len(shape) >= 2 and shape[0] == 1 else "none"}


def _param_label(args: ParamArgs) -> str:
    return "param " + "x".join(map(str, args.shape))


def _explain_param(ctx) -> None:
    stored = tuple(ctx.args.shape)
    ctx.line(ctx.msg(f"param_batch_{ctx.args.batch}", stored=format_shape(stored), shape=format_shape(ctx.out)))
    if ctx.owns_weights:
        expression = "·".join(str(s) for s in stored)
        ctx.line(ctx.msg("param_params", eq=ctx.equation(expression, ctx.stats.figures.params)), "params")


OPS.append(
    Op(
        name="param",
        summary="a learned tensor no layer owns (ViT's class token and position embedding, ConvNeXt's "
        "layer_scale); its state_dict key is its path; `batch` says whether the stored shape has a leading batch 1",
        args=ParamArgs,
        shape=_param_shape,
        params=lambda a, i: {"": tuple(a.shape)},
        tensor=_parameter,
        function=lambda a, i: (_READS[a.batch], {}),
        saved=saves_nothing,
        receptive_field=lambda a, r, i, o: [None],  # reads no position of its input (only its batch size)
        family="other",
        label=_param_label,
        explain=_explain_param,
        from_torch=_param_from_torch,
        traits=frozenset({"view"}),
    )
)
