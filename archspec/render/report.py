"""Analysis -> plain data (the JSON contract) and rows for tables (terminal and Markdown).

The JSON contract (README, "JSON report") is built here and nowhere else; the terminal and
Markdown renderers read the same rows so the three never disagree.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from archspec.ops.common import format_shape
from archspec.passes.counts import Analysis, Figures

JSON_VERSION = 1


def analysis_json(analysis: Analysis, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    totals = analysis.totals
    meta = meta or {}
    data = {
        "format_version": JSON_VERSION,
        "name": analysis.name,
        "summary": meta.get("summary"),
        "paper": meta.get("paper"),
        "batch": analysis.batch,
        "inputs": {k: list(v) for k, v in analysis.inputs.items()},
        "outputs": {k: list(v) for k, v in analysis.outputs.items()},
        "params": {"total": totals.params, "trainable": totals.trainable, "frozen": totals.params - totals.trainable},
        "buffers": totals.buffers,
        "macs": totals.macs,
        "flops": totals.flops,
        "all_ops": totals.all_ops,
        "activations": {"elements": totals.activations, "bytes": totals.activations * analysis.dtype_bytes},
        "depth": analysis.depth,
        "layers": [
            {
                "name": layer.name,
                "op": layer.op,
                "module": layer.module,
                "inputs": layer.inputs,
                "blocks": list(layer.scopes),
                "output_shape": list(layer.output_shape),
                "params": layer.figures.params,
                "trainable": layer.figures.trainable,
                "buffers": layer.figures.buffers,
                "macs": layer.figures.macs,
                "flops": layer.figures.flops,
                "all_ops": layer.figures.all_ops,
                "activations": layer.figures.activations,
            }
            for layer in analysis.layers
        ],
        "blocks": [
            {
                "name": block.name,
                "kind": block.kind,
                "depth": block.depth,
                "output_shape": list(block.output_shape),
                "layers": block.layers,
                "params": block.figures.params,
                "trainable": block.figures.trainable,
                "buffers": block.figures.buffers,
                "macs": block.figures.macs,
                "flops": block.figures.flops,
                "all_ops": block.figures.all_ops,
                "activations": block.figures.activations,
            }
            for block in analysis.blocks
        ],
    }
    if analysis.fields is not None:
        for layer in data["layers"]:
            layer.update(field_json(analysis.fields.get(layer["name"])))
    if analysis.memory is not None:
        data["memory"] = memory_json(analysis.memory)
        per_layer = {m.name: m for m in analysis.memory.layers}
        for layer in data["layers"]:
            m = per_layer[layer["name"]]
            layer["memory"] = {"params": m.params, "gradients": m.gradients, "optimizer": m.optimizer, "saved": m.saved}
    return data


def memory_json(memory) -> dict[str, Any]:
    """Bytes; see archspec.passes.memory for what each figure includes."""
    return {
        "batch": memory.batch,
        "dtype": memory.dtype,
        "optimizer": memory.optimizer,
        "params": memory.params,
        "buffers": memory.buffers,
        "gradients": memory.gradients,
        "optimizer_state": memory.optimizer_state,
        "saved_activations": memory.saved_activations,
        "inference_peak": memory.inference_peak,
        "training_peak": memory.training_peak,
    }


def field_json(field) -> dict[str, Any]:
    """`receptive_field` (size per axis), `jump` and `offset` of a node, in input pixels."""
    if field is None:
        return {"receptive_field": None, "jump": None, "offset": None}
    number = lambda v: int(v) if float(v).is_integer() else round(float(v), 4)  # noqa: E731
    return {
        "receptive_field": [number(v) for v in field.size],
        "jump": [number(v) for v in field.jump],
        "offset": [number(v) for v in field.offset],
        "global": field.is_global,
    }


def field_text(field) -> str:
    if field is None:
        return "-"
    data = field_json(field)
    size = "x".join(str(v) for v in data["receptive_field"])
    return f"{size} (whole)" if field.is_global else f"{size} /{'x'.join(str(v) for v in data['jump'])}"


@dataclass
class Row:
    name: str
    op: str
    output_shape: str
    figures: Figures
    level: int  # nesting depth, for indentation
    field: Any = None  # receptive field of the row's (last) node
    saved: int | None = None  # activation bytes kept for backward (with --memory)


def layer_rows(analysis: Analysis, depth: int | None = None) -> list[Row]:
    """One row per leaf op, or, with `depth`, one row per block at that depth (collapsed)."""
    rows: list[Row] = []
    fields = analysis.fields or {}
    saved = {m.name: m.saved for m in analysis.memory.layers} if analysis.memory else {}
    blocks = {block.name: block for block in analysis.blocks}
    shown: set[str] = set()
    for layer in analysis.layers:
        if depth is not None and len(layer.scopes) >= depth > 0:
            block = blocks[layer.scopes[depth - 1]]
            if block.name not in shown:
                shown.add(block.name)
                rows.append(Row(block.name, block.kind, format_shape(block.output_shape), block.figures, depth - 1))
            rows[-1].field = fields.get(layer.name)  # the block's last node gives its field
            rows[-1].saved = (rows[-1].saved or 0) + saved.get(layer.name, 0)
            continue
        rows.append(
            Row(layer.name, layer.op, format_shape(layer.output_shape), layer.figures, len(layer.scopes),
                fields.get(layer.name), saved.get(layer.name))
        )
    return rows


def count(value: int) -> str:
    return f"{value:,}"


def human(value: int) -> str:
    """1,234,567 -> '1.23 M' for summaries."""
    for unit, size in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(value) >= size:
            return f"{value / size:.2f} {unit}"
    return str(value)


def human_bytes(value: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value} B"


def columns(flops: bool, all_ops: bool, fields: bool = False, memory: bool = False) -> list[tuple[str, Any]]:
    """(header, Row -> text) for the figure columns shown."""
    cols: list[tuple[str, Any]] = [("Params", lambda r: count(r.figures.params))]
    if flops:
        cols += [("MACs", lambda r: count(r.figures.macs)), ("FLOPs", lambda r: count(r.figures.flops))]
    if all_ops:
        cols.append(("All ops", lambda r: count(r.figures.all_ops)))
    if fields:
        cols.append(("RF /jump", lambda r: field_text(r.field)))
    if memory:
        cols.append(("Saved for backward", lambda r: human_bytes(r.saved or 0)))
    return cols


def totals_lines(analysis: Analysis) -> list[tuple[str, str]]:
    t = analysis.totals
    shapes = lambda d: ", ".join(f"{k} {format_shape(v)}" for k, v in d.items())  # noqa: E731
    return _count_lines(analysis, t, shapes) + (memory_lines(analysis.memory) if analysis.memory else [])


def memory_lines(m) -> list[tuple[str, str]]:
    return [
        (f"memory ({m.dtype}, batch {m.batch}, {m.optimizer})", ""),
        ("  weights + buffers", human_bytes(m.params + m.buffers)),
        ("  gradients", human_bytes(m.gradients)),
        ("  optimizer state", human_bytes(m.optimizer_state)),
        ("  saved for backward", human_bytes(m.saved_activations)),
        ("  inference peak", human_bytes(m.inference_peak)),
        ("  training step peak", human_bytes(m.training_peak)),
    ]


def _count_lines(analysis: Analysis, t, shapes) -> list[tuple[str, str]]:
    return [
        ("inputs", shapes(analysis.inputs)),
        ("outputs", shapes(analysis.outputs)),
        ("batch", str(analysis.batch)),
        ("params", f"{count(t.params)} ({count(t.trainable)} trainable)"),
        ("buffers", count(t.buffers)),
        ("MACs", f"{count(t.macs)} ({human(t.macs)})"),
        ("FLOPs", f"{count(t.flops)} ({human(t.flops)}, FlopCounterMode convention)"),
        ("activations", f"{count(t.activations)} elements, {human_bytes(t.activations * analysis.dtype_bytes)}"),
        ("weighted layers", str(analysis.depth)),
    ]


def markdown(
    analysis: Analysis,
    depth: int | None = None,
    flops: bool = True,
    all_ops: bool = False,
    title: str | None = None,
    fields: bool = False,
    memory: bool = False,
) -> str:
    cols = columns(flops, all_ops, fields, memory)
    lines = [f"# {md_text(title or analysis.name)}", ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {md_text(v)} |" for k, v in totals_lines(analysis)]
    lines += ["", "| Layer | Op | Output | " + " | ".join(h for h, _ in cols) + " |"]
    lines += ["|---|---|---|" + "---:|" * len(cols)]
    for row in layer_rows(analysis, depth):
        lines.append(f"| {md_code(row.name)} | {md_text(row.op)} | {row.output_shape} | "
                     + " | ".join(f(row) for _, f in cols) + " |")
    return "\n".join(lines) + "\n"


def md_text(value: Any) -> str:
    """User-provided text (a summary, a paper, a name) as inert Markdown, on one line: HTML escaped
    as the HTML report does, and Markdown's own marks (code, emphasis, links, table pipes)
    backslash-escaped; an underscore inside a word is inert already."""
    text = _MARKDOWN_ACTIVE.sub(r"\\\g<0>", html.escape(str(value), quote=False))
    return " ".join(text.splitlines())


def md_code(name: str) -> str:
    """A node name as inline code where that is safe; otherwise as escaped text (a backtick or a
    pipe would end the code span or the table cell)."""
    return f"`{name}`" if _PLAIN_NAME.fullmatch(name) else md_text(name)


_PLAIN_NAME = re.compile(r"[\w.\-\[\]/:+]+")
_MARKDOWN_ACTIVE = re.compile(r"[\\`*\[\]|]")


def library_rows(analyses: list[tuple[Analysis, dict]]) -> list[list[str]]:
    rows = []
    for analysis, meta in analyses:
        t = analysis.totals
        rows.append(
            [
                analysis.name,
                ", ".join(format_shape(s) for s in analysis.inputs.values()),
                ", ".join(format_shape(s) for s in analysis.outputs.values()),
                count(t.params),
                count(t.macs),
                count(t.flops),
                str(analysis.depth),
                meta.get("paper") or "",
            ]
        )
    return rows


LIBRARY_HEADERS = ["Spec", "Input", "Output", "Params", "MACs", "FLOPs", "Depth", "Paper"]


def library_markdown(analyses: list[tuple[Analysis, dict]]) -> str:
    lines = [
        "# archspec spec library",
        "",
        "Generated by `archspec report --format markdown` (`make library`). Params, MACs and FLOPs at batch 1",
        "and each spec's default input; FLOPs as torch's FlopCounterMode counts them; depth = weighted layers.",
        "",
        "| " + " | ".join(LIBRARY_HEADERS) + " |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    lines += ["| " + " | ".join(md_text(cell) for cell in row) + " |" for row in library_rows(analyses)]
    return "\n".join(lines) + "\n"
