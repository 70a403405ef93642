"""Run a lowered module once and compare what torch measures with the static analysis."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from archspec.passes.counts import Analysis


@dataclass
class Check:
    what: str
    static: object
    actual: object

    @property
    def ok(self) -> bool:
        return self.static == self.actual


def verify_module(module: torch.nn.Module, analysis: Analysis) -> list[Check]:
    """One forward pass (eval mode, zeros, the analysis's batch) under FlopCounterMode."""
    inputs = {name: torch.zeros(analysis.batch, *shape) for name, shape in analysis.inputs.items()}
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            result = module(**inputs)
    finally:
        module.train(was_training)
    results = result if isinstance(result, dict) else {next(iter(analysis.outputs)): result}
    actual_shapes = {name: tuple(t.shape[1:]) for name, t in results.items()}
    parameters = list(module.parameters())
    return [
        Check("output shapes", dict(analysis.outputs), actual_shapes),
        Check("parameters", analysis.totals.params, sum(p.numel() for p in parameters)),
        Check("trainable parameters", analysis.totals.trainable, sum(p.numel() for p in parameters if p.requires_grad)),
        Check("buffers", analysis.totals.buffers, sum(b.numel() for b in module.buffers())),
        Check("FLOPs (FlopCounterMode)", analysis.totals.flops, counter.get_total_flops()),
    ]
