"""An IR written back as a spec: a flat one, one layer per node, that archspec loads again.

Blocks, repeats, branches and projections are already expanded in the IR, so every layer gets an
explicit `name` and `from`, and every argument its value (no `params`, no expressions). A name
cannot hold a dot, so a module path becomes one name with `_` for `.` (`layer1.0.conv1` ->
`layer1_0_conv1`); `flat_names` gives the mapping and `flat_state_dict` renames a state_dict to
match. Shared weights are written as `reuse: {node: OWNER}`, frozen nodes with `trainable: false`.
"""
from __future__ import annotations

import keyword
import re
from typing import Any

import yaml

from archspec.errors import ArchspecError
from archspec.ir.graph import IRGraph, IRNode, split_value
from archspec.ops.catalog import lookup
from archspec.ops.common import format_shape
from archspec.ops.registry import tensor_key

MAX_NAME = 64
_VALID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_RESERVED = ("name", "from", "repeat", "trainable", "when")


def flat_names(ir: IRGraph) -> dict[str, str]:
    """node id -> its name in the flat spec: unchanged when it is a valid name, else the module
    path with `_` for `.` (and other characters a name cannot hold), made unique."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    # ids that are names already keep them; the rest are renamed after, in order
    for node in ir.nodes():
        if node.is_input or (_VALID.match(node.id) and not keyword.iskeyword(node.id)):
            names[node.id] = node.id
            taken.add(node.id)
    for node in ir.nodes():
        if node.id in names:
            continue
        base = re.sub(r"[^A-Za-z0-9_\-]", "_", node.id)[:MAX_NAME]
        name, count = base, 1
        while name in taken or keyword.iskeyword(name):
            count += 1
            suffix = f"_{count}"
            name = base[: MAX_NAME - len(suffix)] + suffix
        names[node.id] = name
        taken.add(name)
    return {node_id: names[node_id] for node_id in ir.order}


def flat_state_dict(state: dict[str, Any], ir: IRGraph) -> dict[str, Any]:
    """Rename a state_dict of `lower(ir)` for the module lowered from `ir_to_spec_yaml(ir)`."""
    names = flat_names(ir)
    renamed = {}
    for key, value in state.items():
        # a free tensor's key is its node's path (`class_token`); any other is `path.tensor`
        path, _, tensor = (key, "", "") if key in names else key.rpartition(".")
        if path not in names:
            raise ArchspecError(f"state_dict key '{key}' names no node of {ir.name}")
        renamed[tensor_key(names[path], tensor)] = value
    return renamed


def ir_to_spec_yaml(ir: IRGraph, name: str | None = None, summary: str | None = None, comment: str | None = None) -> str:
    """The IR as the text of a flat spec (see the module docstring). Loading it and building it
    at the same input sizes gives the same shapes, parameters, MACs and FLOPs."""
    if all(node.is_input for node in ir.nodes()):
        raise ArchspecError(f"{ir.name} has no layers left after the rewrite, so there is no spec to write")
    names = flat_names(ir)
    header: dict[str, Any] = {
        "name": name or ir.name,
        "summary": summary or f"{ir.name} as a flat spec (one layer per node), written by archspec",
    }
    if ir.init != "torch":
        header["init"] = ir.init if isinstance(ir.init, str) else ir.init.model_dump()
    header["inputs"] = {input_name: list(ir.shapes[node_id]) for input_name, node_id in ir.inputs.items()}
    outputs = _outputs(ir, names)
    if outputs is not None:
        header["outputs"] = outputs
    lines = []
    if comment:
        lines.extend(f"# {line}".rstrip() for line in comment.splitlines())
    lines.append(yaml.safe_dump(header, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True).rstrip())
    lines.append("layers:")
    items = [(_item(node, names, ir), _shapes(node)) for node in ir.nodes() if not node.is_input]
    width = max((len(text) for text, _ in items), default=0)
    for text, shape in items:
        lines.append(f"  - {text.ljust(min(width, 100))}  # {shape}")
    return "\n".join(lines) + "\n"


def _ref(value: str, names: dict[str, str]) -> str:
    """How the flat spec names a value: the node's name, and `.k` for output k of a node with several."""
    node_id, output = split_value(value)
    return names[node_id] + (f".{output}" if value != node_id else "")


def _shapes(node: IRNode) -> str:
    return ", ".join(format_shape(shape) for shape in node.shapes)


def _outputs(ir: IRGraph, names: dict[str, str]) -> Any:
    if ir.named_outputs or len(ir.outputs) > 1:
        return {output: _ref(value, names) for output, value in ir.outputs.items()}
    ((output, value),) = ir.outputs.items()
    if output == "output" and value == ir.order[-1]:
        return None  # the default: the last layer, named `output`
    return _ref(value, names)


def _item(node: IRNode, names: dict[str, str], ir: IRGraph) -> str:
    args: dict[str, Any] = {"name": names[node.id]}
    refs = [_ref(value, names) for value in node.inputs]
    args["from"] = refs[0] if len(refs) == 1 else refs
    if not node.trainable:
        args["trainable"] = False
    if node.module != node.id:
        owner = _owner(node, ir)
        args["node"] = names[owner.id]
        op = "reuse"
    else:
        op = node.op
        values = node.args.model_dump(mode="json", exclude_defaults=True)
        for key in lookup(node.op).builder_args:  # e.g. `project: auto`: the flat spec lists the projection
            values.pop(key, None)
        clash = [key for key in values if key in _RESERVED]
        if clash:
            raise ArchspecError(f"node '{node.id}': argument '{clash[0]}' cannot be written in a spec (a reserved key)")
        args.update(values)
    text = yaml.safe_dump({op: args}, default_flow_style=True, sort_keys=False, width=1 << 20, allow_unicode=True).strip()
    return text[1:-1]  # `{conv: {...}}` -> `conv: {...}`


def _owner(node: IRNode, ir: IRGraph) -> IRNode:
    try:
        owner = ir.node(node.module)
    except KeyError:
        raise ArchspecError(f"node '{node.id}' shares the weights of '{node.module}', which is not in the graph") from None
    if owner.op != node.op or owner.args != node.args or len(owner.inputs) != len(node.inputs):
        raise ArchspecError(f"node '{node.id}' shares the weights of '{owner.id}' but is not the same op with the same arguments")
    return owner
