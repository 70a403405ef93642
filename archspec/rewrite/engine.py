"""The rewrite engine: patterns over IR nodes, rules as data, applied to a fixed point.

In the manner of tinygrad's `PatternMatcher`: a `Rule` pairs a `Pat` (an op, a trait or a hook of
the op's entry, the patterns of its inputs, names to bind) with a function that receives the bound
nodes and returns a `Replacement` for the matched node, or None to decline. `apply_rewrites(ir,
rules)` rewrites the first node in execution order that some rule matches (rules tried in list
order), and again, until no rule matches. Rules compose because each one leaves a valid graph
behind (shapes are inferred again after every change), and the input IR is never modified.

A replacement gives new nodes and the id of the value that takes the matched node's place. The
new nodes go where the matched node was (they read only nodes before it, or each other). A new
node may reuse the id of a node the pattern matched (it replaces it, keeping its module path and
so its weights' names); a matched node that then feeds nothing, and is no graph output, is removed.

Cost: linear in the graph. A worklist holds the nodes in execution order; a node that matches no
rule leaves it, and after a change only the change's neighbourhood comes back: the nodes it
touched, their producers (whose readers changed), and the readers downstream of these as far as
the deepest pattern reaches. That is exact as long as a pattern's conditions look only at the
nodes it matches, their shapes, their readers and weight sharing, as `View` offers.

Matching is direct rather than through networkx's `DiGraphMatcher`: every rule is rooted at one
node and walks up its ordered input slots, so a match costs the pattern's size at the root it is
tried on. A `DiGraphMatcher` searches the whole graph for every embedding (it has no notion of a
root or of slot order, and building one is linear in the graph), which would make each step of the
worklist linear again; `only_use` and `where` are not structural conditions either.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from archspec.errors import ArchspecError
from archspec.ir.graph import IRGraph, IRNode
from archspec.ops.catalog import lookup
from archspec.passes.counts import Figures, analyze, layer_stats
from archspec.rewrite.view import Step, View


# --- patterns ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pat:
    """A pattern for one node. `op`: a name or several; `trait`: a trait of the op's entry, or any
    of several (archspec.ops.registry.TRAITS); `has`: a hook the entry sets (`fold_affine`); none
    of the three: any node, graph inputs included. `src`: the patterns of its inputs in slot order
    (None: any inputs); `name` binds the node for the rewrite function; `only_use` requires that
    the node feeds nothing but the node matched by the enclosing pattern (and is no graph output);
    `where(view, node)` is any further condition. The nodes a rule replaces or leaves without
    readers must be named (the root always counts)."""

    op: str | tuple[str, ...] | None = None
    trait: str | tuple[str, ...] | None = None
    has: str | None = None
    src: tuple["Pat", ...] | None = None
    name: str | None = None
    only_use: bool = False
    where: Callable[[View, IRNode], bool] | None = None

    def match(self, view: View, node: IRNode, consumer: IRNode | None = None) -> dict[str, IRNode] | None:
        if not self._fits(node):
            return None
        if self.only_use and (consumer is None or not view.feeds_only(node, consumer)):
            return None
        if self.where is not None and not self.where(view, node):
            return None
        bound = {self.name: node} if self.name else {}
        if self.src is not None:
            if len(self.src) != len(node.inputs):
                return None
            for pattern, value in zip(self.src, node.inputs):
                found = pattern.match(view, view.node(value), node)
                if found is None:
                    return None
                for key, bound_node in found.items():
                    if bound.setdefault(key, bound_node) is not bound_node:
                        return None
        return bound

    def _fits(self, node: IRNode) -> bool:
        if self.op is not None and node.op not in ((self.op,) if isinstance(self.op, str) else self.op):
            return False
        if self.trait is None and self.has is None:
            return True
        entry = lookup(node.op)
        if entry is None:  # a graph input has no entry, so no traits or hooks
            return False
        traits = (self.trait,) if isinstance(self.trait, str) else self.trait
        return (traits is None or not entry.traits.isdisjoint(traits)) and (self.has is None or getattr(entry, self.has) is not None)

    def depth(self) -> int:
        """Levels of nodes the pattern spans (1: the root alone)."""
        return 1 + max((pattern.depth() for pattern in self.src or ()), default=0)


@dataclass(frozen=True)
class Replacement:
    """What a rule puts in place of the matched node: `nodes` (new, in execution order) and
    `value`, the id that the matched node's consumers and outputs read from now on."""

    nodes: tuple[IRNode, ...]
    value: str
    note: str  # one line for the report: what was done


