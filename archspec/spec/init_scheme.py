"""The spec's `init` key: how the lowered module's weights start (applied by archspec.lower.init).

Either a scheme name, or a mapping that adds options to it:

    init: torchvision
    init: {scheme: torchvision, zero_init_residual: true}

- `torch`: each layer's own `reset_parameters` (the default).
- `kaiming_normal`: conv and linear weights from N(0, 2 / fan_in), zero biases (He et al., 2015;
  what the U-Net paper prescribes).
- `torchvision`: torchvision's scheme for its ResNet family (resnet.py): conv weights
  `kaiming_normal_(mode="fan_out", nonlinearity="relu")`, BN and GroupNorm γ = 1 and β = 0,
  linear layers left as torch builds them.
- `zero_init_residual: true` starts the last BN of each residual branch (the BN feeding a
  residual sum's first input) at γ = 0, so each residual block starts as the identity; the BN of
  a projection shortcut keeps γ = 1, as in torchvision's `resnet*(zero_init_residual=True)`.
"""
from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict

SchemeName = Literal["torch", "kaiming_normal", "torchvision"]


class InitScheme(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: SchemeName = "torch"
    zero_init_residual: bool = False


InitChoice = Union[SchemeName, InitScheme]


def scheme_of(init: InitChoice) -> InitScheme:
    """The `init` key in its mapping form, whichever form the spec wrote."""
    return init if isinstance(init, InitScheme) else InitScheme(scheme=init)
