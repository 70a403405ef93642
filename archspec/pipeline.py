"""The one compile pipeline: spec file -> loaded document -> IR -> analysis, and the passes on request.

Every command, the public API (`archspec.compile`) and the tests go through `compile`. The
passes beyond the counts (memory, receptive fields, stages) are pure functions of the IR; a
`Compiled` computes each on first request and caches its frozen result, so nothing is worked out
twice and no caller sets results on it.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archspec.errors import SpecError

if TYPE_CHECKING:
    from archspec.ir.graph import IRGraph
    from archspec.passes.counts import Analysis
    from archspec.passes.memory import MemoryEstimate
    from archspec.passes.stages import Stage
    from archspec.spec.document import LoadedSpec

Shape = tuple[int, ...]


@contextmanager
def paused_gc():
    """Pause Python's cyclic garbage collector while a spec compiles or a pass runs: they make
    many small objects that reference counting frees, and the collector's repeated scans of them
    took about a third of the time of a 10,000-node compile (reports/scale.md)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class Compiled:
    """A compiled spec: the loaded document, its IR for one set of parameters and input shapes,
    and its analysis. `memory(...)`, `fields` and `stages` are computed when first asked for."""

    loaded: "LoadedSpec"
    ir: "IRGraph"
    batch: int = 1
    dtype_bytes: int = 4
    _memory: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def document(self):
        return self.loaded.document

    @property
    def path(self) -> str | None:
        return self.loaded.path

    @cached_property
    def analysis(self) -> "Analysis":
        from archspec.passes.counts import analyze

        with paused_gc():
            return analyze(self.ir, batch=self.batch, dtype_bytes=self.dtype_bytes)

    def memory(self, dtype: str = "fp32", optimizer: str = "sgd", batch: int | None = None) -> "MemoryEstimate":
        """The training-memory estimate (archspec.passes.memory), cached per (dtype, optimizer, batch)."""
        from archspec.passes.memory import estimate_memory

        key = (dtype, optimizer, batch or self.batch)
        if key not in self._memory:
            with paused_gc():
                self._memory[key] = estimate_memory(self.ir, batch=key[2], dtype=dtype, optimizer=optimizer)
        return self._memory[key]

    @cached_property
    def fields(self) -> dict[str, Any]:
        """Receptive field per node (archspec.passes.receptive_field)."""
        from archspec.passes.receptive_field import receptive_fields

        with paused_gc():
            return receptive_fields(self.ir)

    @cached_property
    def stages(self) -> "tuple[Stage, ...]":
        """The network's stages (archspec.passes.stages): the one definition every output uses."""
        from archspec.passes.stages import stages

        return stages(self.analysis)

    @property
    def meta(self) -> dict[str, Any]:
        """What the document says about itself, for reports: summary, paper, task and path."""
        doc = self.loaded.document
        return {"summary": doc.summary, "paper": doc.paper, "task": doc.task, "path": self.loaded.path}

    def module(self):
        """The lowered torch module (imports torch)."""
        from archspec.lower.fx import lower

        return lower(self.ir)


def compile(
    spec: "str | Path | LoadedSpec",
    params: dict[str, Any] | None = None,
    inputs: dict[str, Shape] | None = None,
    *,
    batch: int = 1,
    dtype_bytes: int = 4,
) -> Compiled:
    """Load (a path) and compile a spec for these parameters and input shapes.

    `inputs` maps input names to shapes; the key "" means the spec's first input (an unnamed
    `--input 3x64x64`): the default-input rule lives here and nowhere else."""
    from archspec.ir.build import build_ir
    from archspec.spec.document import LoadedSpec, load_spec

    with paused_gc():
        loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
        ir = build_ir(loaded, params or {}, resolve_inputs(loaded, inputs))
    return Compiled(loaded, ir, batch=batch, dtype_bytes=dtype_bytes)


def resolve_inputs(loaded: "LoadedSpec", inputs: dict[str, Shape] | None) -> dict[str, Shape]:
    """Input shapes by input name; an unnamed shape ("") is the spec's first input's."""
    shapes = dict(inputs or {})
    if "" in shapes:
        names = list(loaded.document.inputs)
        if not names:
            raise SpecError("the spec has no inputs to give a shape to")
        shapes[names[0]] = shapes.pop("")
    return shapes
