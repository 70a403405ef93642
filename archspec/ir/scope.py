"""What the IR builder keeps while it expands a spec: scopes, the bindings of names, and the item
being expanded.

A `Scope` is one level of naming (the top, a block call, a group, a branch); a `Binding` is what a
name in it stands for (a node, a block call, a group, with the names inside it); an `Item` is one
layer item on its way to nodes: what it calls, with which arguments, under which name, on which
input values.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from archspec.errors import Location
from archspec.spec.yaml_source import SourceMap

if TYPE_CHECKING:
    from archspec.ir.graph import IRGraph
    from archspec.spec.document import LoadedSpec


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


@dataclass(slots=True)
class Binding:
    """What a name in a scope stands for."""

    output: str  # the value it gives (a value name: node id, or `id:k` of a multi-output node)
    path: str  # module-path prefix of everything it created
    nodes: list[str] = field(default_factory=list)  # node ids it created, in order
    inputs: list[str] = field(default_factory=list)  # values it consumed
    children: dict[str, "Binding"] = field(default_factory=dict)  # names inside it (`split1.0` too)


@dataclass
class FlatNames:
    """nn.Sequential-style naming: every op created inside, however deeply nested in blocks,
    is named `<path>.<k>` with k counting from 0 (torchvision's `features.0`, `features.3`).
    `bindings` keeps each `k`, so `from: features.3` reaches the node the report calls that."""

    path: str
    count: int = 0
    bindings: dict[str, Binding] = field(default_factory=dict)

    def next_id(self) -> str:
        self.count += 1
        return join(self.path, str(self.count - 1))


@dataclass(slots=True)
class Scope:
    path: str  # module-path prefix ("" at the top)
    env: Mapping[str, Any]  # parameter values visible here
    parent: "Scope | None"  # lexical parent for name lookup; None closes the scope (blocks)
    scopes: tuple[str, ...] = ()  # enclosing scope paths, for IRNode.scopes
    kinds: tuple[str, ...] = ()
    trainable: bool = True
    names: dict[str, Binding] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)  # auto-name counts per op or block
    pending: dict[str, Location] = field(default_factory=dict)  # names defined later in the list
    flat: FlatNames | None = None  # set inside `seq: {index_names: true}`

    def child(self, name: str, kind: str, *, closed: bool = False, env: Mapping[str, Any] | None = None) -> "Scope":
        path = join(self.path, name)
        return Scope(
            path=path,
            env=self.env if env is None else env,
            parent=None if closed else self,
            scopes=(*self.scopes, path),
            kinds=(*self.kinds, kind),
            trainable=self.trainable,
            flat=self.flat,
        )

    def node_id(self, name: str) -> str:
        """The module path of an op node named `name` here."""
        return self.flat.next_id() if self.flat else join(self.path, name)

    def with_trainable(self, trainable: bool) -> "Scope":
        # the same name tables, but nodes created under this item get the flag
        return self if self.trainable == trainable else replace(self, trainable=trainable)


@dataclass(slots=True)
class Item:
    """One layer item being expanded: `callee` (an op, block or construct) with `body` (its
    arguments without the reserved keys), written as `args` at `loc`, named `name` in `scope`,
    reading the values `inputs`."""

    callee: str
    body: dict[str, Any]
    args: SourceMap
    loc: Location | None
    scope: Scope
    name: str
    inputs: list[str]

    @property
    def path(self) -> str:
        """The module path of what the item makes."""
        return join(self.scope.path, self.name)

    def value_loc(self, key: str) -> Location | None:
        return self.args.value_loc(key) if isinstance(self.args, SourceMap) and key in self.args else self.loc

    def key_loc(self, key: str) -> Location | None:
        return self.args.key_loc(key) if isinstance(self.args, SourceMap) and key in self.args else self.loc

    def but(self, **changes: Any) -> "Item":
        return replace(self, **changes)


class Builder(Protocol):
    """What the constructs and op nodes need of the expansion in progress
    (archspec.ir.build.Expander): the spec, the graph so far, and the way back into item lists."""

    spec: "LoadedSpec"
    ir: "IRGraph"
    block_stack: list[str]
    spec_env: dict[str, Any]

    def sequence(self, items: Any, scope: Scope, inputs: list[str]) -> str: ...

    def item(self, written: Any, loc: Location | None, scope: Scope, prev: str, default_name: str | None = None) -> str: ...
