"""IR (+ analysis) -> a Graphviz diagram (DOT), and rendering it with the system `dot`.

What the diagram shows:
- one node per op, labelled with the op and its key arguments (`conv 3x3/2, 128`,
  `maxpool 3x3/2`, `linear 1000`), coloured by op family (legend in the corner); with
  `params=True` also its parameters and MACs;
- one edge per tensor, labelled with its shape (no batch);
- blocks and stages as nested clusters labelled with the block's name; `depth=N` draws every
  block at nesting depth N as one node (the same folding as `report --depth N`);
- merges as their own shapes (`add` a circled +, `mul` a circled x, `concat` a trapezium);
  shortcut edges (residuals, dense connections, projection shortcuts, SE gates) dashed; bridges
  (a concat input that comes around a part of the network working at a lower resolution:
  U-Net's encoder -> decoder copies) dashed, thick and orange; size references (the second input of
  `upsample`, `crop`, `pad`) dotted;
- an encoder-decoder is drawn as a U: the decoder runs back up next to the encoder, each bridge
  joins two nodes placed on the same rank;
- a drawing longer than `WRAP_RANKS` ranks is cut into side-by-side columns at block
  boundaries (a block cut in two is drawn as two boxes, the second "continued").

`diagram_source` gives the DOT text (no system tool needed); `render` runs `dot` on it.
"""
from __future__ import annotations

import html
import re
import shutil
import subprocess
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archspec.errors import ArchspecError
from archspec.ir.graph import IRGraph, IRNode
from archspec.ops.common import format_shape

FORMATS = ("svg", "png", "pdf", "dot")
RANKDIRS = ("TB", "LR")
DOT_TIMEOUT_S = 120
WRAP_RANKS = 110  # a drawing longer than this many ranks is laid out in side-by-side columns
MAX_COLUMNS = 8
# units in one drawing; graphviz takes seconds at a few hundred (the largest library spec, at
# every op, has 596) and minutes at a few thousand: a larger drawing is folded (fitted_layout)
MAX_DRAWN = 600
# a graph folded into runs (no block level fits) is drawn with at most this many boxes: a chain of
# 600 run boxes still takes dot 0.8 s, and boxes of `relu x26` read no worse than `relu x9`
MAX_FOLDED = 200
# and at most this `drawing_cost`: the largest library spec at every op costs 2,072; a chain
# whose every node also feeds one concat costs 33,514 at 49 units and takes dot 1 s, 149,229 at
# 79 units and takes 22 s
MAX_DRAWING_COST = 20_000
# edge classification (shortcuts, bridges) walks at most this many nodes and edges for one graph;
# past it the remaining merges are drawn with plain edges (only a graph of thousands of merges
# that each reach far back gets there)
MAX_CLASSIFY_WORK = 500_000
DOT_MISSING = (
    "graphviz's `dot` program is not installed; install it with `apt-get install graphviz` "
    "(Debian/Ubuntu) or `brew install graphviz` (macOS)"
)

