"""Memory estimate for inference and for one training step (no torch).

Per layer and in total:
- parameters, gradients (trainable parameters only) and optimizer state (SGD with momentum: one
  tensor per trainable parameter; Adam: two), all in the chosen dtype;
- activations kept for backward: what autograd saves, from each op's `saved` rule (inputs, the
  output, or extra tensors such as max-pooling indices and dropout masks). A tensor saved by
  several ops (a ReLU's output that the next conv also keeps) is counted once, at the first op
  that saves it, and so is the tensor that a relu or residual add overwrites in place (see
  archspec.ir.in_place: lowered in place, it keeps the input's storage). Ops that autograd does not record (no trainable weights and no input that needs
  a gradient: everything before the first trainable layer, or inside a frozen stem) save nothing;
- inference peak: weights and buffers plus the largest set of activations alive at once when the
  graph runs in order and each tensor is freed after its last consumer (in-place ops allocate
  nothing);
- training peak: weights, buffers, gradients, optimizer state, every saved activation, plus the
  largest output and its gradient (what backward holds on top of the saved tensors).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from archspec.ir.graph import IRGraph
from archspec.ir.in_place import storage_owners
from archspec.ops.catalog import lookup
from archspec.runs import OPTIMIZERS

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
# tensors of state per trainable parameter, for each optimizer `train` builds (one table: archspec.runs)
OPTIMIZER_STATES = {name: optimizer.states for name, optimizer in OPTIMIZERS.items()}
KIND_BYTES = {"fp32": 4, "int32": 4, "int64": 8, "bool": 1}


@dataclass
class LayerMemory:
    name: str
    params: int = 0  # bytes
    gradients: int = 0
    optimizer: int = 0
    saved: int = 0  # activations kept for backward, attributed to the first op that keeps them
    output: int = 0  # the layer's output tensor


@dataclass
class MemoryEstimate:
    batch: int
    dtype: str
    optimizer: str
    layers: list[LayerMemory] = field(default_factory=list)
    params: int = 0
    buffers: int = 0
    gradients: int = 0
    optimizer_state: int = 0
    saved_activations: int = 0
    inference_peak: int = 0
    training_peak: int = 0


def estimate_memory(ir: IRGraph, batch: int = 1, dtype: str = "fp32", optimizer: str = "sgd") -> MemoryEstimate:
    """One walk over the nodes in order (linear in their number)."""
    width = DTYPE_BYTES[dtype]
    kinds = {**KIND_BYTES, "act": width}
    result = MemoryEstimate(batch, dtype, optimizer)
    nodes = ir.nodes()
    owners = storage_owners(ir)  # value -> the value whose storage it is
    values = {node.id: node.values for node in nodes}  # each node's output names
    shapes = {value: shape for node in nodes for value, shape in zip(values[node.id], node.shapes)}
    producer = {value: node.id for node in nodes for value in values[node.id]}
    saved_storages: set[str] = set()  # storages (owner values) already counted as saved
    recorded: set[str] = set()  # nodes autograd records (graph inputs do not require grad)
    for node in nodes:
        if node.is_input:
            continue
        op = lookup(node.op)
        in_shapes = [shapes[value] for value in node.inputs]
        layer = LayerMemory(node.id, output=sum(math.prod(shape) for shape in node.shapes) * batch * width)
        params = op.params(node.args, in_shapes)
        if (params and node.trainable) or any(producer[value] in recorded for value in node.inputs):
            recorded.add(node.id)
        if node.module == node.id:
            layer.params = sum(math.prod(shape) for shape in params.values()) * width
            if node.trainable:
                layer.gradients = layer.params
                layer.optimizer = layer.params * OPTIMIZER_STATES[optimizer]
            result.buffers += sum(math.prod(shape) for shape in op.buffers(node.args, in_shapes).values()) * width
        result.layers.append(layer)
        if node.id in recorded:  # autograd keeps nothing of an op none of whose inputs needs a gradient
            output = node.shapes[0] if len(node.shapes) == 1 else list(node.shapes)
            saved = op.saved(node.args, in_shapes, output)
            kept = [node.inputs[i] for i in saved.inputs if i < len(node.inputs)] + (values[node.id] if saved.output else [])
            for tensor in kept:
                if owners[tensor] not in saved_storages:
                    saved_storages.add(owners[tensor])
                    layer.saved += math.prod(shapes[tensor]) * batch * width
            layer.saved += sum(elements * (batch if per_sample else 1) * kinds[kind] for elements, kind, per_sample in saved.extra)
    _totals(result, _live_peak(ir, nodes, values, owners, shapes, batch * width))
    return result


def _totals(result: MemoryEstimate, live_peak: int) -> None:
    result.params = sum(layer.params for layer in result.layers)
    result.gradients = sum(layer.gradients for layer in result.layers)
    result.optimizer_state = sum(layer.optimizer for layer in result.layers)
    result.saved_activations = sum(layer.saved for layer in result.layers)
    weights = result.params + result.buffers
    result.inference_peak = weights + live_peak
    largest_output = max((layer.output for layer in result.layers), default=0)
    result.training_peak = (
        weights + result.gradients + result.optimizer_state + result.saved_activations + 2 * largest_output
    )


def _live_peak(ir: IRGraph, nodes: list, values: dict, owners: dict[str, str], shapes: dict, bytes_per_element: int) -> int:
    """The most activation bytes alive at once when nodes run in order, each storage freed after
    the last reader of any value in it (graph outputs stay to the end). Linear: one pass finds
    each storage's last reader, one more allocates and frees."""
    last_use = {}  # storage -> index of the last node that reads (or makes) a value in it
    for index, node in enumerate(nodes):
        for value in [*values[node.id], *node.inputs]:
            last_use[owners[value]] = index
    for output in ir.outputs.values():
        last_use[owners[output]] = len(nodes)
    alive, peak = 0, 0
    frees: dict[int, int] = {}  # node index -> bytes freed after it runs
    for index, node in enumerate(nodes):
        for value in values[node.id]:
            if owners[value] == value:  # an in-place op allocates nothing
                size = math.prod(shapes[value]) * bytes_per_element
                alive += size
                peak = max(peak, alive)
                frees[last_use[value]] = frees.get(last_use[value], 0) + size
        alive -= frees.pop(index, 0)
    return peak
