"""The spec's `init` key applied to a lowered module (the schemes: archspec.spec.init_scheme).

Layers are chosen by their torch class, as torchvision's own init loops choose them; the last BN
of each residual branch is found in the IR, so that no op needs to be named here. Each of
torchvision's families is one entry of TORCHVISION_FAMILIES, a copy of that family's init loop.
"""
from __future__ import annotations

import math
from typing import Callable

import torch.nn as nn

from archspec.errors import SpecError
from archspec.ir.graph import IRGraph
from archspec.spec.init_scheme import FAMILIES, scheme_of

_WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
_AFFINE_NORMS = (nn.BatchNorm2d, nn.GroupNorm)
BACKBONE = "backbone"  # the module path of the backbone in torchvision's segmentation models


def initialise(module: nn.Module, ir: IRGraph) -> None:
    """Start `module` (lowered from `ir`) from the weights the spec's `init` asks for."""
    init = scheme_of(ir.init)
    if init.scheme == "kaiming_normal":
        _kaiming_fan_in(module)
    elif init.scheme == "torchvision":
        TORCHVISION_FAMILIES[init.family](module)
    if init.zero_init_residual:
        _zero_residual_branches(module, ir)


def _kaiming_fan_in(module: nn.Module) -> None:
    # N(0, 2 / fan_in) with zero biases: He et al. (2015), as the U-Net paper prescribes
    for layer in module.modules():
        if isinstance(layer, _WEIGHTED):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def _norms_to_one_and_zero(layer: nn.Module) -> None:
    # γ = 1, β = 0; a norm without affine parameters (affine: false) has nothing to set
    if layer.weight is not None:
        nn.init.ones_(layer.weight)
        nn.init.zeros_(layer.bias)


def _zero_bias(layer: nn.Module) -> None:
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


# --- torchvision's init loops, one per family (torchvision/models/<family>.py) --------------------------
def _resnet(module: nn.Module) -> None:
    # resnet.py, ResNet.__init__; its linear layer keeps torch's default
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(layer, _AFFINE_NORMS):
            _norms_to_one_and_zero(layer)


def _vgg(module: nn.Module) -> None:
    # vgg.py, VGG.__init__ with init_weights=True (what every vgg* builder passes)
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            _zero_bias(layer)
        elif isinstance(layer, nn.BatchNorm2d):
            _norms_to_one_and_zero(layer)
        elif isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0, 0.01)
            _zero_bias(layer)


def _densenet(module: nn.Module) -> None:
    # densenet.py, DenseNet.__init__: kaiming_normal_ with its defaults (fan_in, leaky_relu, a = 0);
    # the linear layer keeps torch's default weight and gets a zero bias
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight)
        elif isinstance(layer, nn.BatchNorm2d):
            _norms_to_one_and_zero(layer)
        elif isinstance(layer, nn.Linear):
            _zero_bias(layer)


def _googlenet(module: nn.Module) -> None:
    # googlenet.py, GoogLeNet.__init__ with init_weights=True; biases keep torch's default
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(layer.weight, mean=0.0, std=0.01, a=-2, b=2)
        elif isinstance(layer, nn.BatchNorm2d):
            _norms_to_one_and_zero(layer)


def _fan_out_convs(module: nn.Module, linear_weight) -> None:
    # mobilenetv2.py and efficientnet.py, __init__: convs kaiming_normal_ fan_out with its default
    # nonlinearity, zero biases, norms at 1 and 0; they differ only in the linear weight
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out")
            _zero_bias(layer)
        elif isinstance(layer, _AFFINE_NORMS):
            _norms_to_one_and_zero(layer)
        elif isinstance(layer, nn.Linear):
            linear_weight(layer)
            _zero_bias(layer)


def _mobilenet_v2(module: nn.Module) -> None:
    _fan_out_convs(module, lambda layer: nn.init.normal_(layer.weight, 0, 0.01))


def _efficientnet(module: nn.Module) -> None:
    def uniform(layer: nn.Linear) -> None:
        init_range = 1.0 / math.sqrt(layer.out_features)
        nn.init.uniform_(layer.weight, -init_range, init_range)

    _fan_out_convs(module, uniform)


def _convnext(module: nn.Module) -> None:
    # convnext.py, ConvNeXt.__init__: conv and linear weights trunc_normal_ (std 0.02, cut at ±2),
    # zero biases; the LayerNorms and layer_scale keep the values they are built with
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(layer.weight, std=0.02)
            _zero_bias(layer)


def _mobilenet_v3(module: nn.Module) -> None:
    # mobilenetv3.py, MobileNetV3.__init__: the same loop as mobilenetv2.py's
    _mobilenet_v2(module)


def _squeezenet(module: nn.Module) -> None:
    # squeezenet.py, SqueezeNet.__init__: convs kaiming_uniform_ with its defaults (fan_in, leaky_relu,
    # a = 0), the final conv (the classifier's, the model's last) N(0, 0.01); zero biases
    convs = [layer for layer in module.modules() if isinstance(layer, nn.Conv2d)]
    for layer in convs:
        if layer is convs[-1]:
            nn.init.normal_(layer.weight, mean=0.0, std=0.01)
        else:
            nn.init.kaiming_uniform_(layer.weight)
        _zero_bias(layer)


# inception.py marks the auxiliary head's linear layer with a `stddev` attribute (this is its module
# path, which a spec shares with torchvision: the state_dict keys are the same). It marks its 5x5
# conv too (0.01), but on the BasicConv2d that holds the nn.Conv2d, which the loop never reads
INCEPTION_V3_STDDEV = {"AuxLogits.fc": 0.001}


