"""`archspec diff OLD NEW`: what changes between two specs, or one spec under two `--set`s.

- nodes, matched by name (module path): added, removed, changed (op, arguments, output shape,
  input shapes, trainable or weight owner differ; each difference is listed) and rewired (the
  same node fed from other nodes). Added, removed and changed nodes carry their parameter, MAC,
  FLOP and activation-memory deltas, which sum to the total deltas;
- totals old / new / delta, memory peaks included;
- checkpoint compatibility, from the static tensor lists (parameters and buffers keyed
  `module.tensor` exactly like the lowered module's state_dict): the tensors of OLD that still
  load into NEW (same name, same shape), those whose shape changes, NEW's new tensors and OLD's
  tensors that disappear. `new.load_state_dict({k: old[k] for k in loads}, strict=False)` then
  loads exactly the `loads` set.

No torch: it is all static.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, List, Optional

import typer

from archspec.commands.common import (
    BatchOption,
    DtypeOption,
    InputOption,
    OptimizerOption,
    SetOption,
    check_choice,
    check_memory_options,
    handles_errors,
    parse_inputs,
    parse_sets,
    print_result,
    spec_file,
)

FORMAT_VERSION = 1
NODE_FIGURES = ("params", "macs", "flops", "activation_bytes")


# --- loading both sides ----------------------------------------------------------------------------
class Side:
    """One side of the diff: the spec compiled and analysed under its parameters and inputs."""

    def __init__(self, path: Path, sets: dict[str, Any], inputs: list[str], batch: int, dtype: str, optimizer: str):
        from archspec.passes.memory import DTYPE_BYTES
        from archspec import pipeline

        self.path = path
        self.sets = sets
        compiled = pipeline.compile(spec_file(path), sets, parse_inputs(inputs), batch=batch)
        self.ir = compiled.ir
        self.analysis = compiled.analysis
        self.memory = compiled.memory(dtype, optimizer)
        self.width = DTYPE_BYTES[dtype]
        self.layers = {layer.name: layer for layer in self.analysis.layers}

    def node_figures(self, name: str) -> dict[str, int]:
        layer = self.layers.get(name)
        if layer is None:  # a graph input: no parameters, no work, not counted as an activation
            return dict.fromkeys(NODE_FIGURES, 0)
        f = layer.figures
        return {"params": f.params, "macs": f.macs, "flops": f.flops, "activation_bytes": f.activations * self.width}

    def node_facts(self, name: str) -> dict[str, Any]:
        """What a node is, for comparing: op, arguments, shapes, trainable, weight owner."""
        node = self.ir.node(name)
        args = {} if node.is_input else node.args.model_dump(mode="json")
        shapes = [list(self.ir.shapes[value]) for value in node.values]
        return {
            "op": node.op,
            "args": args,
            "output_shape": shapes[0] if len(shapes) == 1 else shapes,  # a split: every output's shape
            "input_shapes": [list(self.ir.shapes[i]) for i in node.inputs],
            "trainable": node.trainable,
            "module": node.module,
            "inputs": list(node.inputs),
        }

    def tensors(self) -> dict[str, tuple[int, ...]]:
        """Parameter and buffer tensors as the state_dict names them, in module order."""
        from archspec.ops.registry import tensor_key

        found: dict[str, tuple[int, ...]] = {}
        for layer in self.analysis.layers:
            for key, shape in {**layer.tensors, **layer.buffer_tensors}.items():
                found[tensor_key(layer.module, key)] = tuple(shape)
        return found

    def describe(self) -> dict[str, Any]:
        a = self.analysis
        return {
            "name": a.name,
            "path": str(self.path),
            "set": self.sets,
            "inputs": {k: list(v) for k, v in a.inputs.items()},
            "outputs": {k: list(v) for k, v in a.outputs.items()},
        }


# --- the diff as data --------------------------------------------------------------------------------
def changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Field-by-field differences of two nodes' facts (arguments one by one). A node whose only
    difference is `inputs` (fed from other nodes, nothing else different) is "rewired"."""
    found = []
    if old["op"] != new["op"]:
        found.append({"field": "op", "old": old["op"], "new": new["op"]})
    for key in list(old["args"]) + [k for k in new["args"] if k not in old["args"]]:
        before, after = old["args"].get(key), new["args"].get(key)
        if before != after:
            found.append({"field": f"args.{key}", "old": before, "new": after})
    for key in ("input_shapes", "output_shape", "trainable", "module", "inputs"):
        if old[key] != new[key]:
            found.append({"field": key, "old": old[key], "new": new[key]})
    return found


