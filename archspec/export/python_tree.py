"""The module tree of a written model: the IR's node ids as paths (`layer2.0.conv1`), each prefix
a scope (`layer2` a repeat, `layer2.0` a call of the block `basic`), so that the written
attributes sit at the lowered module's paths and its state_dict loads strictly.

A scope no node id runs through (a block inside `seq: {index_names: true}`, whose nodes are
named `features.3`) is no module of its own: its nodes belong to the scope their ids name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Union

from archspec.ir.graph import IRGraph, IRNode, producer_of

HOLDER = "holder"  # the kind of a path prefix that no construct named (a plain container)
PROJECTION = "projection"  # the kind of add's `project: auto` shortcut (archspec.ir.nodes)


@dataclass(eq=False)
class Scope:
    path: str
    kind: str  # "" at the top, a block's name for a block call, else a construct's kind
    name: str  # its name in its parent
    block: bool = False
    children: list[Union["Scope", IRNode]] = field(default_factory=list)
    nodes: list[IRNode] = field(default_factory=list)  # every node inside, in order
    inputs: list[str] = field(default_factory=list)  # values read inside, made outside (first read first)
    outputs: list[str] = field(default_factory=list)  # values made inside, read outside

    def scopes(self) -> Iterator["Scope"]:
        """This scope and every scope inside it, outer ones first."""
        yield self
        for child in self.children:
            if isinstance(child, Scope):
                yield from child.scopes()

    @property
    def listed(self) -> bool:
        """Its children are named 0, 1, 2, ... in order (an nn.Sequential or nn.ModuleList)."""
        return bool(self.children) and [name_in(self, c) for c in self.children] == [str(k) for k in range(len(self.children))]


def name_in(parent: Scope, child: Scope | IRNode) -> str:
    """A child's name in its parent scope."""
    return child.name if isinstance(child, Scope) else child.id[len(parent.path) + 1:] if parent.path else child.id


def scope_tree(ir: IRGraph) -> Scope:
    """The scope tree of the IR, with each scope's nodes, inputs and outputs."""
    kinds: dict[str, str] = {}
    top = Scope("", "", "")
    by_path = {"": top}
    for node in ir.nodes():
        if node.is_input:
            continue
        kinds.update((path, kind) for path, kind in zip(node.scopes, node.scope_kinds) if path not in kinds)
        parent = top
        parts = node.id.split(".")
        for depth in range(1, len(parts)):
            path = ".".join(parts[:depth])
            scope = by_path.get(path)
            if scope is None:
                scope = Scope(path, kinds.get(path, HOLDER), parts[depth - 1], path in ir.block_params)
                by_path[path] = scope
                parent.children.append(scope)
            parent.nodes.append(node)
            parent = scope
        parent.nodes.append(node)
        parent.children.append(node)
    _connect(ir, top)
    return top


def _connect(ir: IRGraph, top: Scope) -> None:
    """Each scope's inputs (values it reads from outside) and outputs (values read outside it)."""
    readers: dict[str, list[str]] = {}
    for node in ir.nodes():
        for value in node.inputs:
            readers.setdefault(value, []).append(node.id)
    graph_outputs = set(ir.outputs.values())
    for scope in top.scopes():
        inside = {node.id for node in scope.nodes}
        for node in scope.nodes:
            for value in node.inputs:
                if producer_of(value) not in inside and value not in scope.inputs:
                    scope.inputs.append(value)
            for value in node.values:
                if value in graph_outputs or any(reader not in inside for reader in readers.get(value, ())):
                    scope.outputs.append(value)
