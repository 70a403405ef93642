"""DOT emission: a laid-out graph (`archspec.render.layout`) -> a `graphviz.Digraph`.

The graph's attributes, the clusters (nested, one box per column a block spans), the units
(`archspec.render.dot_nodes`), the edges in their styles, the rank constraints that keep the U
of an encoder-decoder, and the legend of what was drawn. Everything is written in the order it
is drawn, which is the order dot starts from: parallel branches come out left to right in spec
order, and columns side by side."""
from __future__ import annotations

import html
from typing import Any

from archspec.ir.graph import IRGraph
from archspec.ops.common import format_shape
from archspec.render.dot_nodes import NodeLabels, font, html_label, relative
from archspec.render.layout import ClusterKey, Clusters, Layout
from archspec.render.palette import EDGE_LEGEND, EDGE_STYLES, FAMILIES


def emit(ir: IRGraph, plan: Layout, clusters: Clusters, labels: NodeLabels,
         rankdir: str = "TB", title: str | None = None):
    """The drawing as a `graphviz.Digraph` (its `.source` is the DOT text)."""
    import graphviz

    graph = graphviz.Digraph(name=ir.name)
    graph.attr(
        rankdir=rankdir, fontname="Helvetica", fontsize="12", nodesep="0.3", ranksep="0.32",
        pad="0.3", labelloc="t", labeljust="l", outputorder="edgesfirst",
        # one ranking for the whole graph: the U's rank constraints join units in two clusters,
        # and parallel branches keep the order they are written in (`_emit_cluster`)
        newrank="true",
    )
    if title:
        graph.attr(label=html_label(font(title, 16, bold=True)))
    graph.attr("node", fontname="Helvetica", fontsize="11", shape="box", style="rounded,filled", height="0.3", margin="0.12,0.04", penwidth="1.1")
    graph.attr("edge", fontname="Helvetica", fontsize="9", fontcolor="#555555", arrowsize="0.6", color="#555555")
    _emit_cluster(graph, (), clusters, labels, _starts(plan, clusters))
    used_edges = _emit_edges(graph, plan)
    _rank_constraints(graph, plan)
    _legend(graph, labels.used_families, used_edges)
    return graph


def _emit_cluster(target: Any, key: ClusterKey, clusters: Clusters, labels: NodeLabels, starts: dict[Any, int]) -> None:
    """The units directly inside cluster `key` and its child clusters, depth first, in the order
    they are drawn (`starts`: the position of each unit and of each cluster's first unit). dot
    starts from the order it reads nodes in: written members first (a module's concat before its
    branches' boxes, Inception-v3's pool before the other branches' convs), the branches came out
    in another order than the spec's (GoogLeNet's 2,3,4,1 and 1,3,2,4)."""
    inside = [*clusters.members[key], *clusters.children[key]]
    for item in sorted(inside, key=lambda item: starts[item if isinstance(item, tuple) else item.id]):
        if not isinstance(item, tuple):
            target.node(item.id, **labels.attrs(item))
            continue
        path, part = item[-1]
        first = part == clusters.first_column[path]
        with target.subgraph(name="cluster_" + path + ("" if first else f"~{part}")) as cluster:
            cluster.attr(**_cluster_attrs(item, clusters, first))
            _emit_cluster(cluster, item, clusters, labels, starts)


def _starts(plan: Layout, clusters: Clusters) -> dict[Any, int]:
    """The position of each unit in the layout, and of each cluster's first unit."""
    starts: dict[Any, int] = {unit_id: i for i, unit_id in enumerate(plan.units)}

    def first(key: ClusterKey) -> int:
        starts[key] = min([starts[unit.id] for unit in clusters.members[key]] + [first(child) for child in clusters.children[key]])
        return starts[key]

    for child in clusters.children[()]:
        first(child)
    return starts


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


def _emit_edges(graph: Any, plan: Layout) -> set[str]:
    """Every edge in the style of its kind, labelled with its shapes; returns the kinds drawn."""
    used: set[str] = set()
    for edge in plan.edges:
        attrs = dict(EDGE_STYLES[edge.kind])
        used.add(edge.kind)
        if plan.units[edge.head].kind == "output":
            attrs["color"] = "#333333"
        label = ", ".join(format_shape(shape) for shape in edge.shapes)
        if edge.kind == "bridge" and edge.head in plan.decoder and _shown_below(plan, edge):
            # across the U the label sat over the border of the encoder's or decoder's box;
            # the tensor it copies is labelled on the encoder's own edge just below
            attrs["tooltip"] = f"bridge: {label}"
        elif label:
            attrs["label"] = " " + label + " "
        tail, head = edge.tail, edge.head
        if edge.head in plan.decoder:
            if edge.tail in plan.decoder or edge.tail == plan.turn:
                tail, head = head, tail  # laid out upwards, drawn pointing the right way
                attrs["dir"] = "back"
            elif edge.kind != "bridge":
                attrs["constraint"] = "false"
        graph.edge(tail, head, **attrs)
    return used


def _shown_below(plan: Layout, bridge: Any) -> bool:
    """Another edge from the bridge's tail is labelled with every shape the bridge carries."""
    others = {shape for edge in plan.edges if edge.tail == bridge.tail and edge is not bridge for shape in edge.shapes}
    return bool(bridge.shapes) and set(bridge.shapes) <= others


def _rank_constraints(graph: Any, plan: Layout) -> None:
    """Each bridge of a U joins two units on one rank.

    The columns need no constraint: joined by connectors only, each is a graph of its own,
    which dot ranks from the top and places left to right in the order it reads them. (An
    invisible edge tying their tops together made dot swap Inception-v3's branches.)"""
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
