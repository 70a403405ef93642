"""Shape inference: each node's output shape (without batch) from its inputs' shapes."""
from __future__ import annotations

from archspec.errors import SpecError
from archspec.ir.graph import IRGraph, IRNode, Shape
from archspec.ops.common import format_shape
from archspec.ops.registry import ShapeError, lookup


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
    return tuple(shape)


def infer_shapes(ir: IRGraph) -> dict[str, Shape]:
    shapes: dict[str, Shape] = {}
    for node in ir.nodes():
        shapes[node.id] = output_shape(node, shapes)
    return shapes