def _inception_v3(module: nn.Module) -> None:
    # inception.py, Inception3.__init__ with init_weights=True: conv and linear weights trunc_normal_
    # (cut at ±2) with std 0.1 unless marked; BN γ = 1, β = 0; biases keep torch's default
    for path, layer in module.named_modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(layer.weight, mean=0.0, std=INCEPTION_V3_STDDEV.get(path, 0.1), a=-2, b=2)
        elif isinstance(layer, nn.BatchNorm2d):
            _norms_to_one_and_zero(layer)


def _mnasnet(module: nn.Module) -> None:
    # mnasnet.py, MNASNet.__init__: convs kaiming_normal_ (fan_out, relu), the linear layer
    # kaiming_uniform_ (fan_out, sigmoid: gain 1), zero biases, BN γ = 1, β = 0
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            _zero_bias(layer)
        elif isinstance(layer, nn.BatchNorm2d):
            _norms_to_one_and_zero(layer)
        elif isinstance(layer, nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, mode="fan_out", nonlinearity="sigmoid")
            _zero_bias(layer)


def _torch_default(module: nn.Module) -> None:
    # alexnet.py and shufflenetv2.py have no init loop: every layer keeps its reset_parameters
    return None


def _resnet_backbone(module: nn.Module) -> None:
    # segmentation/fcn.py and deeplabv3.py: the backbone is a torchvision ResNet (initialised by
    # ResNet.__init__), the heads are plain layers left at torch's default
    try:
        backbone = module.get_submodule(BACKBONE)
    except AttributeError:
        raise SpecError(f"torchvision's segmentation families initialise the `{BACKBONE}` scope as a ResNet, "
                        f"and this spec has no `{BACKBONE}`",
                        hint=f"name the backbone's scope `{BACKBONE}`, or use `family: resnet`") from None
    _resnet(backbone)


def _regnet(module: nn.Module) -> None:
    # regnet.py, RegNet.__init__: conv N(0, 2 / fan_out) with fan_out = k * k * out (groups not
    # divided out), BN γ = 1, β = 0, linear N(0, 0.01) and a zero bias; the SE convs' biases keep
    # torch's default
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            fan_out = layer.kernel_size[0] * layer.kernel_size[1] * layer.out_channels
            nn.init.normal_(layer.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
        elif isinstance(layer, nn.BatchNorm2d):
            _norms_to_one_and_zero(layer)
        elif isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, mean=0.0, std=0.01)
            _zero_bias(layer)


def _vit(module: nn.Module) -> None:
    # vision_transformer.py, VisionTransformer.__init__ and MLPBlock.__init__: the patch conv
    # trunc_normal_ (std √(1/fan_in)) with a zero bias; the MLP linears xavier_uniform_ with
    # N(0, 1e-6²) biases; the last linear (the head) zeros. Attention keeps nn.MultiheadAttention's
    # own init; the class token and position embedding start as their `param` ops say
    in_attention = {id(part) for layer in module.modules() if isinstance(layer, nn.MultiheadAttention) for part in layer.modules()}
    linears = [layer for layer in module.modules() if isinstance(layer, nn.Linear) and id(layer) not in in_attention]
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.trunc_normal_(layer.weight, std=math.sqrt(1 / (layer.in_channels * math.prod(layer.kernel_size))))
            _zero_bias(layer)
    for layer in linears[:-1]:
        nn.init.xavier_uniform_(layer.weight)
        if layer.bias is not None:
            nn.init.normal_(layer.bias, std=1e-6)
    for head in linears[-1:]:
        nn.init.zeros_(head.weight)
        _zero_bias(head)


def _swin(module: nn.Module) -> None:
    # swin_transformer.py, SwinTransformer.__init__: every linear (attention's qkv and proj, the MLPs',
    # patch merging's, the head) trunc_normal_ (std 0.02), zero biases, overriding the blocks' own MLP
    # init; the patch conv keeps torch's default, the bias tables their trunc_normal_ (std 0.02)
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.trunc_normal_(layer.weight, std=0.02)
            _zero_bias(layer)


def _maxvit(module: nn.Module) -> None:
    # maxvit.py, MaxVit._init_weights: every conv (the SE's too) and linear (attention's, the MLPs',
    # the head's) N(0, 0.02²) with a zero bias, BN γ = 1, β = 0; LayerNorms keep torch's default,
    # the bias tables their trunc_normal_ (std 0.02)
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(layer.weight, std=0.02)
            _zero_bias(layer)
        elif isinstance(layer, nn.BatchNorm2d):
            _norms_to_one_and_zero(layer)


TORCHVISION_FAMILIES: dict[str, Callable[[nn.Module], None]] = {
    "resnet": _resnet,
    "vgg": _vgg,
    "alexnet": _torch_default,
    "densenet": _densenet,
    "googlenet": _googlenet,
    "mobilenet_v2": _mobilenet_v2,
    "efficientnet": _efficientnet,
    "shufflenet_v2": _torch_default,
    "fcn": _resnet_backbone,
    "deeplabv3": _resnet_backbone,
    "convnext": _convnext,
    "mobilenet_v3": _mobilenet_v3,
    "squeezenet": _squeezenet,
    "inception_v3": _inception_v3,
    "mnasnet": _mnasnet,
    "regnet": _regnet,
    "vit": _vit,
    "swin": _swin,
    "maxvit": _maxvit,
}
assert set(TORCHVISION_FAMILIES) == set(FAMILIES), "a family of archspec.spec.init_scheme has no init loop here"


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
