"""Parameters, buffers, MACs, FLOPs and activation sizes per node, rolled up per block.

Conventions (README, "Counting conventions"): counts are for the whole batch except parameters;
a node that reuses another's weights adds no parameters; activations are the output elements of
every op node (graph inputs excluded), at `dtype_bytes` bytes each.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from archspec.errors import SpecError
from archspec.ir.graph import IRGraph, IRNode, Shape
from archspec.ops.catalog import lookup
from archspec.passes.shapes import MAX_COUNT


@dataclass
class Figures:
    """Additive figures of a node or of a group of nodes."""

    params: int = 0
    trainable: int = 0
    buffers: int = 0
    macs: int = 0
    flops: int = 0
    all_ops: int = 0
    activations: int = 0  # output elements, whole batch

    def add(self, other: "Figures") -> None:
        self.params += other.params
        self.trainable += other.trainable
        self.buffers += other.buffers
        self.macs += other.macs
        self.flops += other.flops
        self.all_ops += other.all_ops
        self.activations += other.activations


@dataclass
class LayerStats:
    name: str  # module path of this call site
    op: str
    module: str  # owner of the weights (differs from `name` for shared weights)
    inputs: list[str]
    output_shape: Shape
    figures: Figures
    tensors: dict[str, Shape]  # parameter tensors owned here
    buffer_tensors: dict[str, Shape]
    scopes: tuple[str, ...]
    trainable: bool
    # every output's shape; `output_shape` is the first (the only one, for most ops)
    output_shapes: tuple[Shape, ...] = ()


@dataclass
class BlockStats:
    name: str
    kind: str  # block name, "repeat", "parallel", "branch", "seq", "projection"
    depth: int
    output_shape: Shape
    figures: Figures = field(default_factory=Figures)
    layers: int = 0


@dataclass(frozen=True)
class Analysis:
    """The counts of one IR. Frozen: memory, receptive fields and stages are other passes, asked
    for through `archspec.pipeline.Compiled`."""

    name: str
    batch: int
    dtype_bytes: int
    inputs: dict[str, Shape]
    outputs: dict[str, Shape]
    layers: list[LayerStats]
    blocks: list[BlockStats]
    totals: Figures

    @property
    def depth(self) -> int:
        """Weighted layers (conv and linear call sites, the ops with the "weighted" trait), the way
        papers count depth."""
        return sum(1 for layer in self.layers if _is_weighted(layer.op))


def _is_weighted(op_name: str) -> bool:
    op = lookup(op_name)
    return op is not None and op.is_("weighted")


def analyze(ir: IRGraph, batch: int = 1, dtype_bytes: int = 4) -> Analysis:
    """One walk in topological order: each node's figures, the totals and the per-block roll-ups."""
    shapes = ir.shapes
    layers: list[LayerStats] = []
    blocks: dict[str, BlockStats] = {}
    totals = Figures()
    for node in ir.nodes():
        if node.is_input:
            continue
        layer = layer_stats(node, [shapes[i] for i in node.inputs], batch)
        _check_counts(layer.figures, node, "")
        layers.append(layer)
        totals.add(layer.figures)
        _check_counts(totals, node, "the network's total ")
        shape = layer.output_shape
        for depth, (path, kind) in enumerate(zip(node.scopes, node.scope_kinds), start=1):
            block = blocks.get(path)
            if block is None:
                block = blocks[path] = BlockStats(path, kind, depth, shape)
            block.figures.add(layer.figures)
            block.layers += 1
            block.output_shape = shape  # the last node of a block (in order) gives its output
    return Analysis(
        name=ir.name,
        batch=batch,
        dtype_bytes=dtype_bytes,
        inputs={name: shapes[i] for name, i in ir.inputs.items()},
        outputs={name: shapes[i] for name, i in ir.outputs.items()},
        layers=layers,
        blocks=list(blocks.values()),
        totals=totals,
    )


def layer_stats(node: IRNode, in_shapes: list[Shape], batch: int = 1) -> LayerStats:
    """One node's figures from its op's rules. An op with several outputs gets the list of
    output shapes as `output`; its activations are the elements of all of them."""
    op = node.entry
    out = node.shape if len(node.shapes) == 1 else list(node.shapes)
    owns_weights = node.module == node.id
    tensors = op.params(node.args, in_shapes) if owns_weights else {}
    buffers = op.buffers(node.args, in_shapes) if owns_weights else {}
    params = sum(math.prod(s) for s in tensors.values())
    flops = op.flops(node.args, in_shapes, out) * batch
    figures = Figures(
        params=params,
        trainable=params if node.trainable else 0,
        buffers=sum(math.prod(s) for s in buffers.values()),
        macs=op.macs(node.args, in_shapes, out) * batch,
        flops=flops,
        all_ops=flops + op.extra_ops(node.args, in_shapes, out) * batch,
        activations=sum(math.prod(shape) for shape in node.shapes) * batch,
    )
    return LayerStats(node.id, node.op, node.module, node.inputs, node.shape, figures, tensors, buffers, node.scopes,
                      node.trainable, node.shapes)


COUNT_NAMES = {
    "params": "parameters", "trainable": "trainable parameters", "buffers": "buffer elements", "macs": "MACs",
    "flops": "FLOPs", "all_ops": "operations (all ops)", "activations": "activation elements",
}


def _check_counts(figures: Figures, node: IRNode, whose: str) -> None:
    """Every count of a node, and every running total, is at most MAX_COUNT."""
    for what, value in vars(figures).items():
        if value > MAX_COUNT:
            raise SpecError(
                f"{whose}{COUNT_NAMES[what]} ({value:,}) would be over the limit of {MAX_COUNT:.0e}"
                + (" from this node on" if whose else ""),
                node.loc,
                node.id,
                hint="no network comes near this; check its sizes (and --batch)",
            )