@dataclass(frozen=True)
class Rule:
    """pattern -> replacement. `rewrite(view, **bound)` gets the nodes the pattern named and
    returns a Replacement, or None to leave this match alone."""

    name: str
    doc: str  # the rule in one line: pattern -> replacement, and when it applies
    pattern: Pat
    rewrite: Callable[..., Replacement | None]


# --- the report ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    rule: str
    node: str  # the matched node
    note: str
    removed: tuple[str, ...]  # ids no longer in the graph
    replaced: tuple[str, ...]  # ids kept for a rewritten node (a new op, arguments or weights)
    moved: tuple[str, ...]  # ids kept for the same op and arguments, reading other inputs
    added: tuple[str, ...]  # new ids
    before: Figures  # totals just before and after this change
    after: Figures


@dataclass
class RuleSummary:
    rule: str
    doc: str
    applied: int = 0
    removed: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    params: int = 0  # change in parameters (after - before), summed over its applications
    macs: int = 0
    buffers: int = 0


@dataclass
class RewriteReport:
    rules: list[Rule]
    changes: list[Change]
    before: Figures  # totals of the graph before and after all changes (batch 1)
    after: Figures
    nodes_before: int  # op nodes (graph inputs not counted)
    nodes_after: int

    def by_rule(self) -> dict[str, RuleSummary]:
        """Per rule (in the order of the rule list): applications, the nodes it removed, replaced,
        moved or added (each named once), and its share of the change in the figures."""
        summaries = {rule.name: RuleSummary(rule.name, rule.doc) for rule in self.rules}
        kinds = ("removed", "replaced", "moved", "added")
        named = {(rule, kind): {} for rule in summaries for kind in kinds}  # ordered sets: each id once
        for change in self.changes:
            summary = summaries[change.rule]
            summary.applied += 1
            for kind in kinds:
                named[change.rule, kind].update(dict.fromkeys(getattr(change, kind)))
            summary.params += change.after.params - change.before.params
            summary.macs += change.after.macs - change.before.macs
            summary.buffers += change.after.buffers - change.before.buffers
        for (rule, kind), ids in named.items():
            setattr(summaries[rule], kind, list(ids))
        return summaries

    @property
    def changed(self) -> bool:
        return bool(self.changes)


# --- applying rules -----------------------------------------------------------------------------
def flatten_rules(rules: Rule | Iterable[Any]) -> list[Rule]:
    """A rule, or a list of rules and rule lists (passes), as one flat list."""
    if isinstance(rules, Rule):
        return [rules]
    flat: list[Rule] = []
    for item in rules:
        flat.extend(flatten_rules(item))
    return flat


def apply_rewrites(ir: IRGraph, rules: Rule | Iterable[Any], max_changes: int | None = None) -> tuple[IRGraph, RewriteReport]:
    """Rewrite `ir` with `rules` until none matches: (the new IR, what changed). `ir` is not modified.

    At each step the first node in execution order that some rule matches (rules tried in list
    order) is rewritten."""
    rule_list = flatten_rules(rules)
    view, tally = View(ir), _Tally()
    before = figures = analyze(ir).totals
    changes: list[Change] = []
    limit = max_changes if max_changes is not None else 4 * len(ir.nodes()) + 16
    reach = max((rule.pattern.depth() for rule in rule_list), default=1) - 1
    work = _Worklist(view)
    while (root := work.pop()) is not None:
        hit = _match(view, root, rule_list)
        if hit is None:
            continue
        rule, bound, replacement = hit
        if len(changes) >= limit:
            raise ArchspecError(
                f"the rewrite rules did not settle after {limit} changes (last: {rule.name} at '{root.id}'); "
                "two rules probably undo each other"
            )
        matched = {root.id, *(node.id for node in bound.values())}
        step = view.apply(root, matched, replacement.nodes, replacement.value, rule.name)
        after = tally.updated(figures, view, step)
        changes.append(_change(rule, root, replacement, step, figures, after))
        work.push_all(view.around(step.area, reach))
        figures = after
    new = view.to_ir()
    return new, RewriteReport(rule_list, changes, before, figures, _op_count(ir), _op_count(new))


