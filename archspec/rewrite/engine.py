"""The rewrite engine: patterns over IR nodes, rules as data, applied to a fixed point.

In the manner of tinygrad's `PatternMatcher`: a `Rule` pairs a `Pat` (an op, the patterns of its
inputs, names to bind) with a function that receives the bound nodes and returns a `Replacement`
for the matched node, or None to decline. `apply_rewrites(ir, rules)` scans the graph in order,
rewrites the first match, and starts again until no rule matches. Rules compose because each one
leaves a valid graph behind (shapes are inferred again after every change), and the input IR is
never modified.

A replacement gives new nodes and the id of the value that takes the matched node's place. The
new nodes go where the matched node was (they read only nodes before it, or each other). A new
node may reuse the id of a node the pattern matched (it replaces it, keeping its module path and
so its weights' names); a matched node that then feeds nothing, and is no graph output, is removed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from archspec.errors import ArchspecError
from archspec.ir.graph import IRGraph, IRNode, Shape
from archspec.passes.counts import Figures, analyze
from archspec.passes.shapes import output_shape


# --- the view a pattern sees ----------------------------------------------------------------------
class View:
    """One state of the graph, with the lookups patterns need (consumers, shapes, weight sharing)."""

    def __init__(self, ir: IRGraph):
        self.ir = ir
        self._consumers: dict[str, list[str]] = {node_id: [] for node_id in ir.order}
        self._users: dict[str, int] = {}  # module path -> call sites using it
        for node in ir.nodes():
            for producer in dict.fromkeys(node.inputs):
                self._consumers[producer].append(node.id)
            self._users[node.module] = self._users.get(node.module, 0) + 1
        self.outputs = set(ir.outputs.values())

    def node(self, node_id: str) -> IRNode:
        return self.ir.node(node_id)

    def shape(self, node: IRNode | str) -> Shape:
        return self.ir.shapes[node if isinstance(node, str) else node.id]

    def consumers(self, node: IRNode | str) -> list[str]:
        return self._consumers[node if isinstance(node, str) else node.id]

    def feeds_only(self, node: IRNode, consumer: IRNode) -> bool:
        """`node` is read by `consumer` alone (once) and is no graph output."""
        return self.consumers(node) == [consumer.id] and node.id not in self.outputs and consumer.inputs.count(node.id) == 1

    def shared(self, node: IRNode) -> bool:
        """Whether the node's weights are shared with another call site (`reuse`)."""
        return node.module != node.id or self._users.get(node.id, 0) > 1


# --- patterns ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pat:
    """A pattern for one node: `op` (a name, several, or None for any node, graph inputs included),
    `src` the patterns of its inputs in order (None: any inputs), `name` binds the node for the
    rewrite function, `only_use` requires that the node feeds nothing but the node matched by the
    enclosing pattern (and is no graph output), `where(view, node)` is any further condition.
    The nodes a rule replaces or leaves without readers must be named (the root always counts)."""

    op: str | tuple[str, ...] | None = None
    src: tuple["Pat", ...] | None = None
    name: str | None = None
    only_use: bool = False
    where: Callable[[View, IRNode], bool] | None = None

    def match(self, view: View, node: IRNode, consumer: IRNode | None = None) -> dict[str, IRNode] | None:
        if self.op is not None and node.op not in ((self.op,) if isinstance(self.op, str) else self.op):
            return None
        if self.only_use and (consumer is None or not view.feeds_only(node, consumer)):
            return None
        if self.where is not None and not self.where(view, node):
            return None
        bound = {self.name: node} if self.name else {}
        if self.src is not None:
            if len(self.src) != len(node.inputs):
                return None
            for pattern, producer in zip(self.src, node.inputs):
                found = pattern.match(view, view.node(producer), node)
                if found is None:
                    return None
                for key, value in found.items():
                    if bound.setdefault(key, value) is not value:
                        return None
        return bound


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
        for change in self.changes:
            summary = summaries[change.rule]
            summary.applied += 1
            for mine, ids in (
                (summary.removed, change.removed),
                (summary.replaced, change.replaced),
                (summary.moved, change.moved),
                (summary.added, change.added),
            ):
                mine.extend(i for i in ids if i not in mine)
            summary.params += change.after.params - change.before.params
            summary.macs += change.after.macs - change.before.macs
            summary.buffers += change.after.buffers - change.before.buffers
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
    current = copy_ir(ir)
    before = analyze(current).totals
    figures = before
    changes: list[Change] = []
    limit = max_changes if max_changes is not None else 4 * len(ir.order) + 16
    while True:
        view = View(current)
        hit = _first_match(view, rule_list)
        if hit is None:
            break
        if len(changes) >= limit:
            raise ArchspecError(
                f"the rewrite rules did not settle after {limit} changes (last: {hit[0].name} at '{hit[1].id}'); "
                "two rules probably undo each other"
            )
        rule, root, replacement = hit
        new = _replace(current, view, root, replacement, rule)
        after = _updated(figures, current, new)
        old_ids, new_ids = set(current.order), set(new.order)
        kept = [n for n in replacement.nodes if n.id in old_ids]
        moved = tuple(n.id for n in kept if _same_op(n, current.node(n.id)) and n.inputs != current.node(n.id).inputs)
        changes.append(
            Change(
                rule=rule.name,
                node=root.id,
                note=replacement.note,
                removed=tuple(i for i in current.order if i not in new_ids),
                replaced=tuple(n.id for n in kept if n.id not in moved),
                moved=moved,
                added=tuple(i for i in new.order if i not in old_ids),
                before=figures,
                after=after,
            )
        )
        current, figures = new, after
    return current, RewriteReport(rule_list, changes, before, figures, _op_count(ir), _op_count(current))


