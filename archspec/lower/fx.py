"""IR -> torch.nn.Module, by generating a torch.fx graph (and so Python source).

The produced `GraphModule` has a straight-line `forward` (see `module.code`) that torch.compile,
torch.export and a person can read. Submodules are registered under the IR's module paths
(`layer1.0.conv1`), in the spec's order, so state_dict keys are stable and readable.

Like torchvision's models, a relu (or leaky relu) or a residual add overwrites its input
where `archspec.ir.in_place` allows it (nothing else reads the input, and its producer's backward
does not keep it); that saves an allocation and a memory pass per op. A forward hook on a
batch-norm module therefore sees its output after the relu that follows, as in torchvision.
"""
from __future__ import annotations

import functools
import operator
import re


import torch.fx as fx
import torch.nn as nn

from archspec.errors import SpecError
from archspec.ir.graph import IRGraph
from archspec.ir.in_place import in_place_nodes
from archspec.lower.cost import check_lowering_cost
from archspec.lower.init import initialise


def lower(ir: IRGraph) -> fx.GraphModule:
    check_lowering_cost(ir)
    root = nn.Module()
    graph = fx.Graph()
    values: dict[str, fx.Node] = {}  # value name -> the fx node that computes it
    frozen: list[str] = []
    in_place = in_place_nodes(ir)
    for node in ir.nodes():
        name = python_name(node.id)
        if node.is_input:
            values[node.id] = graph.placeholder(name)
            continue
        call = _call(graph, root, node, [values[i] for i in node.inputs], [ir.shapes[i] for i in node.inputs],
                     node.id in in_place, name)
        if node.module == node.id and (node.entry.module or node.entry.tensor) is not None and not node.trainable:
            frozen.append(node.module)
        if len(node.values) == 1:
            values[node.id] = call
        else:  # several outputs: one `getitem` per output, as torch.fx traces `a, b = x.split(...)`
            for index, value in enumerate(node.values):
                values[value] = graph.call_function(operator.getitem, (call, index), name=f"{name}_{index}")
    outputs = {name: values[value] for name, value in ir.outputs.items()}
    graph.output(outputs if ir.named_outputs or len(outputs) > 1 else next(iter(outputs.values())))
    module = fx.GraphModule(root, graph, class_name=_class_name(ir.name))
    for path in frozen:
        owner, _, leaf = path.rpartition(".")
        frozen_part = module.get_submodule(owner)
        getattr(frozen_part, leaf).requires_grad_(False)  # a module's tensors, or a free tensor
    initialise(module, ir)
    return module


def _call(graph: fx.Graph, root: nn.Module, node, args: list, in_shapes: list, in_place: bool, name: str) -> fx.Node:
    """The fx node of one op call: its module (built by the owner, called again by reusers) or function."""
    op = node.entry
    if op.module is not None:
        if node.module == node.id:
            _check_free(node.module, node)
            _set_submodule(root, node.module, op.module(node.args, in_shapes))
        return graph.create_node("call_module", node.module, tuple(args), {}, name=name)
    if op.tensor is not None:  # a free tensor: a parameter at the node's own path, read with get_attr
        if node.module == node.id:
            _check_free(node.module, node)
            _set_parameter(root, node.module, op.tensor(node.args, in_shapes))
        args = [graph.create_node("get_attr", node.module, name=f"{name}_tensor"), *args]
    function, keywords = op.function(node.args, in_shapes)
    if in_place:
        function, keywords = op.in_place_form(function, keywords)
    call_args = (args,) if op.inputs_as_list else tuple(args)
    return graph.create_node("call_function", function, call_args, keywords, name=name)


@functools.cache
def _taken(top: bool) -> frozenset[str]:
    """Attribute names of the module classes a lowered module is made of."""
    module = fx.GraphModule(nn.Module(), fx.Graph()) if top else nn.Module()
    return frozenset(dir(module))


def _check_free(path: str, node) -> None:
    # a module named `forward`, `training` or `graph` would replace (or fail to replace) torch's own
    for depth, part in enumerate(path.split(".")):
        if part in _taken(depth == 0):
            raise SpecError(
                f"the name '{part}' is taken by torch.nn.Module (or fx.GraphModule) and cannot name a module",
                node.loc,
                node.id,
                hint="rename it",
            )


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    *parents, leaf = path.split(".")
    _scope_module(root, parents).add_module(leaf, module)


def _set_parameter(root: nn.Module, path: str, parameter: nn.Parameter) -> None:
    """Register a free tensor on the module of its scope, so that its state_dict key is `path`."""
    *parents, leaf = path.split(".")
    _scope_module(root, parents).register_parameter(leaf, parameter)


def _scope_module(root: nn.Module, parts: list[str]) -> nn.Module:
    """The module at the scope path `parts`, made (an empty nn.Module) where it is missing."""
    current = root
    for part in parts:
        if not hasattr(current, part):
            current.add_module(part, nn.Module())
        current = getattr(current, part)
    return current


def python_name(node_id: str) -> str:
    name = re.sub(r"\W", "_", node_id)
    name = name if name[:1].isalpha() or name[:1] == "_" else f"n_{name}"
    return f"{name}_" if name == "self" else name  # a local `self` would hide the module


def _class_name(spec_name: str) -> str:
    words = re.split(r"[^A-Za-z0-9]", spec_name)
    name = "".join(w[:1].upper() + w[1:] for w in words if w)
    return name if name[:1].isalpha() else f"Spec{name}"
