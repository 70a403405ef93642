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


# above this many FLOPs the check pass runs on the meta device: the same module code and
# FlopCounterMode, shapes only, no arithmetic (U-Net at 572x572 is 300 GFLOPs)
REAL_PASS_FLOPS = 20 * 10**9


def flop_counter() -> FlopCounterMode:
    """FlopCounterMode as archspec counts: torch has its SDPA formula (4·N·h·T²·d_head forward)
    for the CUDA attention kernels only, so the CPU kernel gets the same formula, for this counter
    alone (torch's own registry stays as it is), and a count does not depend on the device."""
    from torch.utils.flop_counter import flop_registry

    aten = torch.ops.aten
    same_as = {
        aten._scaled_dot_product_flash_attention_for_cpu: aten._scaled_dot_product_flash_attention,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: aten._scaled_dot_product_flash_attention_backward,
    }
    # the registry holds formulas wrapped to take tensors; custom_mapping wraps what it is given again
    mapping = {cpu: flop_registry[counted].__wrapped__ for cpu, counted in same_as.items() if counted in flop_registry}
    return FlopCounterMode(display=False, custom_mapping=mapping)


def verify_module(module: torch.nn.Module, analysis: Analysis) -> list[Check]:
    """One forward pass (eval mode, zeros, the analysis's batch) under FlopCounterMode, on the
    module's device (meta for a meta module); a real pass also checks the outputs are finite."""
    device = next(iter(module.parameters()), torch.zeros(0)).device
    inputs = {name: torch.zeros(analysis.batch, *shape, device=device) for name, shape in analysis.inputs.items()}
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), flop_counter() as counter:
            result = module(**inputs)
    finally:
        module.train(was_training)
    results = result if isinstance(result, dict) else {next(iter(analysis.outputs)): result}
    actual_shapes = {name: tuple(t.shape[1:]) for name, t in results.items()}
    parameters = list(module.parameters())
    finite = [] if device.type == "meta" else [
        Check("finite outputs", True, all(bool(torch.isfinite(t).all()) for t in results.values()))
    ]
    return finite + [
        Check("output shapes", dict(analysis.outputs), actual_shapes),
        Check("parameters", analysis.totals.params, sum(p.numel() for p in parameters)),
        Check("trainable parameters", analysis.totals.trainable, sum(p.numel() for p in parameters if p.requires_grad)),
        Check("buffers", analysis.totals.buffers, sum(b.numel() for b in module.buffers())),
        Check("FLOPs (FlopCounterMode)", analysis.totals.flops, counter.get_total_flops()),
    ]
