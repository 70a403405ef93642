"""A roofline estimate of one forward pass at inference, per layer and in total (no torch).

For each op node:
- FLOPs: the counts pass's (FlopCounterMode's convention: 2 x MACs of conv and linear, 0 for the
  ops it has no formula for, which are then memory-bound with an intensity of 0);
- bytes moved: every input read, the weights and buffers the layer owns read, every output
  written, each element at the dtype's size. An op that is the identity at inference ("removable":
  dropout, drop_path) or a view (a flatten, "flattens") moves nothing;
- arithmetic intensity = FLOPs / bytes; the layer is compute-bound when it is above the device's
  ridge point (peak FLOP/s / bandwidth), else memory-bound;
- predicted time = max(FLOPs / peak FLOP/s, bytes / bandwidth) + the device's fixed cost per op.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from archspec.ir.graph import IRGraph
from archspec.passes.counts import Analysis, LayerStats
from archspec.passes.devices import Device

MOVES_NOTHING = ("removable", "flattens")  # traits of ops that are free at inference


@dataclass(frozen=True)
class LayerLatency:
    name: str
    op: str
    flops: int
    bytes: int
    intensity: float  # FLOPs per byte
    bound: str  # "compute" or "memory"
    seconds: float


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
    peak, ridge = device.peak(dtype), device.ridge(dtype)
    layers = []
    for layer in analysis.layers:
        moved = layer_bytes(ir, layer, analysis.batch, dtype_bytes)
        flops = layer.figures.flops
        intensity = flops / moved if moved else 0.0
        seconds = max(flops / peak, moved / device.bandwidth) + device.overhead
        layers.append(LayerLatency(layer.name, layer.op, flops, moved, intensity,
                                   "compute" if intensity > ridge else "memory", seconds))
    return LatencyEstimate(device, dtype, analysis.batch, tuple(layers), sum(x.flops for x in layers),
                           sum(x.bytes for x in layers), sum(x.seconds for x in layers))


def layer_bytes(ir: IRGraph, layer: LayerStats, batch: int, dtype_bytes: int) -> int:
    """Inputs read + owned weights and buffers read + outputs written, in bytes."""
    entry = ir.node(layer.name).entry
    if any(entry.is_(trait) for trait in MOVES_NOTHING):
        return 0
    inputs = sum(math.prod(ir.shapes[value]) for value in layer.inputs) * batch
    weights = layer.figures.params + layer.figures.buffers
    return (inputs + weights + layer.figures.activations) * dtype_bytes
