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
        raise SpecError(f"YAML syntax error: {problem}", loc) from None
    except yaml.YAMLError as err:  # e.g. reader errors on control characters
        raise SpecError(f"YAML error: {err}", Location(file, 1, 1)) from None
    finally:
        loader.dispose()
    if root is None:
        raise SpecError("the file is empty", Location(file, 1, 1), hint="a spec needs at least `name` and `layers`")
    budget = [MAX_VALUES]
    return _convert(root, file, budget)


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
        _SCALAR.flatten_mapping(node)  # merge keys (`<<: *base`)
        for key_node, value_node in node.value:
            key = _convert(key_node, file, budget)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise SpecError("mapping keys must be plain words", _loc(key_node, file))
            key = str(key)
            if key in result:
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
