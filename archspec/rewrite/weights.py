"""Trained weights for a rewritten graph: the state_dict of the module lowered from the IR after the
rewrite, computed from the module lowered from the IR before it. Imports torch lazily.

The mapping is worked out from the two IRs, so it covers any sequence of the rules (one
`apply_rewrites` or several):
- a node present in both with the same op keeps its tensors (key `<node id>.<tensor>`);
- a node whose op changed was rewritten into its form on a map (`Op.convolutional`: a linear
  layer as a conv): its tensors are the same numbers reshaped, (out, C·H·W) -> (out, C, H, W);
- a weighted layer whose BatchNorm is gone (fold_bn) takes it in through the op entries' hooks:
  the BatchNorm's `affine_at_inference` gives y = x·scale + shift per channel, the layer's
  `fold_affine` folds that into W and b (archspec.ops.transfer).
"""
from __future__ import annotations

from typing import Any

from archspec.errors import ArchspecError
from archspec.ir.graph import IRGraph, IRNode
from archspec.ops.catalog import lookup
from archspec.ops.registry import tensor_key

# nodes a BatchNorm may sit behind and still fold into the layer before them: removable ones
# (dropout, identity: strip_dropout removes them) and a flatten of a Cx1x1 map (convolutionalize moves it)
_BETWEEN_LAYER_AND_BN = ("removable", "flattens")


def transfer_weights(module_before: Any, ir_before: IRGraph, ir_after: IRGraph) -> dict[str, Any]:
    """The state_dict for `lower(ir_after)`, from `module_before` (lowered from `ir_before`, trained).

    Load it with `module_after.load_state_dict(state)` (strict: every tensor is there)."""
    source = module_before.state_dict()
    state: dict[str, Any] = {}
    for node in ir_after.nodes():
        if node.is_input or node.module != node.id:
            continue
        op = lookup(node.op)
        in_shapes = [ir_after.shapes[i] for i in node.inputs]
        wanted = {**op.params(node.args, in_shapes), **op.buffers(node.args, in_shapes)}
        if not wanted:
            continue
        old = _node(ir_before, node.id)
        if old is None:
            raise ArchspecError(f"node '{node.id}' has weights but no counterpart in the graph before the rewrite")
        tensors = _tensors(source, old, node, ir_before, ir_after, wanted)
        for name, shape in wanted.items():
            tensor = tensors[name]
            if tuple(tensor.shape) != tuple(shape):
                if tensor.numel() != _numel(shape):
                    raise ArchspecError(
                        f"cannot map '{node.id}.{name}': shape {tuple(tensor.shape)} before the rewrite, {tuple(shape)} after"
                    )
                tensor = tensor.reshape(shape)
            state[tensor_key(node.id, name)] = tensor.detach().clone()
    return state


def fold_bn_weights(module_before: Any, ir_before: IRGraph, ir_after: IRGraph) -> dict[str, Any]:
    """The state_dict for the BN-folded module: W' = W·γ/√(σ²+ε), b' = (b−μ)·γ/√(σ²+ε)+β per
    output channel; every other tensor is copied. (The same as `transfer_weights`, which also
    handles the other rules, so the IRs may differ by any of them.)"""
    return transfer_weights(module_before, ir_before, ir_after)


def convolutionalize_weights(module_before: Any, ir_before: IRGraph, ir_after: IRGraph) -> dict[str, Any]:
    """The state_dict for the convolutionalized module: each linear weight (out, C·H·W) reshaped
    to the conv's (out, C, H, W); biases and everything else copied (see `transfer_weights`)."""
    return transfer_weights(module_before, ir_before, ir_after)


def _tensors(source: dict, old: IRNode, node: IRNode, ir_before: IRGraph, ir_after: IRGraph, wanted: dict) -> dict[str, Any]:
    """The tensors of `node` (after the rewrite) from those of `old` (before), not yet reshaped."""
    if node.op != old.op and (lookup(old.op).convolutional is None or not lookup(node.op).is_("weighted")):
        raise ArchspecError(f"cannot map the weights of '{node.id}': {old.op} before the rewrite, {node.op} after")
    if not lookup(old.op).is_("weighted"):
        return {name: _tensor(source, node.id, name) for name in wanted}
    tensors = {name: _tensor(source, old.id, name) for name in lookup(old.op).params(old.args, _in_shapes(ir_before, old))}
    bn = _folded_bn(old, ir_before, ir_after)
    if bn is not None:
        tensors = _fold(source, old, bn, ir_before, tensors)
    if "bias" not in wanted and "bias" in tensors:
        raise ArchspecError(f"'{old.id}' had a bias that the rewritten graph has no place for")
    if "bias" in wanted and "bias" not in tensors:
        import torch

        tensors["bias"] = torch.zeros(wanted["bias"], dtype=tensors["weight"].dtype)
    return tensors


def _fold(source: dict, layer: IRNode, bn: IRNode, ir_before: IRGraph, tensors: dict[str, Any]) -> dict[str, Any]:
    """The layer's tensors with the BatchNorm after it folded in (the entries' hooks)."""
    affine = lookup(bn.op).affine_at_inference(bn.args)
    fold = lookup(layer.op).fold_affine
    if lookup(layer.op).is_("last_axis") and len(_in_shapes(ir_before, layer)[0]) != 1:
        # its output channels are the last axis, the BN's the first: only on a vector are they one
        raise ArchspecError(f"cannot fold '{bn.id}' into '{layer.id}': the layer acts on the last axis of a non-vector")
    if affine is None or fold is None:
        raise ArchspecError(f"'{bn.id}' cannot be folded into '{layer.id}' (no running statistics, or a layer that takes no fold)")
    wanted = {**lookup(bn.op).params(bn.args, _in_shapes(ir_before, bn)), **lookup(bn.op).buffers(bn.args, _in_shapes(ir_before, bn))}
    scale, shift = affine({name: _tensor(source, bn.id, name) for name in wanted})
    channels = ir_before.shapes[layer.id][0]
    if scale.numel() != channels:
        raise ArchspecError(f"cannot fold '{bn.id}' ({scale.numel()} channels) into '{layer.id}' ({channels} outputs)")
    return fold(layer.args, tensors, scale, shift)


def _in_shapes(ir: IRGraph, node: IRNode) -> list:
    return [ir.shapes[value] for value in node.inputs]


def _folded_bn(old: IRNode, ir_before: IRGraph, ir_after: IRGraph) -> IRNode | None:
    """The BatchNorm after `old` (before the rewrite) that the rewritten graph no longer has."""
    current = old
    outputs = set(ir_before.outputs.values())
    while True:
        consumers = ir_before.consumers(current.id)
        if len(consumers) != 1 or current.id in outputs:
            return None
        after = ir_before.node(consumers[0])
        entry = lookup(after.op)
        if entry.affine_at_inference is not None:
            return after if _node(ir_after, after.id) is None else None
        if entry.traits.isdisjoint(_BETWEEN_LAYER_AND_BN):
            return None
        current = after


def _node(ir: IRGraph, node_id: str) -> IRNode | None:
    try:
        return ir.node(node_id)
    except KeyError:
        return None


def _tensor(source: dict, node_id: str, name: str):
    key = tensor_key(node_id, name)
    if key not in source:
        raise ArchspecError(f"the module before the rewrite has no tensor '{key}'; was it lowered from the same IR?")
    return source[key]


def _numel(shape) -> int:
    total = 1
    for size in shape:
        total *= size
    return total
