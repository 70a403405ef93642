"""Analysis -> plain data (the JSON contract) and rows for tables (terminal and Markdown).

The JSON contract (README, "JSON report") is built here and nowhere else; the terminal and
Markdown renderers read the same rows so the three never disagree. Receptive fields and the memory
estimate are passed in (from `archspec.pipeline.Compiled`) where a report shows them; the fields
as `report_fields` shows them (a field that reads the whole input at every position is global).
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from archspec.passes.counts import Analysis, BlockStats, Figures, LayerStats
from archspec.render.figures import FIGURES, columns, count, duration, field_number, format_shape, human, human_bytes, shapes_text

if TYPE_CHECKING:
    from archspec.passes.latency import LatencyEstimate
    from archspec.passes.memory import MemoryEstimate
    from archspec.pipeline import Compiled

__all__ = ["analysis_json", "count", "human", "human_bytes", "jump_note", "latency_json", "latency_rows", "layer_rows",
           "library_markdown", "markdown", "md_text", "report_fields"]

JSON_VERSION = 1
FIGURE_KEYS = ("params", "trainable", "buffers", "macs", "flops", "all_ops", "activations")


def analysis_json(analysis: Analysis, meta: dict[str, Any] | None = None, fields: dict[str, Any] | None = None,
                  memory: "MemoryEstimate | None" = None, latency: "LatencyEstimate | None" = None) -> dict[str, Any]:
    """The JSON report of one spec; `fields`, `memory` and `latency` add the receptive fields, the
    memory estimate and the roofline latency (`report --receptive-field`, `--memory`, `--latency`)."""
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
        "layers": [layer_json(layer) for layer in analysis.layers],
        "blocks": [block_json(block) for block in analysis.blocks],
    }
    if fields is not None:
        for layer in data["layers"]:
            layer.update(field_json(fields.get(layer["name"])))
    if memory is not None:
        data["memory"] = memory_json(memory)
        per_layer = {m.name: m for m in memory.layers}
        for layer in data["layers"]:
            m = per_layer[layer["name"]]
            layer["memory"] = {"params": m.params, "gradients": m.gradients, "optimizer": m.optimizer, "saved": m.saved}
    if latency is not None:
        data["latency"] = latency_json(latency)
        for layer, timed in zip(data["layers"], latency.layers):  # the same layers, in the same order
            layer["latency"] = {"bytes": timed.bytes, "intensity": timed.intensity, "bound": timed.bound,
                                "seconds": timed.seconds}
    return data


def latency_json(latency: "LatencyEstimate") -> dict[str, Any]:
    """Seconds, FLOP/s and bytes/s; see archspec.passes.latency for the model."""
    device = latency.device
    return {"device": device.name, "dtype": latency.dtype, "peak_flops": device.peak(latency.dtype),
            "bandwidth": device.bandwidth, "overhead": device.overhead, "ridge": latency.ridge,
            "kernel_overheads": device.kernel_overheads, "kernel_rates": device.kernel_rates,
            "relayout_bandwidth": device.relayout_bandwidth, "gemm_rates": device.gemm_rates,
            "source": device.source, "flops": latency.flops, "bytes": latency.bytes, "seconds": latency.seconds}


def fixed_costs_text(device) -> str:
    """The device's fixed cost per op: one figure, or the range over its kernel kinds (a measured CPU)."""
    costs = [cost for cost in device.kernel_overheads.values() if cost] or ([device.overhead] if device.overhead else [])
    if not costs:
        return "no fixed cost per op"
    if len(costs) == 1:
        return f"{duration(costs[0])} fixed cost per op"
    return f"{duration(min(costs))} to {duration(max(costs))} fixed cost per op, by kernel kind"


def latency_rows(latency: "LatencyEstimate") -> tuple[list[str], list[list[str]], list[str]]:
    """The roofline table (`report --latency`): headers, a row per layer and the lines under it."""
    headers = ["Layer", "Op", "FLOPs", "Bytes", "FLOP/B", "Bound", "Time", "Share"]
    total = latency.seconds or 1.0
    rows = [[layer.name, layer.op, human(layer.flops), human_bytes(layer.bytes), f"{layer.intensity:.3g}",
             layer.bound, duration(layer.seconds), f"{layer.seconds / total:.1%}"] for layer in latency.layers]
    device = latency.device
    notes = [f"{device.name} {latency.dtype}: {human(int(device.peak(latency.dtype)))}FLOP/s, "
             f"{human(int(device.bandwidth))}B/s, ridge {latency.ridge:.3g} FLOP/B, "
             + fixed_costs_text(device),
             f"predicted forward time, batch {latency.batch}: {duration(latency.seconds)} "
             f"({sum(layer.bound == 'compute' for layer in latency.layers)} of {len(latency.layers)} layers compute-bound)",
             f"source: {device.source}"]
    return headers, rows, notes


