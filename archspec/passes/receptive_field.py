"""Receptive field per node, relative to the spec's first input: size, jump and offset per axis.

A node's field is what the op rules of `archspec.ops.field` give, walked back to the graph input,
for three output positions at once (the first, the centre and the last, per axis). The ranges
asked of a node by several consumers are united, so residuals, concatenations, branches and
bridges count every path. From the resulting input intervals:
- `size`: the field of the centre output position (input pixels, padding included);
- `offset`: the centre of output position 0's field, in input coordinates;
- `jump`: how far the field moves per output position ((last - first centre) / (n - 1)).
A node whose output is a vector (after global pooling, flatten, linear), or that reads a map
whole (a reshape), depends on the whole spatial map before it: `is_global`, with the size of that
union (for the paths that stay spatial, the union at output position 0). Positions may sit on any
two axes (`Layout`: channels-last tokens in ConvNeXt's MLP and Swin): the pass follows where each
value holds them, from the op entries' `layout` rules.

One pass in topological order keeps, per node and axis, an exact affine summary of where its
positions read (`AxisSummary`): convolutions, pooling, crops, merges of paths with the same jump
and squeeze-excitation gates compose in O(1). The summaries are relative to anchors: the graph
input, and each node whose reads are not affine (a resize, a strided transposed convolution,
uneven adaptive pooling, a merge of paths with different jumps). A field then costs one step per
anchor on its paths, where that anchor's own rule is applied as asked. Pure function of the IR.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import NamedTuple

from archspec.errors import SpecError
from archspec.ir.graph import IRGraph
from archspec.ops.catalog import lookup
from archspec.ops.field import (
    MAP,
    SAME_POSITIONS,
    WHOLE,
    AffineRead,
    Layout,
    NotAffine,
    Ranges,
    affine_reads,
    positional_sizes,
    whole_ranges,
    window_ranges,
)

NOT_AFFINE = "not affine"  # a node's reads, when its rule does not give an exact affine map
SAME = (SAME_POSITIONS, SAME_POSITIONS)
# anchors worked out for all the fields asked at once: a field costs one step per non-affine
# layer on its paths (U-Net: at most 4), so only a graph with hundreds of them nears the limit
MAX_FIELD_WORK = 100_000
MAX_ROUTES = 8  # anchors a summary may refer to; a node that would need more becomes an anchor


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

    Linear in the number of nodes, plus one step per anchor on each field's paths: past
    MAX_FIELD_WORK steps, an ArchspecError."""
    fields = _Fields(ir)
    targets = nodes or [node.id for node in ir.nodes() if not node.is_input]
    return {target: fields.field(target) for target in targets}


def position_layouts(ir: IRGraph) -> dict[str, Layout]:
    """Where each value holds its positions (rows and columns), as the field pass follows them."""
    return _Fields(ir).layout


class AxisSummary(NamedTuple):  # a tuple: made once per node and axis, so kept cheap
    """Which positions of an anchor (the graph input, or a node whose reads are not affine)
    positions [a, b] of a node read, on one axis: the union of [jump·a + lo, jump·b + hi]
    (`moving`: (jump, lo, hi); None when no path moves with the position) and `fixed` (paths
    that read a broadcast 1x1 map, as a squeeze-excitation gate)."""

    moving: tuple[int, int, int] | None
    fixed: tuple[int, int] | None = None

    def read(self, a, b) -> tuple:
        if self.moving is None:
            return self.fixed
        jump, lo, hi = self.moving
        first, last = jump * a + lo, jump * b + hi
        return (min(first, self.fixed[0]), max(last, self.fixed[1])) if self.fixed else (first, last)

    def through(self, step: AffineRead) -> "AxisSummary":
        """The summary of a consumer that reads this node by `step`."""
        if self.moving is None:
            return self
        jump, lo, hi = self.moving
        moved = (jump * step.lo + lo, jump * step.hi + hi)
        if step.scale == 0:  # every position reads the same place
            return AxisSummary(None, _hull([p for p in (self.fixed, moved) if p]))
        return AxisSummary((jump * step.scale, *moved), self.fixed)

    def union(self, other: "AxisSummary") -> "AxisSummary":
        moving = [m for m in (self.moving, other.moving) if m]
        if len({jump for jump, _, _ in moving}) > 1:  # the union of two jumps is not affine
            raise NotAffine("paths with different jumps meet")
        united = (moving[0][0], *_hull([m[1:] for m in moving])) if moving else None
        fixed = [f for f in (self.fixed, other.fixed) if f]
        return AxisSummary(united, _hull(fixed) if fixed else None)


