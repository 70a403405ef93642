"""`archspec sweep SPEC --set k=v1,v2 --input S1,S2`: the figures over a grid of parameters and inputs.

Each `--set NAME=V1,V2,...` is one axis; its values are read like `--set` (YAML), split at the
commas outside brackets and quotes, so `--set "stages=[2,2,2,2],[3,4,6,3]"` has two values. Each
`--input S1,S2,...` is one axis too (an item without `NAME=` takes the name before it, or the
spec's first input). The grid is every combination, the first axis varying slowest; with `--zip`
the `--set` axes advance together instead (EfficientNet's compound scaling: width, depth and
resolution of B0..B7). Every point is compiled and analysed statically (no torch).

A point that does not compile (a resolution too small for the network) is a row with its error;
the command then exits 1 after printing every row.
"""
from __future__ import annotations

import csv
import functools
import io
import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer

from archspec.commands.common import (
    BatchOption,
    DtypeOption,
    OptimizerOption,
    check_choice,
    check_memory_options,
    handles_errors,
    parse_inputs,
    parse_sets,
    spec_file,
)
from archspec.errors import ArchspecError

if TYPE_CHECKING:
    from archspec.render.figures import Figure

FORMAT_VERSION = 1
MAX_POINTS = 10_000  # a grid point costs a compile and an analysis (about 0.01-0.2 s each)
# the figures per point: the table figures of archspec.render.figures, by their JSON key here;
# `depth` is `weighted_layers` (EfficientNet has a `depth` parameter)
RENAMED = {"depth": "weighted_layers"}


@functools.cache
def swept() -> "dict[str, Figure]":
    """The figures per point, by their key here (loaded on first use: archspec.cli's start-up)."""
    from archspec.render.figures import TOTALS

    return {RENAMED.get(f.key, f.key): f for f in TOTALS if f.in_tables}


# --- axes ------------------------------------------------------------------------------------------------
def split_values(text: str) -> list[str]:
    """Split at commas outside (), [], {} and quotes: `[2,2],[3,4]` -> `[2,2]`, `[3,4]`."""
    parts, current, depth, quote = [], [], 0, None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def set_axes(items: list[str] | None) -> dict[str, list[Any]]:
    """`--set width=0.5,1.0` -> {"width": [0.5, 1.0]}; the same name twice adds values."""
    axes: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ArchspecError(f"--set expects NAME=VALUE[,VALUE...], got '{item}'")
        values = split_values(text)
        if any(not v.strip() for v in values):
            raise ArchspecError(f"--set {key.strip()}: empty value in '{text}'")
        axes.setdefault(key.strip(), []).extend(parse_sets([f"{key.strip()}={v.strip()}"])[key.strip()] for v in values)
    return axes


def input_axes(items: list[str] | None) -> list[list[tuple[str, tuple[int, ...]]]]:
    """`--input 3x128x128,3x224x224` -> one axis of (name, shape); "" names the spec's first input."""
    axes = []
    for item in items or []:
        values, name = [], ""
        for part in split_values(item):
            if not part.strip():
                raise ArchspecError(f"--input: empty shape in '{item}'")
            ((parsed, shape),) = parse_inputs([part.strip()]).items()
            name = parsed if "=" in part else name
            values.append((name, shape))
        axes.append(values)
    return axes


def grid(sets: dict[str, list[Any]], inputs: list[list[tuple[str, tuple[int, ...]]]], zipped: bool) -> list[tuple[dict, dict]]:
    """Every point: (parameter overrides, input shapes by name, "" = the spec's first input)."""
    names = list(sets)
    if zipped and sets:
        lengths = {len(v) for v in sets.values() if len(v) > 1}
        if len(lengths) > 1:
            raise ArchspecError(
                "--zip needs the same number of values in every --set: "
                + ", ".join(f"{k} has {len(v)}" for k, v in sets.items())
            )
        n = lengths.pop() if lengths else 1
        set_points = [tuple(v[i] if len(v) > 1 else v[0] for v in sets.values()) for i in range(n)]
    else:
        set_points = list(itertools.product(*sets.values()))
    size = len(set_points)
    for axis in inputs:
        size *= len(axis)
    if size > MAX_POINTS:
        raise ArchspecError(f"the grid has {size:,} points, more than {MAX_POINTS:,}; sweep fewer values or use --zip")
    points = []
    for values in set_points:
        for shapes in itertools.product(*inputs):
            points.append((dict(zip(names, values)), dict(shapes)))
    return points


# --- evaluating the grid -------------------------------------------------------------------------------
def evaluate(spec: Path, points, batch: int, dtype: str, optimizer: str) -> tuple[Any, list[dict[str, Any]]]:
    from archspec import pipeline
    from archspec.render.figures import totals_figures
    from archspec.spec.document import load_spec

    loaded = load_spec(spec_file(spec))
    rows = []
    for params, given in points:
        row: dict[str, Any] = {"set": params, "inputs": {}}
        try:
            shapes = pipeline.resolve_inputs(loaded, given)
            row["inputs"] = {k: list(v) for k, v in shapes.items()}
            compiled = pipeline.compile(loaded, params, shapes, batch=batch)
            analysis = compiled.analysis
            figures = totals_figures(analysis, compiled.memory(dtype, optimizer))
        except ArchspecError as err:
            row.update(outputs=None, error=str(err), **dict.fromkeys(swept()))
        else:
            row["inputs"] = {k: list(v) for k, v in analysis.inputs.items()}
            row.update(outputs={k: list(v) for k, v in analysis.outputs.items()}, error=None,
                       **{key: figures[figure.key] for key, figure in swept().items()})
        rows.append(row)
    return loaded, rows


