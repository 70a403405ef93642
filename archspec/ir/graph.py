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
from functools import cached_property
from typing import TYPE_CHECKING, Any

from archspec.errors import Location, SpecError

if TYPE_CHECKING:
    import networkx as nx

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
    inputs: dict[str, str] = field(default_factory=dict)  # input name -> node id
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> node id
    # the spec names its outputs (`outputs: {out: ...}`): forward returns a dict, even of one
    named_outputs: bool = False
    # creation order: a topological order that follows the spec's text (also module order)
    order: list[str] = field(default_factory=list)
    source: str | None = None  # the spec file
    shapes: dict[str, Shape] = field(default_factory=dict)  # output shape per node (builder)
    params: dict[str, Any] = field(default_factory=dict)  # the spec parameters it was built with
    init: str = "torch"  # the spec's weight initialisation (archspec.lower.fx.initialise)
    _nodes: dict[str, IRNode] = field(default_factory=dict, repr=False)

    def add(self, node: IRNode) -> IRNode:
        if node.id in self._nodes:
            raise SpecError(f"two nodes would be named '{node.id}'", node.loc, hint="give one of them another `name`")
        self._nodes[node.id] = node
        self.order.append(node.id)
        self.__dict__.pop("graph", None)
        return node

    @cached_property
    def graph(self) -> "nx.DiGraph":
        """The IR as a networkx DiGraph (node attribute `node` holds the IRNode).

        Built on first use: the commands that need no graph algorithm (`report`, `validate`)
        then skip networkx's import, which costs more than the whole analysis."""
        import networkx as nx

        graph = nx.DiGraph()
        for node in self.nodes():
            graph.add_node(node.id, node=node)
            graph.add_edges_from((producer, node.id) for producer in node.inputs)
        return graph

    def node(self, node_id: str) -> IRNode:
        return self._nodes[node_id]

    def nodes(self) -> list[IRNode]:
        """All nodes in execution (creation) order."""
        return [self._nodes[i] for i in self.order]

    def consumers(self, node_id: str) -> list[str]:
        return [n.id for n in self.nodes() if node_id in n.inputs]

    def verify(self) -> None:
        """Check the invariants every pass relies on; raise SpecError on the first broken one.

        Every input must be produced before its consumer in `order`; that also proves the graph
        has no cycle (a cycle would need some edge pointing backwards)."""
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