IDENTITY = (AxisSummary((1, 0, 0)), AxisSummary((1, 0, 0)))


@dataclass(frozen=True)
class Summary:
    """What a node's positions read. `routes`: per anchor (the graph input, or a node whose reads
    are not affine), one AxisSummary per axis giving the anchor's positions read; `whole`: the
    input interval read through vectors or whole reads (None: none)."""

    routes: dict[str, tuple[AxisSummary, AxisSummary]] = field(default_factory=dict)
    whole: Ranges | None = None


class _Fields:
    """The summaries of one graph (one forward pass), and the fields asked of it."""

    def __init__(self, ir: IRGraph):
        self.ir = ir
        self.source = next(iter(ir.inputs.values()))
        self.work = 0
        self.position: dict[str, int] = {}
        self.summaries: dict[str, Summary] = {}
        self.wholes: dict[str, object] = {}  # value -> what reading it whole reads of the input
        self.fields: dict[tuple, ReceptiveField | None] = {}  # (summary id, spatial size) -> field
        self.traced: dict[tuple, object] = {}  # (op, args, shapes) -> its rule's affine reads
        self.shape: dict[str, tuple] = {}  # value -> its shape
        self.producer: dict[str, str] = {}  # value -> the node computing it
        self.layout: dict[str, Layout] = {}  # value -> the axes holding its positions (None: none)
        for index, node in enumerate(ir.nodes()):
            self.position[node.id] = index
            for value, shape in zip(node.values, node.shapes):
                self.shape[value], self.producer[value] = shape, node.id
            self._lay_out(node)
            self.summaries[node.id] = self._summarise(node)

    def _lay_out(self, node) -> None:
        """Where each output of `node` holds its positions: a (C, H, W) map by rank, unless the op
        says (`Op.layout`) or is elementwise (positions stay where its input has them)."""
        layouts = [MAP if len(shape) == 3 else None for shape in node.shapes]
        if not node.is_input:
            op, inputs = lookup(node.op), self._input_layouts(node)
            if op.layout is not None:
                layouts[0] = op.layout(node.args, [self.shape[value] for value in node.inputs], inputs)
            elif op.receptive_field is None and op.window is None and inputs and inputs[0] is not None \
                    and node.shapes[0] == self.shape[node.inputs[0]]:
                layouts[0] = inputs[0]
        for value, layout in zip(node.values, layouts):
            self.layout[value] = layout

    def _input_layouts(self, node) -> list[Layout]:
        return [self.layout[value] for value in node.inputs]

    # --- the forward pass -----------------------------------------------------------------
    def _summarise(self, node) -> Summary:
        if node.id == self.source or node.is_input:  # another input is not measured against
            return Summary({node.id: IDENTITY} if node.id == self.source else {})
        if self.layout[node.values[0]] is None:  # a vector reads every input whole
            whole = None
            for value in node.inputs:
                whole = _united(whole, self.whole_read(value))
            return Summary(whole=whole[0] if whole else None)
        reads = self._affine_reads(node)
        if reads == [SAME] and self.layout[node.inputs[0]] is not None:  # elementwise: as its input
            return self.summaries[self.producer[node.inputs[0]]]
        if reads == NOT_AFFINE:
            return Summary({node.id: IDENTITY})  # an anchor: its reads are worked out when asked
        routes, whole = {}, None
        for value, read in zip(node.inputs, reads):
            if read is None:
                continue
            if self._read_whole(value, read):
                whole = _united(whole, self.whole_read(value))
                continue
            producer = self.summaries[self.producer[value]]
            whole = _united(whole, [producer.whole] if producer.whole else None)
            for anchor, axes in producer.routes.items():
                moved = tuple(axis.through(step) for axis, step in zip(axes, read))
                try:
                    routes[anchor] = tuple(a.union(b) for a, b in zip(routes[anchor], moved)) if anchor in routes else moved
                except NotAffine:
                    return Summary({node.id: IDENTITY})
        if len(routes) > MAX_ROUTES:
            return Summary({node.id: IDENTITY})
        return Summary(routes, whole[0] if whole else None)

    def _affine_reads(self, node):
        rule, inputs = self._rule(node), [self.shape[value] for value in node.inputs]
        if rule is None:
            return [SAME] * len(inputs)
        # a repeated block traces once
        key = (node.op, node.args, tuple(inputs), node.shapes[0], tuple(self._input_layouts(node)))
        try:
            return self.traced[key]
        except KeyError:
            pass
        except TypeError:  # arguments holding a list: not kept
            key = None
        try:
            reads = affine_reads(rule, node.args, inputs, node.shapes[0])
        except NotAffine:
            reads = NOT_AFFINE
        if key is not None:
            self.traced[key] = reads
        return reads

    def _rule(self, node):
        """The node's rule as (args, output ranges, input shapes, output) -> each input's reads;
        None for an op that reads every input at the same positions."""
        op, layouts = lookup(node.op), self._input_layouts(node)
        if op.layout is not None:
            return lambda args, ranges, inputs, output: op.receptive_field(args, ranges, inputs, output, layouts)
        if op.receptive_field is None and op.window is None:
            return None
        if any(layout not in (None, MAP) for layout in layouts):  # a (C, H, W) rule, positions elsewhere
            return lambda args, ranges, inputs, output: [WHOLE] * len(inputs)
        if op.window is not None:
            return lambda args, ranges, inputs, output: [window_ranges(ranges, *op.window(args, inputs))] + [ranges] * (len(inputs) - 1)
        return op.receptive_field

    def _read_whole(self, value: str, read) -> bool:
        """A vector (other than the graph input itself) is read whole whatever is asked of it."""
        return read is WHOLE or (self.layout[value] is None and self.producer[value] != self.source)

    # --- what a node reads, for given ranges of it --------------------------------------------
    def whole_read(self, value: str):
        """What the whole of a value reads of the graph input (a one-entry list), or None."""
        if value not in self.wholes:
            node_id, shape, layout = self.producer[value], self.shape[value], self.layout[value]
            if layout is not None:
                self.wholes[value] = self.read(node_id, [whole_ranges(shape, layout)])
            elif node_id == self.source:
                self.wholes[value] = None
            else:
                whole = self.summaries[node_id].whole
                self.wholes[value] = [whole] if whole else None
        return self.wholes[value]

    def read(self, node_id: str, demand: list[Ranges]):
        """The input intervals that these ranges of a node read (None: they read no input).

        The node's summary gives the ranges asked of each anchor; anchors are then worked out
        latest first (so each once, with everything asked of it) by their own rules, and their
        inputs' summaries pass the ranges on to earlier anchors."""
        summary = self.summaries[node_id]
        found = [summary.whole] if summary.whole else None
        asked_of, queue = {}, []
        self._ask(summary, demand, asked_of, queue)
        while queue:
            _, anchor = heapq.heappop(queue)
            asked = asked_of.pop(anchor)
            if anchor == self.source:
                found = _united(found, asked)
                continue
            self._step()
            node = self.ir.node(anchor)
            for value, ranges in zip(node.inputs, self._concrete_reads(node, asked)):
                if ranges is None:
                    continue
                if self._read_whole(value, ranges):
                    found = _united(found, self.whole_read(value))
                    continue
                producer = self.summaries[self.producer[value]]
                found = _united(found, [producer.whole] if producer.whole else None)
                self._ask(producer, ranges, asked_of, queue)
        return found

    def _ask(self, summary: Summary, demand: list[Ranges], asked_of: dict, queue: list) -> None:
        for anchor, (height, width) in summary.routes.items():
            ranges = [(height.read(*rows), width.read(*columns)) for rows, columns in demand]
            if anchor not in asked_of:
                heapq.heappush(queue, (-self.position[anchor], anchor))
            asked_of[anchor] = _united(asked_of.get(anchor), ranges)

    def _concrete_reads(self, node, asked: list[Ranges]) -> list:
        """What each input of a spatial `node` is asked for (None, WHOLE or ranges), given `asked`."""
        rule, inputs = self._rule(node), [self.shape[value] for value in node.inputs]
        if rule is None:
            return [asked] * len(inputs)
        per_probe = [rule(node.args, ranges, inputs, node.shapes[0]) for ranges in asked]
        return [_of_one_input(list(reads)) for reads in zip(*per_probe)]

    def _step(self) -> None:
        self.work += 1
        if self.work > MAX_FIELD_WORK:
            raise SpecError(
                f"the receptive fields take more than {MAX_FIELD_WORK:,} steps back through layers whose field is not affine (resizing, strided transposed convolutions)",
                hint="leave out --receptive-field, or ask for the fields of fewer nodes",
            )

    # --- fields ---------------------------------------------------------------------------------
    def field(self, target: str) -> ReceptiveField | None:
        """A node's field; nodes with the same summary and size (a run of activations) share it."""
        node = self.ir.node(target)
        layout = self.layout[node.values[0]]
        sizes = positional_sizes(node.shapes[0], layout) if layout is not None else None
        key = (id(self.summaries[target]), sizes)
        if key not in self.fields:
            self.fields[key] = self._field(target, sizes)
        return self.fields[key]

    def _field(self, target: str, sizes) -> ReceptiveField | None:
        if sizes is None:
            whole = self.summaries[target].whole
            return _global(whole) if whole else None
        probes = [tuple((p, p) for p in positions) for positions in _probe_positions(sizes)]
        found = self.read(target, probes)
        if found is None:
            return None
        if len(found) == 1:  # a vector on the way (e.g. fc then reshape): the whole map
            return _global(found[0])
        first, centre, last = found
        size = tuple(hi - lo + 1 for lo, hi in centre)
        mid = lambda r: tuple((lo + hi) / 2 for lo, hi in r)  # noqa: E731
        steps = tuple(max(n - 1, 1) for n in sizes)
        jump = tuple((b - a) / s for a, b, s in zip(mid(first), mid(last), steps))
        return ReceptiveField(size, jump, mid(first), False, centre)


