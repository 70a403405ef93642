"""Rich tables for the terminal, from the rows of `archspec.render.report`. rich is imported
only when a table is made, so the commands that print JSON or Markdown never load it."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archspec.render.figures import columns
from archspec.render.report import LIBRARY_COLUMNS, LIBRARY_HEADERS, layer_rows, library_rows, totals_lines

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from archspec.passes.counts import Analysis
    from archspec.passes.memory import MemoryEstimate
    from archspec.pipeline import Compiled


def spec_heading(meta: dict[str, Any], name: str) -> str:
    """What the spec says about itself, above its table or explanation: `name: summary` and the
    paper, as plain text (empty where the spec has neither)."""
    lines = [f"{name}: {meta['summary']}"] if meta.get("summary") else []
    if meta.get("paper"):
        lines.append(f"paper: {meta['paper']}")
    return "\n".join(lines)


def layer_table(
    analysis: Analysis,
    depth: int | None = None,
    flops: bool = False,
    all_ops: bool = False,
    fields: dict[str, Any] | None = None,
    memory: "MemoryEstimate | None" = None,
) -> Table:
    from rich.table import Table

    shown = columns(flops=flops, all_ops=all_ops, fields=fields is not None, memory=memory is not None)
    table = Table(title=f"{analysis.name} (batch {analysis.batch})", title_justify="left", header_style="bold")
    table.add_column("Layer", no_wrap=True)
    table.add_column("Op", style="cyan", no_wrap=True)
    table.add_column("Output", justify="right", no_wrap=True)
    for column in shown:
        table.add_column(column.title, justify="right", no_wrap=True)
    for row in layer_rows(analysis, depth, fields, memory):
        table.add_row("  " * row.level + row.name, row.op, row.output_shape, *(column.text(row) for column in shown))
    return table


def totals_table(analysis: Analysis, memory: "MemoryEstimate | None" = None) -> Table:
    from rich.table import Table

    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, value in totals_lines(analysis, memory):
        table.add_row(key, value)
    return table


def library_table(results: "list[Compiled]") -> Table:
    from rich.table import Table

    numeric = {title for _, title in LIBRARY_COLUMNS}
    table = Table(title="archspec spec library", title_justify="left", header_style="bold")
    for header in LIBRARY_HEADERS:
        if header == "Paper":
            table.add_column(header, overflow="ellipsis", no_wrap=True, max_width=48)
        else:
            table.add_column(header, justify="right" if header in numeric else "left", no_wrap=True)
    for row in library_rows(results):
        table.add_row(*row)
    return table


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    # piped output (files, CI logs) gets a wide table rather than rich's default 80 columns
    probe = Console(stderr=stderr)
    return Console(stderr=stderr, highlight=False, width=None if probe.is_terminal else 180)
