"""Rewrites of an imported graph into the form a spec writes, each exact (the same numbers):

- a concatenation whose inputs start with another concatenation's inputs reads that one:
  DenseNet's `torch.cat([x0, x1, ..., xk])` per layer becomes `cat(previous cat, xk)`;
- a merge that directly follows a module and reads only that module's input and its result moves
  into the module, at its end: DenseNet's concatenation closes each dense layer (`concat:
  {from: [input, conv2]}`), as the library's hand-written dense_layer does;
- an op that is always the identity is left out (timm's nn.Identity placeholders);
- nodes in front of a merge that its op's `expand` rule would insert itself, under the name it
  would give them, are left to the rule: ResNet's `downsample` (1x1 conv + BN) becomes
  `add: {project: auto}`.

Each rule is a function of the graph, applied in that order; none names an op: they ask the op
entries (`merge` trait, `inputs_as_list`, `expand`, `builder_args`).
"""
from __future__ import annotations

import typing

from archspec.errors import SpecError
from archspec.importer.graph import ImportedGraph, ImportedNode
from archspec.importer.matching import Match


def tidy(graph: ImportedGraph) -> None:
    for rule in (children_of_tensor_owners, feed_learned_tensors, identities_away, concat_prefixes, merges_into_modules,
                 projections_to_rules):
        rule(graph)


def identities_away(graph: ImportedGraph) -> None:
    """An op that is the identity always (trait `removable`, not `stochastic`: timm's nn.Identity
    placeholders, `x.contiguous()`) is left out; its readers read its input."""
    for node in list(graph.nodes.values()):
        if not (node.op.is_("removable") and not node.op.is_("stochastic")) or node.weighted or len(node.inputs) != 1:
            continue
        source = node.inputs[0]
        for reader in graph.nodes.values():
            reader.inputs = [source if value == node.id else value for value in reader.inputs]
        if isinstance(graph.outputs, dict):
            graph.outputs = {k: source if v == node.id else v for k, v in graph.outputs.items()}
        elif graph.outputs == node.id:
            graph.outputs = source
        del graph.nodes[node.id]


def children_of_tensor_owners(graph: ImportedGraph) -> None:
    """A module with tensors of its own is one node at its path (timm's BatchNormAct2d is its
    F.batch_norm); its children without tensors (the act inside it) run in its parent instead,
    since a spec node has no children."""
    owners = {n.path for n in graph.nodes.values() if n.weighted}
    for node in graph.nodes.values():
        for k, scope in enumerate(node.scopes):
            if scope in owners:
                if node.weighted:
                    raise SpecError(f"'{scope}' has tensors of its own and a child with tensors ('{node.path}')",
                                    hint="a spec node holds its tensors and no children")
                node.scopes = node.scopes[:k]
                break


def feed_learned_tensors(graph: ImportedGraph) -> None:
    """A learned tensor read directly (a `param`) takes the value it is combined with as its input
    (it reads only its batch), through the calls on it alone (timm's `gamma.reshape(1, -1, 1, 1)`);
    they run just before the node that combines them."""
    for node in list(graph.nodes.values()):
        if node.inputs or node.op.arity[0] == 0:
            continue
        chain, other, consumer = [node.id], None, None
        while other is None:
            consumer = next((c for c in graph.nodes.values() if chain[-1] in c.inputs), None)
            if consumer is None:
                raise SpecError(f"the tensor '{node.path}' is read by nothing that combines it with an activation")
            other = next((v for v in consumer.inputs if v != chain[-1]), None)
            if other is None:
                chain.append(consumer.id)
        node.inputs, node.in_shapes = [other], [graph.shape_of(other)]
        order = [n for n in graph.nodes if n not in chain]
        at = order.index(consumer.id)
        graph.nodes = {k: graph.nodes[k] for k in order[:at] + chain + order[at:]}


def concat_prefixes(graph: ImportedGraph) -> None:
    """cat(x0, ..., xk) -> cat(cat(x0, ..., xk-1), xk) where that concatenation exists already."""
    seen: dict[tuple, str] = {}
    for node in graph.nodes.values():
        if not (node.op.inputs_as_list and node.op.is_("merge")):
            continue
        key = (node.op.name, repr(node.match.validated))
        prefix = seen.get((*key, tuple(node.inputs[:-1])))
        if len(node.inputs) > 2 and prefix is not None:
            node.inputs = [prefix, node.inputs[-1]]
            node.in_shapes = [graph.shape_of(prefix), node.in_shapes[-1]]
        seen[(*key, tuple(_flat_inputs(graph, node)))] = node.id


def _flat_inputs(graph: ImportedGraph, node: ImportedNode) -> list[str]:
    """What a rewritten concatenation concatenates, its first input's own inputs spelt out."""
    first = graph.nodes.get(node.inputs[0])
    if first is not None and first.op is node.op and first.match.validated == node.match.validated and len(node.inputs) == 2:
        return [*_flat_inputs(graph, first), node.inputs[1]]
    return list(node.inputs)


