"""Rich tables for the terminal, from the rows of `archspec.render.report`."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from archspec.passes.counts import Analysis
from archspec.render.report import LIBRARY_HEADERS, columns, layer_rows, library_rows, totals_lines


def layer_table(
    analysis: Analysis, depth: int | None = None, flops: bool = False, all_ops: bool = False, fields: bool = False, memory: bool = False
) -> Table:
    cols = columns(flops, all_ops, fields, memory)
    table = Table(title=f"{analysis.name} (batch {analysis.batch})", title_justify="left", header_style="bold")
    table.add_column("Layer", no_wrap=True)
    table.add_column("Op", style="cyan", no_wrap=True)
    table.add_column("Output", justify="right", no_wrap=True)
    for header, _ in cols:
        table.add_column(header, justify="right", no_wrap=True)
    for row in layer_rows(analysis, depth):
        table.add_row("  " * row.level + row.name, row.op, row.output_shape, *(f(row) for _, f in cols))
    return table


def totals_table(analysis: Analysis) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, value in totals_lines(analysis):
        table.add_row(key, value)
    return table


def library_table(analyses) -> Table:
    table = Table(title="archspec spec library", title_justify="left", header_style="bold")
    for header in LIBRARY_HEADERS:
        numeric = header in ("Params", "MACs", "FLOPs", "Depth")
        if header == "Paper":
            table.add_column(header, overflow="ellipsis", no_wrap=True, max_width=48)
        else:
            table.add_column(header, justify="right" if numeric else "left", no_wrap=True)
    for row in library_rows(analyses):
        table.add_row(*row)
    return table


def console(stderr: bool = False) -> Console:
    # piped output (files, CI logs) gets a wide table rather than rich's default 80 columns
    probe = Console(stderr=stderr)
    return Console(stderr=stderr, highlight=False, width=None if probe.is_terminal else 180)
