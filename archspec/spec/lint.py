"""Every independent error of a loaded spec, each located: what `validate` reports before it builds.

The IR builder stops at the first error; this checker walks the raw layer lists once (the spec's
layers, then each block's, at its first call so that nodes are named as the builder names them,
or on its own when nothing calls it) and collects, for every item: an unknown op, block or
construct; reserved keys of the wrong kind; unknown construct keys and fixed-choice values; unknown
op arguments and bad values (validated through the op's arguments model with the spec's parameters
as names). A value over names it cannot know (a block's parameters, the repeat index) is left to
the builder, as are references, shapes and limits. Nothing here builds a graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from archspec.errors import Location, SpecError, did_you_mean
from archspec.ops.catalog import all_ops, lookup
from archspec.spec.arguments import (
    CONSTRUCTS, MAX_REPEAT, NAME_PART, REPEAT_INDEX, RESERVED_KEYS, argument_errors, key_errors, quoting_hint,
    reserved_errors, split_item,
)
from archspec.spec.document import LoadedSpec, check_name
from archspec.spec.expressions import FUNCTIONS, IN_NAMES, REFERENCE, ExpressionError, evaluate, free_names
from archspec.spec.yaml_source import SourceList, SourceMap

MAX_NESTING = 64  # scopes inside each other, as archspec.ir.build: deeper is the builder's error to report


class _Unknowable(Exception):
    """A value over names whose values are not known here: left to the builder."""


@dataclass
class _Scope:
    path: str
    env: dict[str, Any]  # parameter values known here
    unknown: frozenset[str]  # names in scope whose values cannot be known (block parameters, `i`)
    depth: int = 0
    names: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=dict)
    flat: list[int] | None = None  # inside `seq: {index_names: true}`: ops are numbered, [next]
    flat_path: str = ""
    guarded: bool = False  # inside an item that a `when` not known here may leave out

    def child(self, name: str, *, unknown: frozenset[str] | None = None) -> "_Scope":
        return _Scope(join(self.path, name), self.env, self.unknown if unknown is None else unknown, self.depth + 1,
                      flat=self.flat, flat_path=self.flat_path, guarded=self.guarded)

    def knowing_less(self, names: set[str]) -> "_Scope":
        """The same scope (its name tables shared) where `names` are unknown too."""
        return replace(self, unknown=self.unknown | names)

    def node_id(self, name: str) -> str:
        if self.flat is None:
            return join(self.path, name)
        self.flat[0] += 1
        return join(self.flat_path, str(self.flat[0] - 1))


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def lint(spec: LoadedSpec, params: dict[str, Any] | None = None) -> list[SpecError]:
    """Every independent error of `spec`, in the order the builder meets them. `params`: the overrides
    (`--set`); the values over them are left to the builder, which checks the overrides."""
    checker = _Checker(spec)
    env, unknown = checker.spec_params(params or {})
    # `image.shape` at the top and the shape names in blocks are known only once shapes are inferred
    inputs = set(spec.document.inputs)
    checker.sequence(spec.raw.get("layers"), _Scope("", env, unknown | inputs, names=set(inputs)))
    for name in spec.blocks:
        if name not in checker.visited:
            checker.block_body(name, _Scope(name, env, unknown))
    unique: dict[tuple, SpecError] = {}
    for error in checker.errors:
        unique.setdefault((error.loc, error.message), error)
    return list(unique.values())


class _Checker:
    def __init__(self, spec: LoadedSpec):
        self.spec = spec
        self.errors: list[SpecError] = []
        self.visited: set[str] = set()  # blocks whose layers are checked
        self.spec_env: dict[str, Any] = {}
        self.spec_unknown: frozenset[str] = frozenset()
        self.constructs = {"parallel": self.parallel, "seq": self.seq, "reuse": self.reuse}

    def value_error(self, scope: _Scope, error: SpecError) -> None:
        """A value that is wrong where the item is built; inside an item that may be left out, the
        builder may never read it."""
        if not scope.guarded:
            self.errors.append(error)

    # --- parameters -----------------------------------------------------------------------------
    def spec_params(self, overrides: dict[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
        """The spec's parameter values; one that cannot be worked out is unknown (and reported)."""
        params_raw = self.spec.raw.get("params")
        params_raw = params_raw if isinstance(params_raw, SourceMap) else SourceMap()
        env: dict[str, Any] = {}
        unknown: set[str] = set()
        for name, default in self.spec.document.params.items():
            if name in overrides:
                unknown.add(name)
                continue
            try:
                check_name(name, params_raw.key_loc(name))
                env[name] = self.param_value(default, env, unknown, params_raw.value_loc(name), name)
            except SpecError as err:
                self.errors.append(err)
                unknown.add(name)
            except _Unknowable:
                unknown.add(name)
        self.spec_env, self.spec_unknown = env, frozenset(unknown)
        return env, frozenset(unknown)

    def param_value(self, value: Any, env: dict, unknown: set | frozenset, loc: Location, name: str) -> Any:
        """As the builder reads a parameter: a bare word that names nothing stays a word."""
        if isinstance(value, list):
            return [self.param_value(v, env, unknown, loc, name) for v in value]
        if not isinstance(value, str) or (value.isidentifier() and value not in env and value not in FUNCTIONS
                                          and value not in unknown):
            return value
        if free_names(value) & set(unknown):
            raise _Unknowable(name)
        try:
            return evaluate(value, env)
        except ExpressionError as err:
            raise SpecError(f"parameter '{name}': {err}", loc) from None

    # --- items ----------------------------------------------------------------------------------
    def sequence(self, items: Any, scope: _Scope) -> None:
        if isinstance(items, SourceMap) or not isinstance(items, list):
            items = _as_list(items)
        for index, item in enumerate(items):
            loc = items.item_loc(index) if isinstance(items, SourceList) else getattr(items, "loc", None)
            self.item(item, loc, scope)

    def item(self, item: Any, loc: Location, scope: _Scope, default_name: str | None = None) -> None:
        """One item: its reserved keys, its name, then what it calls. Each item takes one input
        (the previous item's output) unless it says `from`."""
        try:
            callee, args, args_loc = split_item(item, loc)
        except SpecError as err:
            self.errors.append(err)
            return
        guess = str(args.get("name") or default_name or f"{callee}{scope.counters.get(callee, 0) + 1}")
        errors = reserved_errors(args, join(scope.path, guess))
        self.errors.extend(errors)
        fine = {key for key in RESERVED_KEYS if key in args and args.value_loc(key) not in {e.loc for e in errors}}
        # True, False (left out by `when`), or None: not known here
        included = self.condition(args, scope, join(scope.path, guess)) if "when" in fine else (None if "when" in args else True)
        name = self.item_name(args, scope, callee, default_name, included, args_loc, "name" in fine)
        inputs = _input_count(args["from"]) if "from" in fine else 1
        body = {k: v for k, v in args.items() if k not in RESERVED_KEYS}
        call_scope, call_name = scope, name
        if "repeat" in args:
            if "repeat" in fine and included is not False:
                self.repeat_count(args, scope, join(scope.path, name))
            if _is_template(args.get("name")):  # the copies go directly into the scope
                call_scope = scope.knowing_less({REPEAT_INDEX})
            else:  # the copies are `name.0`, `name.1`, ...: the builder reports at the first
                call_scope, call_name = scope.child(name, unknown=scope.unknown | {REPEAT_INDEX}), "0"
        # values are checked only where the item is surely built: a `when` not known here may guard them
        if included is not True and not call_scope.guarded:
            call_scope = replace(call_scope, guarded=True)
        self.call(callee, body, args, args_loc, call_scope, call_name, inputs, values=not call_scope.guarded)

    def item_name(self, args: SourceMap, scope: _Scope, callee: str, default_name: str | None,
                  included: bool | None, loc: Location, checked: bool) -> str:
        """The item's name as the builder gives it, taken in the scope when the item is included
        (`checked`: its `name` is of the right kind and may be read)."""
        if "name" in args:
            name = self.name(args["name"], scope, args.value_loc("name"), "repeat" in args) \
                if checked and included is not False else str(args["name"])
        elif default_name:
            name = default_name
        elif included is False:  # left out: it takes no auto-name number
            return f"{callee}{scope.counters.get(callee, 0) + 1}"
        else:
            scope.counters[callee] = scope.counters.get(callee, 0) + 1
            name = f"{callee}{scope.counters[callee]}"
        if included is True:  # an item whose `when` is not known here may share a name with another
            if name in scope.names:
                self.errors.append(SpecError(f"the name '{name}' is used twice in this scope", loc, join(scope.path, name)))
            scope.names.add(name)
        return name

    def name(self, value: Any, scope: _Scope, loc: Location, repeated: bool) -> str:
        """A `name:`; its `{expression}` parts evaluated where their names are known (`i` = 0:
        the first copy of a repeat, where the builder reports)."""
        text = str(value)
        if _is_template(value):
            env = {**scope.env, REPEAT_INDEX: 0} if repeated else scope.env
            unknown = scope.unknown - ({REPEAT_INDEX} if repeated else set())
            if any(free_names(part) & unknown for part in NAME_PART.findall(value)):
                return text
            try:
                text = _template(value, env)
            except ExpressionError as err:
                self.value_error(scope, SpecError(f"name '{value}': {err}", loc))
                return str(value)
        try:
            return check_name(text, loc)
        except SpecError as err:
            self.errors.append(err)
            return text

    def condition(self, args: SourceMap, scope: _Scope, node: str) -> bool | None:
        """`when:` as the builder reads it; None where it cannot be known here."""
        if "when" not in args:
            return True
        value, loc = args["when"], args.value_loc("when")
        if isinstance(value, str):
            if free_names(value) & scope.unknown:
                return None
            try:
                value = evaluate(value, scope.env)
            except ExpressionError as err:
                self.value_error(scope, SpecError(f"when: {err}", loc, node))
                return None
        if not isinstance(value, bool):
            self.value_error(scope, SpecError(f"`when` must be true or false, got {value!r}", loc, node, hint="e.g. `when: stride == 1`"))
            return None
        return value

    def repeat_count(self, args: SourceMap, scope: _Scope, node: str) -> None:
        value, loc = args["repeat"], args.value_loc("repeat")
        if isinstance(value, str):
            if free_names(value) & scope.unknown:
                return
            try:
                value = evaluate(value, scope.env)
            except ExpressionError as err:
                self.value_error(scope, SpecError(f"repeat: {err}", loc, node))
                return
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.value_error(scope, SpecError(f"repeat must be a whole number, got {value!r}", loc, node))
        elif not 0 <= value <= MAX_REPEAT:
            self.value_error(scope, SpecError(f"repeat must be between 0 and {MAX_REPEAT}, got {value}", loc, node))

    # --- callees --------------------------------------------------------------------------------
    def call(self, callee: str, body: dict, args: SourceMap, loc: Location, scope: _Scope, name: str,
             inputs: int | None, values: bool) -> None:
        if scope.depth >= MAX_NESTING:
            return  # the builder reports the nesting
        if callee in self.constructs:
            self.constructs[callee](body, args, loc, scope, name)
        elif callee in self.spec.blocks:
            self.block_call(callee, body, args, loc, scope, name, inputs, values)
        elif lookup(callee) is None:
            known = [*all_ops(), *self.spec.blocks, *self.constructs]
            self.errors.append(SpecError(
                f"unknown op or block '{callee}'", loc, join(scope.path, name),
                hint=did_you_mean(callee, known) or "`archspec ops` lists the ops; blocks come from `blocks:` and `use:`",
            ))
        else:
            self.op(lookup(callee), body, args, loc, scope, name, inputs, values)

    def op(self, op, body: dict, args: SourceMap, loc: Location, scope: _Scope, name: str, inputs: int | None,
           values: bool) -> None:
        node_id = scope.node_id(name) if values else join(scope.path, name)  # a left-out item takes no number
        try:
            op.args.model_validate(body, context={"names": scope.env})
        except ValidationError as err:
            self.errors.extend(argument_errors(err, op, args, loc, node_id, scope.unknown, keys_only=not values))
        low, high = op.arity
        if values and inputs is not None and not (low <= inputs and (high is None or inputs <= high)):
            wanted = f"{low}" if low == high else (f"at least {low}" if high is None else f"{low} to {high}")
            self.errors.append(SpecError(
                f"{op.name} takes {wanted} input(s) but gets {inputs}", loc, node_id,
                hint="list its inputs with `from: [a, b]`" if low > 1 else None,
            ))

    def block_call(self, callee: str, body: dict, args: SourceMap, loc: Location, scope: _Scope, name: str,
                   inputs: int | None, values: bool) -> None:
        block, _ = self.spec.blocks[callee]
        node_id = join(scope.path, name)
        strangers = [key for key in body if key not in block.params]
        for key in strangers:
            self.errors.append(SpecError(
                f"block '{callee}' has no parameter '{key}'", args.key_loc(key), node_id,
                hint=quoting_hint(key) or did_you_mean(key, block.params)
                or (f"its parameters: {', '.join(block.params)}" if block.params else "it takes no parameters"),
            ))
        for key, value in body.items():
            if values and key in block.params:
                try:
                    self.param_value(value, scope.env, scope.unknown, args.value_loc(key), key)
                except SpecError as err:
                    self.errors.append(err)
                except _Unknowable:
                    pass
        missing = [key for key, default in block.params.items() if default is None and key not in body]
        if missing and not strangers:
            self.errors.append(SpecError(
                f"block '{callee}' needs parameter '{missing[0]}'", loc, node_id,
                hint=f"call it as `{callee}: {{{', '.join(f'{p}: ...' for p, d in block.params.items() if d is None)}}}`",
            ))
        if values and inputs is not None and inputs != len(block.inputs):
            self.errors.append(SpecError(
                f"block '{callee}' takes {len(block.inputs)} input(s) ({', '.join(block.inputs)}) but gets {inputs}",
                loc, node_id))
        if callee not in self.visited:
            self.block_body(callee, scope.child(name))

    def block_body(self, callee: str, scope: _Scope) -> None:
        """A block's own layers (or branches), once: its parameters are unknown here."""
        self.visited.add(callee)
        block, block_raw = self.spec.blocks[callee]
        # its inputs' shapes (`in_channels`, `input.shape`) are known only where it is called
        unknown = self.spec_unknown | set(block.params) | set(IN_NAMES) | set(block.inputs)
        inner = _Scope(scope.path, self.spec_env, unknown, scope.depth,
                       names=set(block.inputs), flat=scope.flat, flat_path=scope.flat_path)
        if block.layers is not None:
            self.sequence(block_raw["layers"], inner)
        elif isinstance(block_raw.get("branches"), SourceMap):
            self.branches(block_raw["branches"], inner)

    # --- constructs -----------------------------------------------------------------------------
    def parallel(self, body: dict, args: SourceMap, loc: Location, scope: _Scope, name: str) -> None:
        self.errors.extend(key_errors(CONSTRUCTS["parallel"], "parallel", body, args, loc, join(scope.path, name)))
        if isinstance(body.get("branches"), SourceMap):
            self.branches(body["branches"], scope.child(name))

    def branches(self, branches: SourceMap, scope: _Scope) -> None:
        """Each branch starts from the same input: a list is a scope of its own, one item is
        named as the branch."""
        for branch_name, branch in branches.items():
            try:
                check_name(branch_name, branches.key_loc(branch_name))
            except SpecError as err:
                self.errors.append(err)
                continue
            if isinstance(branch, list):
                self.sequence(branch, scope.child(str(branch_name)))
            else:
                self.item(branch, branches.value_loc(branch_name), scope, default_name=str(branch_name))

    def seq(self, body: dict, args: SourceMap, loc: Location, scope: _Scope, name: str) -> None:
        errors = key_errors(CONSTRUCTS["seq"], "seq", body, args, loc, join(scope.path, name))
        self.errors.extend(errors)
        if "layers" in body:
            group = scope.child(name)
            if body.get("index_names") is True:
                group.flat, group.flat_path = [0], group.path
            self.sequence(body["layers"], group)

    def reuse(self, body: dict, args: SourceMap, loc: Location, scope: _Scope, name: str) -> None:
        self.errors.extend(key_errors(CONSTRUCTS["reuse"], "reuse", body, args, loc, join(scope.path, name)))


def _input_count(value: Any) -> int | None:
    """How many inputs a `from` gives; None when an expression chooses them (the builder counts)."""
    refs = value if isinstance(value, list) else [value]
    if any(isinstance(ref, str) and not REFERENCE.match(ref) for ref in refs):
        return None
    return len(refs)


def _as_list(item: Any) -> SourceList:
    result = SourceList([item], loc=getattr(item, "loc", None))
    result.item_locs = [result.loc]
    return result


def _is_template(name: Any) -> bool:
    return isinstance(name, str) and NAME_PART.search(name) is not None


def _template(value: str, env: dict[str, Any]) -> str:
    def part(match: Any) -> str:
        result = evaluate(match.group(1), env)
        if isinstance(result, float) and result.is_integer():
            result = int(result)
        if isinstance(result, bool) or not isinstance(result, (int, str)):
            raise ExpressionError(f"a name part is a whole number or a word, not {result!r}")
        return str(result)

    return NAME_PART.sub(part, value)
