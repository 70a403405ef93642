"""The spec language's constructs, expanded into nodes: block calls, `parallel` branches, `seq`
groups and `reuse` (shared weights). Each takes the Expander and the Item and returns the
Binding of the item's name; the op nodes themselves come from `archspec.ir.nodes`."""
from __future__ import annotations

from collections import ChainMap
from typing import Any

from archspec.errors import Location, SpecError, did_you_mean
from archspec.ir.graph import IRNode
from archspec.ir.nodes import add_node, check_same_weights, op_node
from archspec.ir.resolve import resolve
from archspec.ir.scope import Binding, Builder, FlatNames, Item, Scope
from archspec.ir.values import param_value, shape_names
from archspec.spec.arguments import construct_keys, quoting_hint
from archspec.ops.catalog import lookup
from archspec.spec.document import check_name
from archspec.spec.yaml_source import SourceMap


def block_call(ex: Builder, item: Item) -> Binding:
    block, block_raw = ex.spec.blocks[item.callee]
    if item.callee in ex.block_stack:
        chain = " -> ".join([*ex.block_stack[ex.block_stack.index(item.callee):], item.callee])
        raise SpecError(f"block '{item.callee}' uses itself ({chain})", item.loc, item.path, hint="blocks cannot be recursive")
    if len(item.inputs) != len(block.inputs):
        raise SpecError(
            f"block '{item.callee}' takes {len(block.inputs)} input(s) ({', '.join(block.inputs)}) but gets {len(item.inputs)}",
            item.loc,
            item.path,
        )
    env = _block_env(ex, item, block, block_raw)
    inner = item.scope.child(item.name, item.callee, closed=True, env=env)
    ex.ir.block_params[inner.path] = dict(env.maps[0])  # the block's own parameters (_block_env)
    for input_name, value in zip(block.inputs, item.inputs):
        inner.names[input_name] = Binding(value, value)
    start = len(ex.ir.graph)
    ex.block_stack.append(item.callee)
    try:
        if block.layers is not None:
            out = ex.sequence(block_raw["layers"], inner, item.inputs)
        else:
            out = branches(ex, block_raw["branches"], block.merge, block.fit, inner, item.inputs, block_raw.value_loc("branches"))
        if block.output:
            out = resolve(block.output, inner, block_raw.value_loc("output")).output
    finally:
        ex.block_stack.pop()
    return Binding(out, inner.path, ex.ir.added_since(start), item.inputs, inner.names)


def _block_env(ex: Builder, item: Item, block, block_raw) -> ChainMap:
    """A block sees the spec's parameters (not its caller's block parameters), the shapes of its
    inputs at this call (`input.shape`, `in_channels`, `in_h`, `in_w`: they shadow spec parameters
    of those names) and its own parameters (which shadow both); a ChainMap, not a copy, so a call
    costs the same however many parameters the spec has."""
    shapes = shape_names(block.inputs, [ex.ir.shapes[value] for value in item.inputs])
    env = ChainMap({}, shapes, ex.spec_env)
    for key in item.body:
        if key not in block.params:
            raise SpecError(
                f"block '{item.callee}' has no parameter '{key}'",
                item.key_loc(key),
                item.path,
                hint=quoting_hint(key)
                or did_you_mean(key, block.params)
                or (f"its parameters: {', '.join(block.params)}" if block.params else "it takes no parameters"),
            )
    params_raw = block_raw.get("params") if block.params else None
    for key, default in block.params.items():
        if key in item.body:
            env[key] = param_value(item.body[key], item.scope.env, item.value_loc(key), key)
        elif default is None:
            needed = ", ".join(f"{p}: ..." for p, d in block.params.items() if d is None)
            raise SpecError(f"block '{item.callee}' needs parameter '{key}'", item.loc, item.path,
                            hint=f"call it as `{item.callee}: {{{needed}}}`")
        else:
            loc = params_raw.value_loc(key) if isinstance(params_raw, SourceMap) else item.loc
            env[key] = param_value(default, env, loc, key)
    return env