def sweep_json(loaded, spec: Path, axes: dict, rows: list[dict], batch: int, dtype: str, optimizer: str, zipped: bool) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "name": loaded.document.name,
        "path": str(spec),
        "batch": batch,
        "dtype": dtype,
        "optimizer": optimizer,
        "zip": zipped,
        "axes": axes,
        "rows": rows,
    }


def flat_rows(data: dict) -> tuple[list[str], list[list[Any]]]:
    """Header and rows with one column per parameter, input, output and figure (CSV, table)."""
    from archspec.render.figures import format_shape

    params = list(data["axes"]["set"])
    reserved = set(swept()) | {"error", "input", "output"}
    param_columns = [f"set.{p}" if p in reserved or p.startswith(("input.", "output.")) else p for p in params]
    input_names = list(dict.fromkeys(k for r in data["rows"] for k in r["inputs"]))
    output_names = list(dict.fromkeys(k for r in data["rows"] for k in (r["outputs"] or {})))
    label = lambda kind, names, n: kind if len(names) == 1 else f"{kind}.{n}"  # noqa: E731
    header = param_columns + [label("input", input_names, n) for n in input_names] + [label("output", output_names, n) for n in output_names]
    header += list(swept()) + ["error"]
    shape = lambda s: "" if s is None else format_shape(s)  # noqa: E731
    table = []
    for r in data["rows"]:
        cells = [r["set"][p] for p in params]
        cells += [shape(r["inputs"].get(n)) for n in input_names]
        cells += [shape((r["outputs"] or {}).get(n)) for n in output_names]
        cells += [r[f] for f in swept()] + [r["error"] or ""]
        table.append(cells)
    return header, table


def render_csv(data: dict) -> str:
    header, rows = flat_rows(data)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else json.dumps(v) if isinstance(v, (list, dict)) else v for v in row])
    return buffer.getvalue()


def _cell(key: str, value: Any) -> str:
    if key in swept():
        return swept()[key].compact(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def render_table(data: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    from archspec.render.terminal import console

    header, rows = flat_rows(data)
    failed = any(r["error"] for r in data["rows"])

    def shown(i: int) -> bool:
        name = header[i].split(".")[0] if header[i].startswith(("input.", "output.")) else header[i]
        if name == "error":
            return failed
        if name == "activations":
            return False  # the table gives them as memory
        if name == "trainable":
            return any(r["trainable"] != r["params"] for r in data["rows"])
        if name == "output":
            return len({row[i] for row in rows}) > 1
        return True

    show = [i for i in range(len(header)) if shown(i)]
    title = f"sweep {data['name']} (batch {data['batch']}, {data['dtype']}, {data['optimizer']}{', zipped' if data['zip'] else ''})"
    table = Table(title=escape(title), title_justify="left", header_style="bold")
    for i in show:
        title = swept()[header[i]].narrow_title if header[i] in swept() else header[i]
        table.add_column(title, justify="right" if header[i] in swept() else "left", no_wrap=header[i] != "error", min_width=min(len(title), 12))
    for row in rows:
        table.add_row(*(escape(_cell(header[i], row[i])) for i in show))
    console().print(table)


def render_text(data: dict, output_format: str) -> str:
    if output_format == "json":
        return json.dumps(data, indent=1, default=str) + "\n"
    return render_csv(data)


# --- the command ---------------------------------------------------------------------------------------
@handles_errors
def command(
    spec: Path = typer.Argument(..., help="The spec file."),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="A parameter axis: --set width=0.25,0.5,1.0 (repeatable; axes multiply)."),
    inputs: Optional[List[str]] = typer.Option(None, "--input", help="An input-shape axis: --input 3x128x128,3x224x224, or NAME=CxHxW,... (repeatable)."),
    zipped: bool = typer.Option(False, "--zip", help="Advance the --set axes together (equal lengths; single values repeat) instead of multiplying them."),
    batch: int = BatchOption,
    dtype: str = DtypeOption,
    optimizer: str = OptimizerOption,
    output_format: str = typer.Option("table", "--format", help="table, json or csv."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the result to this file (json or csv; a table is written as csv)."),
) -> None:
    """Params, MACs, FLOPs, activation memory and inference/training peaks over a grid of parameters and input shapes."""
    check_choice("--format", output_format, ["table", "json", "csv"])
    optimizer = check_memory_options(dtype, optimizer)
    axes = set_axes(sets)
    shape_axes = input_axes(inputs)
    points = grid(axes, shape_axes, zipped)
    loaded, rows = evaluate(spec, points, batch, dtype, optimizer)
    errors = [r["error"] for r in rows if r["error"]]
    if errors and len(errors) == len(rows) and len(set(errors)) == 1:
        raise ArchspecError(errors[0])  # the same error everywhere (a misspelt --set): say it once
    axes_json = {"set": axes, "inputs": [[{"name": n or None, "shape": list(s)} for n, s in axis] for axis in shape_axes]}
    data = sweep_json(loaded, spec, axes_json, rows, batch, dtype, optimizer, zipped)
    if out is not None:
        from archspec.files import write_atomic

        if out.is_dir():
            raise ArchspecError(f"--out {out} is a folder; give a file name")
        write_atomic(out, render_text(data, "json" if output_format == "json" else "csv"))
        typer.echo(f"wrote {out} ({len(rows)} rows)", err=True)
    elif output_format == "table":
        render_table(data)
    else:
        typer.echo(render_text(data, output_format), nl=False)
    from archspec.render.figures import format_shape

    for row in rows:
        if row["error"]:
            where = ", ".join([*(f"{k}={v}" for k, v in row["set"].items()), *(f"{k} {format_shape(v)}" for k, v in row["inputs"].items())])
            typer.echo(f"error: at {where}: {row['error']}", err=True)
    if errors:
        raise typer.Exit(1)
