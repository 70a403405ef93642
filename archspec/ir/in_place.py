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
    """In-place node id -> the value whose storage it overwrites. One walk in order, after one
    count of each value's readers."""
    nodes = ir.nodes()
    readers = Counter(value for node in nodes for value in set(node.inputs))
    readers.update(ir.outputs.values())
    fresh: set[str] = set()  # values whose producer's backward does not keep them
    chosen: dict[str, str] = {}
    for node in nodes:
        if node.is_input:
            continue
        op = lookup(node.op)
        if op.fresh_output:
            fresh.update(node.values)
        first = node.inputs[0] if node.inputs else None
        if op.in_place is not None and first in fresh and readers[first] == 1:
            if op.in_place(node.args, [ir.shapes[value] for value in node.inputs]):
                chosen[node.id] = first
    return chosen


def storage_owners(ir: IRGraph) -> dict[str, str]:
    """Value -> the value that allocated its storage (itself, unless its node runs in place)."""
    in_place = in_place_nodes(ir)
    owners: dict[str, str] = {}
    for node in ir.nodes():  # in order: a chain of in-place nodes resolves to its first storage
        for value in node.values:
            owners[value] = value
        if node.id in in_place:
            owners[node.id] = owners[in_place[node.id]]
    return owners