def parallel(ex: Builder, item: Item) -> Binding:
    keys = construct_keys("parallel", item.body, item.args, item.loc, item.path)
    merge, fit = keys.merge, keys.fit
    group = item.scope.child(item.name, "parallel")
    start = len(ex.ir.graph)
    out = branches(ex, item.body["branches"], merge, fit, group, item.inputs, item.value_loc("branches"), item)
    return Binding(out, group.path, ex.ir.added_since(start), item.inputs, group.names)


def branches(ex: Builder, written: Any, merge: str, fit: str, scope: Scope, inputs: list[str], loc: Location | None,
             item: Item | None = None) -> str:
    """Each branch starts from the same input; their outputs are merged by concat or add.
    A branch given as one item (not a list) is that item, named as the branch."""
    if not isinstance(written, SourceMap) or not written:
        raise SpecError("`branches` is a mapping of branch name -> layers", loc)
    outputs = []
    for branch_name, branch in written.items():
        check_name(branch_name, written.key_loc(branch_name))
        if isinstance(branch, list):
            sub = scope.child(branch_name, "branch")
            start = len(ex.ir.graph)
            out = ex.sequence(branch, sub, inputs)
            scope.names[branch_name] = Binding(out, sub.path, ex.ir.added_since(start), inputs, sub.names)
        else:
            out = ex.item(branch, written.value_loc(branch_name), scope, inputs[0], default_name=branch_name)
        outputs.append(out)
    merge_args = {"fit": fit} if fit != "none" else {}
    # the merge node is made by the construct: its argument errors are the construct's
    written_args = item.args if item is not None else SourceMap()
    merged = Item(merge, merge_args, written_args, loc if item is None else item.loc, scope, merge, outputs)
    return op_node(ex, lookup(merge), merged).values[0]


def seq(ex: Builder, item: Item) -> Binding:
    index_names = construct_keys("seq", item.body, item.args, item.loc, item.path).index_names
    group = item.scope.child(item.name, "seq")
    if index_names:
        group.flat = FlatNames(group.path)
    start = len(ex.ir.graph)
    out = ex.sequence(item.body["layers"], group, item.inputs)
    children = {**group.flat.bindings, **group.names} if index_names else group.names
    return Binding(out, group.path, ex.ir.added_since(start), item.inputs, children)


def reuse(ex: Builder, item: Item) -> Binding:
    """Apply an existing node or block again with the same weights (shared weights)."""
    construct_keys("reuse", item.body, item.args, item.loc, item.path)
    written = item.body["node"]
    original = resolve(written, item.scope, item.value_loc("node"))
    if not original.nodes:
        raise SpecError(f"'{written}' is an input; only nodes and blocks can be reused", item.value_loc("node"))
    if len(item.inputs) != len(original.inputs):
        raise SpecError(f"'{written}' takes {len(original.inputs)} input(s) but gets {len(item.inputs)}", item.loc)
    new_path = item.path
    renamed = dict(zip(original.inputs, item.inputs))
    created = []
    # a reused block is a block here too (its own row in reports), with its inner scopes
    group = item.scope.child(item.name, "reuse") if len(original.nodes) > 1 else item.scope
    for old_id in original.nodes:
        old = ex.ir.node(old_id)
        new_id = new_path + old_id[len(original.path):] if old_id.startswith(original.path) else f"{new_path}.{old_id}"
        copy = IRNode(new_id, old.op, old.args, [_renamed(renamed, i) for i in old.inputs], old.module, item.loc)
        inner = [(new_path + s[len(original.path):], k) for s, k in zip(old.scopes, old.scope_kinds) if s.startswith(original.path + ".")]
        node = add_node(ex, copy, item.but(scope=group))
        node.scopes += tuple(s for s, _ in inner)
        node.scope_kinds += tuple(k for _, k in inner)
        if old.module != old.id or lookup(old.op).params(old.args, [ex.ir.shapes[i] for i in old.inputs]):
            check_same_weights(ex, old, node, item.loc)
        for old_value, new_value in zip(old.values, node.values):
            renamed[old_value] = new_value
        created.append(new_id)
    return Binding(_renamed(renamed, original.output), new_path, created, item.inputs)


def _renamed(renamed: dict[str, str], value: str) -> str:
    return renamed.get(value, value)


CONSTRUCTS = {"parallel": parallel, "seq": seq, "reuse": reuse}