# --- op families: colour (fill, border) and the legend's words -------------------------------------
FAMILY_OF = {
    "conv": "conv", "dwconv": "conv", "conv_transpose": "conv",
    "linear": "linear",
    "bn": "norm", "groupnorm": "norm", "layernorm": "norm", "lrn": "norm",
    "maxpool": "pool", "avgpool": "pool", "adaptive_avgpool": "pool", "adaptive_maxpool": "pool",
    "global_avgpool": "pool",
    "add": "merge", "mul": "merge", "concat": "merge",
    "upsample": "resize", "crop": "resize", "pad": "resize",
    "flatten": "other", "reshape": "other", "channel_shuffle": "other", "dropout": "other",
    "drop_path": "other", "identity": "other",
}
# everything else (relu, sigmoid, softmax, gelu ...) is an activation
FAMILIES: dict[str, tuple[str, str, str]] = {
    "input": ("#ffffff", "#333333", "input / output"),
    "conv": ("#cfe2f3", "#3d78b5", "convolution"),
    "linear": ("#d9d2e9", "#6a4fa3", "linear"),
    "norm": ("#fff2cc", "#b59a2e", "normalisation"),
    "activation": ("#d9ead3", "#4f8f3c", "activation"),
    "pool": ("#fce5cd", "#c07a2c", "pooling"),
    "merge": ("#f4cccc", "#b34747", "merge (+ add, x mul, concat)"),
    "resize": ("#d0e0e3", "#3f7f8c", "resize (upsample, crop, pad)"),
    "other": ("#eeeeee", "#888888", "reshape, dropout, identity"),
    "block": ("#e6ebf2", "#5a6b85", "block (collapsed)"),
    "run": ("#eef1f5", "#7a8699", "run of consecutive ops (folded)"),
}
EDGE_STYLES: dict[str, dict[str, str]] = {
    "data": {"color": "#555555", "weight": "3"},  # heavier: keeps the main path straight
    "shortcut": {"style": "dashed", "color": "#2c6fbb", "fontcolor": "#2c6fbb"},
    "bridge": {"style": "dashed", "color": "#e07b00", "fontcolor": "#b86500", "penwidth": "2.2"},
    "size": {"style": "dotted", "color": "#888888", "constraint": "false"},
}
EDGE_LEGEND = {
    "shortcut": "shortcut (residual, dense, projection, gate)",
    "bridge": "bridge (encoder -> decoder)",
    "size": "size reference (upsample / crop / pad to)",
}
EDGE_RANK = {"data": 0, "size": 1, "shortcut": 2, "bridge": 3}
SIZE_INPUT_OPS = {"upsample", "crop", "pad"}  # a second input only gives the target size
MERGE_OPS = {"add", "mul", "concat"}


def family(op: str) -> str:
    if op == "input":
        return "input"
    return FAMILY_OF.get(op, "activation")


# --- op labels --------------------------------------------------------------------------------------
def _pair_text(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value) if value[0] != value[1] else f"{value[0]}x{value[0]}"
    return f"{value}x{value}"


def _stride_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return "" if tuple(value) == (1, 1) else "/" + ("x".join(map(str, value)) if value[0] != value[1] else str(value[0]))
    return "" if value == 1 else f"/{value}"


def _number(value: float) -> str:
    return f"{value:g}"


def op_label(node: IRNode) -> str:
    """`conv 3x3/2, 128`, `maxpool 3x3/2`, `linear 1000`, `upsample x2 bilinear` ..."""
    op, args = node.op, node.args
    get = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    if op in ("conv", "conv_transpose"):
        text = f"{op} {_pair_text(get('kernel'))}{_stride_text(get('stride'))}, {get('out')}"
        extras = []
        if get("dilation", 1) not in (1, (1, 1)):
            extras.append(f"dil {_stride_text(get('dilation'))[1:]}")
        if get("groups", 1) != 1:
            extras.append(f"groups {get('groups')}")
        return text + (" (" + ", ".join(extras) + ")" if extras else "")
    if op == "dwconv":
        multiplier = get("multiplier", 1)
        return f"dwconv {_pair_text(get('kernel'))}{_stride_text(get('stride'))}" + (f", x{multiplier}" if multiplier != 1 else "")
    if op in ("maxpool", "avgpool"):
        stride = get("stride")
        stride = get("kernel") if stride is None else stride
        return f"{op} {_pair_text(get('kernel'))}{_stride_text(stride)}"
    if op in ("adaptive_avgpool", "adaptive_maxpool"):
        return f"{op} {_pair_text(get('size', 1))}"
    if op == "linear":
        return f"linear {get('out')}"
    if op in ("dropout", "drop_path"):
        return f"{op} {_number(get('p', 0))}" if get("p") is not None else op
    if op == "upsample":
        how = f"x{_number(get('scale'))}" if get("scale") is not None else (f"to {_pair_text(get('size'))}" if get("size") is not None else "to size")
        return f"upsample {how} {get('mode', '')}".strip()
    if op in ("concat", "add") and get("fit", "none") != "none":
        return f"{op} ({get('fit')})"
    if op == "groupnorm" and get("groups") is not None:
        return f"groupnorm {get('groups')}"
    if op == "channel_shuffle":
        return f"channel_shuffle {get('groups')}"
    if op == "leaky_relu" and get("slope") is not None:
        return f"leaky_relu {_number(get('slope'))}"
    return op


