"""DOT emission: a laid-out graph (`archspec.render.layout`) -> a `graphviz.Digraph`.

The graph's attributes, the clusters (nested, one box per column a block spans), the units
(`archspec.render.dot_nodes`), the edges in their styles, the rank constraints that keep the U
of an encoder-decoder and the columns side by side, and the legend of what was drawn."""
from __future__ import annotations

import html
from typing import Any

from archspec.ir.graph import IRGraph
from archspec.ops.common import format_shape
from archspec.render.dot_nodes import NodeLabels, font, html_label, relative
from archspec.render.layout import ClusterKey, Clusters, Layout
from archspec.render.palette import EDGE_LEGEND, EDGE_STYLES, FAMILIES


def emit(ir: IRGraph, plan: Layout, column: dict[str, int], clusters: Clusters, labels: NodeLabels,
         rankdir: str = "TB", title: str | None = None):
    """The drawing as a `graphviz.Digraph` (its `.source` is the DOT text)."""
    import graphviz

    graph = graphviz.Digraph(name=ir.name)
    graph.attr(
        rankdir=rankdir, fontname="Helvetica", fontsize="12", nodesep="0.3", ranksep="0.32",
        pad="0.3", labelloc="t", labeljust="l", outputorder="edgesfirst",
    )
    if plan.bridges or any(column.values()):
        graph.attr(newrank="true")  # rank constraints across clusters (the U, the columns)
    if title:
        graph.attr(label=html_label(font(title, 16, bold=True)))
    graph.attr("node", fontname="Helvetica", fontsize="11", shape="box", style="rounded,filled", height="0.3", margin="0.12,0.04", penwidth="1.1")
    graph.attr("edge", fontname="Helvetica", fontsize="9", fontcolor="#555555", arrowsize="0.6", color="#555555")
    _emit_cluster(graph, (), clusters, labels)
    used_edges = _emit_edges(graph, plan, column)
    _rank_constraints(graph, plan, column)
    _legend(graph, labels.used_families, used_edges)
    return graph


def _emit_cluster(target: Any, key: ClusterKey, clusters: Clusters, labels: NodeLabels) -> None:
    """The units directly inside cluster `key`, then its child clusters, depth first."""
    for unit in clusters.members[key]:
        target.node(unit.id, **labels.attrs(unit))
    for child in clusters.children[key]:
        path, part = child[-1]
        first = part == clusters.first_column[path]
        with target.subgraph(name="cluster_" + path + ("" if first else f"~{part}")) as cluster:
            cluster.attr(**_cluster_attrs(child, clusters, first))
            _emit_cluster(cluster, child, clusters, labels)


def _cluster_attrs(key: ClusterKey, clusters: Clusters, first: bool) -> dict[str, str]:
    path = key[-1][0]
    kind = clusters.kinds.get(path, "")
    style = "rounded,filled"
    if kind == "projection":
        style = "rounded,dashed,filled"
    elif kind in ("branch", "parallel"):
        style = "rounded,dotted,filled"
    label = _cluster_label(path, kind, tuple(p for p, _ in key[:-1]), clusters.repeats.get(path))
    label += "" if first else " (continued)"
    return dict(
        label=html_label(font(label, 10, "#333333", bold=len(key) == 1)),
        style=style, fillcolor="#f5f7fa" if len(key) % 2 else "#ffffff", color="#8c9bb0" if kind != "repeat" else "#5a6b85",
        penwidth="1.6" if kind == "repeat" else "1", fontname="Helvetica", labeljust="l",
    )


def _cluster_label(path: str, kind: str, parent: tuple[str, ...], repeat: tuple[int, str] | None) -> str:
    """`layer1 · 2x basic` for a repeat, `layer1.0 · basic` for a block, the bare name for a seq or branch."""
    name = relative(path, parent)
    if kind == "repeat":
        return f"{name} · {repeat[0]}x {repeat[1]}" if repeat else name
    if kind in ("seq", "branch"):
        return name
    return f"{name} · {kind}"


def _emit_edges(graph: Any, plan: Layout, column: dict[str, int]) -> set[str]:
    """Every edge in the style of its kind, labelled with its shapes; returns the kinds drawn."""
    used: set[str] = set()
    for edge in plan.edges:
        attrs = dict(EDGE_STYLES[edge.kind])
        used.add(edge.kind)
        if plan.units[edge.head].kind == "output":
            attrs["color"] = "#333333"
        label = ", ".join(format_shape(shape) for shape in edge.shapes)
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
    return used


def _rank_constraints(graph: Any, plan: Layout, column: dict[str, int]) -> None:
    """Every column starts at the top, left to right in order; each bridge of a U joins two
    units on one rank."""
    anchors = [next(u for u in plan.units if column[u] == c) for c in sorted(set(column.values()))]
    if len(anchors) > 1:
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


def _legend(graph: Any, used_families: set[str], used_edges: set[str]) -> None:
    """A table of the node looks and edge styles that were drawn."""
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
        legend.attr(label=html_label(font("legend", 10, "#333333", bold=True)), style="rounded", color="#bbbbbb", fontname="Helvetica")
        legend.node("legend", label=html_label(f'<FONT POINT-SIZE="9">{table}</FONT>'), shape="plain", style="", fontsize="9")
