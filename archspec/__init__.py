"""archspec: a graph-spec compiler and architecture analyzer for PyTorch CNNs.

Pipeline: YAML spec -> `spec` (validated, located) -> `ir` (flat networkx op graph) -> `passes`
(shapes, parameters, MACs/FLOPs) -> `lower` (torch.fx module) and `render` (tables, JSON,
Markdown). Only `build_module` (and `archspec.lower`) import torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from archspec.errors import ArchspecError, SpecError
from archspec.ir.build import build_ir
from archspec.ir.graph import IRGraph
from archspec.passes.counts import Analysis, analyze
from archspec.spec.document import LoadedSpec, load_spec

__all__ = ["ArchspecError", "SpecError", "load_spec", "compile_spec", "analyze_spec", "build_module"]
__version__ = "0.1.0"


def compile_spec(
    spec: str | Path | LoadedSpec,
    params: dict[str, Any] | None = None,
    inputs: dict[str, tuple[int, ...]] | None = None,
) -> IRGraph:
    """Load (if given a path) and expand a spec into its IR for these parameters and input shapes."""
    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
    return build_ir(loaded, params, inputs)


def analyze_spec(
    spec: str | Path | LoadedSpec,
    params: dict[str, Any] | None = None,
    inputs: dict[str, tuple[int, ...]] | None = None,
    batch: int = 1,
    dtype_bytes: int = 4,
) -> Analysis:
    """Static analysis (no torch): shapes, parameters, MACs, FLOPs, activations per layer."""
    return analyze(compile_spec(spec, params, inputs), batch=batch, dtype_bytes=dtype_bytes)


def build_module(spec: str | Path | LoadedSpec | IRGraph, inputs: dict[str, tuple[int, ...]] | None = None, **params: Any):
    """Lower a spec to a `torch.fx.GraphModule` (an ordinary nn.Module), e.g.
    `build_module("specs/resnet18.yaml", num_classes=10)`."""
    from archspec.lower.fx import lower

    ir = spec if isinstance(spec, IRGraph) else compile_spec(spec, params, inputs)
    return lower(ir)
