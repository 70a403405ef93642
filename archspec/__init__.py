"""archspec: a graph-spec compiler and architecture analyzer for PyTorch CNNs.

Pipeline: YAML spec -> `spec` (validated, located) -> `ir` (flat networkx op graph) -> `passes`
(shapes, parameters, MACs/FLOPs) -> `lower` (torch.fx module) and `render` (tables, JSON,
Markdown). `compile` runs it once and keeps every result (`archspec.pipeline`); the other
functions here are shorthands over it. Only `build_module` (and `archspec.lower`) import torch.

Importing archspec is cheap: the pipeline (pydantic, networkx, the op registry) loads on the
first use of `compile`, `load_spec` or `Compiled` (PEP 562 module `__getattr__`), so
`archspec --version`, `--help` and the command modules start without it.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from archspec.errors import ArchspecError, SpecError

if TYPE_CHECKING:
    from archspec.ir.graph import IRGraph
    from archspec.passes.counts import Analysis
    from archspec.pipeline import Compiled, compile  # noqa: F401
    from archspec.spec.document import LoadedSpec, load_spec  # noqa: F401

__all__ = ["ArchspecError", "SpecError", "Compiled", "compile", "load_spec", "compile_spec", "analyze_spec", "build_module"]
__version__ = "0.1.0"

Shapes = dict[str, tuple[int, ...]]

def _lazy_names() -> dict[str, Any]:
    """The public names that need the pipeline, imported on first access (explicit imports: no
    module name is ever computed)."""
    from archspec.ir.graph import IRGraph
    from archspec.passes.counts import Analysis
    from archspec.pipeline import Compiled, compile
    from archspec.spec.document import LoadedSpec, load_spec

    return {"Compiled": Compiled, "compile": compile, "load_spec": load_spec, "LoadedSpec": LoadedSpec,
            "IRGraph": IRGraph, "Analysis": Analysis}


_LAZY = ("Compiled", "compile", "load_spec", "LoadedSpec", "IRGraph", "Analysis")


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'archspec' has no attribute {name!r}")
    globals().update(_lazy_names())  # later lookups skip this function
    return globals()[name]


def compile_spec(spec: "str | Path | LoadedSpec", params: dict[str, Any] | None = None, inputs: Shapes | None = None) -> "IRGraph":
    """The IR of a spec (loaded first if given a path) for these parameters and input shapes."""
    from archspec import pipeline

    return pipeline.compile(spec, params, inputs).ir


def analyze_spec(
    spec: "str | Path | LoadedSpec",
    params: dict[str, Any] | None = None,
    inputs: Shapes | None = None,
    batch: int = 1,
    dtype_bytes: int = 4,
) -> "Analysis":
    """Static analysis (no torch): shapes, parameters, MACs, FLOPs, activations per layer."""
    from archspec import pipeline

    return pipeline.compile(spec, params, inputs, batch=batch, dtype_bytes=dtype_bytes).analysis


def build_module(spec: "str | Path | LoadedSpec | IRGraph", inputs: Shapes | None = None, **params: Any):
    """Lower a spec to a `torch.fx.GraphModule` (an ordinary nn.Module), e.g.
    `build_module("specs/resnet18.yaml", num_classes=10)`."""
    from archspec import pipeline
    from archspec.ir.graph import IRGraph

    if isinstance(spec, IRGraph):
        from archspec.lower.fx import lower

        return lower(spec)
    return pipeline.compile(spec, params, inputs).module()