def layer_json(layer: LayerStats) -> dict[str, Any]:
    """A layer; one with several outputs (a split) also gives every output's shape, as
    `output_shapes` (its values are `<name>:0`, `<name>:1`, ...)."""
    data = {
        "name": layer.name,
        "op": layer.op,
        "module": layer.module,
        "inputs": layer.inputs,
        "blocks": list(layer.scopes),
        "output_shape": list(layer.output_shape),
    }
    if len(layer.output_shapes) > 1:
        data["output_shapes"] = [list(shape) for shape in layer.output_shapes]
    return {**data, **_figures_json(layer.figures)}


def block_json(block: BlockStats) -> dict[str, Any]:
    return {
        "name": block.name,
        "kind": block.kind,
        "depth": block.depth,
        "output_shape": list(block.output_shape),
        "layers": block.layers,
        **_figures_json(block.figures),
    }


def _figures_json(figures: Figures) -> dict[str, int]:
    return {key: getattr(figures, key) for key in FIGURE_KEYS}


def memory_json(memory: "MemoryEstimate") -> dict[str, Any]:
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


def report_fields(ir, fields: dict[str, Any]) -> dict[str, Any]:
    """The receptive fields as every report shows them: the pass's, except that a field every
    position of which reads the whole input is global (`(whole)`, JSON `global: true`) rather than
    a centre's size with a jump of 0 or near it (`1043x1043 /0x0`). That happens past a
    squeeze-excitation gate (EfficientNet, MobileNet v3, RegNetY), ASPP's image pooling, a Swin
    window that covers the map: it starts at a node whose positions all read one interval (jump 0)
    that covers the input, and passes to every node that reads such a node."""
    from dataclasses import replace

    from archspec.ir.graph import producer_of

    extent = ir.shapes[next(iter(ir.inputs.values()))][-2:]
    whole: set[str] = set()
    shown = dict(fields)
    for node in ir.nodes():
        field = fields.get(node.id)
        if field is None or field.is_global:
            continue
        covers = field.jump == (0, 0) and all(lo <= 0 and hi >= n - 1 for (lo, hi), n in zip(field.centre_interval, extent))
        if covers or any(producer_of(value) in whole for value in node.inputs):
            whole.add(node.id)
            shown[node.id] = replace(field, jump=(0, 0), is_global=True)
    return shown


def fractional_jump(field) -> bool:
    return field is not None and not field.is_global and any(not float(j).is_integer() for j in field.jump)


def jump_note(rows: "list[Row]") -> str | None:
    """The footnote that explains a fractional jump (U-Net, FCN, PSPNet, GoogLeNet's aux pooling) where
    one appears: the table's cells hold the figure, this its meaning."""
    first = next((row for row in rows if fractional_jump(row.field)), None)
    if first is None:
        return None
    jump = "x".join(str(field_number(j)) for j in first.field.jump)
    return (f"A fractional jump (first at {first.name}: {jump}) is an average step in input pixels: (centre of "
            "the last position's field - centre of the first's) / (positions - 1). After upsampling (a transposed "
            "convolution, a resize) neighbouring positions share input pixels, so the field moves less than a pixel "
            "per position; where sizes do not divide evenly (a resize between sizes, adaptive or ceil_mode pooling, "
            "cropping) the steps are uneven.")


def field_json(field) -> dict[str, Any]:
    """`receptive_field` (size per axis), `jump` and `offset` of a node, in input pixels."""
    if field is None:
        return {"receptive_field": None, "jump": None, "offset": None}
    return {
        "receptive_field": [field_number(v) for v in field.size],
        "jump": [field_number(v) for v in field.jump],
        "offset": [field_number(v) for v in field.offset],
        "global": field.is_global,
    }


# --- rows of the layer tables -------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    op: str
    output_shape: str
    figures: Figures
    level: int  # nesting depth, for indentation
    field: Any = None  # receptive field of the row's (last) node
    saved: int | None = None  # activation bytes kept for backward (with memory)
    output: int | None = None  # bytes of the row's (last) output tensor (with memory)


def layer_rows(analysis: Analysis, depth: int | None = None, fields: dict[str, Any] | None = None,
               memory: "MemoryEstimate | None" = None) -> list[Row]:
    """One row per leaf op, or, with `depth`, one row per block at that depth (collapsed)."""
    rows: list[Row] = []
    fields = fields or {}
    per_layer = {m.name: m for m in memory.layers} if memory else {}
    blocks = {block.name: block for block in analysis.blocks}
    shown: set[str] = set()
    for layer in analysis.layers:
        used = per_layer.get(layer.name)
        if depth is not None and len(layer.scopes) >= depth > 0:
            block = blocks[layer.scopes[depth - 1]]
            if block.name not in shown:
                shown.add(block.name)
                rows.append(Row(block.name, block.kind, format_shape(block.output_shape), block.figures, depth - 1))
            row = rows[-1]
            row.field = fields.get(layer.name)  # the block's last node gives its field and output
            if used is not None:
                row.saved, row.output = (row.saved or 0) + used.saved, used.output
            continue
        rows.append(Row(layer.name, layer.op, format_shape(layer.output_shape), layer.figures, len(layer.scopes),
                        fields.get(layer.name), used.saved if used else None, used.output if used else None))
    return rows


