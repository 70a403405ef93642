"""Safe YAML reading that remembers where every value came from.

PyYAML's safe composer turns the text into a node tree with marks; we convert that tree ourselves
into `SourceMap` / `SourceList` (a dict / list that also knows the location of each entry), so
that any later stage can point at the exact line and column. Reading is safe by construction:
only the plain YAML tags are accepted (no `!!python/...`), duplicate keys are refused, and the
number of values an alias may expand to is bounded (alias bombs).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from archspec.errors import Location, SpecError

MAX_FILE_BYTES = 1 << 20  # 1 MiB: the largest spec in the library is ~10 KiB
MAX_VALUES = 200_000  # values after alias expansion
MAX_NESTING = 100  # nested lists/mappings (deeper input crashes libyaml's recursive composer)

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
    """The file's text, refusing what is too large or not UTF-8, with a located error."""
    shown = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"no such file: {shown}", hint="check the path") from None
    except IsADirectoryError:
        raise SpecError(f"{shown} is a folder, not a spec file") from None
    except OSError as err:
        raise SpecError(f"cannot read {shown}: {err.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(
            f"file is {len(data):,} bytes; specs are limited to {MAX_FILE_BYTES:,} bytes",
            Location(shown, 1, 1),
            hint="split it into a spec and block files (`use:`)",
        )
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


def parse_yaml(text: str, file: str) -> Any:
    """Parse one YAML document into SourceMap/SourceList/scalars."""
    loader = _Loader(text)
    try:
        _check_nesting(text, file)
        root = loader.get_single_node()
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
    if root is None:
        raise SpecError("the file is empty", Location(file, 1, 1), hint="a spec needs at least `name` and `layers`")
    _check_expansion(root, file)
    budget = [MAX_VALUES]
    return _convert(root, file, budget)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node, file: str) -> None:
    """Refuse an alias bomb before expanding it: count the values each node stands for (aliases
    share nodes, so this is linear in the text) and point at the node that blows up."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) not in sizes:
            sizes[id(node)] = 1 + sum(size(child) for child in _children(node))
        return sizes[id(node)]

    if size(root) <= MAX_VALUES:
        return
    node = root
    while True:  # down to the smallest node that is too large: where the aliases multiply
        bigger = next((child for child in _children(node) if size(child) > MAX_VALUES), None)
        if bigger is None:
            break
        node = bigger
    raise SpecError(
        f"the document expands to more than {MAX_VALUES:,} values (an alias bomb?)",
        _loc(node, file),
        hint="avoid deeply nested YAML aliases",
    )


def _check_nesting(text: str, file: str) -> None:
    """Refuse lists/mappings nested deeper than MAX_NESTING before composing: libyaml's composer
    recurses per level (old releases crash on deep input) and our conversion recurses too.

    The limit must be ours whatever YAML library is installed: libyaml 0.2.6 gives up at 1,000
    levels with its own message, and its scanner looks that far ahead before it hands out the
    first event. So when the fast parser fails, the pure-Python one (no nesting limit of its own,
    and lazy: it reads at most a line or 1,024 characters ahead) looks again; only if that finds
    nothing too deep does the fast parser's error stand."""
    try:
        _first_too_deep(yaml.parse(text, Loader=_Loader), file)
    except yaml.YAMLError:
        if _Loader is yaml.SafeLoader:
            raise
        try:
            _first_too_deep(yaml.parse(text, Loader=yaml.SafeLoader), file)
        except yaml.YAMLError:
            pass
        raise


def _first_too_deep(events, file: str) -> None:
    """Walk the event stream (lazily) and stop at the first list or mapping too deep."""
    depth = 0
    for event in events:
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_NESTING:
                mark = event.start_mark
                raise SpecError(
                    f"lists and mappings are nested more than {MAX_NESTING} levels deep",
                    Location(file, mark.line + 1, mark.column + 1),
                    hint="a spec this deep is almost certainly a mistake; use blocks for structure",
                )
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _loc(node: yaml.Node, file: str) -> Location:
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)


_SCALAR = yaml.SafeLoader("")  # only its scalar constructors are used


def _convert(node: yaml.Node, file: str, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise SpecError(
            f"the document expands to more than {MAX_VALUES:,} values (an alias bomb?)",
            _loc(node, file),
            hint="avoid deeply nested YAML aliases",
        )
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
    try:
        return _SCALAR.yaml_constructors[node.tag](_SCALAR, node)
    except (yaml.YAMLError, ValueError, OverflowError) as err:
        raise SpecError(f"cannot read value: {err}", _loc(node, file)) from None
