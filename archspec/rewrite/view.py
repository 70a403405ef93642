"""The graph a rewrite works on: a mutable copy of the IR with the lookups patterns need.

`apply_rewrites` copies the IR into a View once, changes the View in place one replacement at a
time and writes a new IRGraph at the end, so a change costs the size of its neighbourhood, not
of the graph. The input IR is never touched: a changed node is a new IRNode (`dataclasses.replace`),
and the output shapes live on the nodes, as in the IR.

Order: each node has a key, a tuple. The nodes a replacement puts where the matched node was get
that node's key extended by their index, so they sort after every node before it and before every
node after it, and the key order stays a topological order.
"""
from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Iterable

from archspec.ir.graph import IRGraph, IRNode, Shape, producer_of, split_value
from archspec.passes.shapes import output_shapes

Key = tuple[int, ...]


@dataclass
class Step:
    """What one replacement did to the View. `before` keeps every node it touched as it was (with
    its output shapes) and its key, so the change can be classified and its figures recounted locally."""

    before: dict[str, tuple[IRNode, Key]] = field(default_factory=dict)
    added: set[str] = field(default_factory=set)  # ids that were not in the graph
    removed: list[str] = field(default_factory=list)
    redirected: list[str] = field(default_factory=list)  # readers now reading the replacement's value
    area: set[str] = field(default_factory=set)  # where patterns may match differently now

    def old_shape(self, view: "View", value: str) -> Shape:
        """A value's shape before this step."""
        node_id, output = split_value(value)
        node = self.before[node_id][0] if node_id in self.before else view.node(node_id)
        return node.shapes[output]


