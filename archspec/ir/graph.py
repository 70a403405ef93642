"""The IR: a flat networkx DiGraph with one op per node.

Node vocabulary (closed): every node is an `IRNode` whose `op` is either `input` (a graph
input, `args` holds its shape) or an op name from `archspec.ops`. Everything the spec language
offers (blocks, repeats, parallel branches, projections, reuse) is expanded away by
`archspec.ir.build`; passes and lowering only ever see these nodes.

Each node carries:
- `id`: its unique name in the graph (the module path of this call site, e.g. `layer1.0.conv1`);
- `inputs`: ordered producer ids (edge order matters: `concat`, `sub`...);
- `module`: the path of the module that owns its weights. Equal to `id`, except for a node that
  reuses another's weights (shared weights), where it names the owner;
- `scopes`: the enclosing block / stage paths, outermost first, for per-block roll-ups;
- `loc`: the spec location it was written at; `trainable`: False when frozen.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from archspec.errors import Location, SpecError

Shape = tuple[int, ...]


@dataclass
class IRNode:
    id: str
    op: str
    args: Any  # the op's validated OpArgs, or the shape for an `input`
    inputs: list[str]
    module: str
    loc: Location | None = None
    scopes: tuple[str, ...] = ()
    trainable: bool = True
    # what kind of scope each entry of `scopes` is (block name, `repeat`, `parallel`, ...)
    scope_kinds: tuple[str, ...] = ()


@dataclass
class IRGraph:
    name: str
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    inputs: dict[str, str] = field(default_factory=dict)  # input name -> node id
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> node id
    # creation order: a topological order that follows the spec's text (also module order)
    order: list[str] = field(default_factory=list)
    source: str | None = None  # the spec file

    def add(self, node: IRNode) -> IRNode:
        if node.id in self.graph:
            raise SpecError(f"two nodes would be named '{node.id}'", node.loc, hint="give one of them another `name`")
        self.graph.add_node(node.id, node=node)
        for producer in node.inputs:
            self.graph.add_edge(producer, node.id)
        self.order.append(node.id)
        return node

    def node(self, node_id: str) -> IRNode:
        return self.graph.nodes[node_id]["node"]

    def nodes(self) -> list[IRNode]:
        """All nodes in execution (creation) order."""
        nodes = self.graph.nodes
        return [nodes[i]["node"] for i in self.order]

    def consumers(self, node_id: str) -> list[str]:
        return list(self.graph.successors(node_id))

    def verify(self) -> None:
        """Check the invariants every pass relies on; raise SpecError on the first broken one."""
        if not nx.is_directed_acyclic_graph(self.graph):
            cycle = " -> ".join(a for a, _ in nx.find_cycle(self.graph))
            raise SpecError(f"the graph has a cycle: {cycle}")
        position = {node_id: index for index, node_id in enumerate(self.order)}
        for node in self.nodes():
            for producer in node.inputs:
                if producer not in position:
                    raise SpecError(f"input '{producer}' does not exist", node.loc, node.id)
                if position[producer] >= position[node.id]:
                    raise SpecError(f"input '{producer}' is produced after its use", node.loc, node.id)
        for name, node_id in self.outputs.items():
            if node_id not in position:
                raise SpecError(f"output '{name}' refers to a missing node '{node_id}'")
