"""Safe YAML reading that remembers where every value came from.

PyYAML's safe composer turns the text into a node tree with marks; we convert that tree ourselves
into `SourceMap` / `SourceList` (a dict / list that also knows the location of each entry), so
that any later stage can point at the exact line and column. Reading is safe by construction:
only the plain YAML tags are accepted (no `!!python/...`), duplicate keys are refused, the
number of values an alias may expand to is bounded (alias bombs), an alias inside what it names
(`&a [*a]`) is refused, and no integer above MAX_INTEGER comes out. Files are read with a bound
and only when they are regular files (archspec.spec.reading).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from archspec.errors import Location, SpecError
from archspec.spec.reading import FileRefused, read_bounded

MAX_FILE_BYTES = 1 << 20  # 1 MiB: the largest spec in the library is ~10 KiB
MAX_VALUES = 50_000  # values after alias expansion: 10x the flat (rewritten) DenseNet-169; reading 50,000 takes ~0.5 s
MAX_NESTING = 100  # nested lists/mappings (deeper input crashes libyaml's recursive composer)
MAX_INTEGER = 10**18  # no integer larger than this leaves the loader (sizes and counts are far smaller)
_MAX_INTEGER_CHARS = 64  # digits of an integer literal; longer ones are refused before int() sees them

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


class SourceMap(dict):
    """A YAML mapping: `loc` of the mapping, `key_locs` / `value_locs` per key."""

    def __init__(self, *args, loc: Location | None = None):
        super().__init__(*args)
        self.loc = loc
        self.key_locs: dict[str, Location] = {}
        self.value_locs: dict[str, Location] = {}

    def value_loc(self, key: str) -> Location:
        return self.value_locs.get(key, self.loc)

    def key_loc(self, key: str) -> Location:
        return self.key_locs.get(key, self.loc)


class SourceList(list):
    """A YAML sequence: `loc` of the sequence, `item_locs` per item."""

    def __init__(self, *args, loc: Location | None = None):
        super().__init__(*args)
        self.loc = loc
        self.item_locs: list[Location] = []

    def item_loc(self, index: int) -> Location:
        return self.item_locs[index] if 0 <= index < len(self.item_locs) else self.loc


def loc_of(value: Any, default: Location) -> Location:
    return getattr(value, "loc", None) or default


def read_text(path: Path) -> str:
    """The file's text, refusing what is too large, not a regular file or not UTF-8, with a
    located error. Never reads more than MAX_FILE_BYTES + 1 bytes (archspec.spec.reading)."""
    shown = str(path)
    try:
        data = read_bounded(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise SpecError(f"no such file: {shown}", hint="check the path") from None
    except IsADirectoryError:
        raise SpecError(f"{shown} is a folder, not a spec file") from None
    except FileRefused as err:
        if err.size is None:
            raise SpecError(
                f"{shown} is not a regular file ({err.kind})",
                hint="a spec is read from a regular file; save the text to a file first",
            ) from None
        size = f"{err.size:,} bytes" if err.exact else f"more than {MAX_FILE_BYTES:,} bytes"
        raise SpecError(
            f"file is {size}; specs are limited to {MAX_FILE_BYTES:,} bytes",
            Location(shown, 1, 1),
            hint="split it into a spec and block files (`use:`)",
        ) from None
    except OSError as err:
        raise SpecError(f"cannot read {shown}: {err.strerror or err}") from None
    except ValueError as err:  # os.stat: "embedded null byte", or a name that cannot be encoded
        reason = "it contains a NUL byte" if "\0" in shown else str(err)
        raise SpecError(f"{shown!r} is not a valid path: {reason}", hint="check the path") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n") + 1
        column = err.start - (before.rfind(b"\n") + 1) + 1
        raise SpecError(
            f"byte 0x{data[err.start]:02x} is not valid UTF-8",
            Location(shown, line, column),
            hint="save the file as UTF-8",
        ) from None


class TooManyValues(SpecError):
    """The document expands to more values than the limit it was read with (`limit`)."""

    def __init__(self, limit: int, loc: Location):
        super().__init__(
            f"the document expands to more than {limit:,} values (an alias bomb?)",
            loc,
            hint="avoid deeply nested YAML aliases",
        )
        self.limit = limit


def parse_yaml(text: str, file: str) -> Any:
    """Parse one YAML document into SourceMap/SourceList/scalars."""
    return parse_yaml_counted(text, file)[0]


def parse_yaml_counted(text: str, file: str, max_values: int = MAX_VALUES, allow_empty: bool = False) -> tuple[Any, int]:
    """`parse_yaml`, with the number of values read; refuses more than `max_values` of them
    (TooManyValues). `allow_empty`: an empty document is None instead of an error."""
    root = _compose(text, file, max_values)
    if root is None:
        if allow_empty:
            return None, 0
        raise SpecError("the file is empty", Location(file, 1, 1), hint="a spec needs at least `name` and `layers`")
    _check_graph(root, file, max_values)
    budget = [max_values, max_values]  # values left, the limit
    return _convert(root, file, budget), max_values - budget[0]


def _compose(text: str, file: str, max_values: int) -> yaml.Node | None:
    loader = _Loader(text)
    try:
        _check_nesting(text, file, max_values)
        return loader.get_single_node()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1)
        problem = err.problem or err.context or "invalid YAML"
        if "expected a single document" in str(err.context or ""):
            raise SpecError(
                "the file holds several YAML documents (`---`); a spec is one document",
                loc,
                hint="keep one spec per file",
            ) from None
        context = err.context_mark
        if err.problem and err.context and context and (context.line, context.column) != (mark.line, mark.column):
            # e.g. an unclosed `{`: say where the construct that is not finished starts
            problem += f" ({err.context} started at line {context.line + 1}, column {context.column + 1})"
        raise SpecError(f"YAML syntax error: {problem}", loc) from None
    except yaml.reader.ReaderError as err:  # control characters and the like
        position = max(0, min(err.position, len(text)))
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        code = err.character if isinstance(err.character, int) else ord(err.character)
        raise SpecError(
            f"character U+{code:04X} is not allowed in YAML ({err.reason})",
            Location(file, line, column),
            hint="remove the control character",
        ) from None
    except yaml.YAMLError as err:
        raise SpecError(f"YAML error: {err}", Location(file, 1, 1)) from None
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_graph(root: yaml.Node, file: str, limit: int) -> None:
    """Before converting anything, walk the node graph once (iteratively: no recursion limit)
    and refuse what conversion could not finish: an alias of a list or mapping inside itself
    (`&a [*a]`, `&a {<<: *a}`: a cycle), nesting deeper than MAX_NESTING through aliases, and
    more than `limit` values once the aliases are expanded (an alias bomb). Aliases share nodes,
    so this is linear in the text."""
    sizes: dict[int, int] = {}  # values a node stands for, capped at limit + 1
    depths: dict[int, int] = {}  # lists/mappings nested in it, itself included
    on_path: set[int] = set()
    stack = [(root, _children(root), [0])]
    on_path.add(id(root))
    while stack:
        node, kids, position = stack[-1]
        if position[0] < len(kids):
            child = kids[position[0]]
            position[0] += 1
            if id(child) in on_path:
                kind = "list" if isinstance(child, yaml.SequenceNode) else "mapping"
                raise SpecError(
                    f"this {kind} contains an alias of itself, so it never ends",
                    _loc(child, file),
                    hint="an alias (`*name`) may only repeat a value that is complete before it",
                )
            if isinstance(child, yaml.ScalarNode):
                sizes[id(child)], depths[id(child)] = 1, 0
            elif id(child) not in sizes:
                on_path.add(id(child))
                stack.append((child, _children(child), [0]))
            continue
        stack.pop()
        on_path.discard(id(node))
        sizes[id(node)] = min(limit + 1, 1 + sum(sizes[id(kid)] for kid in kids))
        nested = max((depths[id(kid)] for kid in kids), default=0)
        depths[id(node)] = depth = nested + isinstance(node, (yaml.SequenceNode, yaml.MappingNode))
        if depth > MAX_NESTING:
            raise _too_deep(_loc(node, file), " (counting what aliases stand for)")
    if sizes[id(root)] > limit:
        _refuse_expansion(root, sizes, file, limit)


def _refuse_expansion(root: yaml.Node, sizes: dict[int, int], file: str, limit: int) -> None:
    node = root
    while True:  # down to the smallest node that is too large: where the aliases multiply
        bigger = next((child for child in _children(node) if sizes[id(child)] > limit), None)
        if bigger is None:
            break
        node = bigger
    raise TooManyValues(limit, _loc(node, file))


def _too_deep(loc: Location, how: str = "") -> SpecError:
    return SpecError(
        f"lists and mappings are nested more than {MAX_NESTING} levels deep{how}",
        loc,
        hint="a spec this deep is almost certainly a mistake; use blocks for structure",
    )


def _check_nesting(text: str, file: str, max_values: int = MAX_VALUES) -> None:
    """Refuse lists/mappings nested deeper than MAX_NESTING before composing: libyaml's composer
    recurses per level (old releases crash on deep input) and our conversion recurses too. Also
    refuse more than `max_values` values written out (each event is at least one value), so
    that a file over the limit is not composed first.

    The limit must be ours whatever YAML library is installed: libyaml 0.2.6 gives up at 1,000
    levels with its own message, and its scanner looks that far ahead before it hands out the
    first event. So when the fast parser fails, the pure-Python one (no nesting limit of its own,
    and lazy: it reads at most a line or 1,024 characters ahead) looks again; only if that finds
    nothing too deep does the fast parser's error stand."""
    try:
        _first_too_deep(yaml.parse(text, Loader=_Loader), file, max_values)
    except yaml.YAMLError:
        if _Loader is yaml.SafeLoader:
            raise
        try:
            _first_too_deep(yaml.parse(text, Loader=yaml.SafeLoader), file, max_values)
        except yaml.YAMLError:
            pass
        raise


