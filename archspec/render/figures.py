"""The figures every output shows, each listed once with its title, unit and formatting.

`TOTALS` are a spec's headline figures: the JSON of `compare`, `diff` and `sweep` and their
tables, and the library tables of `report`. `COLUMNS` are the per-layer columns of the layer
tables (terminal, Markdown, HTML). A new figure is one entry in one of them.

Units: "count" (parameters, elements: `1,234,567`), "ops" (MACs, FLOPs: `1,234,567 (1.23 M)`, or
`1.23 M` where room is short), "bytes" (`1.50 MiB`, `17.92 KiB`: `byte_unit` picks the unit for
every byte figure and the memory chart's axis) and "layers" (a plain number).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from archspec.ops.common import format_shape

__all__ = ["COLUMNS", "TOTALS", "Column", "Figure", "byte_unit", "count", "field_text", "format_shape", "human",
           "human_bytes", "shapes_text"]


# --- formatters ------------------------------------------------------------------------------------
def count(value: int) -> str:
    return f"{value:,}"


def human(value: int) -> str:
    """1,234,567 -> '1.23 M' for summaries."""
    for unit, size in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(value) >= size:
            return f"{value / size:.2f} {unit}"
    return str(value)


BYTE_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1))


def byte_unit(value: float) -> tuple[str, int]:
    """The unit bytes are shown in: the largest that keeps `value` at 1 or more (`human_bytes`,
    and the memory chart's axis for its largest bar), so 18,350 bytes read 17.92 KiB."""
    return next(((unit, size) for unit, size in BYTE_UNITS if abs(value) >= size), BYTE_UNITS[-1])


def human_bytes(value: int) -> str:
    if value < 0:
        return "-" + human_bytes(-value)
    unit, size = byte_unit(value)
    return f"{value} B" if size == 1 else f"{value / size:.2f} {unit}"


def duration(seconds: float) -> str:
    """Three significant digits in s, ms, µs or ns (a toy layer on a GPU takes nanoseconds)."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def shapes_text(shapes: dict[str, Any]) -> str:
    """`image 3x224x224, mask 1x224x224`: named shapes (tuples or JSON lists)."""
    return ", ".join(f"{name} {format_shape(tuple(shape))}" for name, shape in shapes.items())


def field_number(value: float) -> int | float:
    """A receptive-field figure (input pixels): an integer where it is one."""
    return int(value) if float(value).is_integer() else round(float(value), 4)


def field_text(field) -> str:
    """`435x435 /32x32` (size /jump), `224x224 (whole)` for a field that covers the input."""
    if field is None:
        return "-"
    size = "x".join(str(field_number(v)) for v in field.size)
    return f"{size} (whole)" if field.is_global else f"{size} /{'x'.join(str(field_number(v)) for v in field.jump)}"


def _ops(value: int) -> str:
    return f"{count(value)} ({human(value)})" if abs(value) >= 1000 else count(value)


# unit -> (full text, compact text)
UNITS: dict[str, tuple[Callable[[int], str], Callable[[int], str]]] = {
    "count": (count, count),
    "ops": (_ops, human),
    "bytes": (human_bytes, human_bytes),
    "layers": (str, str),
}


# --- a spec's headline figures ---------------------------------------------------------------------
@dataclass(frozen=True)
class Figure:
    """One headline figure: `value(analysis, memory)` (memory: archspec.passes.memory's estimate)."""

    key: str  # the JSON key
    title: str
    unit: str
    value: Callable[[Any, Any], int]
    short: str = ""  # a narrower title, for wide grids (sweep)
    in_tables: bool = True  # False: in the JSON only

    def text(self, value: int | None) -> str:
        return "-" if value is None else UNITS[self.unit][0](value)

    def exact(self, value: int) -> str:
        """The whole number, without a summary (`1,234,567` for counts and ops)."""
        return count(value) if self.unit == "ops" else UNITS[self.unit][0](value)

    def compact(self, value: int | None) -> str:
        return "-" if value is None else UNITS[self.unit][1](value)

    def delta(self, value: int) -> str:
        """A signed difference: `+1,024`, `-2.00 MiB`, `0`."""
        if value == 0:
            return "0"
        return ("+" if value > 0 else "-") + self.exact(abs(value))

    @property
    def narrow_title(self) -> str:
        return self.short or self.title


def _activation_bytes(analysis, memory) -> int:
    from archspec.passes.memory import DTYPE_BYTES

    return analysis.totals.activations * DTYPE_BYTES[memory.dtype]


TOTALS: tuple[Figure, ...] = (
    Figure("params", "Params", "count", lambda a, m: a.totals.params),
    Figure("trainable", "Trainable", "count", lambda a, m: a.totals.trainable),
    Figure("buffers", "Buffers", "count", lambda a, m: a.totals.buffers, in_tables=False),
    Figure("macs", "MACs", "ops", lambda a, m: a.totals.macs),
    Figure("flops", "FLOPs", "ops", lambda a, m: a.totals.flops),
    Figure("activations", "Activations", "count", lambda a, m: a.totals.activations),
    Figure("activation_bytes", "Activation memory", "bytes", _activation_bytes, short="Act. memory"),
    Figure("inference_peak", "Inference peak", "bytes", lambda a, m: m.inference_peak),
    Figure("training_peak", "Training step peak", "bytes", lambda a, m: m.training_peak, short="Training peak"),
    Figure("depth", "Weighted layers", "layers", lambda a, m: a.depth),
)
FIGURES = {figure.key: figure for figure in TOTALS}


def totals_figures(analysis, memory) -> dict[str, int]:
    """Every headline figure of one analysed spec, by JSON key (compare, diff, sweep)."""
    return {figure.key: figure.value(analysis, memory) for figure in TOTALS}


# --- per-layer columns -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A figure column of the layer tables; `option` is the report option that adds it
    (`flops`, `all_ops`, `fields`, `memory`; "" = always shown). `text` reads a
    `archspec.render.report.Row`."""

    title: str
    option: str
    text: Callable[[Any], str]


def _bytes_or_dash(value: int | None) -> str:
    return "-" if value is None else human_bytes(value)


COLUMNS: tuple[Column, ...] = (
    Column("Params", "", lambda row: count(row.figures.params)),
    Column("MACs", "flops", lambda row: count(row.figures.macs)),
    Column("FLOPs", "flops", lambda row: count(row.figures.flops)),
    Column("All ops", "all_ops", lambda row: count(row.figures.all_ops)),
    Column("Output memory", "memory", lambda row: _bytes_or_dash(row.output)),
    Column("Saved for backward", "memory", lambda row: _bytes_or_dash(row.saved)),
    Column("RF /jump", "fields", lambda row: field_text(row.field)),
)


def columns(**options: bool) -> list[Column]:
    """The columns shown under these options (`columns(flops=True, memory=True)`)."""
    unknown = set(options) - {column.option for column in COLUMNS}
    if unknown:
        raise ValueError(f"no layer column goes with {sorted(unknown)}")
    return [column for column in COLUMNS if not column.option or options.get(column.option)]
