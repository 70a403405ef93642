"""Spec -> IR: expand blocks, repeats, branches, projections and reuse into a flat op graph.

The builder walks the layer lists in order. Each item is one of
- `op` or `op: {args}`: one IR node;
- `block: {params}`: a call of a block (its layers expanded in a new scope);
- `parallel: {branches: {...}, merge: concat|add}`: branches from the same input, merged;
- `seq: {layers: [...]}`: a named group (a scope, like nn.Sequential);
- `reuse: {node: NAME}`: the node or block NAME applied again, with the same weights.
and may carry the reserved keys `name`, `from`, `repeat`, `trainable`, `when`. `from` may be an
expression that chooses among names (`from: [proj if project else input, f]`).

A name may hold `{expression}` parts (`denselayer{i + 1}`), evaluated over the parameters in
scope. A repeated item with such a name places its copies directly in the enclosing scope, each
named for its index, instead of in a group `name.0`, `name.1`, ... (torchvision's `denselayer1`).

Shapes are inferred node by node while building (the shape rule of each op, through
`archspec.passes.shapes.output_shape`), because `add: {project: auto}` decides its projection from
the shapes it meets, and so that a shape error is reported at the item that causes it.
"""
from __future__ import annotations

from collections import ChainMap
from dataclasses import replace
from typing import Any, Callable

from archspec.errors import Location, SpecError, did_you_mean
from archspec.ir.constructs import CONSTRUCTS, block_call
from archspec.ir.graph import INPUT, IRGraph, IRNode, Shape
from archspec.ir.nodes import MAX_INPUTS, MAX_NODES, op_call  # noqa: F401  (limits, re-exported)
from archspec.ir.resolve import resolve
from archspec.ir.scope import Binding, Item, Scope, join
from archspec.ir.values import (
    check_override, chosen_references, condition, integer, is_template, kind_of, name_of, param_value, shape_names, value_text,
)
from archspec.ops.catalog import all_ops, lookup
from archspec.ops.common import format_shape
from archspec.passes.shapes import MAX_DIMENSION, MAX_RANK, SIZE_HINT, shape_problem
from archspec.spec.document import LoadedSpec, check_name
from archspec.spec.arguments import MAX_REPEAT, REPEAT_INDEX, RESERVED_KEYS, reserved_errors, split_item
from archspec.spec.yaml_source import SourceList, SourceMap

MAX_INPUT_SIZE = MAX_DIMENSION  # per input dimension, as for every inferred size
MAX_NESTING = 64  # blocks and groups inside each other (deeper overflows Python's stack)
# items expanded for one spec: every item (a left-out `when: false` one too) and every copy a
# `repeat` makes count one, so nested repeats of blocks that add no node are bounded as well
MAX_EXPANDED = 50_000


def build_ir(
    spec: LoadedSpec,
    overrides: dict[str, Any] | None = None,
    input_shapes: dict[str, Shape] | None = None,
) -> IRGraph:
    """Expand a loaded spec into a verified IR graph for the given parameters and input shapes."""
    return Expander(spec).build(overrides or {}, input_shapes or {})


