"""Shape inference: each node's output shape (without batch) from its inputs' shapes."""
from __future__ import annotations

from archspec.errors import SpecError
from collections.abc import Mapping

from archspec.ir.graph import INPUT, IRNode, Shape
from archspec.ops.common import format_shape
from archspec.ops.catalog import lookup
from archspec.ops.registry import MAX_LIST, ShapeError

# every shape, of an input or inferred: at most MAX_RANK dimensions (without the batch), each at
# most MAX_DIMENSION (the README's input limit), at most MAX_COUNT elements. So products of sizes
# stay small numbers, and counts (archspec.passes.counts) are bounded by MAX_COUNT too.
MAX_RANK = MAX_LIST
MAX_DIMENSION = 1_000_000
MAX_COUNT = 10**18
SIZE_HINT = "archspec bounds every size at 1,000,000 and every tensor at 1e18 elements; check the arguments that make it"


def shape_problem(shape: Shape) -> str | None:
    """What is over the limits in a shape (MAX_RANK, MAX_DIMENSION, MAX_COUNT), or None."""
    if len(shape) > MAX_RANK:
        return f"has {len(shape):,} dimensions, more than the limit of {MAX_RANK}"
    if any(size > MAX_DIMENSION for size in shape):
        return f"is over the limit of {MAX_DIMENSION:,} per dimension"
    elements = 1
    for size in shape:  # at most MAX_RANK factors of at most MAX_DIMENSION: a small product
        elements *= size
    if elements > MAX_COUNT:
        return f"has {elements:.3g} elements, more than the limit of {MAX_COUNT:.0e}"
    return None


def output_shapes(node: IRNode, shapes: Mapping[str, Shape]) -> tuple[Shape, ...]:
    """Apply the node's shape rule: one shape per output. A rule's complaint becomes a located
    SpecError that names the producers (`<in0>` in the rule's message -> 'enc2')."""
    if node.op == INPUT:
        return (tuple(node.args),)
    op = lookup(node.op)
    inputs = [shapes[i] for i in node.inputs]
    try:
        result = op.shape(node.args, inputs)
        count = op.output_count(node.args, inputs)
    except ShapeError as err:
        message = str(err)
        for index, producer in enumerate(node.inputs):
            message = message.replace(f"<in{index}>", f"'{producer}'")
        if "'" not in message and node.inputs:
            message += " (input " + ", ".join(f"'{p}': {format_shape(shapes[p])}" for p in node.inputs) + ")"
        raise SpecError(message, node.loc, node.id, hint=err.hint) from None
    outputs = [tuple(result)] if count == 1 else [tuple(shape) for shape in result]
    if len(outputs) != count:
        raise SpecError(f"{node.op} made {len(outputs)} outputs instead of {count}", node.loc, node.id)
    for shape in outputs:
        _check_output(node, shape)
    return tuple(outputs)


def output_shape(node: IRNode, shapes: Mapping[str, Shape]) -> Shape:
    """The shape of a one-output node (the first output's otherwise)."""
    return output_shapes(node, shapes)[0]


def _check_output(node: IRNode, shape: Shape) -> None:
    if any(size < 1 for size in shape):
        raise SpecError(f"{node.op} output shape {format_shape(shape)} is empty", node.loc, node.id)
    problem = shape_problem(shape)
    if problem:
        raise SpecError(f"{node.op} output shape {_shown(shape)} {problem}", node.loc, node.id, hint=SIZE_HINT)


def _shown(shape: Shape) -> str:
    return format_shape(shape) if len(shape) <= MAX_RANK else f"{format_shape(shape[:MAX_RANK])}x..."