class View:
    """One state of the graph: nodes (with their output shapes), order keys, readers and weight users."""

    def __init__(self, ir: IRGraph):
        self.template = ir
        self._nodes: dict[str, IRNode] = {}
        self.key: dict[str, Key] = {}
        self._consumers: dict[str, dict[str, None]] = {}  # node id -> reader ids (an ordered set)
        self._users: Counter[str] = Counter()  # module path -> call sites using its weights
        self.graph_outputs = dict(ir.outputs)
        for index, node in enumerate(ir.nodes()):
            self._enter(node, (index,))
        self.outputs = {producer_of(value) for value in self.graph_outputs.values()}  # ids of output nodes

    # --- what patterns and rules read ---
    def node(self, node_id: str) -> IRNode:
        """A node by id, or the node computing a value (`split1:0`)."""
        return self._nodes[producer_of(node_id)]

    def nodes(self) -> list[IRNode]:
        return [self._nodes[node_id] for node_id in sorted(self._nodes, key=self.key.__getitem__)]

    def shape(self, node: IRNode | str) -> Shape:
        """The shape of a value, or of a node's (first) output."""
        if isinstance(node, IRNode):
            return node.shape
        node_id, output = split_value(node)
        return self._nodes[node_id].shapes[output]

    def consumers(self, node: IRNode | str) -> list[str]:
        """The nodes reading any output of `node`, in execution order."""
        readers = self._consumers[node if isinstance(node, str) else node.id]
        return list(readers) if len(readers) < 2 else sorted(readers, key=self.key.__getitem__)

    def feeds_only(self, node: IRNode, consumer: IRNode) -> bool:
        """`node` is read by `consumer` alone (once) and is no graph output."""
        reads = sum(1 for value in consumer.inputs if producer_of(value) == node.id)
        return list(self._consumers[node.id]) == [consumer.id] and node.id not in self.outputs and reads == 1

    def shared(self, node: IRNode) -> bool:
        """Whether the node's weights are shared with another call site (`reuse`)."""
        return node.module != node.id or self._users[node.id] > 1

    def around(self, ids: Iterable[str], hops: int) -> set[str]:
        """The nodes of `ids` still in the graph and those up to `hops` readers downstream of them."""
        found = {node_id for node_id in ids if node_id in self._nodes}
        frontier = set(found)
        for _ in range(hops):
            frontier = {reader for node_id in frontier for reader in self._consumers[node_id]} - found
            found |= frontier
        return found

    # --- changing the graph ---
    def apply(self, root: IRNode, matched: set[str], nodes: tuple[IRNode, ...], value: str, rule: str) -> Step:
        """Put `nodes` where `root` was, its readers reading `value` (archspec.rewrite.engine's
        Replacement: the contract is there); `matched`: the ids the pattern matched."""
        self._check(root, matched, nodes, rule)
        new_ids = {node.id for node in nodes}
        step = Step(added={i for i in new_ids if i not in self._nodes})
        base = self.key[root.id]
        for node_id in dict.fromkeys([root.id, *(i for i in new_ids if i in self._nodes)]):
            self._take_out(node_id, step)
        for index, node in enumerate(nodes):
            self._enter(node, base + (index,))
        if value != root.id:
            self._redirect_readers(root.id, value, new_ids, step)
        if root.id not in new_ids:
            if self._consumers[root.id] or root.id in self.outputs:
                raise AssertionError(f"rule {rule}: '{root.id}' is removed but still read; the replacement's `value` must differ")
            self._forget(root.id, step)
        self._drop_dead(matched - new_ids - {root.id} - set(self.template.inputs.values()), step)
        for node in (*nodes, *(self._nodes[i] for i in step.redirected)):
            self._check_inputs(node, rule)
        self._infer_shapes([*(node.id for node in nodes), *step.redirected], step)
        self._mark_area(step, new_ids)
        return step

    def to_ir(self) -> IRGraph:
        """The graph as a new IRGraph, in key order, verified."""
        ir = self.template
        out = IRGraph(name=ir.name, inputs=dict(ir.inputs), outputs=dict(self.graph_outputs), named_outputs=ir.named_outputs,
                      source=ir.source, params=dict(ir.params), init=ir.init, block_params=dict(ir.block_params))
        for node in self.nodes():
            out.add(node)
        out.verify()
        return out

    # --- the pieces of a change ---
    def _check(self, root: IRNode, matched: set[str], nodes: tuple[IRNode, ...], rule: str) -> None:
        for node in nodes:
            if node.id in self._nodes and node.id not in matched:
                raise AssertionError(f"rule {rule}: new node '{node.id}' would overwrite a node the pattern did not match")
            if node.id != root.id and node.id in self._nodes and not set(self._consumers[node.id]) <= matched:
                raise AssertionError(f"rule {rule}: '{node.id}' is replaced but read outside the match")

    def _check_inputs(self, node: IRNode, rule: str) -> None:
        for value in node.inputs:
            producer = producer_of(value)
            if producer not in self._nodes:
                raise AssertionError(f"rule {rule}: '{node.id}' reads '{value}', which is not in the graph")
            if self.key[producer] >= self.key[node.id]:
                raise AssertionError(f"rule {rule}: '{node.id}' reads '{value}', which comes after it")

    def _enter(self, node: IRNode, key: Key) -> None:
        self._nodes[node.id] = node
        self.key[node.id] = key
        self._consumers.setdefault(node.id, {})
        for value in node.inputs:
            self._consumers[producer_of(value)][node.id] = None
        self._users[node.module] += 1

    def _take_out(self, node_id: str, step: Step) -> None:
        """Unlink a node from its producers (its own readers stay: they may read its successor)."""
        node = self._nodes.pop(node_id)
        step.before.setdefault(node_id, (node, self.key[node_id]))
        for value in node.inputs:
            step.area.add(producer_of(value))
            self._consumers[producer_of(value)].pop(node_id, None)
        self._users[node.module] -= 1
        if node.module != node_id:
            step.area.add(node.module)  # the owner may no longer be shared

    def _forget(self, node_id: str, step: Step) -> None:
        del self._consumers[node_id], self.key[node_id]
        step.removed.append(node_id)

    def _redirect_readers(self, old: str, new: str, skip: set[str], step: Step) -> None:
        """The readers of value `old` (but the new nodes) and the graph outputs read `new` instead."""
        for reader_id in self.consumers(producer_of(old)):
            reader = self._nodes[reader_id]
            if reader_id in skip or old not in reader.inputs:
                continue
            key = self.key[reader_id]
            self._take_out(reader_id, step)
            self._enter(replace(reader, inputs=[new if value == old else value for value in reader.inputs]), key)
            step.redirected.append(reader_id)
        for name, value in self.graph_outputs.items():
            if value == old:
                self.graph_outputs[name] = new
        self.outputs = {producer_of(value) for value in self.graph_outputs.values()}
        step.area.add(producer_of(new))  # it has new readers (and may be an output now)

    def _drop_dead(self, candidates: set[str], step: Step) -> None:
        """Matched nodes left without a reader (and no graph output) go too, e.g. the flatten whose
        linear became a conv; removing one may leave another without a reader."""
        while True:
            dead = [i for i in candidates if i in self._nodes and not self._consumers[i] and i not in self.outputs]
            if not dead:
                return
            for node_id in dead:
                self._take_out(node_id, step)
                self._forget(node_id, step)

    def _infer_shapes(self, starts: list[str], step: Step) -> None:
        """Infer the shapes of the new and redirected nodes again, and downstream while they change.
        A node a rule made carries the shapes of the node it was made from (or none) until then."""
        heap = [(self.key[i], i) for i in dict.fromkeys(starts)]
        heapq.heapify(heap)
        queued = {node_id for _, node_id in heap}
        while heap:
            _, node_id = heapq.heappop(heap)
            node = self._nodes[node_id]
            shapes = output_shapes(node, {value: self.shape(value) for value in node.inputs})
            if node.shapes == shapes:
                continue
            if node_id not in step.added:
                step.before.setdefault(node_id, (node, self.key[node_id]))
            self._nodes[node_id] = replace(node, shapes=shapes)
            for reader in self._consumers[node_id]:
                if reader not in queued:
                    queued.add(reader)
                    heapq.heappush(heap, (self.key[reader], reader))

    def _mark_area(self, step: Step, new_ids: set[str]) -> None:
        changed = {*step.before, *new_ids}
        step.area |= changed
        for node_id in changed:
            node = self._nodes.get(node_id)
            if node is not None:
                step.area.update(producer_of(value) for value in node.inputs)
