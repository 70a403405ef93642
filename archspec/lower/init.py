"""The spec's `init` key applied to a lowered module (the schemes: archspec.spec.init_scheme).

Layers are chosen by their torch class, as torchvision's own init loops choose them; the last BN
of each residual branch is found in the IR, so that no op needs to be named here.
"""
from __future__ import annotations

import torch.nn as nn

from archspec.ir.graph import IRGraph
from archspec.spec.init_scheme import scheme_of

_WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
_AFFINE_NORMS = (nn.BatchNorm2d, nn.GroupNorm)


def initialise(module: nn.Module, ir: IRGraph) -> None:
    """Start `module` (lowered from `ir`) from the weights the spec's `init` asks for."""
    init = scheme_of(ir.init)
    if init.scheme == "kaiming_normal":
        _kaiming_fan_in(module)
    elif init.scheme == "torchvision":
        _torchvision_resnet(module)
    if init.zero_init_residual:
        _zero_residual_branches(module, ir)


def _kaiming_fan_in(module: nn.Module) -> None:
    # N(0, 2 / fan_in) with zero biases: He et al. (2015), as the U-Net paper prescribes
    for layer in module.modules():
        if isinstance(layer, _WEIGHTED):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def _torchvision_resnet(module: nn.Module) -> None:
    # torchvision/models/resnet.py, ResNet.__init__; its linear layer keeps torch's default
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(layer, _AFFINE_NORMS):
            nn.init.constant_(layer.weight, 1)
            nn.init.constant_(layer.bias, 0)


def residual_branch_norms(ir: IRGraph) -> list[str]:
    """Module paths of the normalisation layers that end a residual branch: the producer of the
    first (main) input of each residual sum (an op with the "residual" trait) that keeps the shape.
    The shortcut's own projection BN is the second input and stays as it is."""
    paths = []
    for node in ir.nodes():
        if node.entry is None or not node.entry.is_("residual"):
            continue
        if any(ir.shapes[value] != node.shape for value in node.inputs):
            continue  # a `fit: crop|pad` bridge, not a residual
        main = ir.node(ir.producer(node.inputs[0]))
        if main.entry is not None and main.entry.is_("normalisation"):
            paths.append(main.module)
    return paths


def _zero_residual_branches(module: nn.Module, ir: IRGraph) -> None:
    # none found (a BN folded away by a rewrite, no residual sums) leaves the weights as they
    # are, as torchvision does for blocks it does not know
    for path in residual_branch_norms(ir):
        nn.init.zeros_(module.get_submodule(path).weight)
