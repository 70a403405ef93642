"""torch.export where torch.fx cannot trace (a forward that branches on a shape, calls `len(x)`):
the exported ATen graph, rebuilt as the fx graph the importer reads.

torch.export runs the forward for real (non-strict) with a dynamic batch, so Python control flow
on sizes is fine. Its graph has ATen ops, each with the module stack it ran in; the nodes of one
call of a module the importer keeps whole (a torch.nn layer, or a module some op's matcher names)
become one `call_module` of that module again, and every other ATen op becomes the torch function
or Tensor method of its name (`aten.add.Tensor` -> `torch.add`, `aten.view` -> `Tensor.view`),
so the op matchers see what fx would have recorded.
"""
from __future__ import annotations

from typing import Any


def exported_graph_module(model, input_shape: tuple[int, ...], is_leaf) -> Any:
    import torch
    import torch.fx as fx

    example = torch.randn(2, *input_shape)
    batch = torch.export.Dim("batch", min=2, max=4096)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},), strict=False)
    exported = program.module()
    groups = _leaf_calls(exported.graph, model, is_leaf)
    needed = _read_outside(exported.graph, groups) | {n for group in groups.values() for n in group["inputs"]}
    graph = fx.Graph()
    env: dict[Any, Any] = {}
    for node in exported.graph.nodes:
        group = groups.get(node)
        if group is not None:
            if node is group["last"]:
                call = graph.call_module(group["path"], tuple(env[n] for n in group["inputs"]))
                call.meta["nn_module_stack"] = dict(node.meta.get("nn_module_stack", {}))
                env[group["output"]] = call
            continue
        if node.op == "get_attr" and node not in needed:
            continue  # a kept module's own tensor: the module call holds it
        if node.op == "call_module":
            continue  # export's own checks (`_guards_fn`): they give nothing
        if node.op == "output" and program.call_spec.out_spec.is_leaf():
            graph.output(env[node.args[0][0]])  # the forward gives one tensor, not export's flat tuple of one
            continue
        env[node] = graph.node_copy(node, lambda n: env[n])
        if node.op == "call_function":
            _as_torch_call(env[node])
    return fx.GraphModule(model, graph, type(model).__name__)


def _leaf_calls(graph, model, is_leaf) -> dict[Any, dict]:
    """ATen node -> the module call it belongs to: {path, inputs, output, last}, for the modules
    kept whole (the outermost such module in the node's stack)."""
    members: dict[str, list] = {}
    paths: dict[str, str] = {}
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        for key, (path, _) in node.meta.get("nn_module_stack", {}).items():
            if path and is_leaf(model.get_submodule(path), path):
                members.setdefault(key, []).append(node)
                paths[key] = path
                break
    groups = {}
    for key, nodes in members.items():
        inside = set(nodes)
        own = paths[key] + "."
        inputs = []
        for node in nodes:
            for arg in node.all_input_nodes:
                if arg not in inside and arg not in inputs and not (arg.op == "get_attr" and arg.target.startswith(own)):
                    inputs.append(arg)
        outputs = [n for n in nodes if any(user not in inside for user in n.users)]
        if len(outputs) != 1:
            continue  # a module call giving several values stays as its ATen ops
        group = {"path": paths[key], "inputs": inputs, "output": outputs[0], "last": nodes[-1]}
        for node in nodes:
            groups[node] = group
    return groups


def _read_outside(graph, groups) -> set:
    return {arg for node in graph.nodes if node not in groups for arg in node.all_input_nodes}


def _as_torch_call(node) -> None:
    """`aten.add.Tensor` -> torch.add, `aten.hardswish` -> F.hardswish, `aten.view` -> Tensor.view
    (in-place forms read as their plain ones: export has already made them functional)."""
    import torch
    import torch.nn.functional as F

    packet = getattr(node.target, "overloadpacket", None)
    if packet is None or not str(node.target).startswith("aten."):
        return
    name = packet.__name__.rstrip("_") if packet.__name__ not in ("sym_size",) else None
    if name is None:
        return
    for space in (torch, F):
        function = getattr(space, name, None)
        if callable(function) and not isinstance(function, type):
            node.target = function
            return
    if hasattr(torch.Tensor, name):
        node.op, node.target = "call_method", name
