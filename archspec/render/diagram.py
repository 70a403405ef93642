"""IR (+ analysis) -> a Graphviz diagram (DOT), and rendering it with the system `dot`.

What the diagram shows:
- one node per op, labelled with the op and its key arguments (`conv 3x3/2, 128`,
  `maxpool 3x3/2`, `linear 1000`), coloured by op family (legend in the corner); with
  `params=True` also its parameters and MACs;
- one edge per tensor, labelled with its shape (no batch);
- blocks and stages as nested clusters labelled with the block's name; `depth=N` draws every
  block at nesting depth N as one node (the same folding as `report --depth N`);
- merges as their own shapes (`add` a circled +, `mul` a circled x, `concat` a trapezium);
  shortcut edges (residuals, dense connections, projection shortcuts, SE gates) dashed; bridges
  (a concat input that comes around a part of the network working at a lower resolution:
  U-Net's encoder -> decoder copies) dashed, thick and orange; size references (the second input of
  `upsample`, `crop`, `pad`) dotted;
- an encoder-decoder is drawn as a U: the decoder runs back up next to the encoder, each bridge
  joins two nodes placed on the same rank;
- a drawing longer than `WRAP_RANKS` ranks is cut into side-by-side columns at block
  boundaries (a block cut in two is drawn as two boxes, the second "continued").

`diagram_source` gives the DOT text (no system tool needed); `render` runs `dot` on it.
"""
from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from archspec.errors import ArchspecError
from archspec.ir.graph import IRGraph, IRNode
from archspec.ops.common import format_shape
from archspec.render.layout import Unit, auto_depth, classify_edges, columns, fitted_layout, layout

FORMATS = ("svg", "png", "pdf", "dot")
RANKDIRS = ("TB", "LR")
DOT_TIMEOUT_S = 120
WRAP_RANKS = 110  # a drawing longer than this many ranks is laid out in side-by-side columns
DOT_MISSING = (
    "graphviz's `dot` program is not installed; install it with `apt-get install graphviz` "
    "(Debian/Ubuntu) or `brew install graphviz` (macOS)"
)

# --- op families: colour (fill, border) and the legend's words -------------------------------------
FAMILY_OF = {
    "conv": "conv", "dwconv": "conv", "conv_transpose": "conv",
    "linear": "linear",
    "bn": "norm", "groupnorm": "norm", "layernorm": "norm", "lrn": "norm",
    "maxpool": "pool", "avgpool": "pool", "adaptive_avgpool": "pool", "adaptive_maxpool": "pool",
    "global_avgpool": "pool",
    "add": "merge", "mul": "merge", "concat": "merge",
    "upsample": "resize", "crop": "resize", "pad": "resize",
    "flatten": "other", "reshape": "other", "channel_shuffle": "other", "dropout": "other",
    "drop_path": "other", "identity": "other",
}
# everything else (relu, sigmoid, softmax, gelu ...) is an activation
FAMILIES: dict[str, tuple[str, str, str]] = {
    "input": ("#ffffff", "#333333", "input / output"),
    "conv": ("#cfe2f3", "#3d78b5", "convolution"),
    "linear": ("#d9d2e9", "#6a4fa3", "linear"),
    "norm": ("#fff2cc", "#b59a2e", "normalisation"),
    "activation": ("#d9ead3", "#4f8f3c", "activation"),
    "pool": ("#fce5cd", "#c07a2c", "pooling"),
    "merge": ("#f4cccc", "#b34747", "merge (+ add, x mul, concat)"),
    "resize": ("#d0e0e3", "#3f7f8c", "resize (upsample, crop, pad)"),
    "other": ("#eeeeee", "#888888", "reshape, dropout, identity"),
    "block": ("#e6ebf2", "#5a6b85", "block (collapsed)"),
    "run": ("#eef1f5", "#7a8699", "run of consecutive ops (folded)"),
}
EDGE_STYLES: dict[str, dict[str, str]] = {
    "data": {"color": "#555555", "weight": "3"},  # heavier: keeps the main path straight
    "shortcut": {"style": "dashed", "color": "#2c6fbb", "fontcolor": "#2c6fbb"},
    "bridge": {"style": "dashed", "color": "#e07b00", "fontcolor": "#b86500", "penwidth": "2.2"},
    "size": {"style": "dotted", "color": "#888888", "constraint": "false"},
}
EDGE_LEGEND = {
    "shortcut": "shortcut (residual, dense, projection, gate)",
    "bridge": "bridge (encoder -> decoder)",
    "size": "size reference (upsample / crop / pad to)",
}


