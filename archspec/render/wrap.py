"""Cutting a long drawing into side-by-side columns, and joining the columns with connectors.

Without columns a full-depth ResNet-152 is one 500-node line, too tall for a bitmap. An edge from
one column to the next is not drawn across the page: graphviz routes such an edge through the
ranks between its ends, so it zigzags through the empty space below a shorter column and over
the nodes of the others (DenseNet-121's dense edges). It ends in a connector instead (`to column
2`) and starts again from one at the top of the next column (`from denselayer8.cat`), in its
own kind and with its shapes. Pure graph analysis, like `archspec.render.layout`."""
from __future__ import annotations

from archspec.render.layout import EDGE_RANK, Edge, Layout, Unit

__all__ = ["CONNECTOR", "MAX_COLUMNS", "columns", "connect_columns", "connector_ends", "wrapped"]

MAX_COLUMNS = 8
CONNECTOR = "connector"  # the kind of a connector unit


def columns(plan: Layout, wrap: int | None) -> dict[str, int]:
    """The column of each unit: a drawing longer than `wrap` ranks is cut into side-by-side
    columns of similar length (rows with LR), at the places that break the fewest blocks.

    Without this a full-depth ResNet-152 is one 500-node line, too tall for a bitmap. An
    encoder-decoder keeps its U (no columns)."""
    units = list(plan.units)
    if not wrap or plan.turn is not None:
        return dict.fromkeys(units, 0)
    order = {u: i for i, u in enumerate(units)}
    predecessors: dict[str, list[str]] = {u: [] for u in units}
    for edge in plan.edges:
        if edge.kind != "size" and order[edge.tail] < order[edge.head]:
            predecessors[edge.head].append(edge.tail)
    rank: dict[str, int] = {}
    for u in units:
        rank[u] = max((rank[p] + 1 for p in predecessors[u]), default=0)
    total = max(rank.values(), default=0) + 1
    if total <= wrap:
        return dict.fromkeys(units, 0)
    count = min(-(-total // wrap), MAX_COLUMNS)
    height = total / count
    inner = [u for u in units if plan.units[u].kind in ("op", "block", "run")]
    spans: dict[str, list[int]] = {}
    for u in inner:
        for path in plan.units[u].clusters:
            span = spans.setdefault(path, [order[u], order[u]])
            span[1] = order[u]
    cuts: list[int] = []
    for k in range(1, count):
        target = k * height
        candidates = [u for u in inner if abs(rank[u] - target) <= height * 0.25 and (not cuts or order[u] > cuts[-1])]
        if not candidates:
            continue

        def broken(u: str) -> int:
            at = order[u]
            return sum(1 for first, last in spans.values() if first < at <= last)

        # a block cut in two costs as much as a column a quarter longer or shorter than the others
        best = min(candidates, key=lambda u: broken(u) + 4 * abs(rank[u] - target) / height)
        cuts.append(order[best])
    column = {}
    for u in units:
        column[u] = sum(1 for cut in cuts if order[u] >= cut)
    consumers: dict[str, list[str]] = {}
    for edge in plan.edges:  # an output sits by its producer, an input by its first consumer
        consumers.setdefault(edge.tail, []).append(edge.head)
        if plan.units[edge.head].kind == "output":
            column[edge.head] = column[edge.tail]
    for u in units:
        if plan.units[u].kind == "input":
            column[u] = min((column[c] for c in consumers.get(u, [])), default=0)
    return column


def wrapped(plan: Layout, wrap: int | None) -> tuple[Layout, dict[str, int]]:
    """The layout cut into columns of at most about `wrap` ranks, its edges between columns
    replaced by connectors, and the column of each unit (`columns`, `connect_columns`)."""
    return connect_columns(plan, columns(plan, wrap))


def connect_columns(plan: Layout, column: dict[str, int]) -> tuple[Layout, dict[str, int]]:
    """Every edge between two columns drawn as: tail -> a connector at the end of the tail's
    column, and a connector at the top of the head's column -> head. The edges from one unit
    into one column share one pair of connectors. Returns a new layout and its columns."""
    crossing: dict[tuple[str, int], list[Edge]] = {}  # (tail, head's column) -> the edges
    for edge in plan.edges:
        if column[edge.tail] != column[edge.head]:
            crossing.setdefault((edge.tail, column[edge.head]), []).append(edge)
    if not crossing:
        return plan, column
    after: dict[str, list[Unit]] = {}  # tail -> the connectors drawn after it
    before: dict[int, list[Unit]] = {}  # column -> the connectors that open it
    edges = [edge for edge in plan.edges if column[edge.tail] == column[edge.head]]
    placed = dict(column)
    for (tail, target), group in crossing.items():
        leaving = Unit(f"[to column {target + 1}] {tail}", CONNECTOR, ())
        arriving = Unit(f"[from column {column[tail] + 1}] {tail}", CONNECTOR, ())
        after.setdefault(tail, []).append(leaving)
        before.setdefault(target, []).append(arriving)
        placed[leaving.id], placed[arriving.id] = column[tail], target
        kind = min((edge.kind for edge in group), key=lambda k: (k != "data", -EDGE_RANK[k]))
        shapes = list(dict.fromkeys(shape for edge in group for shape in edge.shapes))
        edges.append(Edge(tail, leaving.id, kind, shapes))
        edges.extend(Edge(arriving.id, edge.head, edge.kind, edge.shapes) for edge in group)
    units: dict[str, Unit] = {}
    opened: set[int] = set()
    for unit_id, unit in plan.units.items():
        if column[unit_id] not in opened:  # the connectors open their column: they are its top
            opened.add(column[unit_id])
            units.update((c.id, c) for c in before.get(column[unit_id], []))
        units[unit_id] = unit
        units.update((c.id, c) for c in after.get(unit_id, []))
    bridges = [edge for edge in edges if edge.kind == "bridge"]
    return Layout(units, edges, bridges, plan.decoder, plan.turn), placed


def connector_ends(unit_id: str) -> tuple[str, str]:
    """A connector's words and the unit it stands for: (`to column 2`, `layer2.7.relu3`)."""
    words, tail = unit_id[1:].split("] ", 1)
    return words, tail
