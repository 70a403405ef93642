"""A checkpoint's `build` metadata (what `train` wrote: the spec's path, parameters, input shapes,
task and class names), checked like a spec before anything trusts it: it drives `evaluate`,
`detect`, `export --weights` and `report --run`. Torch-free, so `report --run` reads it without
torch (archspec.runs)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from archspec.errors import ArchspecError
from archspec.ir.build import MAX_INPUT_SIZE  # the same limits as a spec's inputs and integers
from archspec.passes.shapes import MAX_RANK
from archspec.spec.yaml_source import MAX_INTEGER


def listed(names: list[str]) -> str:
    """The first 8 names (each cut at 200 characters), then how many there are in all."""
    return ", ".join(short(n, 200) for n in names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")


def short(text: str, limit: int = 80) -> str:
    """A name from a crafted file, on one line and bounded, for a message."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


# --- the build metadata: drives evaluate, so it is checked like a spec ------------------------------------
BUILD_KEYS = ("spec", "params", "inputs", "task", "class_names")
MAX_CLASS_NAMES = 100_000
MAX_CLASS_NAME = 200  # characters
MAX_PARAM_VALUES = 10_000
MAX_PARAM_DEPTH = 16
MAX_PARAM_CHARS = 10_000  # one string value, as for a --set value


def build_metadata(metadata: dict[str, str], path: Path) -> dict[str, Any]:
    """The `build` entry of a checkpoint's metadata (what `train` wrote: the spec's path, params,
    input shapes and task), checked: a JSON object of the known keys, `params` a mapping of plain
    values, `inputs` a mapping of input names to lists of 1 to 1,000,000. Missing: empty."""
    where = f"checkpoint {path}: metadata 'build'"
    text = metadata.get("build")
    if text is None:
        return {"spec": None, "params": {}, "inputs": {}, "class_names": []}
    try:
        build = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ArchspecError(f"{where} is not JSON: {str(err)[:200]}") from None
    if not isinstance(build, dict):
        raise ArchspecError(f"{where} must be a JSON object, not {_json_kind(build)}")
    unknown = [key for key in build if key not in BUILD_KEYS]
    if unknown:
        raise ArchspecError(f"{where}: unknown keys {listed([repr(k)[:80] for k in unknown])} "
                            f"(known: {', '.join(BUILD_KEYS)})")
    for key in ("spec", "task"):
        if key in build and not isinstance(build[key], str):
            raise ArchspecError(f"{where}: '{key}' must be a string, not {_json_kind(build[key])}")
    params = build.get("params", {})
    if not isinstance(params, dict):
        raise ArchspecError(f"{where}: 'params' must be a mapping of parameter names to values, not {_json_kind(params)}")
    counter = [0]
    for name, value in params.items():
        _check_plain(value, f"{where}: params.{short(name)}", 1, counter)
    names = build.get("class_names", [])
    if (not isinstance(names, list) or len(names) > MAX_CLASS_NAMES
            or not all(isinstance(n, str) and len(n) <= MAX_CLASS_NAME for n in names)):
        raise ArchspecError(f"{where}: 'class_names' must be a list of at most {MAX_CLASS_NAMES:,} names of "
                            f"at most {MAX_CLASS_NAME} characters")
    return {"spec": build.get("spec"), "params": params, "inputs": _build_inputs(build.get("inputs", {}), where),
            "class_names": names}


def _build_inputs(inputs: Any, where: str) -> dict[str, tuple[int, ...]]:
    if not isinstance(inputs, dict):
        raise ArchspecError(f"{where}: 'inputs' must be a mapping of input names to shapes, not {_json_kind(inputs)}")
    shapes = {}
    for name, shape in inputs.items():
        ok = (isinstance(shape, list) and 1 <= len(shape) <= MAX_RANK
              and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_INPUT_SIZE for d in shape))
        if not ok:
            raise ArchspecError(f"{where}: inputs.{short(name)} must be a list of 1 to {MAX_RANK} sizes from 1 to {MAX_INPUT_SIZE:,}, "
                                f"like [3, 32, 32], not {json.dumps(shape)[:80]}")
        shapes[name] = tuple(shape)
    return shapes


def _check_plain(value: Any, where: str, depth: int, counter: list[int]) -> None:
    """A parameter value as a spec could hold it: null, a boolean, a bounded number, a string, or
    lists / mappings of those (bounded in depth and count)."""
    counter[0] += 1
    if counter[0] > MAX_PARAM_VALUES or depth > MAX_PARAM_DEPTH:
        raise ArchspecError(f"{where}: too large (over {MAX_PARAM_VALUES:,} values or {MAX_PARAM_DEPTH} levels)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ArchspecError(f"{where}: {value} is not a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
        raise ArchspecError(f"{where}: {str(value)[:40]}... is beyond 1e18")
    if isinstance(value, str) and len(value) > MAX_PARAM_CHARS:
        raise ArchspecError(f"{where}: a string of {len(value):,} characters (the limit is {MAX_PARAM_CHARS:,})")
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]", depth + 1, counter)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_plain(item, f"{where}.{short(key)}", depth + 1, counter)
    elif value is not None and not isinstance(value, (bool, int, float, str)):
        raise ArchspecError(f"{where}: {_json_kind(value)} is not a plain value")


def _json_kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