def figures_delta(old: dict[str, int], new: dict[str, int]) -> dict[str, int]:
    return {key: new[key] - old[key] for key in NODE_FIGURES}


def node_order(old_order: list[str], new_order: list[str]) -> list[str]:
    """New's execution order, each removed node placed after the last node before it (in old's
    order) that NEW still has."""
    kept = set(new_order)
    after: dict[str | None, list[str]] = {}
    anchor: str | None = None
    for name in old_order:
        if name in kept:
            anchor = name
        else:
            after.setdefault(anchor, []).append(name)
    order = list(after.get(None, []))
    for name in new_order:
        order.append(name)
        order.extend(after.get(name, []))
    return order


def diff_json(old: Side, new: Side) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    counts = {"added": 0, "removed": 0, "changed": 0, "rewired": 0, "unchanged": 0}
    for name in node_order(old.ir.order, new.ir.order):
        in_old, in_new = name in old.ir.shapes, name in new.ir.shapes
        if in_old and in_new:
            before, after = old.node_facts(name), new.node_facts(name)
            found = changes(before, after)
            if not found:
                counts["unchanged"] += 1
                continue
            status = "rewired" if [c["field"] for c in found] == ["inputs"] else "changed"
            entry = {"name": name, "status": status, "op": after["op"], "changes": found}
            entry["old"], entry["new"] = old.node_figures(name), new.node_figures(name)
        else:
            side = new if in_new else old
            status = "added" if in_new else "removed"
            zero = dict.fromkeys(NODE_FIGURES, 0)
            facts = side.node_facts(name)
            entry = {"name": name, "status": status, "op": facts["op"], "output_shape": facts["output_shape"], "changes": []}
            entry["old"], entry["new"] = (zero, side.node_figures(name)) if in_new else (side.node_figures(name), zero)
        entry["delta"] = figures_delta(entry["old"], entry["new"])
        counts[status] += 1
        nodes.append(entry)
    from archspec.render.figures import totals_figures

    before, after = totals_figures(old.analysis, old.memory), totals_figures(new.analysis, new.memory)
    return {
        "format_version": FORMAT_VERSION,
        "batch": old.analysis.batch,
        "dtype": old.memory.dtype,
        "optimizer": old.memory.optimizer,
        "old": old.describe(),
        "new": new.describe(),
        "counts": counts,
        "nodes": nodes,
        "totals": {key: {"old": before[key], "new": after[key], "delta": after[key] - before[key]} for key in before},
        "checkpoint": checkpoint_json(old.tensors(), new.tensors()),
    }


def checkpoint_json(old: dict[str, tuple], new: dict[str, tuple]) -> dict[str, Any]:
    loads = [{"key": k, "shape": list(s)} for k, s in new.items() if old.get(k) == s]
    changed = [{"key": k, "old": list(s), "new": list(new[k])} for k, s in old.items() if k in new and new[k] != s]
    added = [{"key": k, "shape": list(s)} for k, s in new.items() if k not in old]
    removed = [{"key": k, "shape": list(s)} for k, s in old.items() if k not in new]
    elements = lambda items: sum(math.prod(i["shape"]) for i in items)  # noqa: E731
    return {
        "summary": {
            "old_tensors": len(old),
            "new_tensors": len(new),
            "loads": len(loads),
            "changed_shape": len(changed),
            "new": len(added),
            "removed": len(removed),
            "loaded_elements": elements(loads),
            "new_elements": sum(math.prod(s) for s in new.values()),
        },
        "loads": loads,
        "changed_shape": changed,
        "new": added,
        "removed": removed,
    }


