"""archspec: a graph-spec compiler and architecture analyzer for PyTorch CNNs.

Pipeline: YAML spec -> `spec` (validated, located) -> `ir` (flat networkx op graph) -> `passes`
(shapes, parameters, MACs/FLOPs) -> `lower` (torch.fx module) and `render` (tables, JSON,
Markdown). `compile` runs it once and keeps every result (`archspec.pipeline`); the other
functions here are shorthands over it. Only `build_module` (and `archspec.lower`) import torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from archspec.errors import ArchspecError, SpecError
from archspec.ir.graph import IRGraph
from archspec.passes.counts import Analysis
from archspec import pipeline
from archspec.pipeline import Compiled, compile  # noqa: F401  (the public archspec.compile)
from archspec.spec.document import LoadedSpec, load_spec

__all__ = ["ArchspecError", "SpecError", "Compiled", "compile", "load_spec", "compile_spec", "analyze_spec", "build_module"]
__version__ = "0.1.0"

Shapes = dict[str, tuple[int, ...]]


def compile_spec(spec: str | Path | LoadedSpec, params: dict[str, Any] | None = None, inputs: Shapes | None = None) -> IRGraph:
    """The IR of a spec (loaded first if given a path) for these parameters and input shapes."""
    return pipeline.compile(spec, params, inputs).ir


def analyze_spec(
    spec: str | Path | LoadedSpec,
    params: dict[str, Any] | None = None,
    inputs: Shapes | None = None,
    batch: int = 1,
    dtype_bytes: int = 4,
) -> Analysis:
    """Static analysis (no torch): shapes, parameters, MACs, FLOPs, activations per layer."""
    return pipeline.compile(spec, params, inputs, batch=batch, dtype_bytes=dtype_bytes).analysis


def build_module(spec: str | Path | LoadedSpec | IRGraph, inputs: Shapes | None = None, **params: Any):
    """Lower a spec to a `torch.fx.GraphModule` (an ordinary nn.Module), e.g.
    `build_module("specs/resnet18.yaml", num_classes=10)`."""
    if isinstance(spec, IRGraph):
        from archspec.lower.fx import lower

        return lower(spec)
    return pipeline.compile(spec, params, inputs).module()