class Expander:
    """The state of one expansion: the spec, the graph being built, the parameters and the
    counters behind the limits. The constructs (archspec.ir.constructs) and op nodes
    (archspec.ir.nodes) call back into `sequence` and `item`."""

    def __init__(self, spec: LoadedSpec):
        self.spec = spec
        self.doc = spec.document
        self.ir = IRGraph(name=spec.document.name, source=spec.path, init=spec.document.init)
        self.block_stack: list[str] = []
        self.expanded = 0  # items expanded so far (MAX_EXPANDED)
        self.repeats: list[tuple[str, int]] = []  # the repeats being expanded, outermost first
        self.spec_env: dict[str, Any] = {}

    # --- top level --------------------------------------------------------------------------
    def build(self, overrides: dict[str, Any], input_shapes: dict[str, Shape]) -> IRGraph:
        env = self.spec_env = self._spec_params(overrides)
        top = Scope(path="", env=env, parent=None)
        self._inputs(top, input_shapes, env)
        # at the top, `image.shape[1]` reads an input's shape (as given by --input); not `in_*`
        top.env = ChainMap(shape_names(list(self.ir.inputs), [self.ir.shapes[v] for v in self.ir.inputs.values()],
                                       first=False), env)
        last = self.sequence(self.spec.raw["layers"], top, [next(iter(self.ir.inputs))])
        self._outputs(top, last)
        self.ir.params = env
        self.ir.verify()
        return self.ir

    def _inputs(self, top: Scope, input_shapes: dict[str, Shape], env: dict[str, Any]) -> None:
        raw = self.spec.raw
        inputs_raw = raw["inputs"]
        if not self.doc.inputs:
            raise SpecError("a spec needs at least one input", raw.value_loc("inputs"))
        unknown = set(input_shapes) - set(self.doc.inputs)
        if unknown:
            name = sorted(unknown)[0]
            raise SpecError(
                f"--input names '{name}', which is not an input of the spec",
                hint=did_you_mean(name, self.doc.inputs) or f"inputs: {', '.join(self.doc.inputs)}",
            )
        for name, dims in self.doc.inputs.items():
            loc = inputs_raw.value_loc(name)
            check_name(name, inputs_raw.key_loc(name))
            if not name.isidentifier() or name == "self":
                # the lowered module takes each input as a keyword argument of `forward`
                raise SpecError(
                    f"input name '{name}' must be a Python identifier other than 'self'",
                    inputs_raw.key_loc(name),
                    hint="the lowered module's forward takes the inputs as keyword arguments; use letters, digits and '_'",
                )
            shape = self._input_shape(name, dims, input_shapes.get(name), env, loc)
            self.ir.add(IRNode(name, INPUT, shape, [], name, loc, shapes=(shape,)))
            self.ir.inputs[name] = name
            top.names[name] = Binding(name, name, [], [])

    def _input_shape(self, name: str, dims: list, given: Shape | None, env: dict[str, Any], loc: Location) -> Shape:
        """An input's shape (from --input, or the spec's sizes), within the limits of every shape."""
        if len(given or dims) > MAX_RANK:
            raise SpecError(f"input '{name}' has {len(given or dims):,} sizes, more than the limit of {MAX_RANK}", loc)
        shape = tuple(given or (integer(d, env, loc, f"input '{name}' size") for d in dims))
        if not shape or any(s < 1 for s in shape):
            raise SpecError(f"input '{name}' needs positive sizes, got [{', '.join(map(value_text, shape))}]", loc)
        if any(s > MAX_INPUT_SIZE for s in shape):
            raise SpecError(
                f"input '{name}' has a size over the limit of {MAX_INPUT_SIZE:,}: [{', '.join(map(value_text, shape))}]", loc
            )
        problem = shape_problem(shape)
        if problem:
            raise SpecError(f"input '{name}' {format_shape(shape)} {problem}", loc, hint=SIZE_HINT)
        return shape

    def _spec_params(self, overrides: dict[str, Any]) -> dict[str, Any]:
        params_raw = self.spec.raw.get("params") or SourceMap()
        for name in overrides:
            if name not in self.doc.params:
                raise SpecError(
                    f"--set names '{name}', which is not a parameter of {self.doc.name}",
                    hint=did_you_mean(name, self.doc.params)
                    or (f"parameters: {', '.join(self.doc.params)}" if self.doc.params else "the spec has no `params`"),
                )
        for name, value in overrides.items():
            check_override(name, value)
        env: dict[str, Any] = {}
        for name, default in self.doc.params.items():
            check_name(name, params_raw.key_loc(name))
            env[name] = param_value(default, env, params_raw.value_loc(name), name)
            if name in overrides:
                value = param_value(overrides[name], env, None, name)
                if kind_of(value) != kind_of(env[name]) and env[name] is not None:
                    raise SpecError(
                        f"--set {name}={overrides[name]!r}: {name} is {kind_of(env[name])} (default {env[name]!r}), "
                        f"not {kind_of(value)}",
                        params_raw.value_loc(name),
                    )
                env[name] = value
        return env

    def _outputs(self, top: Scope, last: str) -> None:
        outputs = self.doc.outputs
        raw = self.spec.raw
        if outputs is None:
            self.ir.outputs["output"] = last
            return
        if isinstance(outputs, str):
            outputs = [outputs]
        items = outputs.items() if isinstance(outputs, dict) else [(ref, ref) for ref in outputs]
        self.ir.named_outputs = isinstance(outputs, dict)
        for name, ref in items:
            loc = raw.value_loc("outputs")
            if isinstance(raw["outputs"], SourceMap):
                loc = raw["outputs"].value_loc(name)
            self.ir.outputs[name] = resolve(ref, top, loc).output

    # --- items --------------------------------------------------------------------------------
    def sequence(self, items: Any, scope: Scope, inputs: list[str]) -> str:
        """Expand a list of items; each takes the previous item's output unless it says `from`."""
        if isinstance(items, SourceMap) or not isinstance(items, list):
            items = _as_list(items)
        scope.pending.update(_declared_names(items))
        prev = inputs[0]
        for index, item in enumerate(items):
            loc = items.item_loc(index) if isinstance(items, SourceList) else getattr(items, "loc", None)
            prev = self.item(item, loc, scope, prev)
        return prev

    def item(self, written: Any, loc: Location, scope: Scope, prev: str, default_name: str | None = None) -> str:
        """One written item -> its nodes; returns the value the next item reads by default."""
        callee, args, args_loc = split_item(written, loc)
        # the node the item makes, named only if the count passes the limit here
        self._expand(args_loc, lambda: join(scope.path, str(args.get("name") or default_name or _next_name(scope, callee))))
        path = join(scope.path, str(args.get("name") or default_name or _next_name(scope, callee)))
        problems = reserved_errors(args, path)
        if problems:  # a reserved key of the wrong kind, reported on the item the user wrote
            raise problems[0]
        reserved = {k: args[k] for k in RESERVED_KEYS if k in args}
        if "when" in reserved and not condition(reserved["when"], scope.env, args.value_loc("when"), path):
            # left out: no node, no name (a reference to it is unknown); the next item takes `prev`
            scope.pending.pop(str(reserved.get("name")), None)
            return prev
        name = self._item_name(reserved, args, scope, callee, default_name)
        if name in scope.names:
            raise SpecError(f"the name '{name}' is used twice in this scope", args_loc, join(scope.path, name))
        scope.pending.pop(name, None)
        inputs = self._inputs_of(reserved, args, scope, name, prev)
        if "trainable" in reserved:
            scope = scope.with_trainable(reserved["trainable"])
        body = {k: v for k, v in args.items() if k not in RESERVED_KEYS}
        item = Item(callee, body, args, args_loc, scope, name, inputs)
        if "repeat" in reserved and is_template(reserved.get("name")):
            return self._unrolled(item, reserved["repeat"])
        binding = self._repeat(item, reserved["repeat"]) if "repeat" in reserved else self.call(item)
        scope.names[name] = binding
        return binding.output

    def _item_name(self, reserved: dict, args: SourceMap, scope: Scope, callee: str, default_name: str | None) -> str:
        if "repeat" in reserved and is_template(reserved.get("name")):
            return reserved["name"]  # each copy is named when it is made (`_unrolled`)
        if "name" in reserved:
            return name_of(reserved["name"], scope.env, args.value_loc("name"))
        return default_name or _auto_name(scope, callee)

    def _inputs_of(self, reserved: dict, args: SourceMap, scope: Scope, name: str, prev: str) -> list[str]:
        if "from" not in reserved:
            return [prev]
        node, loc = join(scope.path, name), args.value_loc("from")
        refs = [chosen for ref in _refs(reserved["from"], loc) for chosen in chosen_references(ref, scope.env, loc, node)]
        return [resolve(ref, scope, loc, node).output for ref in refs]

    def _repeat(self, item: Item, count: Any) -> Binding:
        times = self._repeat_count(count, item)
        group = item.scope.child(item.name, "repeat")
        start = len(self.ir.graph)
        current = item.inputs
        self.repeats.append((group.path, times))
        for index in range(times):
            self._expand(item.value_loc("repeat"), lambda: join(group.path, str(index)))
            group.env = ChainMap({REPEAT_INDEX: index}, item.scope.env)  # no copy: a spec may have many parameters
            binding = self.call(item.but(scope=group, name=str(index), inputs=current))
            group.names[str(index)] = binding
            current = [binding.output]
        self.repeats.pop()
        return Binding(current[0], group.path, self.ir.added_since(start), item.inputs, group.names)

    def _unrolled(self, item: Item, count: Any) -> str:
        """`repeat` with a templated name: the copies go directly into the scope, each named by the
        template for its index (`denselayer{i + 1}` -> denselayer1, denselayer2, ...)."""
        template, scope = item.name, item.scope
        times = self._repeat_count(count, item)
        current = item.inputs
        self.repeats.append((join(scope.path, template), times))
        for index in range(times):
            copy = replace(scope, env=ChainMap({REPEAT_INDEX: index}, scope.env))  # shares the name tables
            name = name_of(template, copy.env, item.value_loc("name"))
            self._expand(item.value_loc("repeat"), lambda: join(scope.path, name))
            if name in scope.names:
                raise SpecError(f"the name '{name}' is used twice in this scope", item.loc, join(scope.path, name))
            binding = self.call(item.but(scope=copy, name=name, inputs=current))
            scope.names[name] = binding
            current = [binding.output]
        self.repeats.pop()
        return current[0]

    def _expand(self, loc: Location, node: Callable[[], str]) -> None:
        """Count one item expanded; past MAX_EXPANDED the spec is refused at the item that crosses it."""
        self.expanded += 1
        if self.expanded <= MAX_EXPANDED:
            return
        chain = " inside ".join(f"'{path}' x{times}" for path, times in reversed(self.repeats))
        raise SpecError(
            f"the spec expands to more than {MAX_EXPANDED:,} items (every op, block call, repeat copy "
            "and left-out item counts, even one that adds no node)",
            loc,
            node(),
            hint=(f"nested repeats multiply: {chain}; " if chain else "") + "use fewer or smaller repeats",
        )

    def _repeat_count(self, count: Any, item: Item) -> int:
        loc = item.value_loc("repeat")
        times = integer(count, item.scope.env, loc, "repeat", item.path)
        if not 0 <= times <= MAX_REPEAT:
            raise SpecError(f"repeat must be between 0 and {MAX_REPEAT}, got {times}", loc, item.path)
        return times

    def call(self, item: Item) -> Binding:
        """What the item calls: a construct, a block or an op."""
        if len(item.scope.scopes) >= MAX_NESTING:
            raise SpecError(
                f"blocks and groups are nested more than {MAX_NESTING} levels deep",
                item.loc,
                item.path,
                hint="is a chain of blocks calling each other longer than intended?",
            )
        if item.callee in CONSTRUCTS:
            return CONSTRUCTS[item.callee](self, item)
        if item.callee in self.spec.blocks:
            return block_call(self, item)
        op = lookup(item.callee)
        if op is None:
            known = [*all_ops(), *self.spec.blocks, *CONSTRUCTS]
            raise SpecError(
                f"unknown op or block '{item.callee}'",
                item.loc,
                item.path,
                hint=did_you_mean(item.callee, known) or "`archspec ops` lists the ops; blocks come from `blocks:` and `use:`",
            )
        return op_call(self, op, item)


# --- helpers on raw items -------------------------------------------------------------------------
def _next_name(scope: Scope, callee: str) -> str:
    """The name `_auto_name` would give next, without taking it."""
    return f"{callee}{scope.counters.get(callee, 0) + 1}"


def _auto_name(scope: Scope, callee: str) -> str:
    count = scope.counters[callee] = scope.counters.get(callee, 0) + 1
    return f"{callee}{count}"


def _refs(value: Any, loc: Location) -> list[Any]:
    refs = list(value) if isinstance(value, list) else [value]
    if not refs:
        raise SpecError("`from` is empty", loc)
    return refs


def _declared_names(items: list) -> dict[str, Location]:
    names = {}
    for item in items:
        if isinstance(item, SourceMap) and len(item) == 1:
            args = next(iter(item.values()))
            if isinstance(args, SourceMap) and isinstance(args.get("name"), (str, int)) and not is_template(args.get("name")):
                names[str(args["name"])] = args.value_loc("name")
    return names


def _as_list(item: Any) -> SourceList:
    result = SourceList([item], loc=getattr(item, "loc", None))
    result.item_locs = [result.loc]
    return result
