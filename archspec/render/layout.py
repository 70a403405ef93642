"""The drawn graph, before any DOT: which units are drawn (ops, folded blocks, runs of ops), the
edges between them and what kind each is (`archspec.render.edge_kinds`), folding a graph until
graphviz can draw it in about a second, the U of an encoder-decoder, and the clusters (blocks
and stages) the units sit in; `archspec.render.wrap` cuts a long drawing into columns. Pure
graph analysis: `archspec.render.dot` writes the text."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from archspec.ir.graph import INPUT, IRGraph, IRNode
from archspec.render.edge_kinds import MAX_CLASSIFY_WORK, area, classify_edges

__all__ = [  # MAX_CLASSIFY_WORK and classify_edges are the drawn edges' kinds, from edge_kinds
    "MAX_CLASSIFY_WORK", "MAX_DRAWING_COST", "MAX_DRAWN", "MAX_FOLDED", "Clusters", "Edge", "Layout", "Unit",
    "auto_depth", "classify_edges", "cluster_tree", "drawing_cost", "fitted_layout", "layout",
]

EDGE_RANK = {"data": 0, "size": 1, "shortcut": 2, "bridge": 3}
# units in one drawing; graphviz takes seconds at a few hundred (the largest library spec at
# every op, densenet201, has 709: dot 2.9 s on a busy 2-core box) and minutes at a few
# thousand: a larger drawing is folded (fitted_layout)
MAX_DRAWN = 800
# a graph folded into runs (no block level fits) is drawn with at most this many boxes: a chain of
# 600 run boxes still takes dot 0.8 s, and boxes of `relu x26` read no worse than `relu x9`
MAX_FOLDED = 200
# and at most this `drawing_cost`: the largest library spec at every op costs 2,072; a chain
# whose every node also feeds one concat costs 33,514 at 49 units and takes dot 1 s, 149,229 at
# 79 units and takes 22 s
MAX_DRAWING_COST = 20_000


@dataclass
class Unit:
    """One drawn node: an op, a collapsed block, a graph input or a named output, or a folded
    run of consecutive ones (`members`: kind "run" for ops and blocks)."""

    id: str
    kind: str  # "op", "block", "run", "input", "output"
    clusters: tuple[str, ...]  # enclosing scope paths drawn as clusters, outermost first
    nodes: list[str] = field(default_factory=list)  # IR nodes it stands for
    block: str | None = None  # the block path of a collapsed block
    block_kind: str | None = None
    members: list[str] = field(default_factory=list)  # the units a folded run stands for


@dataclass
class Edge:
    tail: str
    head: str
    kind: str  # data, shortcut, bridge, size
    shapes: list[tuple[int, ...]] = field(default_factory=list)  # the tensors it carries, each once


@dataclass
class Layout:
    units: dict[str, Unit]
    edges: list[Edge]
    bridges: list[Edge]
    decoder: set[str]  # units drawn upwards (the decoder arm of a U)
    turn: str | None  # the bottom of the U


def layout(ir: IRGraph, depth: int | None = None, run: int = 1, kinds: dict | None = None) -> Layout:
    """The drawn units and edges: every op, or every block at nesting `depth` as one unit; with
    `run` > 1, up to `run` consecutive units of one cluster folded into one (`fitted_layout`).
    `kinds`: the edge kinds from `classify_edges`, when already known."""
    units, unit_of = _units(ir, depth)
    outputs: dict[str, str] = {}  # output unit -> the value it shows
    for name, value in ir.outputs.items():
        out = Unit("[output] " + name, "output", ())
        units[out.id] = out
        outputs[out.id] = value
    renamed = {unit_id: unit_id for unit_id in units}
    if run > 1:
        units, renamed = _fold_runs(units, run)
        unit_of = {node_id: renamed[unit_id] for node_id, unit_id in unit_of.items()}
    edges: dict[tuple[str, str], Edge] = {}
    for (value, consumer, _), kind in (classify_edges(ir) if kinds is None else kinds).items():
        tail, head = unit_of[ir.producer(value)], unit_of[consumer]
        if tail == head:
            continue
        edge = edges.setdefault((tail, head), Edge(tail, head, kind))
        # between collapsed blocks, one plain tensor makes a plain edge (a block's input also
        # feeding its residual is still the main path); otherwise the strongest kind shows
        if edge.kind != "data" and (kind == "data" or EDGE_RANK[kind] > EDGE_RANK[edge.kind]):
            edge.kind = kind
        _carries(edge, ir.shapes[value])
    for out_id, value in outputs.items():
        tail, head = unit_of[ir.producer(value)], renamed[out_id]
        _carries(edges.setdefault((tail, head), Edge(tail, head, "data")), ir.shapes[value])
    edge_list = list(edges.values())
    bridges = [e for e in edge_list if e.kind == "bridge"]
    decoder, turn = _u_shape(ir, units, edge_list, bridges)
    return Layout(units, edge_list, bridges, decoder, turn)


def _carries(edge: Edge, shape: tuple[int, ...]) -> None:
    if shape not in edge.shapes:
        edge.shapes.append(shape)


def _units(ir: IRGraph, depth: int | None) -> tuple[dict[str, Unit], dict[str, str]]:
    """The units of the inputs and ops (blocks at `depth` folded), and the unit of each node."""
    units: dict[str, Unit] = {}
    unit_of: dict[str, str] = {}
    for node in ir.nodes():
        unit_id = _unit_id(node, depth)
        unit = units.get(unit_id)
        if unit is None:
            if node.op == INPUT:
                unit = Unit(node.id, "input", ())
            elif unit_id != node.id:
                path = node.scopes[depth - 1]
                unit = Unit(unit_id, "block", node.scopes[: depth - 1], block=path, block_kind=node.scope_kinds[depth - 1])
            else:
                unit = Unit(node.id, "op", node.scopes)
            units[unit_id] = unit
        unit.nodes.append(node.id)
        unit_of[node.id] = unit_id
    return units, unit_of


def _unit_id(node: IRNode, depth: int | None) -> str:
    if node.op != INPUT and depth and len(node.scopes) >= depth:
        return "[block] " + node.scopes[depth - 1]
    return node.id


FOLDED_TOGETHER = {"op": "run", "block": "run", "input": "input", "output": "output"}


def _fold_runs(units: dict[str, Unit], size: int) -> tuple[dict[str, Unit], dict[str, str]]:
    """Consecutive units of one cluster and kind (ops and blocks fold together), `size` at a
    time, become one unit; a group of one stays as it was. Returns the units and old id -> new id."""
    groups: list[list[Unit]] = []
    for unit in units.values():
        last = groups[-1] if groups else None
        if (last is None or len(last) == size or last[0].clusters != unit.clusters
                or FOLDED_TOGETHER[last[0].kind] != FOLDED_TOGETHER[unit.kind]):
            groups.append([unit])
        else:
            last.append(unit)
    folded: dict[str, Unit] = {}
    renamed: dict[str, str] = {}
    for group in groups:
        first = group[0]
        unit = first if len(group) == 1 else Unit(
            "[run] " + first.id, FOLDED_TOGETHER[first.kind], first.clusters,
            nodes=[n for member in group for n in member.nodes], members=[member.id for member in group],
        )
        folded[unit.id] = unit
        renamed.update((member.id, unit.id) for member in group)
    return folded, renamed


def fitted_layout(ir: IRGraph, depth: int | None = None, kinds: dict | None = None) -> Layout:
    """`layout` at `depth`, folded until graphviz can draw it in about a second (at most
    MAX_DRAWN units and MAX_DRAWING_COST, see `drawing_cost`): at the deepest block level that
    fits, else at level 1 with runs of consecutive units folded into one (`12 ops`, `relu x10`),
    at most MAX_FOLDED of them."""
    kinds = classify_edges(ir) if kinds is None else kinds

    def boxes(at: int | None) -> int:
        return len({_unit_id(node, at) for node in ir.nodes()}) + len(ir.outputs)

    fits = auto_depth(ir, MAX_DRAWN) or 1
    for at in dict.fromkeys([depth, fits, 1]):  # the asked depth, then shallower ones
        if (depth is None or at is None or at <= depth) and boxes(at) <= MAX_DRAWN:
            plan = layout(ir, at, kinds=kinds)
            if drawing_cost(plan) <= MAX_DRAWING_COST:
                return plan
    # level 1 puts every unit in no cluster: inputs, then ops and blocks, then outputs, so the
    # runs number at most boxes / size + 3; longer runs until the drawing is cheap enough
    size = max(2, -(-boxes(1) // (MAX_FOLDED - 3)))
    while True:
        plan = layout(ir, 1, run=size, kinds=kinds)
        if drawing_cost(plan) <= MAX_DRAWING_COST or len(plan.units) <= 3:
            return plan
        size *= 2


def drawing_cost(plan: Layout) -> int:
    """What graphviz's time grows with: the sum over ranks of the squared width of each rank,
    counting the units on it and the edges passing through it (dot's ordering works rank by
    rank, with a virtual node for each edge at each rank it crosses)."""
    order = {u: i for i, u in enumerate(plan.units)}
    predecessors: dict[str, list[str]] = {u: [] for u in plan.units}
    for edge in plan.edges:
        if edge.kind != "size" and order[edge.tail] < order[edge.head]:
            predecessors[edge.head].append(edge.tail)
    rank: dict[str, int] = {}
    for u in plan.units:
        rank[u] = max((rank[p] + 1 for p in predecessors[u]), default=0)
    ranks = max(rank.values(), default=0) + 1
    width = [0] * ranks
    for u in plan.units:
        width[rank[u]] += 1
    passing = [0] * (ranks + 1)  # edges entering minus edges leaving each rank
    for edge in plan.edges:
        low, high = sorted((rank[edge.tail], rank[edge.head]))
        if high - low > 1:
            passing[low + 1] += 1
            passing[high] -= 1
    total, crossing = 0, 0
    for r in range(ranks):
        crossing += passing[r]
        total += (width[r] + crossing) ** 2
    return total


def _u_shape(ir: IRGraph, units: dict[str, Unit], edges: list[Edge], bridges: list[Edge]) -> tuple[set[str], str | None]:
    """The decoder arm and the turning point of an encoder-decoder, from its bridges.

    The turning point is the lowest-resolution unit that every bridge goes around; the decoder
    is what follows it. Without bridges (or without a common inside) there is no U."""
    if not bridges:
        return set(), None
    order = {unit_id: i for i, unit_id in enumerate(units)}
    successors: dict[str, list[str]] = {u: [] for u in units}
    predecessors: dict[str, list[str]] = {u: [] for u in units}
    for edge in edges:
        successors[edge.tail].append(edge.head)
        predecessors[edge.head].append(edge.tail)

    def reach(start: str, step, keep) -> set[str]:
        seen: set[str] = set()
        queue = deque(step[start])
        while queue:
            current = queue.popleft()
            if current not in seen and keep(current):
                seen.add(current)
                queue.extend(step[current])
        return seen

    inside: set[str] | None = None
    for bridge in bridges:
        lo, hi = order[bridge.tail], order[bridge.head]
        between = reach(bridge.tail, successors, lambda u: lo < order[u] < hi) & reach(
            bridge.head, predecessors, lambda u: lo < order[u] < hi
        )
        inside = between if inside is None else inside & between
    if not inside:
        return set(), None

    def unit_area(unit_id: str) -> int:
        return min((area(ir.shapes[n]) for n in units[unit_id].nodes), default=0)

    turn = min(inside, key=lambda u: (unit_area(u), -order[u]))
    decoder = reach(turn, successors, lambda u: True)
    return decoder, turn


def auto_depth(ir: IRGraph, limit: int = 120) -> int | None:
    """The depth a report draws at: every op (None) when there are at most `limit`, else the
    deepest block level whose drawing has at most `limit` nodes (1 at the least)."""
    ops = [node for node in ir.nodes() if node.op != INPUT]
    if len(ops) <= limit:
        return None
    deepest = max((len(node.scopes) for node in ops), default=0)
    paths: list[set[str]] = [set() for _ in range(deepest)]  # the blocks at each level
    shallow = [0] * (deepest + 2)  # shallow[d]: ops nested fewer than d levels deep
    for node in ops:
        for level, path in enumerate(node.scopes):
            paths[level].add(path)
        shallow[len(node.scopes) + 1] += 1
    for depth in range(1, deepest + 2):
        shallow[depth] += shallow[depth - 1]
    for depth in range(deepest, 0, -1):
        if len(paths[depth - 1]) + shallow[depth] <= limit:
            return depth
    return 1


# a cluster as drawn: the chain of (scope path, column) from the outermost cluster in, since a
# block cut by a column break is drawn as one box per column
ClusterKey = tuple[tuple[str, int], ...]


@dataclass
class Clusters:
    """The blocks and stages drawn as nested clusters, and the units each holds directly."""

    kinds: dict[str, str]  # scope path -> its kind (a block's name, repeat, parallel, projection ...)
    children: dict[ClusterKey, list[ClusterKey]]  # () is the top level
    members: dict[ClusterKey, list[Unit]]
    first_column: dict[str, int]  # the column a cluster starts in; its later parts are continued
    repeats: dict[str, tuple[int, str]]  # a repeat of one block kind -> (how many, that kind)


def cluster_tree(ir: IRGraph, plan: Layout, column: dict[str, int]) -> Clusters:
    """The clusters of a layout cut into `column`s, in the order their first unit is drawn."""
    kinds: dict[str, str] = {}
    inside: dict[str, dict[str, str]] = {}  # scope path -> its child scopes and their kinds
    for node in ir.nodes():
        kinds.update(zip(node.scopes, node.scope_kinds))
        for level in range(len(node.scopes) - 1):
            inside.setdefault(node.scopes[level], {})[node.scopes[level + 1]] = node.scope_kinds[level + 1]
    tree = Clusters(kinds, children={(): []}, members={(): []}, first_column={}, repeats={})
    for unit in plan.units.values():
        chain = tuple((path, column[unit.id]) for path in unit.clusters)
        for level in range(1, len(chain) + 1):
            key = chain[:level]
            if key not in tree.children:
                tree.children[key] = []
                tree.members[key] = []
                tree.children[chain[: level - 1]].append(key)
                tree.first_column.setdefault(key[-1][0], key[-1][1])
        tree.members[chain].append(unit)
    for path, kind in kinds.items():
        inner = set(inside.get(path, {}).values())
        if kind == "repeat" and len(inner) == 1:
            tree.repeats[path] = (len(inside[path]), inner.pop())
    return tree
