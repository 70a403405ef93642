"""Spec -> IR: expand blocks, repeats, branches, projections and reuse into a flat op graph.

The builder walks the layer lists in order. Each item is one of
- `op` or `op: {args}`: one IR node;
- `block: {params}`: a call of a block (its layers expanded in a new scope);
- `parallel: {branches: {...}, merge: concat|add}`: branches from the same input, merged;
- `seq: {layers: [...]}`: a named group (a scope, like nn.Sequential);
- `reuse: {node: NAME}`: the node or block NAME applied again, with the same weights.
and may carry the reserved keys `name`, `from`, `repeat`, `trainable`, `when`.

A name may hold `{expression}` parts (`denselayer{i + 1}`), evaluated over the parameters in
scope. A repeated item with such a name places its copies directly in the enclosing scope, each
named for its index, instead of in a group `name.0`, `name.1`, ... (torchvision's `denselayer1`).

Shapes are inferred node by node while building (the shape rule of each op, through
`archspec.passes.shapes.output_shape`), because `add: {project: auto}` decides its projection from
the shapes it meets, and so that a shape error is reported at the item that causes it.
"""
from __future__ import annotations

import re
from collections import ChainMap
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from pydantic import ValidationError

from archspec.errors import Location, SpecError, did_you_mean
from archspec.ir.graph import IRGraph, IRNode, Shape
from archspec.ops.common import format_shape
from archspec.ops.catalog import all_ops, lookup
from archspec.ops.registry import Op
from archspec.passes.shapes import MAX_DIMENSION, MAX_RANK, SIZE_HINT, output_shape, shape_problem
from archspec.spec.document import LoadedSpec, check_name
from archspec.spec.expressions import FUNCTIONS, ExpressionError, evaluate
from archspec.spec.yaml_source import MAX_INTEGER, SourceList, SourceMap

RESERVED_KEYS = ("name", "from", "repeat", "trainable", "when")
MAX_REPEAT = 1000
MAX_NODES = 50_000
MAX_OVERRIDE = MAX_INTEGER  # a number given from outside the spec (--set, the API), as in a spec
MAX_INPUTS = 10_000  # inputs of one op node (`from` of a concat, branches of a parallel)
MAX_INPUT_SIZE = MAX_DIMENSION  # per input dimension, as for every inferred size
MAX_NESTING = 64  # blocks and groups inside each other (deeper overflows Python's stack)
# items expanded for one spec: every item (a left-out `when: false` one too) and every copy a
# `repeat` makes count one, so nested repeats of blocks that add no node are bounded as well
MAX_EXPANDED = 50_000
REPEAT_INDEX = "i"  # the name bound to the repetition index inside a repeated item
NAME_PART = re.compile(r"\{([^{}]*)\}")  # an `{expression}` inside a name


@dataclass(slots=True)
class Binding:
    """What a name in a scope stands for."""

    output: str  # node id of its value
    path: str  # module-path prefix of everything it created
    nodes: list[str] = field(default_factory=list)  # node ids it created, in order
    inputs: list[str] = field(default_factory=list)  # node ids it consumed
    children: dict[str, "Binding"] = field(default_factory=dict)  # names inside it


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
    flat: "FlatNames | None" = None  # set inside `seq: {index_names: true}`

    def child(self, name: str, kind: str, *, closed: bool = False, env: dict | None = None) -> "Scope":
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


@dataclass
class FlatNames:
    """nn.Sequential-style naming: every op created inside, however deeply nested in blocks,
    is named `<path>.<k>` with k counting from 0 (torchvision's `features.0`, `features.3`)."""

    path: str
    count: int = 0

    def next_id(self) -> str:
        self.count += 1
        return join(self.path, str(self.count - 1))


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def build_ir(
    spec: LoadedSpec,
    overrides: dict[str, Any] | None = None,
    input_shapes: dict[str, Shape] | None = None,
) -> IRGraph:
    """Expand a loaded spec into a verified IR graph for the given parameters and input shapes."""
    return _Builder(spec).build(overrides or {}, input_shapes or {})


