"""Items -> spec YAML, laid out as the library's hand-written specs are: one line per layer
(`- conv: {out: 64, kernel: 7, stride: 2, padding: 3, bias: false}`), a bare `- relu` where an
item has nothing to say, groups and long items as indented mappings."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from archspec.importer.items import Item, same_value

WIDTH = 118  # a flow line longer than this is written as an indented mapping
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "none", "~"}


@dataclass
class BlockText:
    summary: str
    params: dict[str, Any]
    inputs: list[str]
    items: list[Item]


@dataclass
class SpecText:
    name: str
    summary: str
    inputs: dict[str, tuple[int, ...]]
    items: list[Item]
    blocks: dict[str, BlockText] = field(default_factory=dict)
    outputs: Any = None  # None: the last item; a reference; or {name: reference}


def write_spec(spec: SpecText) -> str:
    lines = [f"name: {scalar(spec.name)}", f"summary: {scalar(spec.summary)}",
             "inputs: " + flow({name: list(shape) for name, shape in spec.inputs.items()})]
    if spec.outputs is not None:
        lines.append(f"outputs: {flow(spec.outputs) if isinstance(spec.outputs, dict) else scalar(spec.outputs)}")
    if spec.blocks:
        lines.append("blocks:")
        for name, block in spec.blocks.items():
            lines.append(f"  {name}:")
            lines.append(f"    summary: {scalar(block.summary)}")
            if block.params:
                lines.append(f"    params: {flow(block.params)}")
            if block.inputs != ["input"]:
                lines.append(f"    inputs: {flow_value(block.inputs)}")
            lines.append("    layers:")
            lines += item_lines(block.items, 6)
    lines.append("layers:")
    lines += item_lines(spec.items, 2)
    return "\n".join(lines) + "\n"


def item_lines(items: list[Item], indent: int) -> list[str]:
    lines = []
    for item in items:
        lines += _item(item, indent)
    return lines


def _keys(item: Item) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    if item.name is not None:
        keys["name"] = item.name
    if item.refs is not None:
        keys["from"] = item.refs[0] if len(item.refs) == 1 else item.refs
    if item.repeat is not None:
        keys["repeat"] = item.repeat
    keys.update({k: v for k, v in item.args.items() if not (k in item.defaults and same_value(v, item.defaults[k]))})
    return keys


def _item(item: Item, indent: int) -> list[str]:
    pad = " " * indent
    keys = _keys(item)
    if item.layers is None:
        if not keys:
            return [f"{pad}- {item.callee}"]
        line = f"{pad}- {item.callee}: {flow(keys)}"
        if len(line) <= WIDTH:
            return [line]
        return [f"{pad}- {item.callee}:"] + [f"{pad}    {key}: {flow_value(value)}" for key, value in keys.items()]
    if len(item.layers) == 1 and item.layers[0].layers is None:
        inner = item.layers[0]
        inner_keys = _keys(inner)
        inner_text = f"{{{inner.callee}: {flow(inner_keys)}}}" if inner_keys else inner.callee
        line = f"{pad}- {item.callee}: {flow({**keys, 'layers': _Raw(f'[{inner_text}]')})}"
        if len(line) <= WIDTH:
            return [line]
    lines = [f"{pad}- {item.callee}:"] + [f"{pad}    {key}: {flow_value(value)}" for key, value in keys.items()]
    return lines + [f"{pad}    layers:"] + item_lines(item.layers, indent + 6)


class _Raw(str):
    """Text already in YAML form."""


def flow(mapping: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{key}: {flow_value(value)}" for key, value in mapping.items()) + "}"


def flow_value(value: Any) -> str:
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, dict):
        return flow(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flow_value(v) for v in value) + "]"
    return scalar(value)


def scalar(value: Any) -> str:
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
            return value
        return json.dumps(value)
    if isinstance(value, float):
        return yaml.safe_dump(value).removesuffix("\n...\n").strip()  # 1e-05 -> 1.0e-05, a float to YAML 1.1
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
