"""`archspec explain`: each layer's formulas with the numbers filled in, the way the course writes
them, and the course's worked examples. Static (never imports torch), except the detection and
style-transfer cases, which run the library's torch code (archspec.explain.detection_cases).

    explain_layers(ir, analysis, nodes, lang) -> [Explanation]   per-layer formulas
    format_explanations(explanations) -> str                      the printed text
    explain_spec(spec, nodes, lang, ...) -> str                   compile (or take compiled) + explain
    explain_case(name, lang) -> CaseResult (.text, .figures)      `--case NAME`; CASES lists them
    default_lang() -> "en" | "ko"                                 from LC_ALL / LC_MESSAGES / LANG

What is said about a layer is its op entry's `explain` rule (archspec.ops), given an
`ExplainContext` (archspec.explain.context). Texts come from one catalogue per language
(`archspec.explain.messages`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from archspec import pipeline
from archspec.explain.cases import CASES, CaseResult, case_descriptions, explain_case
from archspec.explain.explanation import Explanation, format_explanations
from archspec.explain.layers import explain_layers
from archspec.explain.messages import LANGUAGES, default_lang

__all__ = [
    "CASES",
    "LANGUAGES",
    "CaseResult",
    "Explanation",
    "case_descriptions",
    "default_lang",
    "explain_case",
    "explain_layers",
    "explain_spec",
    "format_explanations",
]


def explain_spec(
    spec: str | Path | pipeline.Compiled,
    nodes: list[str] | None = None,
    lang: str | None = None,
    params: dict[str, Any] | None = None,
    inputs: dict[str, tuple[int, ...]] | None = None,
    batch: int = 1,
) -> str:
    """The text of `archspec explain SPEC [NODE...]`. `spec` is a path (or a loaded spec),
    compiled here for `params`, `inputs` and `batch`, or a spec compiled already
    (archspec.pipeline.Compiled), which is explained as it is."""
    compiled = spec if isinstance(spec, pipeline.Compiled) else pipeline.compile(spec, params, inputs, batch=batch)
    return format_explanations(explain_layers(compiled.ir, compiled.analysis, nodes, lang))
