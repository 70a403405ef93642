"""The module hierarchy of an imported graph as nested scopes, each an ordered list of units.

A scope is one module (`layer1`, `layer1.0`); its units are the nodes that run directly in it
and its child scopes, in an order that keeps every unit whole (a spec's `seq` or block call is
contiguous) and every reference pointing backwards. Each unit gets the name it has in the spec:
a module keeps its attribute name (so the state_dict keys are the module paths); a node without
tensors is left to the spec's own naming (`relu1`, `relu2`: the k-th unnamed use of the op),
unless that name is taken, so the written spec names only what it must.
"""
from __future__ import annotations

import heapq
import keyword
import re
from dataclasses import dataclass, field
from typing import Union

from archspec.errors import ArchspecError, SpecError
from archspec.importer.graph import ImportedGraph, ImportedNode

NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")  # a spec node name (archspec.spec.document.check_name)


@dataclass(eq=False)
class Scope:
    path: str
    cls: type | None
    units: list[Union["Scope", ImportedNode]] = field(default_factory=list)
    # unit -> its name here, and whether the spec must write it (False: the spec's automatic name)
    names: dict[int, tuple[str, bool]] = field(default_factory=dict)
    # names a node here must not have: a reference from inside to an outer node of that name would find it
    forbidden: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.path.rpartition(".")[2]

    def nodes(self):
        """Every node inside, in order."""
        for unit in self.units:
            yield from unit.nodes() if isinstance(unit, Scope) else [unit]

    def name_of(self, unit) -> str:
        return self.names[id(unit)][0]

    def written_name(self, unit) -> str | None:
        name, explicit = self.names[id(unit)]
        return name if explicit else None


def build_scopes(graph: ImportedGraph) -> Scope:
    root = Scope("", None)
    index = {"": root}
    for node in graph.nodes.values():
        parent = root
        for path in node.scopes:
            if path not in index:
                index[path] = Scope(path, graph.classes.get(path))
                parent.units.append(index[path])
            parent = index[path]
        parent.units.append(node)
    _order(root, _producers(graph))
    name_units(root)
    return root


def index(root: Scope) -> dict[str, Scope]:
    """Scope path -> scope."""
    found = {root.path: root}
    for unit in root.units:
        if isinstance(unit, Scope):
            found.update(index(unit))
    return found


def _producers(graph: ImportedGraph) -> dict[str, str]:
    """Value id -> the id of the node that gives it."""
    return {**{f"{n.id}:{k}": n.id for n in graph.nodes.values() if isinstance(n.shape, list) for k in range(len(n.shape))},
            **{n.id: n.id for n in graph.nodes.values()}}


def _order(scope: Scope, producers: dict[str, str]) -> None:
    """Order the units so that each reads only earlier ones (a stable topological order by first
    appearance); a unit that would have to come both before and after another is an error."""
    owner = {}  # node id -> index of the unit holding it
    for position, unit in enumerate(scope.units):
        for node in unit.nodes() if isinstance(unit, Scope) else [unit]:
            owner[node.id] = position
    needs: dict[int, set[int]] = {k: set() for k in range(len(scope.units))}
    for position, unit in enumerate(scope.units):
        for node in unit.nodes() if isinstance(unit, Scope) else [unit]:
            for value in node.inputs:
                source = owner.get(producers.get(value, ""))
                if source is not None and source != position:
                    needs[position].add(source)
    waiting = {k: len(v) for k, v in needs.items()}
    readers: dict[int, list[int]] = {k: [] for k in needs}
    for reader, sources in needs.items():
        for source in sources:
            readers[source].append(reader)
    ready = [k for k, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        position = heapq.heappop(ready)
        order.append(position)
        for reader in readers[position]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, reader)
    if len(order) != len(scope.units):
        stuck = [scope.units[k] for k in needs if k not in order]
        names = ", ".join(getattr(u, "path", None) or u.id for u in stuck[:4])
        raise SpecError(f"the calls inside '{scope.path or 'the model'}' interleave ({names}): a module is entered "
                            "twice with other work between", hint="a module used twice shares its weights; the importer does not write `reuse` yet")
    scope.units = [scope.units[k] for k in order]
    for unit in scope.units:
        if isinstance(unit, Scope):
            _order(unit, producers)


def name_units(scope: Scope) -> None:
    """Each unit's name: a module's attribute name where it owns tensors or is a scope, else the
    spec's automatic `<op><k>`, written out only where that name is already taken here."""
    wanted = {}
    for unit in scope.units:
        if isinstance(unit, Scope):
            wanted[id(unit)] = unit.name
        elif unit.weighted:
            wanted[id(unit)] = unit.path.rpartition(".")[2]
    for name in wanted.values():
        if not NAME.match(name) or keyword.iskeyword(name):
            raise SpecError(f"the module name '{name}' in '{scope.path or 'the model'}' is not a spec name",
                                hint="spec names are 1-64 letters, digits, '_' or '-', and no Python keyword")
    taken = set(wanted.values()) | scope.forbidden
    scope.names = {}
    counters: dict[str, int] = {}
    for unit in scope.units:
        if id(unit) in wanted:
            name = wanted[id(unit)]
            callee = None if isinstance(unit, Scope) else unit.op.name
            automatic = callee is not None and name == f"{callee}{counters.get(callee, 0) + 1}"
            if automatic:
                counters[callee] = counters.get(callee, 0) + 1
            scope.names[id(unit)] = (name, not automatic)
            continue
        callee = unit.op.name
        candidate = f"{callee}{counters.get(callee, 0) + 1}"
        if candidate in taken:  # written out under a free name; the spec's counter does not move
            suffix = 2
            while f"{callee}_{suffix}" in taken:
                suffix += 1
            scope.names[id(unit)] = (f"{callee}_{suffix}", True)
            taken.add(f"{callee}_{suffix}")
        else:
            counters[callee] = counters.get(callee, 0) + 1
            scope.names[id(unit)] = (candidate, False)
            taken.add(candidate)
    for unit in scope.units:
        if isinstance(unit, Scope):
            name_units(unit)


def value_paths(root: Scope) -> dict[str, str]:
    """Value id -> its spec path (`layer1.0.conv1`, `split1.0` for output 0 of `split1`)."""
    paths: dict[str, str] = {}

    def walk(scope: Scope) -> None:
        for unit in scope.units:
            if isinstance(unit, Scope):
                walk(unit)
                continue
            path = f"{scope.path}.{scope.name_of(unit)}" if scope.path else scope.name_of(unit)
            paths[unit.id] = path
            if isinstance(unit.shape, list):
                for k in range(len(unit.shape)):
                    paths[f"{unit.id}:{k}"] = f"{path}.{k}"

    walk(root)
    return paths