class _Builder:
    def __init__(self, spec: LoadedSpec):
        self.spec = spec
        self.doc = spec.document
        self.ir = IRGraph(name=spec.document.name, source=spec.path, init=spec.document.init)
        self.shapes: dict[str, Shape] = self.ir.shapes
        self.block_stack: list[str] = []
        self.expanded = 0  # items expanded so far (MAX_EXPANDED)
        self.repeats: list[tuple[str, int]] = []  # the repeats being expanded, outermost first
        self.spec_env: dict[str, Any] = {}
        self.constructs = {"parallel": self._parallel, "seq": self._seq, "reuse": self._reuse}

    # --- top level --------------------------------------------------------------------------
    def build(self, overrides: dict[str, Any], input_shapes: dict[str, Shape]) -> IRGraph:
        raw = self.spec.raw
        env = self.spec_env = self._spec_params(overrides)
        top = Scope(path="", env=env, parent=None)
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
            self.ir.add(IRNode(name, "input", tuple(shape), [], name, loc))
            self.shapes[name] = tuple(shape)
            self.ir.inputs[name] = name
            top.names[name] = Binding(name, name, [], [])
        last = self._sequence(raw["layers"], top, [next(iter(self.ir.inputs))])
        self._outputs(top, last)
        self.ir.params = env
        self.ir.verify()
        return self.ir

    def _input_shape(self, name: str, dims: list, given: Shape | None, env: dict[str, Any], loc: Location) -> Shape:
        """An input's shape (from --input, or the spec's sizes), within the limits of every shape."""
        if len(given or dims) > MAX_RANK:
            raise SpecError(f"input '{name}' has {len(given or dims):,} sizes, more than the limit of {MAX_RANK}", loc)
        shape = tuple(given or (self._integer(d, env, loc, f"input '{name}' size") for d in dims))
        if not shape or any(s < 1 for s in shape):
            raise SpecError(f"input '{name}' needs positive sizes, got [{', '.join(map(_value_text, shape))}]", loc)
        if any(s > MAX_INPUT_SIZE for s in shape):
            raise SpecError(
                f"input '{name}' has a size over the limit of {MAX_INPUT_SIZE:,}: [{', '.join(map(_value_text, shape))}]", loc
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
            _check_override(name, value)
        env: dict[str, Any] = {}
        for name, default in self.doc.params.items():
            check_name(name, params_raw.key_loc(name))
            env[name] = self._param_value(default, env, params_raw.value_loc(name), name)
            if name in overrides:
                value = self._param_value(overrides[name], env, None, name)
                if _kind(value) != _kind(env[name]) and env[name] is not None:
                    raise SpecError(
                        f"--set {name}={overrides[name]!r}: {name} is {_kind(env[name])} (default {env[name]!r}), "
                        f"not {_kind(value)}",
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
            self.ir.outputs[name] = self._resolve(ref, top, loc).output

    # --- items --------------------------------------------------------------------------------
    def _sequence(self, items: Any, scope: Scope, inputs: list[str]) -> str:
        """Expand a list of items; each takes the previous item's output unless it says `from`."""
        if isinstance(items, SourceMap) or not isinstance(items, list):
            items = _as_list(items)
        scope.pending.update(_declared_names(items))
        prev = inputs[0]
        for index, item in enumerate(items):
            loc = items.item_loc(index) if isinstance(items, SourceList) else getattr(items, "loc", None)
            prev = self._item(item, loc, scope, prev)
        return prev

    def _item(self, item: Any, loc: Location, scope: Scope, prev: str, default_name: str | None = None) -> str:
        callee, args, args_loc = _split_item(item, loc)
        # the node the item makes, named only if the count passes the limit here
        self._expand(args_loc, lambda: join(scope.path, str(args.get("name") or default_name or self._next_name(scope, callee))))
        reserved = {k: args[k] for k in RESERVED_KEYS if k in args}
        if "when" in reserved and not self._condition(reserved["when"], scope, args.value_loc("when"), reserved.get("name", callee)):
            # left out: no node, no name (a reference to it is unknown); the next item takes `prev`
            scope.pending.pop(str(reserved.get("name")), None)
            return prev
        unrolled = "repeat" in reserved and _is_template(reserved.get("name"))
        if unrolled:
            name = reserved["name"]  # each copy is named when it is made (`_unrolled`)
        elif "name" in reserved:
            name = self._name(reserved["name"], scope.env, args.value_loc("name"))
        else:
            name = default_name or self._auto_name(scope, callee)
        if name in scope.names:
            raise SpecError(f"the name '{name}' is used twice in this scope", args_loc, join(scope.path, name))
        scope.pending.pop(name, None)
        if "from" in reserved:
            node = join(scope.path, name)
            inputs = [self._resolve(ref, scope, args.value_loc("from"), node).output for ref in _refs(reserved["from"], args.value_loc("from"))]
        else:
            inputs = [prev]
        if "trainable" in reserved:
            value = reserved["trainable"]
            if not isinstance(value, bool):
                raise SpecError(f"`trainable` is true or false, not {value!r}", args.value_loc("trainable"))
            scope = _with_trainable(scope, value)
        body = {k: v for k, v in args.items() if k not in RESERVED_KEYS}
        if unrolled:
            return self._unrolled(callee, body, args, args_loc, scope, name, inputs, reserved["repeat"])
        if "repeat" not in reserved:
            binding = self._call(callee, body, args, args_loc, scope, name, inputs)
        else:
            binding = self._repeat(callee, body, args, args_loc, scope, name, inputs, reserved["repeat"])
        scope.names[name] = binding
        return binding.output

    def _repeat(self, callee, body, args, args_loc, scope, name, inputs, count) -> Binding:
        times = self._repeat_count(count, scope, args, name)
        group = scope.child(name, "repeat")
        start = len(self.ir.order)
        current = inputs
        self.repeats.append((group.path, times))
        for index in range(times):
            self._expand(args.value_loc("repeat"), lambda: join(group.path, str(index)))
            group.env = ChainMap({REPEAT_INDEX: index}, scope.env)  # no copy: a spec may have many parameters
            binding = self._call(callee, body, args, args_loc, group, str(index), current)
            group.names[str(index)] = binding
            current = [binding.output]
        self.repeats.pop()
        return Binding(current[0], group.path, self.ir.order[start:], inputs, group.names)

    def _unrolled(self, callee, body, args, args_loc, scope, template, inputs, count) -> str:
        """`repeat` with a templated name: the copies go directly into `scope`, each named by the
        template for its index (`denselayer{i + 1}` -> denselayer1, denselayer2, ...)."""
        times = self._repeat_count(count, scope, args, template)
        current = inputs
        self.repeats.append((join(scope.path, template), times))
        for index in range(times):
            copy = replace(scope, env=ChainMap({REPEAT_INDEX: index}, scope.env))  # shares the name tables
            name = self._name(template, copy.env, args.value_loc("name"))
            self._expand(args.value_loc("repeat"), lambda: join(scope.path, name))
            if name in scope.names:
                raise SpecError(f"the name '{name}' is used twice in this scope", args_loc, join(scope.path, name))
            binding = self._call(callee, body, args, args_loc, copy, name, current)
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

    def _repeat_count(self, count, scope: Scope, args: SourceMap, name: str) -> int:
        loc = args.value_loc("repeat")
        times = self._integer(count, scope.env, loc, "repeat", join(scope.path, name))
        if not 0 <= times <= MAX_REPEAT:
            raise SpecError(f"repeat must be between 0 and {MAX_REPEAT}, got {times}", loc, join(scope.path, name))
        return times

    def _call(self, callee, body, args, loc, scope, name, inputs) -> Binding:
        if len(scope.scopes) >= MAX_NESTING:
            raise SpecError(
                f"blocks and groups are nested more than {MAX_NESTING} levels deep",
                loc,
                join(scope.path, name),
                hint="is a chain of blocks calling each other longer than intended?",
            )
        if callee in self.constructs:
            return self.constructs[callee](body, args, loc, scope, name, inputs)
        if callee in self.spec.blocks:
            return self._block(callee, body, args, loc, scope, name, inputs)
        op = lookup(callee)
        if op is None:
            known = [*all_ops(), *self.spec.blocks, *self.constructs]
            raise SpecError(
                f"unknown op or block '{callee}'",
                loc,
                join(scope.path, name),
                hint=did_you_mean(callee, known) or "`archspec ops` lists the ops; blocks come from `blocks:` and `use:`",
            )
        node_id = self._op_node(op, body, args, loc, scope, name, inputs)
        return Binding(node_id, node_id, [node_id], inputs)

    # --- ops ----------------------------------------------------------------------------------
    def _op_node(self, op: Op, body: dict, args: SourceMap, loc: Location, scope: Scope, name: str, inputs: list[str]) -> str:
        node_id = scope.node_id(name)
        try:
            op_args = op.args.model_validate(body, context={"names": scope.env})
        except ValidationError as err:
            raise self._args_error(err, op, args, loc, node_id) from None
        low, high = op.arity
        if len(inputs) > MAX_INPUTS:
            raise SpecError(
                f"{op.name} would take {len(inputs):,} inputs, more than the limit of {MAX_INPUTS:,}",
                loc,
                node_id,
                hint="merge in stages, or name fewer inputs",
            )
        if not (low <= len(inputs) and (high is None or len(inputs) <= high)):
            wanted = f"{low}" if low == high else (f"at least {low}" if high is None else f"{low} to {high}")
            raise SpecError(
                f"{op.name} takes {wanted} input(s) but gets {len(inputs)}",
                loc,
                node_id,
                hint="list its inputs with `from: [a, b]`" if low > 1 else None,
            )
        if op.name == "add" and op_args.project == "auto":
            inputs = self._projected(op_args, inputs, scope, loc)
        return self._add_node(IRNode(node_id, op.name, op_args, list(inputs), node_id, loc), scope)

    def _add_node(self, node: IRNode, scope: Scope) -> str:
        if len(self.ir.order) >= MAX_NODES:
            raise SpecError(f"the graph would have more than {MAX_NODES:,} nodes", node.loc, node.id)
        node.scopes, node.scope_kinds, node.trainable = scope.scopes, scope.kinds, scope.trainable
        self.shapes[node.id] = output_shape(node, self.shapes)
        self.ir.add(node)
        return node.id

    def _projected(self, args, inputs: list[str], scope: Scope, loc: Location) -> list[str]:
        """ResNet's projection shortcut: a 1x1 conv (stride = the spatial ratio) + BN that maps
        the last input (the shortcut) to the first input's shape, when they differ."""
        main, shortcut = self.shapes[inputs[0]], self.shapes[inputs[-1]]
        if main == shortcut:
            return inputs
        if len(main) != 3 or len(shortcut) != 3:
            return inputs  # not projectable: the add's own shape rule reports the mismatch
        # a 1x1 conv with stride s maps n positions to ceil(n / s), odd sizes included (torchvision)
        strides = [-(-n // m) for n, m in zip(shortcut[1:], main[1:])]
        if any(-(-n // s) != m for n, m, s in zip(shortcut[1:], main[1:], strides)):
            return inputs
        stride = strides[0] if strides[0] == strides[1] else strides
        group = scope.child(args.projection_name, "projection")
        conv = self._op_node(lookup("conv"), {"out": main[0], "kernel": 1, "stride": stride, "bias": False}, SourceMap(), loc, group, "0", [inputs[-1]])
        norm = self._op_node(lookup("bn"), {}, SourceMap(), loc, group, "1", [conv])
        return [*inputs[:-1], norm]

    def _args_error(self, err: ValidationError, op: Op, args: SourceMap, loc: Location, node_id: str) -> SpecError:
        errors = err.errors()
        # an unknown (misspelt) argument explains a missing one: report it first
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        field_name = str(first["loc"][0]) if first["loc"] else None
        known = list(op.args.model_fields)
        if first["type"] == "extra_forbidden":
            return SpecError(
                f"{op.name} has no argument '{field_name}'",
                args.key_loc(field_name) if isinstance(args, SourceMap) else loc,
                node_id,
                hint=quoting_hint(field_name)
                or did_you_mean(field_name, known)
                or (f"{op.name} takes: {', '.join(known)}" if known else f"{op.name} takes no arguments"),
            )
        if first["type"] == "missing":
            return SpecError(f"{op.name} needs argument '{field_name}'", loc, node_id, hint=f"{op.name} takes: {', '.join(known)}")
        where = args.value_loc(field_name) if isinstance(args, SourceMap) and field_name in args else loc
        message = first["msg"].removeprefix("Value error, ")
        value = first.get("input")
        shown = f" (got {_value_text(value)})" if value is not None and not isinstance(value, (dict, list)) else ""
        return SpecError(f"{op.name} argument '{field_name}': {message}{shown}", where, node_id)

    # --- blocks -------------------------------------------------------------------------------
    def _block(self, callee: str, body: dict, args: SourceMap, loc: Location, scope: Scope, name: str, inputs: list[str]) -> Binding:
        block, block_raw = self.spec.blocks[callee]
        node_id = join(scope.path, name)
        if callee in self.block_stack:
            chain = " -> ".join([*self.block_stack[self.block_stack.index(callee):], callee])
            raise SpecError(f"block '{callee}' uses itself ({chain})", loc, node_id, hint="blocks cannot be recursive")
        # a block sees the spec's parameters (not its caller's block parameters) and its own; a
        # ChainMap, not a copy, so that a call costs the same however many parameters the spec has
        env = ChainMap({}, self.spec_env)
        for key in body:
            if key not in block.params:
                raise SpecError(
                    f"block '{callee}' has no parameter '{key}'",
                    args.key_loc(key),
                    node_id,
                    hint=quoting_hint(key)
                    or did_you_mean(key, block.params)
                    or (f"its parameters: {', '.join(block.params)}" if block.params else "it takes no parameters"),
                )
        params_raw = block_raw.get("params") if block.params else None
        for key, default in block.params.items():
            if key in body:
                env[key] = self._param_value(body[key], scope.env, args.value_loc(key), key)
            elif default is None:
                raise SpecError(
                    f"block '{callee}' needs parameter '{key}'",
                    loc,
                    node_id,
                    hint=f"call it as `{callee}: {{{', '.join(f'{p}: ...' for p, d in block.params.items() if d is None)}}}`",
                )
            else:
                env[key] = self._param_value(default, env, params_raw.value_loc(key) if isinstance(params_raw, SourceMap) else loc, key)
        if len(inputs) != len(block.inputs):
            raise SpecError(
                f"block '{callee}' takes {len(block.inputs)} input(s) ({', '.join(block.inputs)}) but gets {len(inputs)}",
                loc,
                node_id,
            )
        inner = scope.child(name, callee, closed=True, env=env)
        for input_name, input_id in zip(block.inputs, inputs):
            inner.names[input_name] = Binding(input_id, input_id)
        start = len(self.ir.order)
        self.block_stack.append(callee)
        try:
            if block.layers is not None:
                out = self._sequence(block_raw["layers"], inner, inputs)
            else:
                out = self._branches(block_raw["branches"], block.merge, block.fit, inner, inputs, block_raw.value_loc("branches"))
            if block.output:
                out = self._resolve(block.output, inner, block_raw.value_loc("output")).output
        finally:
            self.block_stack.pop()
        return Binding(out, inner.path, self.ir.order[start:], inputs, inner.names)

    # --- constructs ---------------------------------------------------------------------------
    def _parallel(self, body, args, loc, scope, name, inputs) -> Binding:
        _only_keys(body, {"branches", "merge", "fit"}, args, "parallel", loc)
        if "branches" not in body:
            raise SpecError("parallel needs `branches`: a mapping of branch name -> layers", loc, join(scope.path, name))
        merge = body.get("merge", "concat")
        fit = body.get("fit", "none")
        if merge not in ("concat", "add"):
            raise SpecError(f"merge is 'concat' or 'add', not {merge!r}", args.value_loc("merge"), join(scope.path, name))
        group = scope.child(name, "parallel")
        start = len(self.ir.order)
        out = self._branches(body["branches"], merge, fit, group, inputs, args.value_loc("branches"))
        return Binding(out, group.path, self.ir.order[start:], inputs, group.names)

    def _branches(self, branches: Any, merge: str, fit: str, scope: Scope, inputs: list[str], loc: Location) -> str:
        """Each branch starts from the same input; their outputs are merged by concat or add.
        A branch given as one item (not a list) is that item, named as the branch."""
        if not isinstance(branches, SourceMap) or not branches:
            raise SpecError("`branches` is a mapping of branch name -> layers", loc)
        outputs = []
        for branch_name, branch in branches.items():
            check_name(branch_name, branches.key_loc(branch_name))
            if isinstance(branch, list):
                sub = scope.child(branch_name, "branch")
                start = len(self.ir.order)
                out = self._sequence(branch, sub, inputs)
                scope.names[branch_name] = Binding(out, sub.path, self.ir.order[start:], inputs, sub.names)
            else:
                out = self._item(branch, branches.value_loc(branch_name), scope, inputs[0], default_name=branch_name)
            outputs.append(out)
        merge_args = {"fit": fit} if fit != "none" else {}
        return self._op_node(lookup(merge), merge_args, SourceMap(), loc, scope, merge, outputs)

    def _seq(self, body, args, loc, scope, name, inputs) -> Binding:
        _only_keys(body, {"layers", "index_names"}, args, "seq", loc)
        if "layers" not in body:
            raise SpecError("seq needs `layers`", loc, join(scope.path, name))
        index_names = body.get("index_names", False)
        if not isinstance(index_names, bool):
            raise SpecError("`index_names` is true or false", args.value_loc("index_names"))
        group = scope.child(name, "seq")
        if index_names:
            group.flat = FlatNames(group.path)
        start = len(self.ir.order)
        out = self._sequence(body["layers"], group, inputs)
        return Binding(out, group.path, self.ir.order[start:], inputs, group.names)

    def _reuse(self, body, args, loc, scope, name, inputs) -> Binding:
        """Apply an existing node or block again with the same weights (shared weights)."""
        _only_keys(body, {"node"}, args, "reuse", loc)
        if "node" not in body:
            raise SpecError("reuse needs `node`: the name of the node or block whose weights to share", loc)
        original = self._resolve(body["node"], scope, args.value_loc("node"))
        if not original.nodes:
            raise SpecError(f"'{body['node']}' is an input; only nodes and blocks can be reused", args.value_loc("node"))
        if len(inputs) != len(original.inputs):
            raise SpecError(f"'{body['node']}' takes {len(original.inputs)} input(s) but gets {len(inputs)}", loc)
        new_path = join(scope.path, name)
        renamed = dict(zip(original.inputs, inputs))
        created = []
        # a reused block is a block here too (its own row in reports), with its inner scopes
        group = scope.child(name, "reuse") if len(original.nodes) > 1 else scope
        for old_id in original.nodes:
            old = self.ir.node(old_id)
            new_id = new_path + old_id[len(original.path) :] if old_id.startswith(original.path) else join(new_path, old_id)
            node = IRNode(new_id, old.op, old.args, [renamed.get(i, i) for i in old.inputs], old.module, loc)
            self._add_node(node, group)
            inner = [(new_path + s[len(original.path):], k) for s, k in zip(old.scopes, old.scope_kinds) if s.startswith(original.path + ".")]
            node.scopes += tuple(s for s, _ in inner)
            node.scope_kinds += tuple(k for _, k in inner)
            if old.module != old.id or lookup(old.op).params(old.args, [self.shapes[i] for i in old.inputs]):
                self._check_same_weights(old, node, loc)
            renamed[old_id] = new_id
            created.append(new_id)
        return Binding(renamed[original.output], new_path, created, inputs)

    def _check_same_weights(self, old: IRNode, new: IRNode, loc: Location) -> None:
        op = lookup(old.op)
        before = op.params(old.args, [self.shapes[i] for i in old.inputs])
        after = op.params(new.args, [self.shapes[i] for i in new.inputs])
        if before != after:
            raise SpecError(
                f"cannot share the weights of '{old.module}': its tensors would need shapes {after} instead of {before}",
                loc,
                new.id,
                hint="shared weights need inputs with the same channels",
            )

    # --- names and values ---------------------------------------------------------------------
    def _next_name(self, scope: Scope, callee: str) -> str:
        """The name `_auto_name` would give next, without taking it."""
        return f"{callee}{scope.counters.get(callee, 0) + 1}"

    def _auto_name(self, scope: Scope, callee: str) -> str:
        count = scope.counters[callee] = scope.counters.get(callee, 0) + 1
        return f"{callee}{count}"

    def _resolve(self, ref: Any, scope: Scope, loc: Location, node: str | None = None) -> Binding:
        if not isinstance(ref, (str, int)) or isinstance(ref, bool) or str(ref) == "":
            raise SpecError(f"a reference is a node name, not {ref!r}", loc, node)
        parts = str(ref).split(".")
        current: Scope | None = scope
        passed: list[Scope] = []  # the scopes searched in vain (their names, for the hint)
        while current is not None:
            if parts[0] in current.names:
                binding = current.names[parts[0]]
                break
            if parts[0] in current.pending:
                later = current.pending[parts[0]]
                raise SpecError(
                    f"'{parts[0]}' is defined later (line {later.line}); a reference to it here would make a cycle",
                    loc,
                    node,
                    hint="references point to earlier nodes; reorder the layers",
                )
            passed.append(current)
            current = current.parent
        else:
            visible = [name for searched in passed for name in searched.names]
            if node is not None and parts[0] == node.rsplit(".", 1)[-1]:
                raise SpecError(
                    f"'{parts[0]}' is this node itself; a node cannot take its own output (a cycle)",
                    loc,
                    node,
                    hint="references point to earlier nodes",
                )
            raise SpecError(
                f"unknown reference '{ref}'",
                loc,
                node,
                hint=did_you_mean(parts[0], visible) or (f"names visible here: {', '.join(visible[-12:])}" if visible else None),
            )
        for depth, part in enumerate(parts[1:], start=1):
            if part not in binding.children:
                inside = ".".join(parts[:depth])
                raise SpecError(
                    f"'{inside}' has no node '{part}'",
                    loc,
                    node,
                    hint=did_you_mean(part, binding.children) or (f"it contains: {', '.join(binding.children)}" if binding.children else None),
                )
            binding = binding.children[part]
        return binding

    def _name(self, value: Any, env: dict[str, Any], loc: Location) -> str:
        """A node name; its `{expression}` parts are evaluated (`denselayer{i + 1}`, `{e + 1}`)."""
        if _is_template(value):
            try:
                value = NAME_PART.sub(lambda part: _name_text(evaluate(part.group(1), env)), value)
            except ExpressionError as err:
                raise SpecError(f"name '{value}': {err}", loc) from None
        return check_name(value, loc)

    def _condition(self, value: Any, scope: Scope, loc: Location, name: Any) -> bool:
        """`when: COND`: the item is built only where COND (an expression) is true."""
        node = join(scope.path, str(name))
        if isinstance(value, str):
            try:
                value = evaluate(value, scope.env)
            except ExpressionError as err:
                raise SpecError(f"when: {err}", loc, node) from None
        if not isinstance(value, bool):
            raise SpecError(f"`when` must be true or false, got {value!r}", loc, node, hint="e.g. `when: stride == 1`")
        return value

    def _param_value(self, value: Any, env: dict[str, Any], loc: Location, name: str) -> Any:
        """A parameter's value: numbers and booleans as they are, strings as expressions (a bare
        word that names nothing stays a word, e.g. `mode: bilinear`), lists element-wise."""
        if isinstance(value, list):
            return [self._param_value(v, env, loc, name) for v in value]
        if isinstance(value, str):
            if value.isidentifier() and value not in env and value not in FUNCTIONS:
                return value
            try:
                return evaluate(value, env)
            except ExpressionError as err:
                raise SpecError(f"parameter '{name}': {err}", loc) from None
        return value

    def _integer(self, value: Any, env: dict[str, Any], loc: Location, what: str, node: str | None = None) -> int:
        if isinstance(value, str):
            try:
                value = evaluate(value, env)
            except ExpressionError as err:
                raise SpecError(f"{what}: {err}", loc, node) from None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{what} must be a whole number, got {value!r}", loc, node)
        return value


# --- helpers on raw items -------------------------------------------------------------------------
def _split_item(item: Any, loc: Location) -> tuple[str, SourceMap, Location]:
    """`op` or `op: {args}` -> (op, args, location of the args)."""
    if isinstance(item, str):
        return item, SourceMap(), loc
    if isinstance(item, SourceMap) and len(item) == 1:
        callee = next(iter(item))
        args = item[callee]
        if args is None:
            args = SourceMap()
        if not isinstance(args, SourceMap):
            raise SpecError(
                f"the arguments of '{callee}' must be a mapping like `{{out: 64}}`, not "
                + ("a list" if isinstance(args, list) else type(args).__name__),
                item.value_loc(callee),
            )
        if args.loc is None:
            args.loc = item.value_loc(callee)
        return callee, args, item.key_loc(callee)
    if isinstance(item, SourceMap):
        keys = ", ".join(item) or "none"
        raise SpecError(
            f"a layer is one op or block with its arguments, but this mapping has keys: {keys}",
            loc,
            hint="write `- conv: {out: 64, kernel: 3, name: conv1}`: the reserved keys go inside the arguments",
        )
    raise SpecError(f"a layer is `op` or `op: {{args}}`, not {item!r}", loc)


def _check_override(name: str, value: Any) -> None:
    """A number given from outside the spec (--set, or the API) is at most MAX_OVERRIDE in
    magnitude, like a number written in a spec (archspec.spec.yaml_source.MAX_INTEGER)."""
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, list):
            _check_override(name, item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool) and abs(item) > MAX_OVERRIDE:
            raise SpecError(f"--set {name}: {_value_text(item)} is larger than the limit {MAX_OVERRIDE:.0e}")


def _value_text(value: Any) -> str:
    """repr, except for an integer too long to show (or to convert: Python's 4,300-digit limit)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"a number of about {int(value.bit_length() * 0.30103):,} digits"
    return repr(value)


def _is_template(name: Any) -> bool:
    return isinstance(name, str) and NAME_PART.search(name) is not None


def _name_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ExpressionError(f"a name part is a whole number or a word, not {value!r}")
    return str(value)


def _refs(value: Any, loc: Location) -> list[Any]:
    refs = list(value) if isinstance(value, list) else [value]
    if not refs:
        raise SpecError("`from` is empty", loc)
    return refs


def _declared_names(items: list) -> dict[str, Location]:
    names = {}
    for index, item in enumerate(items):
        if isinstance(item, SourceMap) and len(item) == 1:
            args = next(iter(item.values()))
            if isinstance(args, SourceMap) and isinstance(args.get("name"), (str, int)) and not _is_template(args.get("name")):
                names[str(args["name"])] = args.value_loc("name")
    return names


def _as_list(item: Any) -> SourceList:
    result = SourceList([item], loc=getattr(item, "loc", None))
    result.item_locs = [result.loc]
    return result


def _with_trainable(scope: Scope, trainable: bool) -> Scope:
    # the same scope (its name tables are shared), but nodes created under this item get the flag
    return scope if scope.trainable == trainable else replace(scope, trainable=trainable)


def _kind(value: Any) -> str:
    """The kind of a parameter value, for checking --set against the default."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    return "a word" if isinstance(value, str) else "empty"


def quoting_hint(key: str) -> str | None:
    """A key like `8)` comes from an unquoted expression with a comma inside a YAML flow mapping."""
    if any(c in key for c in "()*+/ ,"):
        return "an expression with a comma must be quoted in a `{...}` mapping: \"make_divisible(32 * width, 8)\""
    return None


def _only_keys(body: dict, allowed: set[str], args: SourceMap, construct: str, loc: Location) -> None:
    for key in body:
        if key not in allowed:
            raise SpecError(
                f"{construct} has no key '{key}'",
                args.key_loc(key) if isinstance(args, SourceMap) else loc,
                hint=did_you_mean(key, allowed) or f"{construct} takes: {', '.join(sorted(allowed))}",
            )
