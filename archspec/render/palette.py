"""How the diagram colours what it draws: one look per op family (the families of
`archspec.ops.registry.FAMILIES`, read from each op's entry) plus the diagram's own kinds of node
(inputs and outputs, collapsed blocks, folded runs), and one style per kind of edge."""
from __future__ import annotations

from typing import NamedTuple

from archspec.ir.graph import INPUT
from archspec.ops.catalog import lookup
from archspec.ops.registry import FAMILIES as OP_FAMILIES


class Look(NamedTuple):
    fill: str
    border: str
    words: str  # what the legend calls it


# fill, border and, where the family's name does not say enough, the legend's words. Keywords,
# not strings: `conv` and `linear` are also op names, which only archspec/ops/ writes out
_OP_FAMILY_LOOKS: dict[str, tuple[str, ...]] = dict(
    conv=("#cfe2f3", "#3d78b5", "convolution"),
    linear=("#d9d2e9", "#6a4fa3"),
    norm=("#fff2cc", "#b59a2e", "normalisation"),
    activation=("#d9ead3", "#4f8f3c"),
    pool=("#fce5cd", "#c07a2c", "pooling"),
    merge=("#f4cccc", "#b34747", "merge (+ add, x mul, concat)"),
    resize=("#d0e0e3", "#3f7f8c", "resize (upsample, crop, pad)"),
    other=("#eeeeee", "#888888", "reshape, dropout, identity"),
)


def _looks() -> dict[str, Look]:
    """Every kind of node in legend order: inputs, the op families, then blocks and runs. A family
    without a look of its own (tests/test_diagram.py asks for one) is drawn as `other`."""
    looks = {"input": Look("#ffffff", "#333333", "input / output")}
    for name in OP_FAMILIES:
        fill, border, *words = _OP_FAMILY_LOOKS.get(name) or _OP_FAMILY_LOOKS["other"][:2]
        looks[name] = Look(fill, border, words[0] if words else name)
    looks["block"] = Look("#e6ebf2", "#5a6b85", "block (collapsed)")
    looks["run"] = Look("#eef1f5", "#7a8699", "run of consecutive ops (folded)")
    return looks


FAMILIES: dict[str, Look] = _looks()

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
    """The look of an IR node's op: its entry's family, or `input` for a graph input."""
    if op == INPUT:
        return "input"
    entry = lookup(op)
    return entry.family if entry is not None else "other"