def family(op: str) -> str:
    if op == "input":
        return "input"
    return FAMILY_OF.get(op, "activation")


# --- op labels --------------------------------------------------------------------------------------
def _pair_text(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "x".join(str(v) for v in value) if value[0] != value[1] else f"{value[0]}x{value[0]}"
    return f"{value}x{value}"


def _stride_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return "" if tuple(value) == (1, 1) else "/" + ("x".join(map(str, value)) if value[0] != value[1] else str(value[0]))
    return "" if value == 1 else f"/{value}"


def _number(value: float) -> str:
    return f"{value:g}"


def op_label(node: IRNode) -> str:
    """`conv 3x3/2, 128`, `maxpool 3x3/2`, `linear 1000`, `upsample x2 bilinear` ..."""
    op, args = node.op, node.args
    get = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    if op in ("conv", "conv_transpose"):
        text = f"{op} {_pair_text(get('kernel'))}{_stride_text(get('stride'))}, {get('out')}"
        extras = []
        if get("dilation", 1) not in (1, (1, 1)):
            extras.append(f"dil {_stride_text(get('dilation'))[1:]}")
        if get("groups", 1) != 1:
            extras.append(f"groups {get('groups')}")
        return text + (" (" + ", ".join(extras) + ")" if extras else "")
    if op == "dwconv":
        multiplier = get("multiplier", 1)
        return f"dwconv {_pair_text(get('kernel'))}{_stride_text(get('stride'))}" + (f", x{multiplier}" if multiplier != 1 else "")
    if op in ("maxpool", "avgpool"):
        stride = get("stride")
        stride = get("kernel") if stride is None else stride
        return f"{op} {_pair_text(get('kernel'))}{_stride_text(stride)}"
    if op in ("adaptive_avgpool", "adaptive_maxpool"):
        return f"{op} {_pair_text(get('size', 1))}"
    if op == "linear":
        return f"linear {get('out')}"
    if op in ("dropout", "drop_path"):
        return f"{op} {_number(get('p', 0))}" if get("p") is not None else op
    if op == "upsample":
        how = f"x{_number(get('scale'))}" if get("scale") is not None else (f"to {_pair_text(get('size'))}" if get("size") is not None else "to size")
        return f"upsample {how} {get('mode', '')}".strip()
    if op in ("concat", "add") and get("fit", "none") != "none":
        return f"{op} ({get('fit')})"
    if op == "groupnorm" and get("groups") is not None:
        return f"groupnorm {get('groups')}"
    if op == "channel_shuffle":
        return f"channel_shuffle {get('groups')}"
    if op == "leaky_relu" and get("slope") is not None:
        return f"leaky_relu {_number(get('slope'))}"
    return op


def human(value: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return str(value)


# --- DOT ----------------------------------------------------------------------------------------------
def _font(text: str, size: int | None = None, color: str | None = None, bold: bool = False) -> str:
    text = html.escape(text)
    if bold:
        text = f"<B>{text}</B>"
    attrs = (f' POINT-SIZE="{size}"' if size else "") + (f' COLOR="{color}"' if color else "")
    return f"<FONT{attrs}>{text}</FONT>" if attrs else text


def _relative(path: str, clusters: tuple[str, ...]) -> str:
    """A name relative to its innermost cluster; a bare index keeps its parent (`layer1.0`)."""
    if not clusters or not path.startswith(clusters[-1] + "."):
        return path
    rest = path[len(clusters[-1]) + 1 :]
    return f"{clusters[-1].rsplit('.', 1)[-1]}.{rest}" if rest.split(".")[0].isdigit() else rest


def _figures_line(params: int, macs: int) -> str | None:
    parts = []
    if params:
        parts.append(f"{human(params)} params")
    if macs:
        parts.append(f"{human(macs)} MACs")
    return " · ".join(parts) or None


def _block_summary(ir: IRGraph, unit: Unit) -> str:
    """`2x basic` for a repeat, `7 ops` otherwise."""
    level = len(unit.clusters)
    children: dict[str, str] = {}
    for node_id in unit.nodes:
        node = ir.node(node_id)
        if len(node.scopes) > level + 1:
            children.setdefault(node.scopes[level + 1], node.scope_kinds[level + 1])
    kinds = set(children.values())
    if unit.block_kind == "repeat" and len(kinds) == 1:
        return f"{len(children)}x {kinds.pop()}"
    kind = unit.block_kind if unit.block_kind not in (None, "seq", "repeat") else None
    ops = f"{len(unit.nodes)} ops"
    return f"{kind} · {ops}" if kind else ops


def _cluster_label(path: str, kind: str, parent: tuple[str, ...], repeat_of: str | None) -> str:
    name = _relative(path, parent)
    if kind == "repeat":
        return f"{name} · {repeat_of}" if repeat_of else name
    if kind in ("seq", "branch"):
        return name
    return f"{name} · {kind}"


def diagram(
    ir: IRGraph,
    analysis: Any = None,
    depth: int | None = None,
    rankdir: str = "TB",
    params: bool = False,
    title: str | None = None,
    wrap: int | None = WRAP_RANKS,
):
    """The diagram as a `graphviz.Digraph` (its `.source` is the DOT text).

    `wrap`: cut a drawing longer than this many ranks into columns (None: one long column)."""
    import graphviz

    rankdir = rankdir.upper()
    if rankdir not in RANKDIRS:
        raise ArchspecError(f"--rankdir must be TB or LR, not '{rankdir}'")
    if params and analysis is None:
        from archspec.passes.counts import analyze

        analysis = analyze(ir)
    plan = fitted_layout(ir, depth or None)
    column = columns(plan, wrap)
    layer_figures = {layer.name: layer.figures for layer in analysis.layers} if analysis else {}
    block_figures = {block.name: block.figures for block in analysis.blocks} if analysis else {}

    graph = graphviz.Digraph(name=ir.name)
    graph.attr(
        rankdir=rankdir, fontname="Helvetica", fontsize="12", nodesep="0.3", ranksep="0.32",
        pad="0.3", labelloc="t", labeljust="l", outputorder="edgesfirst",
    )
    if plan.bridges or any(column.values()):
        graph.attr(newrank="true")  # rank constraints across clusters (the U, the columns)
    if title is None and analysis is not None:
        t = analysis.totals
        title = f"{ir.name}: {human(t.params)} params, {human(t.macs)} MACs"
    if title:
        graph.attr(label=_html(_font(title, 16, bold=True)))
    graph.attr("node", fontname="Helvetica", fontsize="11", shape="box", style="rounded,filled", height="0.3", margin="0.12,0.04", penwidth="1.1")
    graph.attr("edge", fontname="Helvetica", fontsize="9", fontcolor="#555555", arrowsize="0.6", color="#555555")

    used_families: set[str] = set()
    used_edges: set[str] = set()

    def node_attrs(unit: Unit) -> dict[str, str]:
        if unit.members:
            return _run_attrs(ir, unit, used_families)
        if unit.kind == "input":
            used_families.add("input")
            shape = format_shape(ir.shapes[unit.id])
            return dict(label=_html(_font(unit.id, bold=True) + "<BR/>" + _font(shape, 9, "#555555")), shape="ellipse",
                        style="filled,bold", fillcolor="#ffffff", color="#333333", tooltip=f"input {unit.id}: {shape}")
        if unit.kind == "output":
            used_families.add("input")
            name = unit.id.split("] ", 1)[1]
            return dict(label=_html(_font(name, bold=True)), shape="ellipse", peripheries="2", style="filled",
                        fillcolor="#ffffff", color="#333333", tooltip=f"output {name}")
        if unit.kind == "block":
            used_families.add("block")
            fill, border, _ = FAMILIES["block"]
            lines = [_font(_relative(unit.block, unit.clusters), bold=True), _font(_block_summary(ir, unit), 9, "#444444")]
            figures = block_figures.get(unit.block)
            if params and figures is not None:
                line = _figures_line(figures.params, figures.macs)
                if line:
                    lines.append(_font(line, 9, "#7a3b00"))
            out = format_shape(ir.shapes[unit.nodes[-1]])
            return dict(label=_html("<BR/>".join(lines)), shape="box3d", style="filled", fillcolor=fill, color=border, margin="0.15,0.07",
                        tooltip=f"{unit.block} ({unit.block_kind}): {len(unit.nodes)} ops, output {out}")
        node = ir.node(unit.id)
        fam = family(node.op)
        used_families.add(fam)
        fill, border, _ = FAMILIES[fam]
        tooltip = f"{node.id}: {node.op}, output {format_shape(ir.shapes[node.id])}"
        if node.module != node.id:
            tooltip += f", weights shared with {node.module}"
        if node.op in ("add", "mul"):
            symbol = "+" if node.op == "add" else "×"
            return dict(label=symbol, shape="circle", width="0.32", height="0.32", fixedsize="true", fontsize="15",
                        fillcolor=fill, color=border, tooltip=tooltip)
        lines = [_font(op_label(node), bold=True)]
        short = _relative(node.id, unit.clusters)
        if fam in ("conv", "linear") or not re.fullmatch(re.escape(node.op) + r"\d*", short):
            lines.append(_font(short, 9, "#555555"))
        if node.module != node.id and fam in ("conv", "linear", "norm"):  # shared weights: whose
            lines.append(_font(f"= {node.module}", 9, "#7f7f7f"))
        figures = layer_figures.get(node.id)
        if params and figures is not None:
            line = _figures_line(figures.params, figures.macs)
            if line:
                lines.append(_font(line, 9, "#7a3b00"))
        attrs = dict(label=_html("<BR/>".join(lines)), fillcolor=fill, color=border, tooltip=tooltip)
        if node.op == "concat":
            attrs.update(shape="invtrapezium", style="filled")
        return attrs

    # clusters: a tree of scope paths, emitted depth first with the units they hold
    kinds: dict[str, str] = {}
    for node in ir.nodes():
        kinds.update(zip(node.scopes, node.scope_kinds))
    # a cluster cut by a column break is drawn as one box per column: keys are (path, column)
    Key = tuple[tuple[str, int], ...]
    children: dict[Key, list[Key]] = {(): []}
    members: dict[Key, list[Unit]] = {(): []}
    first_column: dict[str, int] = {}
    for unit in plan.units.values():
        chain = tuple((path, column[unit.id]) for path in unit.clusters)
        for level in range(1, len(chain) + 1):
            key = chain[:level]
            if key not in children:
                children[key] = []
                members[key] = []
                children[chain[: level - 1]].append(key)
                first_column.setdefault(key[-1][0], key[-1][1])
        members[chain].append(unit)
    repeats: dict[str, str] = {}
    inside: dict[str, dict[str, str]] = {}
    for node in ir.nodes():
        for level in range(len(node.scopes) - 1):
            inside.setdefault(node.scopes[level], {})[node.scopes[level + 1]] = node.scope_kinds[level + 1]
    for path, kind in kinds.items():
        inner = set(inside.get(path, {}).values())
        if kind == "repeat" and len(inner) == 1:
            repeats[path] = f"{len(inside[path])}x {inner.pop()}"

    def emit(target, key: Key) -> None:
        for unit in members[key]:
            target.node(unit.id, **node_attrs(unit))
        for child in children[key]:
            path, part = child[-1]
            kind = kinds.get(path, "")
            first = part == first_column[path]
            with target.subgraph(name="cluster_" + path + ("" if first else f"~{part}")) as cluster:
                style = "rounded,filled"
                if kind == "projection":
                    style = "rounded,dashed,filled"
                elif kind in ("branch", "parallel"):
                    style = "rounded,dotted,filled"
                shade = "#f5f7fa" if len(child) % 2 else "#ffffff"
                label = _cluster_label(path, kind, tuple(p for p, _ in key), repeats.get(path)) + ("" if first else " (continued)")
                cluster.attr(
                    label=_html(_font(label, 10, "#333333", bold=len(child) == 1)),
                    style=style, fillcolor=shade, color="#8c9bb0" if kind != "repeat" else "#5a6b85",
                    penwidth="1.6" if kind == "repeat" else "1", fontname="Helvetica", labeljust="l",
                )
                emit(cluster, child)

    emit(graph, ())

    for edge in plan.edges:
        attrs = dict(EDGE_STYLES[edge.kind])
        used_edges.add(edge.kind)
        if plan.units[edge.head].kind == "output":
            attrs["color"] = "#333333"
        label = ", ".join(edge.shapes)
        if label:
            attrs["label"] = " " + label + " "
        tail, head = edge.tail, edge.head
        if edge.head in plan.decoder:
            if edge.tail in plan.decoder or edge.tail == plan.turn:
                tail, head = head, tail  # laid out upwards, drawn pointing the right way
                attrs["dir"] = "back"
            elif edge.kind != "bridge":
                attrs["constraint"] = "false"
        if column[edge.tail] != column[edge.head]:
            attrs["constraint"] = "false"  # from one column to the next: no pull on the ranks
        graph.edge(tail, head, **attrs)
    anchors = [next(u for u in plan.units if column[u] == c) for c in sorted(set(column.values()))]
    if len(anchors) > 1:  # every column starts at the top, left to right in order
        with graph.subgraph() as same:
            same.attr(rank="same")
            for tail, head in zip(anchors, anchors[1:]):
                same.edge(tail, head, style="invis")
    for bridge in plan.bridges:
        if bridge.head in plan.decoder:
            with graph.subgraph() as same:
                same.attr(rank="same")
                same.node(bridge.tail)
                same.node(bridge.head)

    _legend(graph, used_families, used_edges)
    return graph


def _run_attrs(ir: IRGraph, unit: Unit, used_families: set[str]) -> dict[str, str]:
    """A folded run: `relu x10` or `12 ops` with the ops it holds, from its first to its last."""
    first, last = (_relative(m.split("] ", 1)[-1], unit.clusters) for m in (unit.members[0], unit.members[-1]))
    span = _font(f"{first} … {last}", 9, "#555555")
    count = f"{len(unit.members)} {unit.kind}s" if unit.kind in ("input", "output") else f"{len(unit.nodes)} ops"
    tooltip = f"{count} folded: {unit.members[0]} … {unit.members[-1]}"
    if unit.kind in ("input", "output"):
        used_families.add("input")
        return dict(label=_html(_font(count, bold=True) + "<BR/>" + span), shape="ellipse", style="filled",
                    fillcolor="#ffffff", color="#333333", tooltip=tooltip)
    ops = list(dict.fromkeys(ir.node(n).op for n in unit.nodes))
    families = {family(op) for op in ops}
    fam = families.pop() if len(families) == 1 else "run"
    used_families.add(fam)
    fill, border, _ = FAMILIES[fam]
    if len(ops) == 1:
        lines = [_font(f"{ops[0]} ×{len(unit.nodes)}", bold=True)]
    else:
        kinds = ", ".join(ops[:4]) + (", …" if len(ops) > 4 else "")
        lines = [_font(f"{len(unit.nodes)} ops", bold=True), _font(kinds, 9, "#444444")]
    return dict(label=_html("<BR/>".join([*lines, span])), shape="box3d", style="filled", fillcolor=fill, color=border,
                margin="0.15,0.07", tooltip=tooltip)


def _html(text: str) -> str:
    return f"<{text}>"


def _legend(graph, used_families: set[str], used_edges: set[str]) -> None:
    rows = []
    for name, (fill, border, words) in FAMILIES.items():
        if name in used_families:
            rows.append(
                f'<TR><TD BGCOLOR="{fill}" COLOR="{border}" BORDER="1" WIDTH="22" HEIGHT="12"></TD>'
                f'<TD ALIGN="LEFT">{html.escape(words)}</TD></TR>'
            )
    for kind, words in EDGE_LEGEND.items():
        if kind in used_edges:
            style = EDGE_STYLES[kind]
            dash = "- - - -" if style.get("style") == "dashed" else "· · · · ·"
            rows.append(
                f'<TR><TD><FONT COLOR="{style["color"]}"><B>{dash}&gt;</B></FONT></TD>'
                f'<TD ALIGN="LEFT">{html.escape(words)}</TD></TR>'
            )
    rows.append('<TR><TD></TD><TD ALIGN="LEFT"><FONT COLOR="#555555">edge labels: tensor shape C x H x W</FONT></TD></TR>')
    table = '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="1">' + "".join(rows) + "</TABLE>"
    with graph.subgraph(name="cluster_legend") as legend:
        legend.attr(label=_html(_font("legend", 10, "#333333", bold=True)), style="rounded", color="#bbbbbb", fontname="Helvetica")
        legend.node("legend", label=_html(_font_face(table)), shape="plain", style="", fontsize="9")


def _font_face(table: str) -> str:
    return f'<FONT POINT-SIZE="9">{table}</FONT>'


def diagram_source(ir: IRGraph, analysis: Any = None, **options: Any) -> str:
    return diagram(ir, analysis, **options).source


# --- rendering ----------------------------------------------------------------------------------------
def dot_program() -> str:
    """The path of the system `dot`, or an ArchspecError that says how to install it."""
    found = shutil.which("dot")
    if not found:
        raise ArchspecError(DOT_MISSING)
    return found


def render(source: str, fmt: str, timeout: float = DOT_TIMEOUT_S) -> bytes:
    """Run `dot -T<fmt>` on DOT text and return the image."""
    if fmt not in ("svg", "png", "pdf", "json"):  # json: dot's layout coordinates (tests)
        raise ArchspecError(f"cannot render to '{fmt}': use svg, png or pdf")
    program = dot_program()
    try:
        done = subprocess.run([program, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ArchspecError(f"graphviz's dot took longer than {timeout:g} s; try a smaller --depth") from None
    except OSError as err:
        raise ArchspecError(f"cannot run graphviz's dot ({program}): {err.strerror or err}") from None
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise ArchspecError("graphviz's dot failed: " + (message[-1] if message else f"exit code {done.returncode}"))
    return done.stdout


def render_svg_text(source: str, timeout: float = DOT_TIMEOUT_S) -> str:
    """SVG ready to inline in HTML: no XML prolog, doctype or comments."""
    svg = render(source, "svg", timeout).decode("utf-8")
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.DOTALL)
    return svg.strip()


def build_artifacts(folder: Path, ir: IRGraph, analysis: Any) -> tuple[list[Path], str | None]:
    """For `archspec build`: diagram.dot always, diagram.svg when `dot` exists; never fails.

    Returns the files written and a one-line note when the SVG was left out."""
    from archspec.render.files import write_atomic

    source = diagram_source(ir, analysis, depth=auto_depth(ir))
    written = [write_atomic(folder / "diagram.dot", source)]
    try:
        written.append(write_atomic(folder / "diagram.svg", render(source, "svg")))
    except ArchspecError as err:
        return written, f"diagram.svg not written: {err}"
    return written, None
