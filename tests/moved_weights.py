"""Weights moved away from a module's initialisation, for output comparisons that must see every
tensor: each float tensor scaled by 1 + 0.2·noise plus 0.01·noise (relative, so activations keep
their scale through a deep network), running variances drawn from [0.5, 1.5), integer buffers kept."""
from __future__ import annotations

import torch


def moved_weights(module: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    moved = {}
    for name, tensor in module.state_dict().items():
        if not tensor.is_floating_point():
            moved[name] = tensor.clone()
        elif name.endswith("running_var"):
            moved[name] = torch.rand(tensor.shape, generator=generator) + 0.5
        else:
            noise = torch.randn((2, *tensor.shape), generator=generator)
            moved[name] = tensor * (1 + 0.2 * noise[0]) + 0.01 * noise[1]
    return moved
