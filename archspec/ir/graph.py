"""The IR: a flat networkx DiGraph with one op per node.

Node vocabulary (closed): every node is an `IRNode` whose `op` is either `input` (a graph
input, `args` holds its shape) or an op name from `archspec.ops`. Everything the spec language
offers (blocks, repeats, parallel branches, projections, reuse) is expanded away by
`archspec.ir.build`; passes and lowering only ever see these nodes.

Each node carries:
- `id`: its unique name in the graph (the module path of this call site, e.g. `layer1.0.conv1`);
- `inputs`: the values it reads, in slot order (edge order matters: `concat`, `sub`...); a value
  is a node id, or `<node id>:<k>` for output k of a node with several outputs (`split`);
- `shapes`: the shape of each output (from the op's shape rule, set by the builder);
- `module`: the path of the module that owns its weights. Equal to `id`, except for a node that
  reuses another's weights (shared weights), where it names the owner;
- `scopes`: the enclosing block / stage paths, outermost first, for per-block roll-ups;
- `loc`: the spec location it was written at; `trainable`: False when frozen.
"""
from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import TYPE_CHECKING, Any, Iterator

import networkx as nx

from archspec.errors import Location, SpecError

if TYPE_CHECKING:
    from archspec.ops.registry import Op

Shape = tuple[int, ...]
INPUT = "input"  # the op of a graph input node: the one node kind that is not a registry op


def value_id(node_id: str, output: int, outputs: int) -> str:
    """The name of a node's output `output`: the node id itself for a one-output node, else
    `<node id>:<k>` (a ':' cannot appear in a node id, so value names never collide)."""
    return node_id if outputs == 1 else f"{node_id}:{output}"


def producer_of(value: str) -> str:
    """The id of the node that computes a value (`node`, or `node:k`)."""
    return value.partition(":")[0]


def split_value(value: str) -> tuple[str, int]:
    """A value name -> (producing node id, output index)."""
    node_id, _, output = value.partition(":")
    return node_id, int(output or 0)


@dataclass
class IRNode:
    id: str
    op: str
    args: Any  # the op's validated OpArgs, or the shape for an `input`
    inputs: list[str]  # value names read, in slot order (`value_id`)
    module: str
    loc: Location | None = None
    scopes: tuple[str, ...] = ()
    trainable: bool = True
    # what kind of scope each entry of `scopes` is (block name, `repeat`, `parallel`, ...)
    scope_kinds: tuple[str, ...] = ()
    # the shape of each output (without the batch), from the op's shape rule
    shapes: tuple[Shape, ...] = ()

    @property
    def entry(self) -> "Op | None":
        """The op's registry entry (None for a graph input)."""
        from archspec.ops.catalog import lookup

        return None if self.op == INPUT else lookup(self.op)

    @property
    def is_input(self) -> bool:
        return self.op == INPUT

    @property
    def shape(self) -> Shape:
        """The output shape of a one-output node (the first output's otherwise)."""
        return self.shapes[0]

    @property
    def values(self) -> list[str]:
        """The names of this node's outputs, in order."""
        count = len(self.shapes)
        return [self.id] if count == 1 else [value_id(self.id, k, count) for k in range(count)]


class ShapeTable(MutableMapping):
    """Output shape per value name, read from (and written to) the nodes of one graph.

    Writing a shape gives the graph a copy of the node with that shape, so graphs that share
    IRNode objects (successive rewrite steps) never change each other."""

    def __init__(self, ir: "IRGraph"):
        self._ir = ir

    def __getitem__(self, value: str) -> Shape:
        node_id, output = split_value(value)
        data = self._ir.graph.nodes.get(node_id)
        if data is None or output >= len(data["node"].shapes):
            raise KeyError(value)
        return data["node"].shapes[output]

    def __setitem__(self, value: str, shape: Shape) -> None:
        node_id, output = split_value(value)
        node = self._ir.node(node_id)
        shapes = list(node.shapes) or [()]
        while len(shapes) <= output:
            shapes.append(())
        shapes[output] = tuple(shape)
        self._ir.graph.nodes[node_id]["node"] = replace(node, shapes=tuple(shapes))

    def __delitem__(self, value: str) -> None:
        raise TypeError("a node's shape cannot be removed, only the node")

    def __iter__(self) -> Iterator[str]:
        for node in self._ir.nodes():
            yield from node.values

    def __len__(self) -> int:
        return sum(len(node.shapes) for node in self._ir.nodes())