def _same_op(a: IRNode, b: IRNode) -> bool:
    return a.op == b.op and a.args == b.args


def _op_count(ir: IRGraph) -> int:
    return sum(1 for node in ir.nodes() if node.op != "input")


def _first_match(view: View, rules: list[Rule]) -> tuple[Rule, IRNode, Replacement] | None:
    for node in view.ir.nodes():
        for rule in rules:
            bound = rule.pattern.match(view, node)
            if bound is None:
                continue
            replacement = rule.rewrite(view, **bound)
            if replacement is not None:
                return rule, node, replacement
    return None


def copy_ir(ir: IRGraph) -> IRGraph:
    """A copy whose nodes can be replaced without touching `ir` (arguments are immutable).

    The rewrite never changes a node in place: a changed node is a new IRNode, so the graphs of
    successive steps share the nodes they have in common."""
    copy = IRGraph(
        name=ir.name,
        inputs=dict(ir.inputs),
        outputs=dict(ir.outputs),
        named_outputs=ir.named_outputs,
        source=ir.source,
        params=dict(ir.params),
        init=ir.init,
    )
    for node in ir.nodes():
        copy.add(replace(node, inputs=list(node.inputs)))
    copy.shapes.update(ir.shapes)
    return copy


def _replace(ir: IRGraph, view: View, root: IRNode, replacement: Replacement, rule: Rule) -> IRGraph:
    new_ids = [node.id for node in replacement.nodes]
    matched = _matched_ids(view, root, rule)
    for node_id in new_ids:
        if node_id in view._consumers and node_id not in matched:
            raise AssertionError(f"rule {rule.name}: new node '{node_id}' would overwrite a node the pattern did not match")
        if node_id != root.id and node_id in view._consumers and not set(view.consumers(node_id)) <= matched:
            raise AssertionError(f"rule {rule.name}: '{node_id}' is replaced but read outside the match")
    replaced = set(new_ids)
    value = replacement.value
    out = IRGraph(
        name=ir.name,
        inputs=dict(ir.inputs),
        outputs={name: value if node_id == root.id else node_id for name, node_id in ir.outputs.items()},
        named_outputs=ir.named_outputs,
        source=ir.source,
        params=dict(ir.params),
        init=ir.init,
    )
    kept: list[IRNode] = []
    for node in ir.nodes():
        if node.id == root.id:
            kept.extend(replacement.nodes)
        elif node.id in replaced:
            continue
        elif value != root.id and root.id in node.inputs:
            kept.append(replace(node, inputs=[value if i == root.id else i for i in node.inputs]))
        else:
            kept.append(node)
    # matched nodes left without a reader go too (e.g. the flatten whose linear became a conv)
    removable = matched - replaced - set(ir.inputs.values())
    while True:
        read = {i for node in kept for i in node.inputs} | set(out.outputs.values())
        dead = {node.id for node in kept if node.id in removable and node.id not in read}
        if not dead:
            break
        kept = [node for node in kept if node.id not in dead]
    for node in kept:
        out.add(node)
    out.verify()
    out.shapes.update(_shapes(ir, out))
    return out


def _shapes(old: IRGraph, new: IRGraph) -> dict[str, Shape]:
    """The output shapes of `new`: inferred again for nodes that are new or read a changed shape."""
    shapes: dict[str, Shape] = {}
    changed: set[str] = set()
    for node in new.nodes():
        previous = _lookup(old, node.id)
        if previous is node and not changed.intersection(node.inputs):
            shapes[node.id] = old.shapes[node.id]
            continue
        shapes[node.id] = output_shape(node, shapes)
        if previous is None or old.shapes.get(node.id) != shapes[node.id]:
            changed.add(node.id)
    return shapes


def _updated(figures: Figures, old: IRGraph, new: IRGraph) -> Figures:
    """The totals of `new` from those of `old`: the figures of the nodes that differ are replaced."""
    total = replace(figures)
    for graph, sign in ((old, -1), (new, 1)):
        other = new if graph is old else old
        for node in graph.nodes():
            twin = _lookup(other, node.id)
            if twin is node and graph.shapes[node.id] == other.shapes[node.id] and all(
                graph.shapes[i] == other.shapes[i] for i in node.inputs
            ):
                continue
            part = _node_figures(graph, node)
            for name in ("params", "trainable", "buffers", "macs", "flops", "all_ops", "activations"):
                setattr(total, name, getattr(total, name) + sign * getattr(part, name))
    return total


def _lookup(ir: IRGraph, node_id: str) -> IRNode | None:
    try:
        return ir.node(node_id)
    except KeyError:
        return None


def _node_figures(ir: IRGraph, node: IRNode) -> Figures:
    """One node's figures at batch 1, as `archspec.passes.counts.analyze` counts them."""
    if node.op == "input":
        return Figures()
    one = IRGraph(name=ir.name)
    for producer in node.inputs:
        one.add(IRNode(producer, "input", ir.shapes[producer], [], producer))
        one.shapes[producer] = ir.shapes[producer]
    one.add(node)
    one.shapes[node.id] = ir.shapes[node.id]
    one.outputs["output"] = node.id
    return analyze(one).totals


def _matched_ids(view: View, root: IRNode, rule: Rule) -> set[str]:
    bound = rule.pattern.match(view, root) or {}
    return {root.id, *(node.id for node in bound.values())}
