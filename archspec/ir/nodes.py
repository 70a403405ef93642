"""Op items -> IR nodes: arguments validated by the op's schema, arity checked, the op's own
expansion applied (`Op.expand`: add's `project: auto`), output shapes inferred node by node."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from archspec.errors import SpecError
from archspec.ir.graph import IRNode
from archspec.ir.scope import Binding, Builder, Item
from archspec.ops.catalog import lookup
from archspec.ops.registry import Op
from archspec.passes.shapes import output_shapes
from archspec.spec.arguments import argument_error
from archspec.spec.yaml_source import SourceMap

MAX_NODES = 50_000
MAX_INPUTS = 10_000  # inputs of one op node (`from` of a concat, branches of a parallel)


def op_call(ex: Builder, op: Op, item: Item) -> Binding:
    """One op item -> its node (and the nodes its expansion inserts); the binding of its name
    has one child per output when the op has several (`split1.0`, `split1.1`)."""
    node = op_node(ex, op, item)
    values = node.values
    children = {str(k): Binding(value, node.id, [node.id], item.inputs) for k, value in enumerate(values)} if len(values) > 1 else {}
    return Binding(values[0], node.id, [node.id], item.inputs, children)


def op_node(ex: Builder, op: Op, item: Item) -> IRNode:
    node_id = item.scope.node_id(item.name)
    try:
        op_args = op.args.model_validate(item.body, context={"names": item.scope.env})
    except ValidationError as err:
        raise argument_error(err, op, item.args, item.loc, node_id) from None
    _check_arity(op, item, node_id)
    inputs = list(item.inputs)
    if op.expand is not None:
        inputs = _expanded(ex, op, op_args, item, inputs)
    node = add_node(ex, IRNode(node_id, op.name, op_args, inputs, node_id, item.loc), item)
    if item.scope.flat is not None:  # `from: features.3` names it as the report does
        item.scope.flat.bindings[node_id.rsplit(".", 1)[-1]] = Binding(node.values[0], node_id, [node_id], inputs)
    return node


def _check_arity(op: Op, item: Item, node_id: str) -> None:
    low, high = op.arity
    count = len(item.inputs)
    if count > MAX_INPUTS:
        raise SpecError(
            f"{op.name} would take {count:,} inputs, more than the limit of {MAX_INPUTS:,}",
            item.loc,
            node_id,
            hint="merge in stages, or name fewer inputs",
        )
    if not (low <= count and (high is None or count <= high)):
        wanted = f"{low}" if low == high else (f"at least {low}" if high is None else f"{low} to {high}")
        raise SpecError(
            f"{op.name} takes {wanted} input(s) but gets {count}",
            item.loc,
            node_id,
            hint="list its inputs with `from: [a, b]`" if low > 1 else None,
        )


def _expanded(ex: Builder, op: Op, op_args: Any, item: Item, inputs: list[str]) -> list[str]:
    """Insert the nodes the op asks for in front of one input (`Op.expand`), e.g. ResNet's
    projection shortcut: a 1x1 conv + BN on the shortcut when its shape differs from the main path."""
    expansion = op.expand(op_args, [ex.ir.shapes[value] for value in inputs])
    if expansion is None:
        return inputs
    group = item.scope.child(expansion.scope, "projection")
    value = inputs[expansion.slot]
    for index, (name, body) in enumerate(expansion.layers):
        inner = item.but(callee=name, body=body, args=SourceMap(), scope=group, name=str(index), inputs=[value])
        value = op_node(ex, lookup(name), inner).values[0]
    inputs[expansion.slot] = value
    return inputs


def add_node(ex: Builder, node: IRNode, item: Item) -> IRNode:
    """Place a node in the graph with its scopes and its output shapes."""
    if len(ex.ir.graph) >= MAX_NODES:
        raise SpecError(f"the graph would have more than {MAX_NODES:,} nodes", node.loc, node.id)
    scope = item.scope
    node.scopes, node.scope_kinds, node.trainable = scope.scopes, scope.kinds, scope.trainable
    node.shapes = output_shapes(node, ex.ir.shapes)
    return ex.ir.add(node)


def check_same_weights(ex: Builder, old: IRNode, new: IRNode, loc) -> None:
    """A reused node's tensors must have the shapes of the original's (shared weights)."""
    op = lookup(old.op)
    before = op.params(old.args, [ex.ir.shapes[i] for i in old.inputs])
    after = op.params(new.args, [ex.ir.shapes[i] for i in new.inputs])
    if before != after:
        raise SpecError(
            f"cannot share the weights of '{old.module}': its tensors would need shapes {after} instead of {before}",
            loc,
            new.id,
            hint="shared weights need inputs with the same channels",
        )
