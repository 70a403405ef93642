"""Fully connected layer: `linear` (nn.Linear, applied to the last dimension)."""
from __future__ import annotations

from archspec.ops.common import PositiveInt, format_shape
from archspec.ops.registry import Op, OpArgs, Shape, ShapeError, numel

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


OPS.append(
    Op(
        name="linear",
        family="linear",
        traits=frozenset({"weighted"}),
        summary="fully connected layer (nn.Linear) on a vector",
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
