"""Shape inference: each node's output shape (without batch) from its inputs' shapes."""
from __future__ import annotations

from archspec.errors import SpecError
from archspec.ir.graph import IRGraph, IRNode, Shape
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


def output_shape(node: IRNode, shapes: dict[str, Shape]) -> Shape:
    """Apply the node's shape rule; a rule's complaint becomes a located SpecError that names
    the producers (`<in0>` in the rule's message -> 'enc2')."""
    if node.op == "input":
        return tuple(node.args)
    inputs = [shapes[i] for i in node.inputs]
    try:
        shape = lookup(node.op).shape(node.args, inputs)
    except ShapeError as err:
        message = str(err)
        for index, producer in enumerate(node.inputs):
            message = message.replace(f"<in{index}>", f"'{producer}'")
        if "'" not in message and node.inputs:
            message += " (input " + ", ".join(f"'{p}': {format_shape(shapes[p])}" for p in node.inputs) + ")"
        raise SpecError(message, node.loc, node.id, hint=err.hint) from None
    if any(size < 1 for size in shape):
        raise SpecError(f"{node.op} output shape {format_shape(shape)} is empty", node.loc, node.id)
    problem = shape_problem(shape)
    if problem:
        raise SpecError(f"{node.op} output shape {_shown(shape)} {problem}", node.loc, node.id, hint=SIZE_HINT)
    return tuple(shape)


def _shown(shape: Shape) -> str:
    return format_shape(shape) if len(shape) <= MAX_RANK else f"{format_shape(shape[:MAX_RANK])}x..."


def infer_shapes(ir: IRGraph) -> dict[str, Shape]:
    shapes: dict[str, Shape] = {}
    for node in ir.nodes():
        shapes[node.id] = output_shape(node, shapes)
    return shapes