# --- rendering ---------------------------------------------------------------------------------------
def _value(value: Any) -> str:
    from archspec.render.figures import format_shape

    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return format_shape(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) if value else "none"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) or value is None else str(value)


def change_text(entry: dict[str, Any]) -> str:
    if entry["status"] in ("added", "removed"):
        return f"output {_value(entry['output_shape'])}"
    labels = {"output_shape": "output", "input_shapes": "input", "inputs": "from"}
    parts = []
    for c in entry["changes"]:
        label = labels.get(c["field"], c["field"].removeprefix("args."))
        old, new = c["old"], c["new"]
        if c["field"] == "input_shapes" and len(old) == len(new) == 1:
            old, new = old[0], new[0]  # one input: its shape, without brackets
        parts.append(f"{label} {_value(old)} → {_value(new)}")
    return "; ".join(parts)


def node_rows(data: dict) -> list[list[str]]:
    from archspec.render.figures import FIGURES

    marks = {"added": "+", "removed": "-", "changed": "~", "rewired": ">"}
    return [
        [
            marks[e["status"]],
            e["name"],
            e["op"],
            change_text(e),
            FIGURES["params"].delta(e["delta"]["params"]),
            FIGURES["macs"].delta(e["delta"]["macs"]),
            FIGURES["activation_bytes"].delta(e["delta"]["activation_bytes"]),
        ]
        for e in data["nodes"]
    ]


NODE_HEADERS = ["", "Node", "Op", "What changed", "Δ Params", "Δ MACs", "Δ Activation memory"]


def total_rows(data: dict) -> list[list[str]]:
    from archspec.render.figures import TOTALS

    rows = []
    for figure in TOTALS:
        if figure.in_tables:
            t = data["totals"][figure.key]
            rows.append([figure.title, figure.text(t["old"]), figure.text(t["new"]), figure.delta(t["delta"])])
    return rows


def checkpoint_lines(data: dict) -> tuple[str, list[tuple[str, list[str]]]]:
    c = data["checkpoint"]
    s = c["summary"]
    headline = (
        f"{s['loads']} of OLD's {s['old_tensors']} tensors still load into NEW (same name and shape; "
        f"{s['loaded_elements']:,} of NEW's {s['new_elements']:,} elements); {s['changed_shape']} change shape, "
        f"{s['new']} are new, {s['removed']} disappear"
    )
    sections = [
        ("change shape", [f"{i['key']}  {_value(i['old'])} → {_value(i['new'])}" for i in c["changed_shape"]]),
        ("new in NEW", _by_module(c["new"])),
        ("disappear from OLD", _by_module(c["removed"])),
    ]
    return headline, [(title, items) for title, items in sections if items]


def _by_module(items: list[dict]) -> list[str]:
    """One line per module: `layer1.2.bn1  weight 64, bias 64, running_mean 64, ...`."""
    modules: dict[str, list[str]] = {}
    for item in items:
        module, _, tensor = item["key"].rpartition(".")
        modules.setdefault(module, []).append(f"{tensor} {_value(item['shape'])}")
    return [f"{module}  {', '.join(tensors)}" for module, tensors in modules.items()]


def _title(data: dict) -> str:
    def side(d):
        sets = ", ".join(f"{k}={v}" for k, v in d["set"].items())
        return d["name"] + (f" [{sets}]" if sets else "")

    return f"{side(data['old'])} → {side(data['new'])}"


def _counts_line(data: dict) -> str:
    c = data["counts"]
    return f"{c['added']} added, {c['removed']} removed, {c['changed']} changed, {c['rewired']} rewired, {c['unchanged']} unchanged nodes"


