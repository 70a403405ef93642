"""Trained weights for a rewritten graph: the state_dict of the module lowered from the IR after the
rewrite, computed from the module lowered from the IR before it. Imports torch lazily.

The mapping is worked out from the two IRs, so it covers any sequence of the rules (one
`apply_rewrites` or several):
- a node present in both with the same op keeps its tensors (key `<node id>.<tensor>`);
- a conv that was a linear layer (convolutionalize) gets the linear's weight reshaped
  (out, C·H·W) -> (out, C, H, W): torch's flatten orders features C, then H, then W;
- a conv or linear whose BatchNorm is gone (fold_bn) gets W' = W·γ/√(σ²+ε) per output channel
  and b' = (b−μ)·γ/√(σ²+ε) + β (b = 0 when it had no bias).
"""
from __future__ import annotations

from typing import Any

from archspec.errors import ArchspecError
from archspec.ir.graph import IRGraph, IRNode
from archspec.ops.catalog import lookup

WEIGHTED = ("conv", "dwconv", "linear")
# nodes a BatchNorm may sit behind and still fold into the layer before them: dropout and
# identity (removed by strip_dropout), flatten of a Cx1x1 map (convolutionalize moves it)
_PASS_THROUGH = ("dropout", "drop_path", "identity", "flatten")


def transfer_weights(module_before: Any, ir_before: IRGraph, ir_after: IRGraph) -> dict[str, Any]:
    """The state_dict for `lower(ir_after)`, from `module_before` (lowered from `ir_before`, trained).

    Load it with `module_after.load_state_dict(state)` (strict: every tensor is there)."""
    import torch

    source = module_before.state_dict()
    state: dict[str, Any] = {}
    for node in ir_after.nodes():
        if node.op == "input" or node.module != node.id:
            continue
        op = lookup(node.op)
        in_shapes = [ir_after.shapes[i] for i in node.inputs]
        wanted = {**op.params(node.args, in_shapes), **op.buffers(node.args, in_shapes)}
        if not wanted:
            continue
        old = _node(ir_before, node.id)
        if old is None:
            raise ArchspecError(f"node '{node.id}' has weights but no counterpart in the graph before the rewrite")
        if node.op in WEIGHTED and old.op in WEIGHTED:
            tensors = _weighted(torch, source, old, ir_before, ir_after, wanted)
        elif node.op == old.op:
            tensors = {name: _tensor(source, node.id, name) for name in wanted}
        else:
            raise ArchspecError(f"cannot map the weights of '{node.id}': {old.op} before the rewrite, {node.op} after")
        for name, shape in wanted.items():
            tensor = tensors[name]
            if tuple(tensor.shape) != tuple(shape):
                if tensor.numel() != _numel(shape):
                    raise ArchspecError(
                        f"cannot map '{node.id}.{name}': shape {tuple(tensor.shape)} before the rewrite, {tuple(shape)} after"
                    )
                tensor = tensor.reshape(shape)
            state[f"{node.id}.{name}"] = tensor.detach().clone()
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


def _weighted(torch, source: dict, old: IRNode, ir_before: IRGraph, ir_after: IRGraph, wanted: dict) -> dict[str, Any]:
    weight = _tensor(source, old.id, "weight")
    bias = source.get(f"{old.id}.bias")
    bn = _folded_bn(old, ir_before, ir_after)
    if bn is not None:
        if not bn.args.track_running_stats:
            raise ArchspecError(f"'{bn.id}' keeps no running statistics and cannot be folded into '{old.id}'")
        mean = _tensor(source, bn.id, "running_mean").double()
        var = _tensor(source, bn.id, "running_var").double()
        gamma = source[f"{bn.id}.weight"].double() if bn.args.affine else torch.ones_like(mean)
        beta = source[f"{bn.id}.bias"].double() if bn.args.affine else torch.zeros_like(mean)
        if mean.numel() != weight.shape[0]:
            raise ArchspecError(f"cannot fold '{bn.id}' ({mean.numel()} channels) into '{old.id}' ({weight.shape[0]} outputs)")
        scale = gamma / torch.sqrt(var + bn.args.eps)
        shift = (bias.double() if bias is not None else torch.zeros_like(mean)) - mean
        weight = (weight.double() * scale.reshape(-1, *([1] * (weight.dim() - 1)))).to(weight.dtype)
        bias = (shift * scale + beta).to(weight.dtype)
    tensors = {"weight": weight}
    if "bias" in wanted:
        tensors["bias"] = bias if bias is not None else torch.zeros(wanted["bias"], dtype=weight.dtype)
    elif bias is not None:
        raise ArchspecError(f"'{old.id}' had a bias that the rewritten graph has no place for")
    return tensors


def _folded_bn(old: IRNode, ir_before: IRGraph, ir_after: IRGraph) -> IRNode | None:
    """The BatchNorm after `old` (before the rewrite) that the rewritten graph no longer has."""
    current = old
    outputs = set(ir_before.outputs.values())
    while True:
        consumers = ir_before.consumers(current.id)
        if len(consumers) != 1 or current.id in outputs:
            return None
        after = ir_before.node(consumers[0])
        if after.op == "bn":
            return after if _node(ir_after, after.id) is None else None
        if after.op not in _PASS_THROUGH:
            return None
        current = after


def _node(ir: IRGraph, node_id: str) -> IRNode | None:
    try:
        return ir.node(node_id)
    except KeyError:
        return None


def _tensor(source: dict, node_id: str, name: str):
    key = f"{node_id}.{name}"
    if key not in source:
        raise ArchspecError(f"the module before the rewrite has no tensor '{key}'; was it lowered from the same IR?")
    return source[key]


def _numel(shape) -> int:
    total = 1
    for size in shape:
        total *= size
    return total
