"""The import, end to end: model -> traced graph -> matched ops -> scopes -> (blocks) -> YAML."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from archspec.importer.graph import ImportedGraph, Problem, from_trace
from archspec.errors import SpecError
from archspec.importer.items import Context, Renderer, Shadowed
from archspec.importer.scopes import build_scopes, index, name_units
from archspec.importer.writer import SpecText, write_spec


MAX_RENAMES = 50  # names made explicit to resolve shadowing, at most


@dataclass
class Imported:
    """What an import gives: the spec text, or the problems (then no text)."""

    text: str | None
    problems: list[Problem] = field(default_factory=list)
    graph: ImportedGraph | None = None
    model: Any = None


def import_model(model, input_shape: tuple[int, ...], name: str, summary: str, blocks: str = "auto") -> Imported:
    from archspec.importer.tidy import tidy
    from archspec.importer.trace import trace

    graph = from_trace(trace(model, input_shape))
    if graph.problems:
        return Imported(None, graph.problems, graph, model)
    tidy(graph)
    root = build_scopes(graph)
    scopes = index(root)
    for _ in range(MAX_RENAMES):
        try:
            return Imported(write_spec(_spec(graph, root, name, summary, blocks)), [], graph, model)
        except Shadowed as clash:  # a local name hides an outer one a reference needs: rename the local one
            scopes[clash.scope].forbidden.add(clash.name)
            name_units(root)
    raise SpecError(f"the names around '{clash.scope}' cannot be made unambiguous ('{clash.name}')")


def _spec(graph: ImportedGraph, root, name: str, summary: str, blocks: str) -> SpecText:
    renderer = Renderer(graph, root)
    spec = SpecText(spec_name(name), summary, dict(graph.inputs), [])
    if blocks == "auto":
        from archspec.importer.blocks import fold

        spec.blocks = fold(renderer, root)
    spec.items = renderer.items(root, Context(), next(iter(graph.inputs)))
    spec.outputs = _outputs(renderer, graph, spec.items)
    return spec


def _outputs(renderer: Renderer, graph: ImportedGraph, items) -> Any:
    outputs = graph.outputs
    if isinstance(outputs, str):
        return None if items and items[-1].output == outputs else renderer.reference(outputs, "", Context())
    return {name: renderer.reference(value, "", Context()) for name, value in outputs.items()}


def spec_name(name: str) -> str:
    """A spec `name` from the factory's (`resnet50`, `model.py:build` -> `build`)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)[:64]
    return cleaned if cleaned and cleaned[0].isalnum() else f"model_{cleaned}"[:64]

