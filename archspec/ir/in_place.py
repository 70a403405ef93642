"""Which nodes overwrite their first input instead of allocating an output, as torchvision's
`ReLU(inplace=True)` and `out += identity` do.

A node runs in place when its op can (`Op.in_place`), its first input comes from an op whose
backward does not keep that output (`Op.fresh_output`: a conv, a norm, an add...), and nothing
else reads that input (no other consumer, not a graph output). `archspec.lower.fx` lowers these
nodes to in-place torch calls; `archspec.passes.memory` counts their output as their input's
storage. Torch-free, like every pass.
"""
from __future__ import annotations

from collections import Counter

from archspec.ir.graph import IRGraph
from archspec.ops.catalog import lookup


def in_place_nodes(ir: IRGraph) -> dict[str, str]:
    """In-place node id -> the node whose output it overwrites."""
    readers = Counter(producer for node in ir.nodes() for producer in set(node.inputs))
    readers.update(ir.outputs.values())
    fresh: set[str] = set()
    chosen: dict[str, str] = {}
    for node in ir.nodes():
        if node.op == "input":
            continue
        op = lookup(node.op)
        if op.fresh_output:
            fresh.add(node.id)
        first = node.inputs[0]
        if op.in_place is not None and first in fresh and readers[first] == 1:
            if op.in_place(node.args, [ir.shapes[i] for i in node.inputs]):
                chosen[node.id] = first
    return chosen


def storage_owners(ir: IRGraph) -> dict[str, str]:
    """Node id -> the node that allocated its output tensor (itself, unless it runs in place)."""
    owners = {node_id: node_id for node_id in ir.order}
    for node_id, overwritten in in_place_nodes(ir).items():  # in order: chains resolve
        owners[node_id] = owners[overwritten]
    return owners
