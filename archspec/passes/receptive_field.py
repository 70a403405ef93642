"""Receptive field per node, relative to the spec's first input: size, jump and offset per axis.

For a node with a (C, H, W) output we walk the op rules of `archspec.ops.field` backwards to the
graph input, for three output positions at once (the first, the centre and the last, per axis).
The ranges demanded of a node by several consumers are united, so residuals, concatenations,
branches and bridges count every path. From the resulting input intervals:
- `size`: the field of the centre output position (input pixels, padding included);
- `offset`: the centre of output position 0's field, in input coordinates;
- `jump`: how far the field moves per output position ((last - first centre) / (n - 1)).
A node whose output is a vector (after global pooling, flatten, linear) depends on the whole
spatial map before it: `is_global`, with the size of that union. Pure function of the IR.
"""
from __future__ import annotations

from dataclasses import dataclass

from archspec.errors import SpecError
from archspec.ir.graph import IRGraph
from archspec.ops.field import Ranges, window_ranges, whole_ranges
from archspec.ops.catalog import lookup

Probes = list[Ranges]  # the ranges asked of a node, one per probed output position
WHOLE = "whole"  # a vector output: every position of the spatial map before it
# steps (nodes looked at) for the fields asked for at once: all nodes of a graph of n nodes take
# about n^2 / 2, so up to about 1,400 nodes (DenseNet-169, the largest library spec: 177,000)
MAX_FIELD_WORK = 1_000_000


@dataclass(frozen=True)
class ReceptiveField:
    size: tuple[float, float]
    jump: tuple[float, float]
    offset: tuple[float, float]
    is_global: bool = False
    # the input interval (first, last) of the centre output position, per axis, unclipped
    centre_interval: tuple[tuple[float, float], tuple[float, float]] = ((0, 0), (0, 0))


def receptive_fields(ir: IRGraph, nodes: list[str] | None = None) -> dict[str, ReceptiveField | None]:
    """The field of each node (or of `nodes`); None for nodes that do not depend on the first input.

    Each node's field is a walk back over the nodes before it, so all of them cost about n^2 / 2
    steps: more than MAX_FIELD_WORK is refused (an ArchspecError) before any is walked."""
    source = next(iter(ir.inputs.values()))
    targets = nodes or [n.id for n in ir.nodes() if n.op != "input"]
    position = {node_id: index for index, node_id in enumerate(ir.order)}
    work = sum(position[target] + 1 for target in targets)
    if work > MAX_FIELD_WORK:
        raise SpecError(
            f"the receptive fields of {len(targets):,} nodes would take {work:,} steps, more than the limit of {MAX_FIELD_WORK:,}",
            hint="archspec computes them for graphs of up to about 1,400 nodes; leave out --receptive-field",
        )
    return {target: _field(ir, target, source, position) for target in targets}


def _field(ir: IRGraph, target: str, source: str, position: dict[str, int]) -> ReceptiveField | None:
    shape = ir.shapes[target]
    if len(shape) == 3:
        probes = [tuple((p, p) for p in positions) for positions in _probe_positions(shape)]
    else:
        probes = WHOLE
    found = _walk_back(ir, target, source, probes, position)
    if found is None:
        return None
    if probes == WHOLE or len(found) == 1:  # a vector on the way (e.g. fc then reshape): the whole map
        (first, last), (left, right) = found[0]
        size = (last - first + 1, right - left + 1)
        return ReceptiveField(size, (0, 0), ((first + last) / 2, (left + right) / 2), True, found[0])
    first, centre, last = found
    size = tuple(hi - lo + 1 for lo, hi in centre)
    mid = lambda r: tuple((lo + hi) / 2 for lo, hi in r)  # noqa: E731
    steps = tuple(max(n - 1, 1) for n in shape[1:])
    jump = tuple((b - a) / s for a, b, s in zip(mid(first), mid(last), steps))
    return ReceptiveField(size, jump, mid(first), False, centre)


def _probe_positions(shape) -> list[tuple[int, int]]:
    _, height, width = shape
    return [(0, 0), (height // 2, width // 2), (height - 1, width - 1)]


def _walk_back(ir: IRGraph, target: str, source: str, probes, position: dict[str, int]) -> Probes | None:
    demand: dict[str, object] = {target: probes}
    for node_id in reversed(ir.order[: position[target] + 1]):
        asked = demand.pop(node_id, None)
        if asked is None:
            continue
        node = ir.node(node_id)
        shape = ir.shapes[node_id]
        if asked == WHOLE and len(shape) == 3:
            asked = [whole_ranges(shape)]
        if node_id == source:
            return asked if asked != WHOLE else None
        if node.op == "input":
            continue
        for producer, ranges in zip(node.inputs, _read(node, asked, ir)):
            if ranges is not None:
                demand[producer] = _united(demand.get(producer), ranges)
    return None


def _read(node, asked, ir: IRGraph) -> list:
    """What each input of `node` is asked for, given what is asked of the node."""
    in_shapes = [ir.shapes[i] for i in node.inputs]
    if asked == WHOLE or len(ir.shapes[node.id]) != 3:
        return [WHOLE] * len(node.inputs)
    op = lookup(node.op)
    if op.receptive_field is not None:
        per_probe = [op.receptive_field(node.args, r, in_shapes, ir.shapes[node.id]) for r in asked]
        return [None if probe[0] is None else [p for p in probe] for probe in zip(*per_probe)]
    if op.window is not None:
        window = op.window(node.args, in_shapes)
        return [[window_ranges(r, *window) for r in asked]] + [asked] * (len(node.inputs) - 1)
    return [asked] * len(node.inputs)


def _united(known, new):
    if known is None:
        return new
    if known == WHOLE or new == WHOLE:
        return WHOLE
    return [
        tuple((min(a[0], b[0]), max(a[1], b[1])) for a, b in zip(ranges_a, ranges_b))
        for ranges_a, ranges_b in zip(known, new)
    ]
