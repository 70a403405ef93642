"""`archspec compare SPEC SPEC...`: totals side by side and a per-stage breakdown.

Everything here is static (no torch): each spec goes through the same pipeline
(archspec.pipeline.compile, and its memory estimate) as `report --memory`, under the same `--set`,
`--input` and `--batch`. The totals are archspec.render.figures' `TOTALS`; the stages are
archspec.passes.stages' (the stages of the HTML report too): the top-level blocks, with a `seq`
of blocks opened (EfficientNet's `features.0`..`features.8`), and loose layers with parameters or
MACs as rows of their own, so a spec's stage rows always sum to its totals. `--depth N` takes the
blocks at nesting depth N instead. Rows are aligned by stage name across the specs; a stage that
not every spec has is listed as unmatched.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer

from archspec.commands.common import (
    BatchOption,
    DtypeOption,
    InputOption,
    OptimizerOption,
    SetOption,
    check_choice,
    check_memory_options,
    compile_options,
    handles_errors,
    parse_sets,
    print_result,
)
from archspec.errors import ArchspecError

if TYPE_CHECKING:  # the analysis modules load when the command runs (archspec.cli: start-up)
    from archspec.passes.memory import MemoryEstimate
    from archspec.passes.stages import Stage
    from archspec.pipeline import Compiled

FORMAT_VERSION = 1


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
@dataclass(frozen=True)
class Entry:
    label: str
    path: Path
    compiled: "Compiled"
    memory: "MemoryEstimate"
    stages: "tuple[Stage, ...]"


def load_entries(paths: list[Path], sets, inputs, batch: int, dtype: str, optimizer: str, depth: int | None) -> list[Entry]:
    from archspec.passes.stages import stages

    compiled = [compile_options(path, sets, inputs, batch) for path in paths]
    names = [c.analysis.name for c in compiled]
    entries = []
    for index, (path, c) in enumerate(zip(paths, compiled)):
        label = names[index]
        if names.count(label) > 1:  # the same spec name twice: number them (#1, #2, ...)
            label = f"{label} #{names[: index + 1].count(label)}"
        rows = c.stages if depth is None else stages(c.analysis, depth)
        entries.append(Entry(label, path, c, c.memory(dtype, optimizer), rows))
    return entries


def comparison_json(entries: list[Entry], batch: int, dtype: str, optimizer: str, sets) -> dict[str, Any]:
    from archspec.render.figures import totals_figures

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
                    None if c is None else {"params": c.params, "trainable": c.trainable, "macs": c.macs, "flops": c.flops,
                                            "layers": len(c.layers)}
                    for c in cells
                ],
            }
        )
    specs = []
    for entry, index in zip(entries, by_name):
        a = entry.compiled.analysis
        specs.append(
            {
                "label": entry.label,
                "name": a.name,
                "path": str(entry.path),
                "summary": entry.compiled.meta.get("summary"),
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
def totals_rows(data: dict) -> list[list[str]]:
    from archspec.render.figures import TOTALS, shapes_text

    specs = data["specs"]
    rows = [["Input"] + [shapes_text(s["inputs"]) for s in specs], ["Output"] + [shapes_text(s["outputs"]) for s in specs]]
    for figure in TOTALS:
        if figure.in_tables:
            rows.append([figure.title] + [figure.text(s[figure.key]) for s in specs])
    return rows


def stage_rows(data: dict) -> list[list[str]]:
    from archspec.render.figures import count

    rows = []
    for row in data["stages"]:
        cells = [row["name"]]
        for cell in row["specs"]:
            cells += ["-", "-"] if cell is None else [count(cell["params"]), count(cell["macs"])]
        rows.append(cells)
    return rows


def unmatched_lines(data: dict) -> list[str]:
    return [f"unmatched stages of {s['label']}: {', '.join(s['unmatched_stages'])}" for s in data["specs"] if s["unmatched_stages"]]


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
    optimizer = check_memory_options(dtype, optimizer)
    if len(specs) < 2:
        raise ArchspecError("compare needs at least two specs (for one spec, use `archspec report`)")
    entries = load_entries(specs, sets, inputs, batch, dtype, optimizer, depth)
    data = comparison_json(entries, batch, dtype, optimizer, sets)
    print_result(data, output_format, render_markdown, render_table)