@dataclass
class IRGraph:
    """The IR: a networkx DiGraph whose nodes carry an IRNode (attribute `node`) and whose edge
    producer -> consumer carries `ports`, the (input slot, output index) pairs it feeds. The
    graph's node order is creation order, a topological order that follows the spec's text."""

    name: str
    inputs: dict[str, str] = field(default_factory=dict)  # input name -> node id
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> value name
    # the spec names its outputs (`outputs: {out: ...}`): forward returns a dict, even of one
    named_outputs: bool = False
    source: str | None = None  # the spec file
    params: dict[str, Any] = field(default_factory=dict)  # the spec parameters it was built with
    init: Any = "torch"  # the spec's `init`: a scheme name or InitScheme (archspec.spec.init_scheme)
    # block call path -> the block's parameter values at that call (defaults and derived ones
    # included), so an exported source can rebuild each call from its arguments
    block_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    graph: nx.DiGraph = field(default_factory=nx.DiGraph, repr=False)

    def __post_init__(self) -> None:
        self.shapes = ShapeTable(self)

    def add(self, node: IRNode) -> IRNode:
        if node.id in self.graph:
            raise SpecError(f"two nodes would be named '{node.id}'", node.loc, hint="give one of them another `name`")
        self.graph.add_node(node.id, node=node)
        for slot, value in enumerate(node.inputs):
            producer, output = split_value(value)
            if producer in self.graph:  # a missing producer is reported by `verify`
                if not self.graph.has_edge(producer, node.id):
                    self.graph.add_edge(producer, node.id, ports=[])
                self.graph.edges[producer, node.id]["ports"].append((slot, output))
        return node

    @property
    def order(self) -> list[str]:
        return list(self.graph)

    def added_since(self, count: int) -> list[str]:
        """The ids of the nodes added after the first `count`, in order: read from the end of the
        graph's node dict, so a block call pays for its own nodes, not for the whole graph."""
        new = len(self.graph) - count
        return list(islice(reversed(self.graph._node), new))[::-1] if new > 0 else []

    def node(self, node_id: str) -> IRNode:
        return self.graph.nodes[node_id]["node"]

    def nodes(self) -> list[IRNode]:
        """All nodes in execution (creation) order."""
        return [data["node"] for _, data in self.graph.nodes(data=True)]

    def producer(self, value: str) -> str:
        """The id of the node that computes a value."""
        return producer_of(value)

    def consumers(self, node_id: str) -> list[str]:
        """The nodes that read any output of `node_id`, in creation order of the edges."""
        return list(self.graph.successors(node_id))

    def verify(self) -> None:
        """Check the invariants every pass relies on; raise SpecError on the first broken one:
        every input exists and is produced before its consumer, outputs exist, and the graph has
        no cycle. Inputs produced before their use prove there is none; where one is produced
        after, networkx finds the cycle, which is reported at a node on it."""
        position = {node_id: index for index, node_id in enumerate(self.graph)}
        backwards = None
        for node in self.nodes():
            for value in node.inputs:
                producer, output = split_value(value)
                if producer not in position:
                    raise SpecError(f"input '{value}' does not exist", node.loc, node.id)
                shapes = self.node(producer).shapes
                if shapes and output >= len(shapes):
                    raise SpecError(f"'{producer}' has no output {output}", node.loc, node.id)
                if backwards is None and position[producer] >= position[node.id]:
                    backwards = (value, node)
        if backwards is not None:
            self._report_cycle(*backwards)
        for name, value in self.outputs.items():
            if split_value(value)[0] not in position:
                raise SpecError(f"output '{name}' refers to a missing node '{value}'")

    def _report_cycle(self, value: str, node: IRNode) -> None:
        if not nx.is_directed_acyclic_graph(self.graph):
            cycle = nx.find_cycle(self.graph)
            first = self.node(cycle[0][0])
            path = " -> ".join([*(u for u, _ in cycle), cycle[0][0]])
            raise SpecError(f"the graph has a cycle: {path}", first.loc, first.id, hint="references point to earlier nodes")
        raise SpecError(f"input '{value}' is produced after its use", node.loc, node.id)
