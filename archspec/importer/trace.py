"""Trace a model with torch.fx and record what every node gave, at two batch sizes.

Modules some op's matcher recognises (`matching.known_names`) stay whole, as fx leaves, next to
fx's own rule (every torch.nn module but containers). Each node's value is recorded at batch 2
and at batch 3, so that a tensor's batch axis is known (it is the one that changes) and a size
read off a tensor (`x.size(0)`, `x.shape[-2:]`) becomes the number it is at this input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archspec.errors import ArchspecError, SpecError

BATCHES = (2, 3)


@dataclass(frozen=True)
class TensorValue:
    shape: tuple[int, ...]  # with the batch
    dtype: Any


@dataclass
class Trace:
    """The fx graph module and, per node, its value summary at each of BATCHES."""

    module: Any  # torch.fx.GraphModule
    model: Any  # the traced nn.Module (the graph module keeps only its leaves, not the classes above them)
    values: dict[Any, tuple[Any, Any]] = field(default_factory=dict)  # fx.Node -> (at batch 2, at batch 3)


def trace(model, input_shape: tuple[int, ...]) -> Trace:
    import torch

    graph_module = _symbolic_trace(model, input_shape)
    result = Trace(graph_module, model)
    recorder = _Recorder(graph_module)
    for batch in BATCHES:
        torch.manual_seed(0)
        example = torch.randn(batch, *input_shape)
        try:
            with torch.no_grad():
                recorder.run(example)
        except Exception as err:
            raise SpecError(f"the traced model fails at input {list(input_shape)}: {type(err).__name__}: {err}",
                                hint="give the input the model expects with --input CxHxW") from None
    for node, found in recorder.seen.items():
        result.values[node] = (found[0], found[1] if len(found) > 1 else found[0])
    return result


def _symbolic_trace(model, input_shape: tuple[int, ...]):
    """torch.fx's symbolic trace; where it fails (a forward that branches on a size), torch.export's
    graph rebuilt for the importer (archspec.importer.exported)."""
    import torch.fx as fx

    from archspec.importer.exported import exported_graph_module
    from archspec.importer.matching import known_names, module_names

    known = known_names()

    class Tracer(fx.Tracer):
        def is_leaf_module(self, module, qualified_name: str) -> bool:
            return super().is_leaf_module(module, qualified_name) or not module_names(module).isdisjoint(known)

    tracer = Tracer()
    try:
        graph = tracer.trace(model)
        return fx.GraphModule(tracer.root, graph, type(model).__name__)
    except Exception as err:
        fx_error = f"{type(err).__name__}: {_first_line(err)}"
    try:
        return exported_graph_module(model, input_shape, Tracer().is_leaf_module)
    except Exception as err:
        raise SpecError(f"torch.fx cannot trace the model ({fx_error}), nor torch.export export it "
                        f"({type(err).__name__}: {_first_line(err)})",
                        hint="fx follows no control flow on tensors, export none on tensor values") from None


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0][:300] if str(err) else ""


def summary(value: Any) -> Any:
    """A tensor as its shape and dtype; containers of them item by item; anything else as it is."""
    import torch

    if isinstance(value, torch.Tensor):
        return TensorValue(tuple(value.shape), value.dtype)
    if isinstance(value, torch.Size):
        return tuple(value)
    if isinstance(value, (tuple, list)):
        return type(value)(summary(v) for v in value) if not hasattr(value, "_fields") else tuple(summary(v) for v in value)
    if isinstance(value, dict):
        return {k: summary(v) for k, v in value.items()}
    return value


def _recorder_class():
    import torch.fx as fx

    class Recorder(fx.Interpreter):
        def __init__(self, module):
            super().__init__(module)
            self.seen: dict[Any, list] = {}

        def run_node(self, node):
            value = super().run_node(node)
            self.seen.setdefault(node, []).append(summary(value))
            return value

    return Recorder


def _Recorder(module):
    return _recorder_class()(module)


def is_tensor(value: Any) -> bool:
    return isinstance(value, TensorValue)


def tensors_in(value: Any) -> bool:
    """Whether a value is a tensor or a container holding one."""
    if isinstance(value, TensorValue):
        return True
    if isinstance(value, (tuple, list)):
        return any(tensors_in(v) for v in value)
    if isinstance(value, dict):
        return any(tensors_in(v) for v in value.values())
    return False
