"""A roofline estimate of one forward pass at inference, per layer and in total (no torch).

For each op node:
- FLOPs: the counts pass's (FlopCounterMode's convention: 2 x MACs of conv and linear, 0 for the
  ops it has no formula for, which are then memory-bound with an intensity of 0);
- bytes moved: every input read, the weights and buffers the layer owns read, every output
  written, each element at the dtype's size. An op whose kernel is a view (the identity at
  inference: dropout, drop_path; a view of its input: flatten, split, permute, slice) moves nothing;
- arithmetic intensity = FLOPs / bytes; the layer is compute-bound when it is above the device's
  ridge point (peak FLOP/s / bandwidth), else memory-bound;
- predicted time = max(work / rate, bytes / bandwidth) + re-layout + the fixed cost per op, where
  the work is the FLOPs (the all-ops count for an op FlopCounterMode gives none: a pooling window's
  comparisons, a norm's arithmetic) and the rate the peak FLOP/s. A measured CPU refines four of
  these by the op's kernel kind (archspec.ops.registry.KERNELS): its own fixed cost per kind, its
  own rate for pooling windows, and the time a convolution spends re-laying out its weights on
  every eager call (weight bytes / the measured re-layout rate); and a matrix product with a small
  dimension (a linear's rows, in or out; a conv's in x window or out channels) runs at the rate
  measured for that size. The published GPUs have none of these, so there the estimate is the
  plain roofline.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from archspec.ir.graph import IRGraph
from archspec.passes.counts import Analysis, LayerStats
from archspec.ops.registry import RELAYOUT_KERNEL, VIEW_KERNEL
from archspec.passes.devices import Device



@dataclass(frozen=True)
class LayerLatency:
    name: str
    op: str
    flops: int
    bytes: int
    intensity: float  # FLOPs per byte
    bound: str  # "compute" or "memory"
    seconds: float  # max(compute, memory) + extra
    compute: float = 0.0  # seconds: the work at the kernel's rate
    memory: float = 0.0  # seconds: the bytes at the bandwidth
    extra: float = 0.0  # seconds: the fixed cost per op, and a conv's weight re-layout where measured


@dataclass(frozen=True)
class LatencyEstimate:
    device: Device
    dtype: str
    batch: int
    layers: tuple[LayerLatency, ...]
    flops: int
    bytes: int
    seconds: float

    @property
    def ridge(self) -> float:
        return self.device.ridge(self.dtype)


def estimate_latency(ir: IRGraph, analysis: Analysis, device: Device, dtype_bytes: int = 4,
                     dtype: str = "fp32") -> LatencyEstimate:
    """One walk over the analysis' layers (in topological order), reading input shapes from the IR."""
    layers = []
    for layer in analysis.layers:
        node, shapes = ir.node(layer.name), [ir.shapes[value] for value in layer.inputs]
        kernel = node.entry.kernel_of(node.args, shapes)
        moved = 0 if kernel == VIEW_KERNEL else layer_bytes(ir, layer, analysis.batch, dtype_bytes)
        flops = layer.figures.flops
        intensity = flops / moved if moved else 0.0
        compute = (flops or layer.figures.all_ops) / product_rate(device, node, shapes, analysis.batch, kernel, dtype)
        memory = moved / device.bandwidth
        extra = relayout_seconds(device, kernel, layer, dtype_bytes) + device.fixed_cost(kernel)
        layers.append(LayerLatency(layer.name, layer.op, flops, moved, intensity, "compute" if compute > memory else "memory",
                                   max(compute, memory) + extra, compute, memory, extra))
    return LatencyEstimate(device, dtype, analysis.batch, tuple(layers), sum(x.flops for x in layers),
                           sum(x.bytes for x in layers), sum(x.seconds for x in layers))


def product_rate(device: Device, node, shapes: list, batch: int, kernel: str, dtype: str) -> float:
    """The kernel's rate, lowered where the op's matrix product has a small dimension and the
    device measured what that costs (a 6-channel conv, a batch-1 linear: a matrix-vector product)."""
    rate = device.rate(kernel, dtype)
    if node.entry.gemm_dims is None or not device.gemm_rates:
        return rate
    measured = device.gemm_rate(min(node.entry.gemm_dims(node.args, shapes, batch)))
    return min(rate, measured) if measured else rate


def relayout_seconds(device: Device, kernel: str, layer: LayerStats, dtype_bytes: int) -> float:
    """A convolution's weights copied into the kernel's layout on every call, where the device
    does that (oneDNN on a CPU in eager mode: it dominates convolutions on small maps)."""
    if device.relayout_bandwidth is None or kernel != RELAYOUT_KERNEL:
        return 0.0
    return layer.figures.params * dtype_bytes / device.relayout_bandwidth


def layer_bytes(ir: IRGraph, layer: LayerStats, batch: int, dtype_bytes: int) -> int:
    """Inputs read + owned weights and buffers read + outputs written, in bytes."""
    inputs = sum(math.prod(ir.shapes[value]) for value in layer.inputs) * batch
    weights = layer.figures.params + layer.figures.buffers
    return (inputs + weights + layer.figures.activations) * dtype_bytes
