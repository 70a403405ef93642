"""A compiled spec -> the plain data the viewer page reads (`view_model`).

Every figure comes from the passes through `archspec.pipeline.Compiled` (counts, the memory
estimate, receptive fields); nothing here runs torch. The page gets:
- `nodes`: the IR's nodes in order (graph inputs first among them as the IR has them) plus one
  node per named output; each with its op, label, arguments, source `file:line`, output shape,
  params, MACs, FLOPs, bytes saved for backward and receptive field, and its innermost block;
- `blocks`: the block-call hierarchy (spec paths such as `layer1.0`), each with its parent, its
  label (`layer1 · 2× basic` for a repeat of one block) and its roll-up figures;
- `edges`: producer -> consumer pairs with their kind (data, shortcut, bridge, size) and shape;
- `start_depth`: blocks nested up to this depth open expanded, so a big model opens fast.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archspec.errors import ArchspecError
from archspec.ir.graph import IRNode
from archspec.render.dot_nodes import relative
from archspec.render.edge_kinds import classify_edges
from archspec.render.figures import field_number, format_shape
from archspec.render.palette import EDGE_LEGEND, EDGE_STYLES, FAMILIES, family

if TYPE_CHECKING:
    from archspec.passes.counts import LayerStats
    from archspec.pipeline import Compiled

VIEW_FORMAT = 1
# the most boxes the page opens with: an overview that ELK lays out in a fraction of a second
START_VISIBLE = 60
OUTPUT_KIND = "output"  # the viewer's own node kind for a named output (not an IR op)


def view_model(compiled: "Compiled", depth: int | None = None) -> dict[str, Any]:
    """The viewer's data for one compiled spec; `depth` overrides the depth it opens expanded to."""
    ir, analysis = compiled.ir, compiled.analysis
    layers = {layer.name: layer for layer in analysis.layers}
    saved = {layer.name: layer.saved for layer in compiled.memory().layers}
    fields, field_note = _fields(compiled)
    nodes = [_node(node, layers.get(node.id), saved.get(node.id), fields.get(node.id)) for node in ir.nodes()]
    nodes += [_output_node(name, value, ir) for name, value in ir.outputs.items()]
    blocks = _blocks(compiled, saved)
    totals = analysis.totals
    return {
        "format_version": VIEW_FORMAT,
        "name": analysis.name,
        "summary": compiled.meta.get("summary"),
        "batch": analysis.batch,
        "totals": {"params": totals.params, "macs": totals.macs, "flops": totals.flops,
                   "saved": compiled.memory().saved_activations, "ops": len(analysis.layers)},
        "nodes": nodes,
        "blocks": blocks,
        "edges": _edges(compiled),
        "start_depth": start_depth(nodes, blocks) if depth is None else depth,
        "field_note": field_note,
        "legend": legend(),
    }


def _fields(compiled: "Compiled") -> tuple[dict[str, Any], str | None]:
    """Receptive fields as the reports show them (past an SE gate: whole), or none with the reason
    when the pass refuses the graph (too much work)."""
    from archspec.render.report import report_fields

    try:
        return report_fields(compiled.ir, compiled.fields), None
    except ArchspecError as err:
        return {}, f"receptive fields not computed: {err}"


def _node(node: IRNode, layer: "LayerStats | None", saved: int | None, field: Any) -> dict[str, Any]:
    parent = node.scopes[-1] if node.scopes else None
    data: dict[str, Any] = {
        "id": node.id,
        "kind": "input" if node.is_input else "op",
        "op": node.op,
        "family": family(node.op),
        "label": node.id if node.is_input else node.entry.text(node.args),
        "short": relative(node.id, node.scopes),
        "parent": parent,
        "args": {"shape": format_shape(node.shape)} if node.is_input else _arguments(node.args),
        "source": f"{node.loc.file}:{node.loc.line}" if node.loc else None,
        "shape": ", ".join(format_shape(shape) for shape in node.shapes),
        "module": node.module,
        "trainable": node.trainable,
        "field": field_json(field),
    }
    if layer is not None:
        figures = layer.figures
        data.update(params=figures.params, macs=figures.macs, flops=figures.flops, saved=saved or 0)
    return data


def _arguments(args: Any) -> dict[str, Any]:
    """An op's validated arguments as JSON values (tuples as lists, anything else as text)."""
    dumped = args.model_dump(mode="json") if hasattr(args, "model_dump") else {}
    return {key: value if isinstance(value, (int, float, str, bool, list, type(None))) else str(value)
            for key, value in dumped.items()}


