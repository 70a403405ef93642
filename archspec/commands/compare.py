"""`archspec compare SPEC SPEC...`: totals side by side and a per-stage breakdown.

Everything here is static (no torch): each spec goes through the same spec -> IR -> analysis ->
memory estimate as `report --memory`, under the same `--set`, `--input` and `--batch`.

Stages are the top-level blocks of a spec (`layer1`..`layer4` of a ResNet, `block1`..`block13` of
MobileNet v1). A top-level `seq` that holds blocks (EfficientNet's and DenseNet's `features`) is
opened, so its blocks (`features.1`.. `features.8`, `features.denseblock1`..) are the stages; so
is a `repeat` that is the only scope inside an opened one or at the top (VGG's
`features.vgg_stage1`, whose copies `features.vgg_stage1.0`..`.4` are then the stages).
Layers outside any stage are rows of their own (`conv1`, `fc`) where they have parameters or
MACs; the others (ReLU, pooling) add nothing to either column and are left out, so the stage
rows of a spec always sum to its totals. `--depth N` takes the blocks at nesting depth N instead.
Rows are aligned by stage name across the specs; a stage that not every spec has is listed as
unmatched.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import typer

from archspec.commands.common import (
    BatchOption,
    InputOption,
    SetOption,
    analyse,
    handles_errors,
    parse_sets,
    print_result,
    spec_meta,
)
from archspec.errors import ArchspecError

FORMAT_VERSION = 1
DtypeOption = typer.Option("fp32", "--dtype", help="fp32, bf16 or fp16: bytes per activation and weight in the memory figures.")
OptimizerOption = typer.Option("sgd", "--optimizer", help="sgd (with momentum) or adam: optimizer state in the training peak.")


# --- shared by compare, diff and sweep ----------------------------------------------------------------
def check_choice(option: str, value: str, choices) -> None:
    if value not in choices:
        raise ArchspecError(f"{option} must be {' or '.join(', '.join(choices).rsplit(', ', 1))}, not '{value}'")


def check_memory_options(dtype: str, optimizer: str) -> None:
    from archspec.passes.memory import DTYPE_BYTES, OPTIMIZER_STATES

    check_choice("--dtype", dtype, list(DTYPE_BYTES))
    check_choice("--optimizer", optimizer, list(OPTIMIZER_STATES))


def shapes_text(shapes: dict) -> str:
    from archspec.ops.common import format_shape

    return ", ".join(f"{k} {format_shape(v)}" for k, v in shapes.items())


def totals_figures(analysis, memory) -> dict[str, Any]:
    """The headline figures of one analysed spec (plain data, the JSON of compare and sweep)."""
    from archspec.passes.memory import DTYPE_BYTES

    t = analysis.totals
    return {
        "params": t.params,
        "trainable": t.trainable,
        "buffers": t.buffers,
        "macs": t.macs,
        "flops": t.flops,
        "activations": t.activations,
        "activation_bytes": t.activations * DTYPE_BYTES[memory.dtype],
        "inference_peak": memory.inference_peak,
        "training_peak": memory.training_peak,
        "depth": analysis.depth,
    }


# --- stages --------------------------------------------------------------------------------------------
@dataclass
class Stage:
    name: str
    kind: str  # block kind of the stage, or the op of a layer outside any stage
    params: int = 0
    trainable: int = 0
    macs: int = 0
    flops: int = 0
    layers: int = 0


def stages(analysis, depth: int | None = None) -> list[Stage]:
    """The stage rows of one analysis, in execution order (see the module docstring)."""
    kinds = {block.name: block.kind for block in analysis.blocks}
    opened = _opened_scopes(analysis) if depth is None else set()
    rows: dict[str, Stage] = {}
    for layer in analysis.layers:
        name, kind, is_block = _stage_of(layer, kinds, opened, depth)
        f = layer.figures
        if not is_block and name not in rows and not (f.params or f.macs or f.flops):
            continue  # a parameter-free, MAC-free layer outside any stage (ReLU, pooling)
        row = rows.setdefault(name, Stage(name, kind))
        row.params += f.params
        row.trainable += f.trainable
        row.macs += f.macs
        row.flops += f.flops
        row.layers += 1
    return list(rows.values())


def _opened_scopes(analysis) -> set[str]:
    """Scopes looked into rather than shown as one stage: a `seq` that holds other scopes, and a
    `repeat` that is the only scope inside an opened one or at the top (VGG's
    `features.vgg_stage1`, the repeat of its five stages)."""
    parent: dict[str, str | None] = {}
    for layer in analysis.layers:
        for index, scope in enumerate(layer.scopes):
            parent.setdefault(scope, layer.scopes[index - 1] if index else None)
    children: dict[str | None, list[str]] = {}
    for scope, up in parent.items():
        children.setdefault(up, []).append(scope)
    opened: set[str] = set()
    for block in sorted(analysis.blocks, key=lambda b: b.depth):
        up = parent.get(block.name)
        if block.name not in children or not (up is None or up in opened):
            continue
        if block.kind == "seq" or (block.kind == "repeat" and len(children[up]) == 1):
            opened.add(block.name)
    return opened


def _stage_of(layer, kinds: dict[str, str], opened: set[str], depth: int | None) -> tuple[str, str, bool]:
    """(stage name, kind, whether the stage is a block) of one layer."""
    scopes = layer.scopes
    if depth is not None:
        if len(scopes) >= depth:
            return scopes[depth - 1], kinds[scopes[depth - 1]], True
    else:
        for scope in scopes:
            if scope not in opened:
                return scope, kinds[scope], True
    # a layer directly in the enclosing (open) scope: its own row, one path segment below it
    enclosing = scopes[-1] if scopes else ""
    rest = layer.name[len(enclosing) + 1:] if enclosing and layer.name.startswith(enclosing + ".") else layer.name
    head = rest.split(".")[0]
    return (f"{enclosing}.{head}" if enclosing else head), layer.op, False


def align(stage_lists: list[list[str]]) -> list[str]:
    """Merge ordered name lists into one order: a name new to the merge goes right after the name
    that precedes it in its own list (resnet18's and resnet34's stages line up row by row)."""
    merged: list[str] = []
    for names in stage_lists:
        position = -1
        for name in names:
            if name in merged:
                position = merged.index(name)
            else:
                position += 1
                merged.insert(position, name)
    return merged


# --- the comparison as data ----------------------------------------------------------------------------
@dataclass
class Entry:
    label: str
    path: Path
    analysis: Any
    memory: Any
    meta: dict = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)


def load_entries(paths: list[Path], sets, inputs, batch: int, dtype: str, optimizer: str, depth: int | None) -> list[Entry]:
    from archspec.passes.memory import estimate_memory

    entries: list[Entry] = []
    for path in paths:
        loaded, ir, analysis = analyse(path, sets, inputs, batch)
        memory = estimate_memory(ir, batch=batch, dtype=dtype, optimizer=optimizer)
        entries.append(Entry(analysis.name, path, analysis, memory, spec_meta(loaded), stages(analysis, depth)))
    names = [e.label for e in entries]
    for index, entry in enumerate(entries):  # the same spec name twice: number them (#1, #2, ...)
        if names.count(entry.label) > 1:
            entry.label = f"{entry.label} #{names[: index + 1].count(entry.label)}"
    return entries


def comparison_json(entries: list[Entry], batch: int, dtype: str, optimizer: str, sets) -> dict[str, Any]:
    order = align([[s.name for s in e.stages] for e in entries])
    by_name = [{s.name: s for s in e.stages} for e in entries]
    rows = []
    for name in order:
        cells = [index.get(name) for index in by_name]
        kind = next(c.kind for c in cells if c is not None)
        rows.append(
            {
                "name": name,
                "kind": kind,
                "specs": [
                    None if c is None else {"params": c.params, "trainable": c.trainable, "macs": c.macs, "flops": c.flops, "layers": c.layers}
                    for c in cells
                ],
            }
        )
    specs = []
    for entry, index in zip(entries, by_name):
        a = entry.analysis
        specs.append(
            {
                "label": entry.label,
                "name": a.name,
                "path": str(entry.path),
                "summary": entry.meta.get("summary"),
                "inputs": {k: list(v) for k, v in a.inputs.items()},
                "outputs": {k: list(v) for k, v in a.outputs.items()},
                **totals_figures(a, entry.memory),
                "unmatched_stages": [name for name in index if not all(name in other for other in by_name)],
            }
        )
    return {
        "format_version": FORMAT_VERSION,
        "batch": batch,
        "dtype": dtype,
        "optimizer": optimizer,
        "set": parse_sets(sets),
        "specs": specs,
        "stages": rows,
    }


# --- rendering -----------------------------------------------------------------------------------------
TOTAL_ROWS = [
    ("params", "Params", "count"),
    ("trainable", "Trainable", "count"),
    ("macs", "MACs", "big"),
    ("flops", "FLOPs", "big"),
    ("activations", "Activations", "count"),
    ("activation_bytes", "Activation memory", "bytes"),
    ("inference_peak", "Inference peak", "bytes"),
    ("training_peak", "Training step peak", "bytes"),
    ("depth", "Weighted layers", "plain"),
]


def figure_text(value: int | None, style: str) -> str:
    from archspec.render.report import count, human, human_bytes

    if value is None:
        return "-"
    if style == "count":
        return count(value)
    if style == "big":
        return f"{count(value)} ({human(value)})" if abs(value) >= 1000 else count(value)
    if style == "bytes":
        return human_bytes(value) if value >= 0 else "-" + human_bytes(-value)
    return str(value)


def totals_rows(data: dict) -> list[list[str]]:
    specs = data["specs"]
    rows = [["Input"] + [_shapes(s["inputs"]) for s in specs], ["Output"] + [_shapes(s["outputs"]) for s in specs]]
    for key, title, style in TOTAL_ROWS:
        rows.append([title] + [figure_text(s[key], style) for s in specs])
    return rows


def stage_rows(data: dict) -> list[list[str]]:
    from archspec.render.report import count

    rows = []
    for row in data["stages"]:
        cells = [row["name"]]
        for cell in row["specs"]:
            cells += ["-", "-"] if cell is None else [count(cell["params"]), count(cell["macs"])]
        rows.append(cells)
    return rows


def unmatched_lines(data: dict) -> list[str]:
    return [f"unmatched stages of {s['label']}: {', '.join(s['unmatched_stages'])}" for s in data["specs"] if s["unmatched_stages"]]


def _shapes(shapes: dict) -> str:
    return shapes_text({k: tuple(v) for k, v in shapes.items()})


def render_table(data: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    from archspec.render.terminal import console

    out = console()
    title = f"compare (batch {data['batch']}, {data['dtype']}, {data['optimizer']})"
    totals = Table(title=title, title_justify="left", header_style="bold")
    totals.add_column("", no_wrap=True)
    for spec in data["specs"]:
        totals.add_column(escape(spec["label"]), justify="right", no_wrap=True)
    for row in totals_rows(data):
        totals.add_row(*map(escape, row))
    out.print(totals)
    per_stage = Table(title="per stage", title_justify="left", header_style="bold")
    per_stage.add_column("Stage", no_wrap=True)
    for spec in data["specs"]:
        per_stage.add_column(escape(f"{spec['label']}\nparams"), justify="right", no_wrap=True)
        per_stage.add_column(escape(f"{spec['label']}\nMACs"), justify="right", no_wrap=True)
    for row in stage_rows(data):
        per_stage.add_row(*map(escape, row))
    out.print(per_stage)
    for line in unmatched_lines(data):
        out.print(escape(line))


def render_markdown(data: dict) -> str:
    specs = data["specs"]
    lines = [f"# compare: {', '.join(s['label'] for s in specs)}", "", f"batch {data['batch']}, {data['dtype']}, {data['optimizer']}", ""]
    lines += ["| | " + " | ".join(s["label"] for s in specs) + " |", "|---|" + "---:|" * len(specs)]
    lines += ["| " + " | ".join(row) + " |" for row in totals_rows(data)]
    lines += ["", "## Per stage", ""]
    lines += ["| Stage | " + " | ".join(f"{s['label']} params | {s['label']} MACs" for s in specs) + " |"]
    lines += ["|---|" + "---:|" * (2 * len(specs))]
    lines += ["| `" + row[0] + "` | " + " | ".join(row[1:]) + " |" for row in stage_rows(data)]
    unmatched = unmatched_lines(data)
    if unmatched:
        lines += [""] + [f"- {line}" for line in unmatched]
    return "\n".join(lines) + "\n"


# --- the command ---------------------------------------------------------------------------------------
@handles_errors
def command(
    specs: List[Path] = typer.Argument(..., help="Two or more spec files to compare."),
    output_format: str = typer.Option("table", "--format", help="table, json or markdown."),
    depth: Optional[int] = typer.Option(None, "--depth", min=1, help="Stages are the blocks at this nesting depth (default: top-level blocks, opening `seq` groups)."),
    dtype: str = DtypeOption,
    optimizer: str = OptimizerOption,
    sets: Optional[List[str]] = SetOption,
    inputs: Optional[List[str]] = InputOption,
    batch: int = BatchOption,
) -> None:
    """Totals side by side (params, MACs, FLOPs, activations, memory peaks, depth, shapes) and params and MACs per stage."""
    check_choice("--format", output_format, ["table", "json", "markdown"])
    check_memory_options(dtype, optimizer)
    if len(specs) < 2:
        raise ArchspecError("compare needs at least two specs (for one spec, use `archspec report`)")
    entries = load_entries(specs, sets, inputs, batch, dtype, optimizer, depth)
    data = comparison_json(entries, batch, dtype, optimizer, sets)
    print_result(data, output_format, render_markdown, render_table)
