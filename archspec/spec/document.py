"""The spec document: its pydantic schema, and loading a file with its `extends` / `use` files.

A spec file is YAML with these top-level keys (the README's "Spec language" documents them): `name`,
`summary`, `paper`, `task`, `init`, `detection`, `extends`, `use`, `params`, `inputs`, `outputs`,
`blocks`, `layers`. `extends` and `use` paths are resolved by archspec.spec.includes (relative to
the file, or `archspec:PATH` in the library). Layer items are checked here only for their outer
form; each op's arguments are checked against the op's own schema when the IR is built (they may
be expressions over the parameters). The limits on what one spec reads (MAX_CHAIN, MAX_FILES, MAX_TOTAL_BYTES,
MAX_TOTAL_VALUES) add up over the spec and all its `extends` and `use` files.
"""
from __future__ import annotations

import hashlib
import keyword
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from archspec.errors import Location, SpecError, did_you_mean
from archspec.ops.merge import DEFAULT_MERGE, Fit
from archspec.spec.arguments import Merge, choices
from archspec.spec.detection_head import DetectionHead
from archspec.spec.includes import included_path, relocate, shown_path
from archspec.spec.init_scheme import InitChoice
from archspec.spec.yaml_source import MAX_VALUES, SourceList, SourceMap, TooManyValues, loc_of, parse_yaml_counted, read_text

# Limits over everything one spec reads (its `extends` and `use` files too): the per-file limits
# of yaml_source would otherwise multiply with the number of files.
MAX_CHAIN = 32  # files in one `extends` or `use` chain
MAX_FILES = 256  # files read for one spec
MAX_TOTAL_BYTES = 4 << 20  # 4 MiB of YAML over all those files
MAX_TOTAL_VALUES = MAX_VALUES  # values over all those files, aliases expanded: what one file may hold

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$"
ParamValue = Union[bool, int, float, str, list, None]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class BlockDef(_Strict):
    """A reusable, parameterised piece of graph: a sequence of `layers`, or parallel `branches`
    merged by `merge` (concat or add)."""

    summary: Optional[str] = None
    params: dict[str, ParamValue] = Field(default_factory=dict)  # None default = required
    inputs: list[str] = Field(default_factory=lambda: ["input"])
    output: Optional[str] = None  # the node giving the block's output; default: the last layer
    layers: Optional[list[Any]] = None
    branches: Optional[dict[str, Any]] = None
    merge: Merge = DEFAULT_MERGE
    fit: Fit = "none"