# --- the summary lines --------------------------------------------------------------------------------
def totals_lines(analysis: Analysis, memory: "MemoryEstimate | None" = None) -> list[tuple[str, str]]:
    t = analysis.totals
    lines = [
        ("inputs", shapes_text(analysis.inputs)),
        ("outputs", shapes_text(analysis.outputs)),
        ("batch", str(analysis.batch)),
        ("params", f"{count(t.params)} ({count(t.trainable)} trainable)"),
        ("buffers", count(t.buffers)),
        ("MACs", f"{count(t.macs)} ({human(t.macs)})"),
        ("FLOPs", f"{count(t.flops)} ({human(t.flops)}, FlopCounterMode convention)"),
        ("activations", f"{count(t.activations)} elements, {human_bytes(t.activations * analysis.dtype_bytes)}"),
        ("weighted layers", str(analysis.depth)),
    ]
    return lines + (memory_lines(memory) if memory else [])


def memory_lines(m: "MemoryEstimate") -> list[tuple[str, str]]:
    return [
        (f"memory ({m.dtype}, batch {m.batch}, {m.optimizer})", ""),
        ("  weights + buffers", human_bytes(m.params + m.buffers)),
        ("  gradients", human_bytes(m.gradients)),
        ("  optimizer state", human_bytes(m.optimizer_state)),
        ("  saved for backward", human_bytes(m.saved_activations)),
        ("  inference peak", human_bytes(m.inference_peak)),
        ("  training step peak", human_bytes(m.training_peak)),
    ]


def markdown(
    analysis: Analysis,
    depth: int | None = None,
    flops: bool = True,
    all_ops: bool = False,
    title: str | None = None,
    fields: dict[str, Any] | None = None,
    memory: "MemoryEstimate | None" = None,
    meta: dict[str, Any] | None = None,
) -> str:
    """One spec's Markdown: the title, the spec's `summary` and `paper` (from `meta`), the totals
    and the layer table."""
    shown = columns(flops=flops, all_ops=all_ops, fields=fields is not None, memory=memory is not None)
    lines = [f"# {md_text(title or analysis.name)}", ""]
    for key in ("summary", "paper"):
        if (meta or {}).get(key):
            lines += [("Paper: " if key == "paper" else "") + md_text(meta[key]), ""]  # user text: escaped
    lines += ["| | |", "|---|---|"] + [f"| {k} | {md_text(v)} |" for k, v in totals_lines(analysis, memory)]
    lines += ["", "| Layer | Op | Output | " + " | ".join(c.title for c in shown) + " |"]
    lines += ["|---|---|---|" + "---:|" * len(shown)]
    rows = layer_rows(analysis, depth, fields, memory)
    for row in rows:
        lines.append(f"| {md_code(row.name)} | {md_text(row.op)} | {row.output_shape} | "
                     + " | ".join(c.text(row) for c in shown) + " |")
    note = jump_note(rows) if fields is not None else None
    if note:
        lines += ["", "> " + md_text(note)]
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


LIBRARY_COLUMNS = (("params", "Params"), ("macs", "MACs"), ("flops", "FLOPs"), ("depth", "Depth"))
LIBRARY_HEADERS = ["Spec", "Input", "Output", *(title for _, title in LIBRARY_COLUMNS), "Paper"]


def library_rows(results: "list[Compiled]") -> list[list[str]]:
    """One row per spec: its shapes, headline counts (archspec.render.figures) and paper."""
    rows = []
    for compiled in results:
        a = compiled.analysis
        shapes = [", ".join(format_shape(s) for s in a.inputs.values()), ", ".join(format_shape(s) for s in a.outputs.values())]
        figures = [FIGURES[key].exact(FIGURES[key].value(a, None)) for key, _ in LIBRARY_COLUMNS]
        rows.append([a.name, *shapes, *figures, compiled.meta.get("paper") or ""])
    return rows


LIBRARY_TITLE = "archspec spec library"


def library_markdown(results: "list[Compiled]", figure: str | None = None) -> str:
    """The library table under one title; `figure`: an image file shown below the title (the
    scatter plot that `--out` writes beside the Markdown)."""
    lines = [
        f"# {LIBRARY_TITLE}",
        "",
        *([f"![parameters vs MACs]({figure})", ""] if figure else []),
        "Generated by `archspec report --format markdown` (`make library`). Params, MACs and FLOPs at batch 1",
        "and each spec's default input; FLOPs as torch's FlopCounterMode counts them; depth = weighted layers.",
        "",
        "| " + " | ".join(LIBRARY_HEADERS) + " |",
        "|---|---|---|" + "---:|" * len(LIBRARY_COLUMNS) + "---|",
    ]
    lines += ["| " + " | ".join(md_text(cell) for cell in row) + " |" for row in library_rows(results)]
    return "\n".join(lines) + "\n"