_VALUE_EVENTS = (yaml.ScalarEvent, yaml.AliasEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)


def _first_too_deep(events, file: str, max_values: int = MAX_VALUES) -> None:
    """Walk the event stream (lazily) and stop at the first list or mapping too deep, or at the
    first value over `max_values`."""
    depth = values = 0
    for event in events:
        if isinstance(event, _VALUE_EVENTS):
            values += 1
            if values > max_values:
                raise TooManyValues(max_values, Location(file, event.start_mark.line + 1, event.start_mark.column + 1))
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_NESTING:
                mark = event.start_mark
                raise _too_deep(Location(file, mark.line + 1, mark.column + 1))
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _loc(node: yaml.Node, file: str) -> Location:
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)


_SCALAR = yaml.SafeLoader("")  # only its scalar constructors are used


def _convert(node: yaml.Node, file: str, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:  # merge keys copy pairs, so the graph check's count is not the last word
        raise TooManyValues(budget[1], _loc(node, file))
    if node.tag not in _PLAIN_TAGS:
        raise SpecError(
            f"YAML tag '{node.tag}' is not allowed: specs are plain data",
            _loc(node, file),
            hint="remove the tag; only strings, numbers, booleans, null, lists and mappings are read",
        )
    if isinstance(node, yaml.MappingNode):
        result = SourceMap(loc=_loc(node, file))
        # merge keys (`<<: *base`): flattening puts the merged pairs first; the mapping's own
        # keys override them (YAML's rule), so only an own key given twice is a duplicate
        merged = getattr(node, "archspec_merged", None)
        if merged is None:
            own = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
            try:
                _SCALAR.flatten_mapping(node)
            except yaml.MarkedYAMLError as err:  # `<<: 3`: merging something that is not a mapping
                mark = err.problem_mark or node.start_mark
                raise SpecError(
                    f"YAML merge key: {err.problem}",
                    Location(file, mark.line + 1, mark.column + 1),
                    hint="`<<:` takes an alias of a mapping (`<<: *base`) or a list of them",
                ) from None
            merged = node.archspec_merged = len(node.value) - own
        own_keys: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = _convert(key_node, file, budget)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise SpecError("mapping keys must be plain words", _loc(key_node, file))
            key = str(key)
            if index >= merged and key not in own_keys:
                own_keys.add(key)
                result.pop(key, None)  # overrides a merged value
            if key in result and index >= merged:
                first = result.key_locs[key]
                raise SpecError(
                    f"duplicate key '{key}' (first at line {first.line})",
                    _loc(key_node, file),
                    hint="each key may appear once in a mapping",
                )
            result[key] = _convert(value_node, file, budget)
            result.key_locs[key] = _loc(key_node, file)
            result.value_locs[key] = _loc(value_node, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        result = SourceList(loc=_loc(node, file))
        for item in node.value:
            result.append(_convert(item, file, budget))
            result.item_locs.append(_loc(item, file))
        return result
    if node.tag == _INT_TAG:
        return _integer(node, file)
    try:
        return _SCALAR.yaml_constructors[node.tag](_SCALAR, node)
    except (yaml.YAMLError, ValueError, OverflowError) as err:
        raise SpecError(f"cannot read value: {err}", _loc(node, file)) from None


_INT_TAG = "tag:yaml.org,2002:int"


def _integer(node: yaml.ScalarNode, file: str) -> int:
    """An integer scalar, at most MAX_INTEGER in size. Its text is measured before it is
    converted: 10,000 hex digits escape Python's 4,300-digit limit and make a number that later
    arithmetic (math.prod over shapes) takes minutes over."""
    text = str(node.value)
    if len(text) > _MAX_INTEGER_CHARS and len(text.replace("_", "").lstrip("+-")) > _MAX_INTEGER_CHARS:
        shown = f"{text[:20]}… ({len(text):,} characters)"
    else:
        try:
            value = _SCALAR.yaml_constructors[_INT_TAG](_SCALAR, node)
        except (yaml.YAMLError, ValueError, OverflowError) as err:
            raise SpecError(f"cannot read value: {err}", _loc(node, file)) from None
        if abs(value) <= MAX_INTEGER:
            return value
        shown = text
    raise SpecError(
        f"integer {shown} is larger than the limit {MAX_INTEGER:.0e}",
        _loc(node, file),
        hint="no size or count in a network comes near this; check the number",
    )