def _of_one_input(reads: list):
    if reads[0] is None:
        return None
    return WHOLE if any(read is WHOLE for read in reads) else reads


def _probe_positions(sizes) -> list[tuple[int, int]]:
    height, width = sizes
    return [(0, 0), (height // 2, width // 2), (height - 1, width - 1)]


def _global(interval) -> ReceptiveField:
    (first, last), (left, right) = interval
    size = (last - first + 1, right - left + 1)
    return ReceptiveField(size, (0, 0), ((first + last) / 2, (left + right) / 2), True, interval)


def _union(routes: list) -> tuple[AxisSummary, AxisSummary] | None:
    if not routes:
        return None
    united = routes[0]
    for route in routes[1:]:
        united = tuple(a.union(b) for a, b in zip(united, route))
    return united


def _hull(intervals) -> tuple:
    intervals = list(intervals)
    return (min(lo for lo, _ in intervals), max(hi for _, hi in intervals))


def _united(known, new):
    """Two results (or demands) for the same probes; a global one (one entry) keeps one entry."""
    if known is None:
        return new
    if new is None:
        return known
    return [
        tuple((min(a[0], b[0]), max(a[1], b[1])) for a, b in zip(ranges_a, ranges_b))
        for ranges_a, ranges_b in zip(known, new)
    ]
