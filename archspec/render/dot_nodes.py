"""The DOT attributes of each drawn unit: an op (its entry's label, coloured by its family), a graph
input or output, a collapsed block, or a folded run; with figures, parameters and MACs."""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

from archspec.ir.graph import IRGraph
from archspec.ops.catalog import lookup
from archspec.ops.common import format_shape
from archspec.render.layout import Unit
from archspec.render.palette import FAMILIES, family
from archspec.render.wrap import CONNECTOR, connector_ends

Attrs = dict[str, str]


def human(value: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return str(value)


def font(text: str, size: int | None = None, color: str | None = None, bold: bool = False) -> str:
    """Graphviz HTML-like text: escaped, optionally bold, sized and coloured."""
    text = html.escape(text)
    if bold:
        text = f"<B>{text}</B>"
    attrs = (f' POINT-SIZE="{size}"' if size else "") + (f' COLOR="{color}"' if color else "")
    return f"<FONT{attrs}>{text}</FONT>" if attrs else text


def html_label(text: str) -> str:
    return f"<{text}>"


def relative(path: str, clusters: tuple[str, ...]) -> str:
    """A name relative to its innermost cluster, starting at a word: a bare index keeps the path
    up to the name before it (`layer1.0`; `block.0.0`, not `0.0`, inside `features.1.0.block.0`)."""
    parts = path.split(".")
    keep = len(parts)
    if clusters and path.startswith(clusters[-1] + "."):
        keep -= clusters[-1].count(".") + 1
    while keep < len(parts) and parts[-keep].isdigit():
        keep += 1
    return ".".join(parts[-keep:])


def stacked(lines: list[str]) -> str:
    """Lines of a node label, one table row each: a row is as tall as its text, descenders
    included (with <BR/> graphviz overlaps `adaptive_avgpool`'s p, g and _ with the next line)."""
    if len(lines) == 1:
        return lines[0]
    rows = "".join(f"<TR><TD>{line}</TD></TR>" for line in lines)
    return f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0">{rows}</TABLE>'


def _is_symbol(label: str) -> bool:
    """A one-symbol label (add's +, mul's x) is drawn in a small circle."""
    return len(label) == 1 and not label.isalnum()


@dataclass
class NodeLabels:
    """Attributes per unit. `layer_figures` / `block_figures` (name -> figures with `params` and
    `macs`) are shown when given; `repeats` names what a folded repeat holds (`2x basic`).
    `used_families` collects the looks drawn, for the legend."""

    ir: IRGraph
    layer_figures: dict[str, Any] = field(default_factory=dict)
    block_figures: dict[str, Any] = field(default_factory=dict)
    repeats: dict[str, tuple[int, str]] = field(default_factory=dict)
    used_families: set[str] = field(default_factory=set)
    shared: set[str] = field(init=False)  # ops whose weights other ops use: `= conv1` names them

    def __post_init__(self) -> None:
        self.shared = {node.module for node in self.ir.nodes() if node.module != node.id}

    def attrs(self, unit: Unit) -> Attrs:
        if unit.members:
            return self._run(unit)
        if unit.kind == CONNECTOR:
            return self._connector(unit)
        if unit.kind == "input":
            return self._input(unit)
        if unit.kind == "output":
            return self._output(unit)
        if unit.kind == "block":
            return self._block(unit)
        return self._op(unit)

    def _look(self, name: str):
        self.used_families.add(name)
        return FAMILIES[name]

    def _figures(self, figures: Any) -> list[str]:
        parts = []
        if figures is not None and figures.params:
            parts.append(f"{human(figures.params)} params")
        if figures is not None and figures.macs:
            parts.append(f"{human(figures.macs)} MACs")
        return [font(" · ".join(parts), 9, "#7a3b00")] if parts else []

    def _input(self, unit: Unit) -> Attrs:
        fill, border, _ = self._look("input")
        shape = format_shape(self.ir.shapes[unit.id])
        return dict(label=html_label(stacked([font(unit.id, bold=True), font(shape, 9, "#555555")])), shape="ellipse",
                    style="filled,bold", fillcolor=fill, color=border, tooltip=f"input {unit.id}: {shape}")

    def _output(self, unit: Unit) -> Attrs:
        fill, border, _ = self._look("input")
        name = unit.id.split("] ", 1)[1]
        return dict(label=html_label(font(name, bold=True)), shape="ellipse", peripheries="2", style="filled",
                    fillcolor=fill, color=border, tooltip=f"output {name}")

    def _block(self, unit: Unit) -> Attrs:
        fill, border, _ = self._look("block")
        lines = [font(relative(unit.block, unit.clusters), bold=True), font(self._block_summary(unit), 9, "#444444")]
        lines += self._figures(self.block_figures.get(unit.block))
        out = format_shape(self.ir.shapes[unit.nodes[-1]])
        return dict(label=html_label(stacked(lines)), shape="box3d", style="filled", fillcolor=fill, color=border,
                    margin="0.15,0.07", tooltip=f"{unit.block} ({unit.block_kind}): {len(unit.nodes)} ops, output {out}")

    def _block_summary(self, unit: Unit) -> str:
        """`2x basic` for a repeat of one block, `7 ops` otherwise."""
        if unit.block_kind == "repeat" and unit.block in self.repeats:
            count, kind = self.repeats[unit.block]
            return f"{count}x {kind}"
        kind = unit.block_kind if unit.block_kind not in (None, "seq", "repeat") else None
        ops = f"{len(unit.nodes)} ops"
        return f"{kind} · {ops}" if kind else ops

    def _op(self, unit: Unit) -> Attrs:
        node = self.ir.node(unit.id)
        entry = lookup(node.op)
        fill, border, _ = self._look(entry.family)
        outputs = ", ".join(format_shape(shape) for shape in node.shapes)
        tooltip = f"{node.id}: {node.op}, output {outputs}"
        if node.module != node.id:
            tooltip += f", weights shared with {node.module}"
        label = entry.text(node.args)
        if _is_symbol(label):
            return dict(label=label, shape="circle", width="0.32", height="0.32", fixedsize="true", fontsize="15",
                        fillcolor=fill, color=border, tooltip=tooltip)
        lines = [font(label, bold=True)]
        weighted = entry.is_("weighted")
        # a name the user gave, not the automatic `conv1`; that one only where `= conv1` points at it
        if not re.fullmatch(re.escape(node.op) + r"\d*", node.id.rsplit(".", 1)[-1]) or node.id in self.shared:
            lines.append(font(relative(node.id, unit.clusters), 9, "#555555"))
        if node.module != node.id and (weighted or entry.is_("normalisation")):  # shared weights: whose
            lines.append(font(f"= {node.module}", 9, "#7f7f7f"))
        lines += self._figures(self.layer_figures.get(node.id))
        attrs = dict(label=html_label(stacked(lines)), fillcolor=fill, color=border, tooltip=tooltip)
        if entry.family == "merge":  # a merge with a worded label (concat): a funnel
            attrs.update(shape="invtrapezium", style="filled")
        return attrs

    def _run(self, unit: Unit) -> Attrs:
        """A folded run: `relu ×10` or `12 ops` with the ops it holds, from its first to its last."""
        first, last = (relative(m.split("] ", 1)[-1], unit.clusters) for m in (unit.members[0], unit.members[-1]))
        span = font(f"{first} … {last}", 9, "#555555")
        count = f"{len(unit.members)} {unit.kind}s" if unit.kind in ("input", "output") else f"{len(unit.nodes)} ops"
        tooltip = f"{count} folded: {unit.members[0]} … {unit.members[-1]}"
        if unit.kind in ("input", "output"):
            fill, border, _ = self._look("input")
            return dict(label=html_label(stacked([font(count, bold=True), span])), shape="ellipse", style="filled",
                        fillcolor=fill, color=border, tooltip=tooltip)
        ops = list(dict.fromkeys(self.ir.node(n).op for n in unit.nodes))
        families = {family(op) for op in ops}
        fill, border, _ = self._look(families.pop() if len(families) == 1 else "run")
        if len(ops) == 1:
            lines = [font(f"{ops[0]} ×{len(unit.nodes)}", bold=True)]
        else:
            kinds = ", ".join(ops[:4]) + (", …" if len(ops) > 4 else "")
            lines = [font(f"{len(unit.nodes)} ops", bold=True), font(kinds, 9, "#444444")]
        return dict(label=html_label(stacked([*lines, span])), shape="box3d", style="filled", fillcolor=fill,
                    color=border, margin="0.15,0.07", tooltip=tooltip)

    def _connector(self, unit: Unit) -> Attrs:
        """Where the edges of a unit leave its column (`to column 2`) or enter another one
        (`from column 1` and the unit's name)."""
        words, tail = connector_ends(unit.id)
        name = tail.split("] ", 1)[-1]
        lines = [font(words, 9, bold=True)]
        if words.startswith("from"):
            lines.append(font(name, 9, "#555555"))
        return dict(label=html_label(stacked(lines)), shape="cds", style="filled", fillcolor="#ffffff", color="#5a6b85",
                    margin="0.1,0.03", tooltip=f"{words}: the edges from {name}")
