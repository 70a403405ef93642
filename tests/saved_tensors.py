"""What autograd keeps for backward, measured with torch.autograd.graph.saved_tensors_hooks, and
what an op's `saved` rule estimates: shared by the memory and op tests."""
from __future__ import annotations

import math

import torch

from archspec.ops.catalog import lookup


def _kept(module: torch.nn.Module, args: tuple, kwargs: dict, key, size) -> int:
    weights = {key(t) for t in [*module.parameters(), *module.buffers()]}
    kept: dict[int, int] = {}

    def pack(tensor):
        if key(tensor) not in weights:
            kept[key(tensor)] = size(tensor)
        return tensor

    torch.manual_seed(0)  # the same dropout masks every time
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        module(*args, **kwargs)
    return sum(kept.values())


def saved_bytes_measured(module: torch.nn.Module, *args, **kwargs) -> int:
    """Bytes of the distinct storages autograd saves during one training forward (weights excluded)."""
    return _kept(module, args, kwargs, lambda t: t.untyped_storage().data_ptr(),
                 lambda t: t.untyped_storage().nbytes())


def saved_elements_measured(module: torch.nn.Module, *args, **kwargs) -> int:
    """Elements of the distinct tensors autograd keeps in one training forward, weights excluded."""
    return _kept(module, args, kwargs, lambda t: t.data_ptr(), lambda t: t.numel())


def saved_elements_estimated(op_name: str, compiled, shape) -> int:
    """The elements the op's `saved` rule says its first node keeps, at batch 2."""
    op = lookup(op_name)
    node = next(node for node in compiled.ir.nodes() if lookup(node.op) is op)
    saved = op.saved(node.args, [shape], compiled.ir.shapes[node.id])
    return 2 * sum(elements for elements, _, _ in saved.extra) + (2 * math.prod(shape) if 0 in saved.inputs else 0)