def merges_into_modules(graph: ImportedGraph) -> None:
    order = list(graph.nodes)
    received: set[str] = set()
    for position, node_id in enumerate(order):
        node = graph.nodes[node_id]
        if node.weighted or len(node.inputs) < 2 or not node.op.is_("merge") or position == 0:
            continue
        before = graph.nodes[order[position - 1]]
        target = before.scope
        if not target or target == node.scope or _inside(node.scope, target):
            continue
        inside, outside = _scope_values(graph, target)
        if not all(v.partition(":")[0] in inside or v in outside for v in node.inputs) or before.id not in node.inputs:
            continue
        starts_own_scope = _first_in_scope(graph, order, position) and _parent(node.scope) == _parent(target)
        closes_parent = node.scope == _parent(target) and _producer_scope(graph, outside) in received
        if starts_own_scope or closes_parent:
            node.scopes = before.scopes
            received.add(target)


def _scope_values(graph: ImportedGraph, scope: str) -> tuple[set[str], list[str]]:
    """The ids of the nodes inside a module, and the values they read from outside it."""
    inside = {n.id for n in graph.nodes.values() if _inside(n.scope, scope)}
    outside = [v for n in graph.nodes.values() if n.id in inside for v in n.inputs if v.partition(":")[0] not in inside]
    return inside, outside


def _first_in_scope(graph: ImportedGraph, order: list[str], position: int) -> bool:
    scope = graph.nodes[order[position]].scope
    return all(not _inside(graph.nodes[other].scope, scope) for other in order[:position])


def _producer_scope(graph: ImportedGraph, values: list[str]) -> str | None:
    producer = graph.nodes.get(values[0].partition(":")[0]) if values else None
    return producer.scope if producer is not None else None


def _parent(scope: str) -> str:
    return scope.rpartition(".")[0]


def _inside(scope: str, outer: str) -> bool:
    return scope == outer or scope.startswith(outer + ".")


def projections_to_rules(graph: ImportedGraph) -> None:
    for node in list(graph.nodes.values()):
        if node.op.expand is None or node.id not in graph.nodes:
            continue
        for slot in range(len(node.inputs)):
            if _fold_projection(graph, node, slot):
                break


def _fold_projection(graph: ImportedGraph, node: ImportedNode, slot: int) -> bool:
    """Whether the nodes in front of input `slot` are what the op's `expand` rule inserts with one
    of its builder arguments set; if so they are removed and the argument set."""
    for length in range(1, 5):
        chain = _chain(graph, node.inputs[slot], length)
        if chain is None:
            return False
        start = chain[0].inputs[0]
        shapes = [graph.shape_of(start) if k == slot else shape for k, shape in enumerate(node.in_shapes)]
        for args in _builder_choices(node, chain):
            try:
                validated = node.op.args.model_validate(args)
                expansion = node.op.expand(validated, shapes)
            except Exception:  # a choice the op's schema or rule refuses
                continue
            if expansion is not None and expansion.slot == slot and _reproduces(node, chain, expansion):
                for inserted in chain:
                    del graph.nodes[inserted.id]
                node.inputs[slot], node.in_shapes[slot] = start, graph.shape_of(start)
                node.match = Match(node.op, args, validated)
                return True
    return False


def _chain(graph: ImportedGraph, value: str, length: int) -> list[ImportedNode] | None:
    """The `length` single-input nodes that lead to `value`, each read only by the next."""
    chain: list[ImportedNode] = []
    current = value
    for _ in range(length):
        producer = graph.nodes.get(current)
        if producer is None or len(producer.inputs) != 1 or len(graph.consumers(current)) != 1:
            return None
        chain.insert(0, producer)
        current = producer.inputs[0]
    return chain


def _builder_choices(node: ImportedNode, chain: list[ImportedNode]):
    """The node's arguments with one literal builder argument set to each of its other choices,
    and a text builder argument (the inserted nodes' scope name) set to the chain's module name."""
    fields = node.op.args.model_fields
    scope_name = chain[0].scope.rpartition(".")[2]
    for key in node.op.builder_args:
        choices = typing.get_args(fields[key].annotation) if typing.get_origin(fields[key].annotation) is typing.Literal else ()
        for choice in choices:
            if choice == fields[key].default:
                continue
            args = {**node.match.args, key: choice}
            yield args
            for other in node.op.builder_args:
                if fields[other].annotation is str and scope_name != fields[other].default:
                    yield {**args, other: scope_name}


def _reproduces(node: ImportedNode, chain: list[ImportedNode], expansion) -> bool:
    """The inserted layers are the chain's ops and arguments, at the paths the rule names them."""
    if len(expansion.layers) != len(chain):
        return False
    scope = ".".join(p for p in (node.scope, expansion.scope) if p)
    for k, ((op_name, args), inserted) in enumerate(zip(expansion.layers, chain)):
        if inserted.op.name != op_name and op_name not in inserted.op.aliases:
            return False
        if inserted.path != f"{scope}.{k}" or inserted.op.args.model_validate(args) != inserted.match.validated:
            return False
    return True