def field_json(field: Any) -> dict[str, Any] | None:
    """Size, jump and offset per axis in input pixels; `global`: the node reads the whole map."""
    if field is None:
        return None
    return {"size": [field_number(v) for v in field.size], "jump": [field_number(v) for v in field.jump],
            "offset": [field_number(v) for v in field.offset], "global": field.is_global}


def _output_node(name: str, value: str, ir) -> dict[str, Any]:
    return {"id": f"{OUTPUT_KIND}:{name}", "kind": OUTPUT_KIND, "op": OUTPUT_KIND, "family": "input", "label": name,
            "short": name, "parent": None, "args": {}, "source": None,
            "shape": format_shape(ir.shapes[value])}


def _blocks(compiled: "Compiled", saved: dict[str, int]) -> list[dict[str, Any]]:
    """Each block call with its parent and roll-ups, in the order its first op runs."""
    parents: dict[str, str | None] = {}
    inner_kinds: dict[str, dict[str, str]] = {}  # block -> its child blocks and their kinds
    saved_in: dict[str, int] = {}
    for node in compiled.ir.nodes():
        for level, path in enumerate(node.scopes):
            parents.setdefault(path, node.scopes[level - 1] if level else None)
            saved_in[path] = saved_in.get(path, 0) + saved.get(node.id, 0)
            if level + 1 < len(node.scopes):
                inner_kinds.setdefault(path, {})[node.scopes[level + 1]] = node.scope_kinds[level + 1]
    blocks = []
    for block in compiled.analysis.blocks:
        parent = parents.get(block.name)
        short = relative(block.name, (parent,) if parent else ())
        figures = block.figures
        blocks.append({
            "id": block.name, "kind": block.kind, "parent": parent, "depth": block.depth, "short": short,
            "label": block_label(short, block.kind, inner_kinds.get(block.name, {})),
            "ops": block.layers, "shape": format_shape(block.output_shape),
            "params": figures.params, "macs": figures.macs, "flops": figures.flops, "saved": saved_in.get(block.name, 0),
        })
    return blocks


def block_label(short: str, kind: str, inner: dict[str, str]) -> str:
    """`layer1 · 2× basic` for a repeat of one block kind; `layer2.0 · basic` for a block call."""
    kinds = set(inner.values())
    if kind == "repeat" and len(kinds) == 1:
        return f"{short} · {len(inner)}× {kinds.pop()}"
    if kind == "repeat" and inner:
        return f"{short} · {len(inner)}×"
    return short if kind in ("seq", short) else f"{short} · {kind}"


def _edges(compiled: "Compiled") -> list[list[str]]:
    """[producer, consumer, kind, shape] once per pair of nodes; a pair that is data on any input
    is drawn as data."""
    ir = compiled.ir
    pairs: dict[tuple[str, str], list[str]] = {}
    for (value, consumer, _), kind in classify_edges(ir).items():
        key = (ir.producer(value), consumer)
        if key not in pairs:
            pairs[key] = [key[0], consumer, kind, format_shape(ir.shapes[value])]
        elif kind == "data":
            pairs[key][2] = kind
    for name, value in ir.outputs.items():
        producer = ir.producer(value)
        pairs[(producer, name)] = [producer, f"{OUTPUT_KIND}:{name}", "data", format_shape(ir.shapes[value])]
    return list(pairs.values())


def start_depth(nodes: list[dict[str, Any]], blocks: list[dict[str, Any]], limit: int = START_VISIBLE) -> int:
    """The deepest nesting level whose expansion shows at most `limit` boxes (0: every top-level
    block collapsed): the nodes directly inside open blocks plus the closed blocks just below."""
    depth_of = {block["id"]: block["depth"] for block in blocks}
    deepest = max(depth_of.values(), default=0)
    node_depths = [depth_of[node["parent"]] if node["parent"] else 0 for node in nodes]
    for depth in range(deepest, 0, -1):
        shown = sum(1 for d in node_depths if d <= depth) + sum(1 for d in depth_of.values() if d == depth + 1)
        if shown <= limit:
            return depth
    return 0


def legend() -> dict[str, Any]:
    """The colours the page draws with: one look per op family (archspec.render.palette) and edge kind."""
    looks = [{"name": name, "fill": look.fill, "border": look.border, "words": look.words}
             for name, look in FAMILIES.items() if name != "run"]
    edges = [{"kind": kind, "color": EDGE_STYLES[kind].get("color", "#555555"),
              "dashed": EDGE_STYLES[kind].get("style") in ("dashed", "dotted"), "words": words}
             for kind, words in EDGE_LEGEND.items()]
    return {"families": looks, "edges": edges}