def _match(view: View, node: IRNode, rules: list[Rule]) -> tuple[Rule, dict[str, IRNode], Replacement] | None:
    for rule in rules:
        bound = rule.pattern.match(view, node)
        if bound is None:
            continue
        replacement = rule.rewrite(view, **bound)
        if replacement is not None:
            return rule, bound, replacement
    return None


class _Worklist:
    """Node ids to try, popped in execution order (by View key), each queued at most once."""

    def __init__(self, view: View):
        self.view = view
        self.heap = [(view.key[node.id], node.id) for node in view.nodes()]  # sorted: already a heap
        self.queued = {node_id: key for key, node_id in self.heap}

    def pop(self) -> IRNode | None:
        while self.heap:
            key, node_id = heapq.heappop(self.heap)
            if self.queued.get(node_id) == key:
                del self.queued[node_id]
                if self.view.key.get(node_id) == key:  # else removed, or moved and queued again
                    return self.view.node(node_id)
        return None

    def push_all(self, ids: Iterable[str]) -> None:
        for node_id in ids:
            key = self.view.key[node_id]
            if self.queued.get(node_id) != key:
                self.queued[node_id] = key
                heapq.heappush(self.heap, (key, node_id))


def _change(rule: Rule, root: IRNode, replacement: Replacement, step: Step, before, after) -> Change:
    kept = [node for node in replacement.nodes if node.id in step.before]
    moved = tuple(n.id for n in kept if _same_op(n, step.before[n.id][0]) and n.inputs != step.before[n.id][0].inputs)
    return Change(
        rule=rule.name,
        node=root.id,
        note=replacement.note,
        removed=tuple(sorted(step.removed, key=lambda i: step.before[i][1])),
        replaced=tuple(n.id for n in kept if n.id not in moved),
        moved=moved,
        added=tuple(n.id for n in replacement.nodes if n.id in step.added),
        before=before,
        after=after,
    )


def _same_op(a: IRNode, b: IRNode) -> bool:
    return a.op == b.op and a.args == b.args


def _op_count(ir: IRGraph) -> int:
    return sum(1 for node in ir.nodes() if not node.is_input)


# --- the figures of each step ------------------------------------------------------------------------
FIGURES = ("params", "trainable", "buffers", "macs", "flops", "all_ops", "activations")


class _Tally:
    """Totals after each change, from those before it: the figures of the nodes the change touched
    are taken off as they were and added as they are. A node's figures depend only on its op,
    arguments, weight ownership, trainability and shapes, so a node read anew with the same
    shapes is skipped, and equal nodes are counted once (a chain of 49,000 dropouts)."""

    def __init__(self) -> None:
        self._memo: dict[Any, Figures] = {}

    def updated(self, figures: Figures, view: View, step: Step) -> Figures:
        total = replace(figures)
        for node_id in {*step.before, *step.added}:
            old = new = None
            if node_id in step.before:
                node = step.before[node_id][0]
                old = node, tuple(step.old_shape(view, value) for value in node.inputs)
            if node_id in view.key:
                node = view.node(node_id)
                new = node, tuple(view.shape(value) for value in node.inputs)
            if old is not None and new is not None and _signature(*old) == _signature(*new):
                continue
            for sign, side in ((-1, old), (1, new)):
                if side is not None:
                    part = self.figures(*side)
                    for name in FIGURES:
                        setattr(total, name, getattr(total, name) + sign * getattr(part, name))
        return total

    def figures(self, node: IRNode, inputs: tuple) -> Figures:
        """One node's figures at batch 1, as `archspec.passes.counts.analyze` counts them."""
        if node.is_input:
            return Figures()
        key = _signature(node, inputs)
        try:
            return self._memo[key]
        except TypeError:  # arguments holding a list cannot be a key
            return layer_stats(node, list(inputs)).figures
        except KeyError:
            self._memo[key] = layer_stats(node, list(inputs)).figures
            return self._memo[key]


def _signature(node: IRNode, inputs: tuple) -> tuple:
    return node.op, node.args, node.module == node.id, node.trainable, inputs, node.shapes