def human(value: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return str(value)


# --- the drawn graph ----------------------------------------------------------------------------------
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
    shapes: list[str] = field(default_factory=list)


@dataclass
class Layout:
    units: dict[str, Unit]
    edges: list[Edge]
    bridges: list[Edge]
    decoder: set[str]  # units drawn upwards (the decoder arm of a U)
    turn: str | None  # the bottom of the U


def _area(shape: tuple[int, ...]) -> int:
    return shape[-1] * shape[-2] if len(shape) == 3 else 0


@dataclass
class _Links:
    """The IR's edges, each producer -> consumer pair once (a concat may name one input many times)."""

    position: dict[str, int]
    inputs: dict[str, list[str]]  # distinct producers, in order
    successors: dict[str, dict[str, int]]  # consumer -> how many of its inputs the producer is

    @classmethod
    def of(cls, ir: IRGraph) -> "_Links":
        position = {node_id: i for i, node_id in enumerate(ir.order)}
        inputs = {node.id: list(dict.fromkeys(node.inputs)) for node in ir.nodes()}
        successors: dict[str, dict[str, int]] = {node_id: {} for node_id in ir.order}
        for node in ir.nodes():
            for producer in node.inputs:
                consumers = successors[producer]
                consumers[node.id] = consumers.get(node.id, 0) + 1
        return cls(position, inputs, successors)


def classify_edges(ir: IRGraph) -> dict[tuple[str, str, int], str]:
    """(producer, consumer, input index) -> data | shortcut | bridge | size, for every IR edge.

    A merge input is a shortcut when another path leads from it to the merge; a bridge when that
    path is a single one that works at a lower resolution (U-Net). Linear in the edges for one
    merge; at most MAX_CLASSIFY_WORK steps for the whole graph, after which merges are drawn plain."""
    links = _Links.of(ir)
    budget = [MAX_CLASSIFY_WORK]
    kinds: dict[tuple[str, str, int], str] = {}
    for node in ir.nodes():
        in_projection = "projection" in node.scope_kinds
        around: dict[str, tuple[int, int]] | None = None
        for index, producer in enumerate(node.inputs):
            kind = "data"
            if node.op in SIZE_INPUT_OPS and index >= 1:
                kind = "size"
            elif in_projection or "projection" in ir.node(producer).scope_kinds:
                kind = "shortcut"
            elif node.op in MERGE_OPS and len(node.inputs) > 1:
                if around is None:
                    around = _other_paths(ir, links, node.id, budget)
                if producer in around:
                    kind = "shortcut"
                    # a bridge: one path leaves the producer, works at a lower resolution and comes
                    # back (U-Net); several paths fanning out are parallel branches (PSPNet's pyramid)
                    paths, lowest = around[producer]
                    if node.op == "concat" and paths == 1 and lowest < _area(ir.shapes[producer]):
                        kind = "bridge"
            kinds[(producer, node.id, index)] = kind
    return kinds


def _other_paths(ir: IRGraph, links: _Links, end: str, budget: list[int]) -> dict[str, tuple[int, int]]:
    """For each input of `end` with a path to `end` other than the direct edge: how many of its
    outgoing edges start such paths, and the smallest spatial area on them.

    The nodes on those paths from input p are p's descendants among `end`'s ancestors, so one
    walk back from `end` (down to its earliest input) and one pass over it in reverse order
    answer for every input at once. `budget` counts the steps left for the whole graph."""
    position, inputs = links.position, links.inputs[end]
    low = min(position[p] for p in inputs)
    region: set[str] = set()
    queue = [p for p in inputs if position[p] > low]
    while queue:
        current = queue.pop()
        if current in region:
            continue
        region.add(current)
        budget[0] -= 1 + len(links.inputs[current]) + len(links.successors[current])
        if budget[0] < 0:
            return {}
        queue.extend(p for p in links.inputs[current] if position[p] > low and p not in region)
    lowest: dict[str, int] = {}  # the smallest area from a node on, within the region
    for current in sorted(region, key=position.__getitem__, reverse=True):
        later = [lowest[s] for s in links.successors[current] if s in lowest]
        lowest[current] = min([_area(ir.shapes[current]), *later])
    found = {}
    for producer in inputs:
        consumers = links.successors[producer]
        budget[0] -= min(len(consumers), len(region))
        if budget[0] < 0:
            return found
        if len(consumers) > len(region):  # a node that feeds many: look from the region's side
            on_paths = [s for s in region if s in consumers]
        else:
            on_paths = [s for s in consumers if s in region]
        if on_paths:
            found[producer] = (sum(consumers[s] for s in on_paths), min(lowest[s] for s in on_paths))
    return found


def layout(ir: IRGraph, depth: int | None = None, run: int = 1, kinds: dict | None = None) -> Layout:
    """The drawn units and edges: every op, or every block at nesting `depth` as one unit; with
    `run` > 1, up to `run` consecutive units of one cluster folded into one (`fitted_layout`).
    `kinds`: the edge kinds from `classify_edges`, when already known."""
    units, unit_of = _units(ir, depth)
    outputs: dict[str, str] = {}  # output unit -> the node it shows
    for name, node_id in ir.outputs.items():
        out = Unit("[output] " + name, "output", ())
        units[out.id] = out
        outputs[out.id] = node_id
    renamed = {unit_id: unit_id for unit_id in units}
    if run > 1:
        units, renamed = _fold_runs(units, run)
        unit_of = {node_id: renamed[unit_id] for node_id, unit_id in unit_of.items()}
    edges: dict[tuple[str, str], Edge] = {}
    shape_text: dict[str, str] = {}
    for (producer, consumer, _), kind in (classify_edges(ir) if kinds is None else kinds).items():
        tail, head = unit_of[producer], unit_of[consumer]
        if tail == head:
            continue
        edge = edges.setdefault((tail, head), Edge(tail, head, kind))
        # between collapsed blocks, one plain tensor makes a plain edge (a block's input also
        # feeding its residual is still the main path); otherwise the strongest kind shows
        if edge.kind != "data" and (kind == "data" or EDGE_RANK[kind] > EDGE_RANK[edge.kind]):
            edge.kind = kind
        shape = shape_text.get(producer) or shape_text.setdefault(producer, format_shape(ir.shapes[producer]))
        if shape not in edge.shapes:
            edge.shapes.append(shape)
    for out_id, node_id in outputs.items():
        tail, head = unit_of[node_id], renamed[out_id]
        edge = edges.setdefault((tail, head), Edge(tail, head, "data"))
        if format_shape(ir.shapes[node_id]) not in edge.shapes:
            edge.shapes.append(format_shape(ir.shapes[node_id]))
    edge_list = list(edges.values())
    bridges = [e for e in edge_list if e.kind == "bridge"]
    decoder, turn = _u_shape(ir, units, edge_list, bridges)
    return Layout(units, edge_list, bridges, decoder, turn)


def _units(ir: IRGraph, depth: int | None) -> tuple[dict[str, Unit], dict[str, str]]:
    """The units of the inputs and ops (blocks at `depth` folded), and the unit of each node."""
    units: dict[str, Unit] = {}
    unit_of: dict[str, str] = {}
    for node in ir.nodes():
        unit_id = _unit_id(node, depth)
        unit = units.get(unit_id)
        if unit is None:
            if node.op == "input":
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
    if node.op != "input" and depth and len(node.scopes) >= depth:
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

    def area(unit_id: str) -> int:
        return min((_area(ir.shapes[n]) for n in units[unit_id].nodes), default=0)

    turn = min(inside, key=lambda u: (area(u), -order[u]))
    decoder = reach(turn, successors, lambda u: True)
    return decoder, turn


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


# --- DOT ----------------------------------------------------------------------------------------------
def _font(text: str, size: int | None = None, color: str | None = None, bold: bool = False) -> str:
    text = html.escape(text)
    if bold:
        text = f"<B>{text}</B>"
    attrs = (f' POINT-SIZE="{size}"' if size else "") + (f' COLOR="{color}"' if color else "")
    return f"<FONT{attrs}>{text}</FONT>" if attrs else text


def _relative(path: str, clusters: tuple[str, ...]) -> str:
    """A name relative to its innermost cluster; a bare index keeps its parent (`layer1.0`)."""
    if not clusters or not path.startswith(clusters[-1] + "."):
        return path
    rest = path[len(clusters[-1]) + 1 :]
    return f"{clusters[-1].rsplit('.', 1)[-1]}.{rest}" if rest.split(".")[0].isdigit() else rest


def _figures_line(params: int, macs: int) -> str | None:
    parts = []
    if params:
        parts.append(f"{human(params)} params")
    if macs:
        parts.append(f"{human(macs)} MACs")
    return " · ".join(parts) or None


def _block_summary(ir: IRGraph, unit: Unit) -> str:
    """`2x basic` for a repeat, `7 ops` otherwise."""
    level = len(unit.clusters)
    children: dict[str, str] = {}
    for node_id in unit.nodes:
        node = ir.node(node_id)
        if len(node.scopes) > level + 1:
            children.setdefault(node.scopes[level + 1], node.scope_kinds[level + 1])
    kinds = set(children.values())
    if unit.block_kind == "repeat" and len(kinds) == 1:
        return f"{len(children)}x {kinds.pop()}"
    kind = unit.block_kind if unit.block_kind not in (None, "seq", "repeat") else None
    ops = f"{len(unit.nodes)} ops"
    return f"{kind} · {ops}" if kind else ops


def _cluster_label(path: str, kind: str, parent: tuple[str, ...], repeat_of: str | None) -> str:
    name = _relative(path, parent)
    if kind == "repeat":
        return f"{name} · {repeat_of}" if repeat_of else name
    if kind in ("seq", "branch"):
        return name
    return f"{name} · {kind}"


def diagram(
    ir: IRGraph,
    analysis: Any = None,
    depth: int | None = None,
    rankdir: str = "TB",
    params: bool = False,
    title: str | None = None,
    wrap: int | None = WRAP_RANKS,
):
    """The diagram as a `graphviz.Digraph` (its `.source` is the DOT text).

    `wrap`: cut a drawing longer than this many ranks into columns (None: one long column)."""
    import graphviz

    rankdir = rankdir.upper()
    if rankdir not in RANKDIRS:
        raise ArchspecError(f"--rankdir must be TB or LR, not '{rankdir}'")
    if params and analysis is None:
        from archspec.passes.counts import analyze

        analysis = analyze(ir)
    plan = fitted_layout(ir, depth or None)
    column = columns(plan, wrap)
    layer_figures = {layer.name: layer.figures for layer in analysis.layers} if analysis else {}
    block_figures = {block.name: block.figures for block in analysis.blocks} if analysis else {}

    graph = graphviz.Digraph(name=ir.name)
    graph.attr(
        rankdir=rankdir, fontname="Helvetica", fontsize="12", nodesep="0.3", ranksep="0.32",
        pad="0.3", labelloc="t", labeljust="l", outputorder="edgesfirst",
    )
    if plan.bridges or any(column.values()):
        graph.attr(newrank="true")  # rank constraints across clusters (the U, the columns)
    if title is None and analysis is not None:
        t = analysis.totals
        title = f"{ir.name}: {human(t.params)} params, {human(t.macs)} MACs"
    if title:
        graph.attr(label=_html(_font(title, 16, bold=True)))
    graph.attr("node", fontname="Helvetica", fontsize="11", shape="box", style="rounded,filled", height="0.3", margin="0.12,0.04", penwidth="1.1")
    graph.attr("edge", fontname="Helvetica", fontsize="9", fontcolor="#555555", arrowsize="0.6", color="#555555")

    used_families: set[str] = set()
    used_edges: set[str] = set()

    def node_attrs(unit: Unit) -> dict[str, str]:
        if unit.members:
            return _run_attrs(ir, unit, used_families)
        if unit.kind == "input":
            used_families.add("input")
            shape = format_shape(ir.shapes[unit.id])
            return dict(label=_html(_font(unit.id, bold=True) + "<BR/>" + _font(shape, 9, "#555555")), shape="ellipse",
                        style="filled,bold", fillcolor="#ffffff", color="#333333", tooltip=f"input {unit.id}: {shape}")
        if unit.kind == "output":
            used_families.add("input")
            name = unit.id.split("] ", 1)[1]
            return dict(label=_html(_font(name, bold=True)), shape="ellipse", peripheries="2", style="filled",
                        fillcolor="#ffffff", color="#333333", tooltip=f"output {name}")
        if unit.kind == "block":
            used_families.add("block")
            fill, border, _ = FAMILIES["block"]
            lines = [_font(_relative(unit.block, unit.clusters), bold=True), _font(_block_summary(ir, unit), 9, "#444444")]
            figures = block_figures.get(unit.block)
            if params and figures is not None:
                line = _figures_line(figures.params, figures.macs)
                if line:
                    lines.append(_font(line, 9, "#7a3b00"))
            out = format_shape(ir.shapes[unit.nodes[-1]])
            return dict(label=_html("<BR/>".join(lines)), shape="box3d", style="filled", fillcolor=fill, color=border, margin="0.15,0.07",
                        tooltip=f"{unit.block} ({unit.block_kind}): {len(unit.nodes)} ops, output {out}")
        node = ir.node(unit.id)
        fam = family(node.op)
        used_families.add(fam)
        fill, border, _ = FAMILIES[fam]
        tooltip = f"{node.id}: {node.op}, output {format_shape(ir.shapes[node.id])}"
        if node.module != node.id:
            tooltip += f", weights shared with {node.module}"
        if node.op in ("add", "mul"):
            symbol = "+" if node.op == "add" else "×"
            return dict(label=symbol, shape="circle", width="0.32", height="0.32", fixedsize="true", fontsize="15",
                        fillcolor=fill, color=border, tooltip=tooltip)
        lines = [_font(op_label(node), bold=True)]
        short = _relative(node.id, unit.clusters)
        if fam in ("conv", "linear") or not re.fullmatch(re.escape(node.op) + r"\d*", short):
            lines.append(_font(short, 9, "#555555"))
        if node.module != node.id and fam in ("conv", "linear", "norm"):  # shared weights: whose
            lines.append(_font(f"= {node.module}", 9, "#7f7f7f"))
        figures = layer_figures.get(node.id)
        if params and figures is not None:
            line = _figures_line(figures.params, figures.macs)
            if line:
                lines.append(_font(line, 9, "#7a3b00"))
        attrs = dict(label=_html("<BR/>".join(lines)), fillcolor=fill, color=border, tooltip=tooltip)
        if node.op == "concat":
            attrs.update(shape="invtrapezium", style="filled")
        return attrs

    # clusters: a tree of scope paths, emitted depth first with the units they hold
    kinds: dict[str, str] = {}
    for node in ir.nodes():
        kinds.update(zip(node.scopes, node.scope_kinds))
    # a cluster cut by a column break is drawn as one box per column: keys are (path, column)
    Key = tuple[tuple[str, int], ...]
    children: dict[Key, list[Key]] = {(): []}
    members: dict[Key, list[Unit]] = {(): []}
    first_column: dict[str, int] = {}
    for unit in plan.units.values():
        chain = tuple((path, column[unit.id]) for path in unit.clusters)
        for level in range(1, len(chain) + 1):
            key = chain[:level]
            if key not in children:
                children[key] = []
                members[key] = []
                children[chain[: level - 1]].append(key)
                first_column.setdefault(key[-1][0], key[-1][1])
        members[chain].append(unit)
    repeats: dict[str, str] = {}
    inside: dict[str, dict[str, str]] = {}
    for node in ir.nodes():
        for level in range(len(node.scopes) - 1):
            inside.setdefault(node.scopes[level], {})[node.scopes[level + 1]] = node.scope_kinds[level + 1]
    for path, kind in kinds.items():
        inner = set(inside.get(path, {}).values())
        if kind == "repeat" and len(inner) == 1:
            repeats[path] = f"{len(inside[path])}x {inner.pop()}"

    def emit(target, key: Key) -> None:
        for unit in members[key]:
            target.node(unit.id, **node_attrs(unit))
        for child in children[key]:
            path, part = child[-1]
            kind = kinds.get(path, "")
            first = part == first_column[path]
            with target.subgraph(name="cluster_" + path + ("" if first else f"~{part}")) as cluster:
                style = "rounded,filled"
                if kind == "projection":
                    style = "rounded,dashed,filled"
                elif kind in ("branch", "parallel"):
                    style = "rounded,dotted,filled"
                shade = "#f5f7fa" if len(child) % 2 else "#ffffff"
                label = _cluster_label(path, kind, tuple(p for p, _ in key), repeats.get(path)) + ("" if first else " (continued)")
                cluster.attr(
                    label=_html(_font(label, 10, "#333333", bold=len(child) == 1)),
                    style=style, fillcolor=shade, color="#8c9bb0" if kind != "repeat" else "#5a6b85",
                    penwidth="1.6" if kind == "repeat" else "1", fontname="Helvetica", labeljust="l",
                )
                emit(cluster, child)

    emit(graph, ())

    for edge in plan.edges:
        attrs = dict(EDGE_STYLES[edge.kind])
        used_edges.add(edge.kind)
        if plan.units[edge.head].kind == "output":
            attrs["color"] = "#333333"
        label = ", ".join(edge.shapes)
        if label:
            attrs["label"] = " " + label + " "
        tail, head = edge.tail, edge.head
        if edge.head in plan.decoder:
            if edge.tail in plan.decoder or edge.tail == plan.turn:
                tail, head = head, tail  # laid out upwards, drawn pointing the right way
                attrs["dir"] = "back"
            elif edge.kind != "bridge":
                attrs["constraint"] = "false"
        if column[edge.tail] != column[edge.head]:
            attrs["constraint"] = "false"  # from one column to the next: no pull on the ranks
        graph.edge(tail, head, **attrs)
    anchors = [next(u for u in plan.units if column[u] == c) for c in sorted(set(column.values()))]
    if len(anchors) > 1:  # every column starts at the top, left to right in order
        with graph.subgraph() as same:
            same.attr(rank="same")
            for tail, head in zip(anchors, anchors[1:]):
                same.edge(tail, head, style="invis")
    for bridge in plan.bridges:
        if bridge.head in plan.decoder:
            with graph.subgraph() as same:
                same.attr(rank="same")
                same.node(bridge.tail)
                same.node(bridge.head)

    _legend(graph, used_families, used_edges)
    return graph


def _run_attrs(ir: IRGraph, unit: Unit, used_families: set[str]) -> dict[str, str]:
    """A folded run: `relu x10` or `12 ops` with the ops it holds, from its first to its last."""
    first, last = (_relative(m.split("] ", 1)[-1], unit.clusters) for m in (unit.members[0], unit.members[-1]))
    span = _font(f"{first} … {last}", 9, "#555555")
    count = f"{len(unit.members)} {unit.kind}s" if unit.kind in ("input", "output") else f"{len(unit.nodes)} ops"
    tooltip = f"{count} folded: {unit.members[0]} … {unit.members[-1]}"
    if unit.kind in ("input", "output"):
        used_families.add("input")
        return dict(label=_html(_font(count, bold=True) + "<BR/>" + span), shape="ellipse", style="filled",
                    fillcolor="#ffffff", color="#333333", tooltip=tooltip)
    ops = list(dict.fromkeys(ir.node(n).op for n in unit.nodes))
    families = {family(op) for op in ops}
    fam = families.pop() if len(families) == 1 else "run"
    used_families.add(fam)
    fill, border, _ = FAMILIES[fam]
    if len(ops) == 1:
        lines = [_font(f"{ops[0]} ×{len(unit.nodes)}", bold=True)]
    else:
        kinds = ", ".join(ops[:4]) + (", …" if len(ops) > 4 else "")
        lines = [_font(f"{len(unit.nodes)} ops", bold=True), _font(kinds, 9, "#444444")]
    return dict(label=_html("<BR/>".join([*lines, span])), shape="box3d", style="filled", fillcolor=fill, color=border,
                margin="0.15,0.07", tooltip=tooltip)


def _html(text: str) -> str:
    return f"<{text}>"


def _legend(graph, used_families: set[str], used_edges: set[str]) -> None:
    rows = []
    for name, (fill, border, words) in FAMILIES.items():
        if name in used_families:
            rows.append(
                f'<TR><TD BGCOLOR="{fill}" COLOR="{border}" BORDER="1" WIDTH="22" HEIGHT="12"></TD>'
                f'<TD ALIGN="LEFT">{html.escape(words)}</TD></TR>'
            )
    for kind, words in EDGE_LEGEND.items():
        if kind in used_edges:
            style = EDGE_STYLES[kind]
            dash = "- - - -" if style.get("style") == "dashed" else "· · · · ·"
            rows.append(
                f'<TR><TD><FONT COLOR="{style["color"]}"><B>{dash}&gt;</B></FONT></TD>'
                f'<TD ALIGN="LEFT">{html.escape(words)}</TD></TR>'
            )
    rows.append('<TR><TD></TD><TD ALIGN="LEFT"><FONT COLOR="#555555">edge labels: tensor shape C x H x W</FONT></TD></TR>')
    table = '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="1">' + "".join(rows) + "</TABLE>"
    with graph.subgraph(name="cluster_legend") as legend:
        legend.attr(label=_html(_font("legend", 10, "#333333", bold=True)), style="rounded", color="#bbbbbb", fontname="Helvetica")
        legend.node("legend", label=_html(_font_face(table)), shape="plain", style="", fontsize="9")


def _font_face(table: str) -> str:
    return f'<FONT POINT-SIZE="9">{table}</FONT>'


def diagram_source(ir: IRGraph, analysis: Any = None, **options: Any) -> str:
    return diagram(ir, analysis, **options).source


# --- rendering ----------------------------------------------------------------------------------------
def dot_program() -> str:
    """The path of the system `dot`, or an ArchspecError that says how to install it."""
    found = shutil.which("dot")
    if not found:
        raise ArchspecError(DOT_MISSING)
    return found


def render(source: str, fmt: str, timeout: float = DOT_TIMEOUT_S) -> bytes:
    """Run `dot -T<fmt>` on DOT text and return the image."""
    if fmt not in ("svg", "png", "pdf", "json"):  # json: dot's layout coordinates (tests)
        raise ArchspecError(f"cannot render to '{fmt}': use svg, png or pdf")
    program = dot_program()
    try:
        done = subprocess.run([program, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ArchspecError(f"graphviz's dot took longer than {timeout:g} s; try a smaller --depth") from None
    except OSError as err:
        raise ArchspecError(f"cannot run graphviz's dot ({program}): {err.strerror or err}") from None
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise ArchspecError("graphviz's dot failed: " + (message[-1] if message else f"exit code {done.returncode}"))
    return done.stdout


def render_svg_text(source: str, timeout: float = DOT_TIMEOUT_S) -> str:
    """SVG ready to inline in HTML: no XML prolog, doctype or comments."""
    svg = render(source, "svg", timeout).decode("utf-8")
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.DOTALL)
    return svg.strip()


def build_artifacts(folder: Path, ir: IRGraph, analysis: Any) -> tuple[list[Path], str | None]:
    """For `archspec build`: diagram.dot always, diagram.svg when `dot` exists; never fails.

    Returns the files written and a one-line note when the SVG was left out."""
    from archspec.render.files import write_atomic

    source = diagram_source(ir, analysis, depth=auto_depth(ir))
    written = [write_atomic(folder / "diagram.dot", source)]
    try:
        written.append(write_atomic(folder / "diagram.svg", render(source, "svg")))
    except ArchspecError as err:
        return written, f"diagram.svg not written: {err}"
    return written, None


def auto_depth(ir: IRGraph, limit: int = 120) -> int | None:
    """The depth a report draws at: every op (None) when there are at most `limit`, else the
    deepest block level whose drawing has at most `limit` nodes (1 at the least)."""
    ops = [node for node in ir.nodes() if node.op != "input"]
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