def render_table(data: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    from archspec.render.figures import shapes_text
    from archspec.render.terminal import console

    out = console()
    out.print(f"[bold]diff {escape(_title(data))}[/bold] (batch {data['batch']}, {data['dtype']}, {data['optimizer']})")
    out.print(f"inputs {shapes_text(data['old']['inputs'])} → {shapes_text(data['new']['inputs'])}")
    out.print(_counts_line(data))
    if data["nodes"]:
        table = Table(header_style="bold")
        for index, header in enumerate(NODE_HEADERS):
            table.add_column(header, justify="right" if index >= 4 else "left", no_wrap=index != 3)
        for row in node_rows(data):
            table.add_row(*(escape(cell) for cell in row))
        out.print(table)
    totals = Table(title="totals", title_justify="left", header_style="bold")
    for index, header in enumerate(["", "OLD", "NEW", "Δ"]):
        totals.add_column(header, justify="right" if index else "left", no_wrap=True)
    for row in total_rows(data):
        totals.add_row(*row)
    out.print(totals)
    headline, sections = checkpoint_lines(data)
    out.print(f"[bold]checkpoint[/bold]: {escape(headline)}")
    for title, items in sections:
        out.print(f"  {title}:")
        for item in items:
            out.print(f"    {escape(item)}", highlight=False)


def render_markdown(data: dict) -> str:
    lines = [f"# diff {_title(data)}", "", f"batch {data['batch']}, {data['dtype']}, {data['optimizer']}; {_counts_line(data)}", ""]
    if data["nodes"]:
        lines += ["| " + " | ".join(NODE_HEADERS) + " |", "|---|---|---|---|---:|---:|---:|"]
        lines += [f"| {r[0]} | `{r[1]}` | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {r[6]} |" for r in node_rows(data)]
        lines.append("")
    lines += ["| | OLD | NEW | Δ |", "|---|---:|---:|---:|"] + ["| " + " | ".join(r) + " |" for r in total_rows(data)]
    headline, sections = checkpoint_lines(data)
    lines += ["", "## Checkpoint", "", headline]
    for title, items in sections:
        lines += ["", f"{title}:", ""] + [f"- `{item.split('  ')[0]}` {item.split('  ', 1)[1]}" for item in items]
    return "\n".join(lines) + "\n"


# --- the command ---------------------------------------------------------------------------------------
@handles_errors
def command(
    old: Path = typer.Argument(..., help="The old spec."),
    new: Optional[Path] = typer.Argument(None, help="The new spec (default: OLD again, with --old-set / --new-set)."),
    output_format: str = typer.Option("table", "--format", help="table, json or markdown."),
    sets: Optional[List[str]] = SetOption,
    old_sets: Optional[List[str]] = typer.Option(None, "--old-set", help="Override a parameter of OLD only: --old-set width=0.5 (repeatable, after --set)."),
    new_sets: Optional[List[str]] = typer.Option(None, "--new-set", help="Override a parameter of NEW only: --new-set width=1.0 (repeatable, after --set)."),
    inputs: Optional[List[str]] = InputOption,
    old_inputs: Optional[List[str]] = typer.Option(None, "--old-input", help="Input shape of OLD only, CxHxW or NAME=CxHxW (after --input)."),
    new_inputs: Optional[List[str]] = typer.Option(None, "--new-input", help="Input shape of NEW only, CxHxW or NAME=CxHxW (after --input)."),
    batch: int = BatchOption,
    dtype: str = DtypeOption,
    optimizer: str = OptimizerOption,
) -> None:
    """Nodes added, removed and changed with their parameter, MAC and memory deltas, and which checkpoint tensors of OLD still load into NEW."""
    check_choice("--format", output_format, ["table", "json", "markdown"])
    optimizer = check_memory_options(dtype, optimizer)
    common = parse_sets(sets)
    before = Side(old, {**common, **parse_sets(old_sets)}, [*(inputs or []), *(old_inputs or [])], batch, dtype, optimizer)
    after = Side(new or old, {**common, **parse_sets(new_sets)}, [*(inputs or []), *(new_inputs or [])], batch, dtype, optimizer)
    data = diff_json(before, after)
    print_result(data, output_format, render_markdown, render_table)
