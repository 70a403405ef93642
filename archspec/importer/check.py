"""The verified chain of an imported spec, against the model it came from:

1. `build`: the spec compiles and lowers (archspec.pipeline);
2. `load`: the model's state_dict loads strictly into the built module;
3. `outputs`: eval-mode outputs agree within 1e-5 (relative to the largest output), after the
   model's norm layers get random affines and running statistics, so that a wrong eps or a
   γ loaded into the wrong layer shows;
4. `flops`: the static FLOPs (archspec's analysis) equal FlopCounterMode's count on the model.

The model is copied first, unless the caller says it is not needed afterwards.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOLERANCE = 1e-5
CHECKS = ("build", "load", "outputs", "flops")


@dataclass
class Chain:
    passed: dict[str, bool] = field(default_factory=dict)  # check -> whether it passed (absent: not reached)
    reason: str | None = None  # why the first failed check failed
    error: float | None = None  # the largest output difference, relative
    flops: tuple[int, int] | None = None  # (archspec's, FlopCounterMode's)

    @property
    def exact(self) -> bool:
        return all(self.passed.get(check) for check in CHECKS)

    def lines(self) -> list[str]:
        shown = []
        for check in CHECKS:
            if check in self.passed:
                shown.append(f"{check}: {'ok' if self.passed[check] else 'FAILED'}{self._detail(check)}")
        if self.reason:
            shown.append(f"reason: {self.reason}")
        return shown

    def _detail(self, check: str) -> str:
        if check == "outputs" and self.error is not None:
            return f" (largest difference {self.error:.1e} of the largest output)"
        if check == "flops" and self.flops is not None:
            return f" ({self.flops[0]:,} static, {self.flops[1]:,} FlopCounterMode)"
        return ""


def verify(model, spec_path: str | Path, input_shape: tuple[int, ...], keep_model: bool = True) -> Chain:
    """The chain; `keep_model=False` randomises the model's own norm layers instead of a copy's
    (for a model nobody uses afterwards: a 600M-parameter model is then held once, not twice)."""
    import torch

    import archspec

    chain = Chain()
    try:
        compiled = archspec.compile(spec_path, inputs={"": tuple(input_shape)})
        module = compiled.module()
        chain.passed["build"] = True
    except Exception as err:  # an ArchspecError, or a bug the chain is there to find
        return _failed(chain, "build", err)
    reference = randomised_norms((copy.deepcopy(model) if keep_model else model).eval())
    try:
        module.load_state_dict(reference.state_dict(), strict=True)
        chain.passed["load"] = True
    except Exception as err:
        return _failed(chain, "load", err)
    module.eval()
    torch.manual_seed(1)
    example = torch.randn(2, *input_shape)
    with torch.no_grad():
        theirs, ours = _as_dict(reference(example)), _as_dict(module(**{next(iter(compiled.ir.inputs)): example}))
    chain.error = _difference(theirs, ours)
    chain.passed["outputs"] = chain.error is not None and chain.error <= TOLERANCE
    if chain.error is None:
        chain.reason = f"the outputs differ in kind: {sorted(theirs)} against {sorted(ours)}"
    chain.flops = (compiled.analysis.totals.flops, counted_flops(reference, input_shape))
    chain.passed["flops"] = chain.flops[0] == chain.flops[1]
    if not chain.passed["outputs"] and chain.reason is None:
        chain.reason = f"the outputs differ by {chain.error:.1e} of the largest"
    if not chain.passed["flops"] and chain.reason is None:
        chain.reason = f"{chain.flops[0]:,} static FLOPs against FlopCounterMode's {chain.flops[1]:,}"
    return chain


def _failed(chain: Chain, check: str, err: Exception) -> Chain:
    chain.passed[check] = False
    chain.reason = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
    return chain


def counted_flops(model, input_shape: tuple[int, ...]) -> int:
    """FlopCounterMode as archspec counts (archspec.lower.verify.flop_counter: the CPU attention
    kernel with torch's SDPA formula), with autograd on: without it nn.MultiheadAttention takes a
    fused fast path that FlopCounterMode has no formula for."""
    import torch

    from archspec.lower.verify import flop_counter

    device = next(iter(model.parameters()), torch.zeros(0)).device
    with flop_counter() as counter:
        model(torch.zeros(1, *input_shape, device=device))
    return counter.get_total_flops()


def randomised_norms(model, seed: int = 0):
    """Every norm layer with γ ~ U(0.5, 1.5), β ~ N(0, 0.2²) and (BatchNorm) running mean
    ~ N(0, 0.2²), variance ~ U(0.5, 1.5): at init they are 1, 0, 0, 1, under which a norm
    layer hardly changes its input and a mistake in one would not show."""
    import torch
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.modules():
            if not isinstance(layer, (_BatchNorm, nn.GroupNorm, nn.LayerNorm)):
                continue
            for name, low in (("weight", 0.5), ("running_var", 0.5)):
                tensor = getattr(layer, name, None)
                if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
                    tensor.copy_(low + torch.rand(tensor.shape, generator=generator))
            for name in ("bias", "running_mean"):
                tensor = getattr(layer, name, None)
                if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
                    tensor.copy_(0.2 * torch.randn(tensor.shape, generator=generator))
    return model


def _as_dict(result: Any) -> dict[str, Any]:
    """A forward's result by output name: one tensor is `output`; a tuple is `output0`, `output1`."""
    if isinstance(result, dict):
        return {str(k): v for k, v in result.items()}
    if isinstance(result, (tuple, list)):
        return {f"output{k}": v for k, v in enumerate(result)}
    return {"output": result}


def _difference(theirs: dict[str, Any], ours: dict[str, Any]) -> float | None:
    if len(theirs) != len(ours):
        return None
    if set(theirs) != set(ours):  # one tensor against one named output
        theirs, ours = dict(zip(range(len(theirs)), theirs.values())), dict(zip(range(len(ours)), ours.values()))
    worst = 0.0
    for key, expected in theirs.items():
        got = ours[key]
        if tuple(got.shape) != tuple(expected.shape):
            return None
        scale = max(1.0, float(expected.abs().max()))
        worst = max(worst, float((got - expected).abs().max()) / scale)
    return worst