class SpecDocument(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    summary: Optional[str] = None
    paper: Optional[str] = None
    task: Optional[Literal["classification", "segmentation", "embedding", "detection"]] = None
    # how the lowered module's weights start (archspec.spec.init_scheme, archspec.lower.init)
    init: InitChoice = "torch"
    detection: Optional[DetectionHead] = None  # how a detector's output grid reads (spec.detection_head)
    extends: Optional[str] = None
    use: list[str] = Field(default_factory=list)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    inputs: dict[str, list[Union[int, str]]]
    outputs: Optional[Union[dict[str, str], list[str], str]] = None
    blocks: dict[str, BlockDef] = Field(default_factory=dict)
    layers: list[Any] = Field(min_length=1)


class BlockFile(_Strict):
    summary: Optional[str] = None
    use: list[str] = Field(default_factory=list)
    blocks: dict[str, BlockDef]


@dataclass
class LoadedSpec:
    """A validated document plus what the IR builder needs to locate things."""

    document: SpecDocument
    raw: SourceMap  # the YAML with locations, same structure as `document`
    path: str
    blocks: dict[str, tuple[BlockDef, SourceMap]] = field(default_factory=dict)  # with raw YAML
    # every file read (its own, `extends`, `use`): absolute path and SHA-256 of its bytes
    sources: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Reading:
    """What loading one spec has read so far, over all its files (MAX_FILES and the totals)."""

    files: int = 0
    bytes: int = 0
    values: int = 0
    sources: list[tuple[str, str]] = field(default_factory=list)


def load_spec(path: str | Path) -> LoadedSpec:
    path = Path(path)
    reading = _Reading()
    raw = _read_mapping(path, reading)
    raw, uses_from, uses_shown = _apply_extends(raw, path, str(path), [path.resolve()], reading)
    document = _validate(SpecDocument, raw, str(path))
    spec = LoadedSpec(document, raw, str(path), sources=reading.sources)
    _collect_blocks(spec, raw, str(path), source="spec")
    _load_uses(spec, raw, uses_from, [uses_from.resolve()], reading, uses_shown)
    return spec


def _read_mapping(path: Path, reading: _Reading, via: Location | None = None) -> SourceMap:
    """`via`: the `extends` / `use` entry that names this file, where a total is reported."""
    via = via or Location(str(path), 1, 1)
    reading.files += 1
    if reading.files > MAX_FILES:
        raise SpecError(f"the spec reads more than {MAX_FILES} files (its own, `extends` and `use`)", via,
                        hint="include fewer files; a block file can hold many blocks")
    text = read_text(path)
    data = text.encode("utf-8")  # the file's bytes again: read_text decodes strict UTF-8
    reading.bytes += len(data)
    reading.sources.append((os.path.abspath(path), hashlib.sha256(data).hexdigest()))
    if reading.bytes > MAX_TOTAL_BYTES:
        raise SpecError(f"the spec and the files it includes hold more than {MAX_TOTAL_BYTES:,} bytes together", via,
                        hint="include fewer or smaller files")
    left = MAX_TOTAL_VALUES - reading.values
    try:
        data, count = parse_yaml_counted(text, str(path), min(MAX_VALUES, left))
    except TooManyValues:
        if left >= MAX_VALUES:  # the file's own limit: its error says where in the file
            raise
        raise SpecError(f"the spec and the files it includes hold more than {MAX_TOTAL_VALUES:,} values together",
                        via, hint="include fewer or smaller files") from None
    reading.values += count
    if not isinstance(data, SourceMap):
        kind = "a list" if isinstance(data, list) else f"a single value ({type(data).__name__})"
        raise SpecError(
            f"the top level is {kind}; a spec is a mapping with `name`, `inputs` and `layers`",
            loc_of(data, Location(str(path), 1, 1)),
        )
    return data


def _check_chain(chain: list[Path], loc: Location, what: str) -> None:
    if len(chain) >= MAX_CHAIN:  # also keeps the recursion over the chain shallow
        raise SpecError(f"the `{what}` chain is longer than {MAX_CHAIN} files", loc,
                        hint=f"a chain of {MAX_CHAIN} files is almost certainly a mistake; include the files from fewer levels")


def _apply_extends(raw: SourceMap, path: Path, shown: str, chain: list[Path],
                   reading: _Reading) -> tuple[SourceMap, Path, str]:
    """`extends: base.yaml`: start from the base spec; this file's keys replace the base's,
    except `params` and `blocks`, which are merged key by key (a variant is a few lines).

    Also gives the file whose `use` list the merged spec holds, real and as shown (`shown` is the
    user's spelling of `path`): a `use` taken over from a base is relative to the base's folder."""
    if "extends" not in raw:
        return raw, path, shown
    base_path = included_path(path, raw["extends"], raw.value_loc("extends"), "extends")
    if base_path in chain:
        raise SpecError(
            "`extends` forms a cycle: " + " -> ".join(p.name for p in [*chain, base_path]),
            raw.value_loc("extends"),
        )
    _check_chain(chain, raw.value_loc("extends"), "extends")
    base = _read_mapping(base_path, reading, raw.value_loc("extends"))
    base_shown = shown_path(shown, raw["extends"], base_path)
    base, uses_from, uses_shown = _apply_extends(base, base_path, base_shown, [*chain, base_path], reading)
    merged = SourceMap(base, loc=raw.loc)
    merged.key_locs, merged.value_locs = dict(base.key_locs), dict(base.value_locs)
    for key, value in raw.items():
        if key == "extends":
            continue
        if key in ("params", "blocks") and isinstance(value, SourceMap) and isinstance(base.get(key), SourceMap):
            combined = SourceMap({**base[key], **value}, loc=value.loc)
            combined.key_locs = {**base[key].key_locs, **value.key_locs}
            combined.value_locs = {**base[key].value_locs, **value.value_locs}
            value = combined
        merged[key] = value
        merged.key_locs[key] = raw.key_loc(key)
        merged.value_locs[key] = raw.value_loc(key)
    if "use" in raw:  # this file's own `use` replaces the base's and is relative to this file
        uses_from, uses_shown = path, shown
    return merged, uses_from, uses_shown


def _collect_blocks(spec: LoadedSpec, raw: SourceMap, file: str, source: str) -> None:
    blocks_raw = raw.get("blocks") or {}
    document = spec.document if source == "spec" else _validate(BlockFile, raw, file)
    for name, block in document.blocks.items():
        if name in spec.blocks:
            raise SpecError(
                f"block '{name}' is defined twice",
                blocks_raw.key_loc(name) if isinstance(blocks_raw, SourceMap) else None,
                hint="rename one of them",
            )
        if (block.layers is None) == (block.branches is None):
            raise SpecError(
                f"block '{name}' needs exactly one of `layers` or `branches`",
                blocks_raw.key_loc(name),
            )
        spec.blocks[name] = (block, blocks_raw[name])


def _load_uses(spec: LoadedSpec, raw: SourceMap, path: Path, chain: list[Path], reading: _Reading,
               including_shown: str | None = None) -> None:
    """`including_shown`: how messages name `path` (the user's relative spelling, not the resolved path)."""
    including_shown = str(path) if including_shown is None else including_shown
    uses = raw.get("use") or []
    for index, text in enumerate(uses):
        loc = uses.item_loc(index) if isinstance(uses, SourceList) else raw.loc
        target = included_path(path, text, loc, "use")
        if target in chain:
            raise SpecError(
                "`use` forms a cycle: " + " -> ".join(p.name for p in [*chain, target]),
                loc,
                hint="a block file may not include itself, directly or through others",
            )
        _check_chain(chain, loc, "use")
        included = _read_mapping(target, reading, loc)
        shown = shown_path(including_shown, text, target)
        relocate(included, shown)
        _collect_blocks(spec, included, shown, source="use")
        _load_uses(spec, included, target, [*chain, target], reading, shown)


# --- pydantic errors -> located SpecErrors --------------------------------------------------------
def _validate(model: type[BaseModel], raw: SourceMap, file: str):
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise located_validation_error(err, raw, Location(file, 1, 1), model) from None


def locate(data: Any, path: tuple, default: Location) -> tuple[Location, bool]:
    """The location of `data[path[0]][path[1]]...`; second item: whether the key itself exists."""
    loc = loc_of(data, default)
    for part in path:
        if isinstance(data, SourceMap) and str(part) in data:
            loc = data.value_loc(str(part))
            data = data[str(part)]
        elif isinstance(data, SourceList) and isinstance(part, int) and 0 <= part < len(data):
            loc = data.item_loc(part)
            data = data[part]
        else:
            return loc, False
    return loc, True


def located_validation_error(err: ValidationError, raw: Any, default: Location, model: type[BaseModel]) -> SpecError:
    """The most useful pydantic error, as a located SpecError: unknown keys first (they often
    explain a `missing` one: `layerz` for `layers`), then missing keys, then wrong values."""
    errors = sorted(err.errors(), key=lambda e: {"extra_forbidden": 0, "missing": 1}.get(e["type"], 2))
    first = errors[0]
    path = tuple(p for p in first["loc"] if not (isinstance(p, str) and p in _UNION_TAGS))
    loc, _ = locate(raw, path, default)
    where = ".".join(str(p) for p in path)
    if first["type"] == "extra_forbidden":
        container, _ = _container(raw, path[:-1])
        if isinstance(container, SourceMap):
            loc = container.key_loc(str(path[-1]))
        known = _known_fields(model, path[:-1])
        hint = did_you_mean(str(path[-1]), known) or (f"known keys: {', '.join(known)}" if known else None)
        return SpecError(f"unknown key '{path[-1]}'", loc, hint=hint)
    if first["type"] == "missing":
        return SpecError(f"missing required key '{where}'", loc)
    if path and str(path[0]) in _SHAPES_OF_KEYS and len(path) <= 2:
        return SpecError(f"'{path[0]}' must be {_SHAPES_OF_KEYS[str(path[0])]}", loc)
    if first["type"] == "literal_error":  # `task: clasification`, `merge: concta`
        allowed = choices(_field_annotation(model, path))
        value = first.get("input")
        return SpecError(f"'{where}' must be one of {', '.join(map(repr, allowed))}, not {value!r}", loc,
                         hint=did_you_mean(value, allowed) if isinstance(value, str) else None)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "string_pattern_mismatch" and path and path[-1] == "name":
        message = "a name is 1-64 letters, digits, '_', '.' or '-', starting with a letter, digit or '_'"
    return SpecError(f"'{where}': {message}", loc, hint=getattr(first.get("ctx", {}).get("error"), "hint", None))


# pydantic names union members in error locations (`outputs.dict[str,str]`); they are not keys
_UNION_TAGS = {"dict[str,str]", "list[str]", "str", "int", "list[union[int,str]]", "bool", "float", "list", "none", "mapping"}

# what the top-level keys whose type is a union look like, for errors that pydantic would
# otherwise report once per union member
_SHAPES_OF_KEYS = {
    "outputs": "a node name, a list of node names, or a mapping of output name to node name",
    "inputs": "a mapping of input name to shape, e.g. {image: [3, 224, 224]}",
    "params": "a mapping of parameter name to default value (numbers, booleans, words or lists)",
}


def _container(raw: Any, path: tuple) -> tuple[Any, bool]:
    for part in path:
        if isinstance(raw, SourceMap) and str(part) in raw:
            raw = raw[str(part)]
        elif isinstance(raw, SourceList) and isinstance(part, int) and 0 <= part < len(raw):
            raw = raw[part]
        else:
            return raw, False
    return raw, True


def _known_fields(model: type[BaseModel], path: tuple) -> list[str]:
    # walk down nested models (e.g. blocks.<name>) to list the keys that are allowed there
    current: Any = model
    for part in path:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if fields and part in fields:
            annotation = fields[part].annotation
            current = _inner_model(annotation)
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _field_annotation(model: type[BaseModel], path: tuple) -> Any:
    """The annotation of the field at `path` (keys of nested models; list indexes and mapping keys skipped)."""
    current: Any = model
    annotation = None
    for part in path:
        fields = getattr(current, "model_fields", None)
        if fields and isinstance(part, str) and part in fields:
            annotation = fields[part].annotation
            current = _inner_model(annotation)
    return annotation


def _inner_model(annotation: Any):
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def check_name(name: Any, loc: Location) -> str:
    if isinstance(name, bool) or not isinstance(name, (str, int)) or not re.match(r"^[A-Za-z0-9_\-]{1,64}$", str(name)):
        raise SpecError(
            f"'{name}' is not a valid node name",
            loc,
            hint="names are 1-64 letters, digits, '_' or '-' (dots separate scopes and are not allowed)",
        )
    if keyword.iskeyword(str(name)):
        # a module path part like `class` or `None` breaks the generated forward (`self.class(x)`)
        raise SpecError(f"'{name}' is a Python keyword and cannot be a name", loc, hint="choose another name")
    return str(name)
