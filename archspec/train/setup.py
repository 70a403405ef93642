"""From a spec and a data set to a model: the task, the build parameters (num_classes from the
data) and the input shapes, compiled once through `archspec.pipeline`; and what a run will take
before any data is loaded."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from archspec.errors import ArchspecError
from archspec import pipeline
from archspec.pipeline import Compiled

TASKS = ("classification", "segmentation", "embedding", "detection")


@dataclass(frozen=True)
class Plan:
    """A spec compiled for training or evaluation: the compiled spec and the parameters, task and
    spec text a checkpoint records."""

    spec_path: Path
    spec_text: str
    params: dict[str, Any]
    task: str
    compiled: Compiled

    @property
    def loaded(self):
        return self.compiled.loaded

    @property
    def ir(self):
        return self.compiled.ir

    @property
    def analysis(self):
        return self.compiled.analysis

    @property
    def name(self) -> str:
        return self.loaded.document.name

    @cached_property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Input name -> (C, H, W)."""
        return {name: tuple(self.ir.shapes[value]) for name, value in self.ir.inputs.items()}

    @cached_property
    def outputs(self) -> dict[str, tuple[int, ...]]:
        return dict(self.analysis.outputs)

    @property
    def input_names(self) -> list[str]:
        return list(self.shapes)

    @property
    def main_output(self) -> str:
        return "logits" if "logits" in self.outputs else next(iter(self.outputs))

    @property
    def classes(self) -> int:
        """The classes: a detector's from its `detection` key, else the size of the main output's
        first dimension (or an embedding's width)."""
        if self.task == "detection":
            return self.detection.num_classes
        return self.outputs[self.main_output][0]

    @cached_property
    def detection(self):
        """How a detection spec's output grid reads (archspec.detect.layout.GridLayout)."""
        return detection_layout(self.compiled, self.params)

    def build(self) -> torch.nn.Module:
        return self.compiled.module()

    def build_info(self) -> dict[str, Any]:
        return {"spec": str(self.spec_path), "params": self.params,
                "inputs": {k: list(v) for k, v in self.shapes.items()}, "task": self.task}


def task_of(declared: str | None, outputs: dict[str, tuple[int, ...]]) -> str:
    if declared in TASKS:
        return declared
    first = next(iter(outputs.values()))
    if len(first) == 1:
        return "classification"
    if len(first) == 3:
        return "segmentation"
    raise ArchspecError(f"cannot tell the task from the output shape {first}; add `task:` to the spec")


def plan(spec_path: Path, params: dict[str, Any], inputs: dict[str, tuple[int, ...]],
         num_classes: int | None = None) -> Plan:
    """Compile the spec once; with num_classes (from the data), set the spec's num_classes
    parameter, or check the output size when the spec has no such parameter."""
    from archspec.spec.document import load_spec

    spec_path = Path(spec_path)
    loaded = load_spec(spec_path)
    params = _fit_classes(loaded, params, num_classes)
    compiled = pipeline.compile(loaded, params, inputs)
    task = task_of(loaded.document.task, compiled.analysis.outputs)
    _check_classes(compiled, task, num_classes, params)
    return Plan(spec_path, spec_path.read_text(encoding="utf-8"), params, task, compiled)


def for_classes(spec_plan: Plan, num_classes: int) -> Plan:
    """The plan for data with `num_classes` classes: the same compiled spec where the parameters
    come out the same (the common case), else compiled again from the same loaded spec (an .npz's
    classes are known only once it is loaded)."""
    loaded = spec_plan.loaded
    params = _fit_classes(loaded, spec_plan.params, num_classes)
    defaults = loaded.document.params or {}
    changed = any(params.get(k, defaults.get(k)) != spec_plan.params.get(k, defaults.get(k))
                  for k in set(params) | set(spec_plan.params))
    compiled = pipeline.compile(loaded, params, spec_plan.shapes) if changed else spec_plan.compiled
    _check_classes(compiled, spec_plan.task, num_classes, params)
    return Plan(spec_plan.spec_path, spec_plan.spec_text, params, spec_plan.task, compiled)


def _fit_classes(loaded, params: dict[str, Any], num_classes: int | None) -> dict[str, Any]:
    """The build parameters with the data's num_classes where the spec has that parameter (only
    an embedding is never inferred from the outputs, so the declared task decides); a detector's
    is the parameter its `detection.classes` names."""
    params = dict(params)
    document = loaded.document
    if num_classes is None or document.task == "embedding":
        return params
    name = "num_classes"
    if document.task == "detection" and document.detection is not None:
        name = document.detection.classes
    if isinstance(name, str) and name in (document.params or {}):
        if name in params and params[name] != num_classes:
            raise ArchspecError(f"--set {name}={params[name]} but the data has {num_classes} classes")
        params[name] = num_classes
    return params


def detection_layout(compiled: Compiled, params: dict[str, Any]):
    from archspec.detect.layout import layout_of

    document = compiled.loaded.document
    return layout_of(document.detection, {**(document.params or {}), **params}, dict(compiled.analysis.outputs),
                     document.name)


def _check_classes(compiled: Compiled, task: str, num_classes: int | None, params: dict[str, Any] | None = None) -> None:
    if task == "detection":
        layout = detection_layout(compiled, params or {})
        if num_classes is not None and layout.num_classes != num_classes:
            raise ArchspecError(f"the spec's detection head has {layout.num_classes} classes but the data has "
                                f"{num_classes}, and its `detection.classes` names no parameter to set")
        return
    if num_classes is None or task == "embedding":
        return
    for out_name, shape in compiled.analysis.outputs.items():
        if shape[0] != num_classes:
            raise ArchspecError(
                f"the spec's output '{out_name}' has {shape[0]} channels/classes but the data has {num_classes} "
                "classes, and the spec has no num_classes parameter to set")


# --- what a run will take, before any data is loaded -----------------------------------------------------
def model_bytes(spec_plan: Plan, batch: int, training: bool, optimizer: str | None = None) -> int:
    """The static estimate (archspec.passes.memory, fp32) of one step at `batch`: the inference peak,
    or the training peak (gradients, saved activations and, with an optimizer, its state), plus the inputs."""
    memory = spec_plan.compiled.memory("fp32", optimizer or "sgd", batch)
    inputs = sum(math.prod(shape) for shape in spec_plan.shapes.values()) * batch * 4
    if not training:
        return memory.inference_peak + inputs
    return memory.training_peak - (0 if optimizer else memory.optimizer_state) + inputs


def preflight(spec_path: Path, params: dict[str, Any], inputs: dict[str, tuple[int, ...]], data: str,
              batch_size: int, training: bool, optimizer: str | None = None):
    """Plan a train or evaluate run without loading its data: (plan, data info, [(what, bytes)])
    where the parts are the model at its batch and the data set at the spec's input size."""
    from archspec.train.data import data_classes, data_footprint

    spec_plan = plan(spec_path, params, inputs, num_classes=data_classes(data))
    shape = next(iter(spec_plan.shapes.values()))
    info = data_footprint(data, shape)
    count = info.train_count if training else info.test_count
    batch = max(1, min(batch_size, count)) if count else batch_size
    size = "x".join(map(str, shape))
    samples = f"{info.count:,} samples" if info.count is not None else "size unknown before loading"
    parts = [(f"the model at batch {batch}", model_bytes(spec_plan, batch, training, optimizer)),
             (f"the data set {info.name} at {size}, {samples}", info.bytes)]
    return spec_plan, info, parts
