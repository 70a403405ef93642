"""What each IR edge is drawn as: the main path (`data`), a size reference, a shortcut or a bridge.

Pure graph analysis: the kinds come from the ops' entries (family, traits) and the shapes, never
from op names. `archspec.render.layout` turns them into the drawn edges."""
from __future__ import annotations

from dataclasses import dataclass

from archspec.ir.graph import IRGraph, IRNode
from archspec.ops.catalog import lookup

# edge classification walks at most this many nodes and edges for one graph; past it the
# remaining merges are drawn with plain edges (only a graph of thousands of merges that each
# reach far back gets there)
MAX_CLASSIFY_WORK = 500_000
# a scope of this kind is a projection shortcut (ResNet's downsample): its edges are shortcuts
PROJECTION = "projection"


def area(shape: tuple[int, ...]) -> int:
    """The spatial size of a (C, H, W) feature map; 0 for anything else."""
    return shape[-1] * shape[-2] if len(shape) == 3 else 0


@dataclass
class _Links:
    """The IR's edges between nodes, each producer -> consumer pair once (a concat may name one
    input many times, or several outputs of one node)."""

    position: dict[str, int]
    inputs: dict[str, list[str]]  # distinct producing nodes, in order
    successors: dict[str, dict[str, int]]  # consumer -> how many of its inputs the producer gives

    @classmethod
    def of(cls, ir: IRGraph) -> "_Links":
        position = {node_id: i for i, node_id in enumerate(ir.order)}
        inputs = {node.id: list(dict.fromkeys(ir.producer(v) for v in node.inputs)) for node in ir.nodes()}
        successors: dict[str, dict[str, int]] = {node_id: {} for node_id in ir.order}
        for node in ir.nodes():
            for value in node.inputs:
                consumers = successors[ir.producer(value)]
                consumers[node.id] = consumers.get(node.id, 0) + 1
        return cls(position, inputs, successors)


def classify_edges(ir: IRGraph) -> dict[tuple[str, str, int], str]:
    """(input value, consumer, input index) -> data | shortcut | bridge | size, for every IR edge.

    A later input of a resize op only gives its target size. A merge input is a shortcut when
    another path leads from it to the merge; a bridge when that path is a single one that works
    at a lower resolution (U-Net). Linear in the edges for one merge; at most MAX_CLASSIFY_WORK
    steps for the whole graph, after which merges are drawn plain."""
    links = _Links.of(ir)
    budget = [MAX_CLASSIFY_WORK]
    kinds: dict[tuple[str, str, int], str] = {}
    for node in ir.nodes():
        if not node.inputs:
            continue
        entry = lookup(node.op)
        merges = entry.is_("merge") and len(node.inputs) > 1
        in_projection = PROJECTION in node.scope_kinds
        around: dict[str, tuple[int, int]] | None = None
        for index, value in enumerate(node.inputs):
            producer = ir.producer(value)
            kind = "data"
            if entry.family == "resize" and index >= 1:
                kind = "size"
            elif in_projection or PROJECTION in ir.node(producer).scope_kinds:
                kind = "shortcut"
            elif merges:
                if around is None:
                    around = _other_paths(ir, links, node.id, budget)
                if producer in around:
                    kind = _merged_kind(ir, node, value, *around[producer])
            kinds[(value, node.id, index)] = kind
    return kinds


def _merged_kind(ir: IRGraph, merge: IRNode, value: str, paths: int, lowest: int) -> str:
    """A merge input with another path to the merge: a bridge when one path leaves it, works at a
    lower resolution and comes back, and the merge copies it alongside the others (U-Net's
    concat); several paths fanning out are parallel branches (PSPNet's pyramid): a shortcut."""
    if paths == 1 and lowest < area(ir.shapes[value]) and _stacks_channels(ir, merge):
        return "bridge"
    return "shortcut"


def _stacks_channels(ir: IRGraph, merge: IRNode) -> bool:
    """The merge puts its feature maps side by side along channels (a concat) rather than
    combining them position by position (add, mul): its channels are the sum of theirs."""
    shapes = [ir.shapes[value] for value in merge.inputs]
    output = ir.shapes[merge.id]
    return len(output) == 3 and all(len(s) == 3 for s in shapes) and output[0] == sum(s[0] for s in shapes)


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
        lowest[current] = min([area(ir.shapes[current]), *later])
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
