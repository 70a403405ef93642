"""The specs that have a torchvision counterpart, and how to build and feed that counterpart.

Shared by tests/test_torchvision_equivalence.py and scripts/dump_torchvision_params.py.
`builder` is the torchvision.models function name, `kwargs` its arguments (random init),
`input` the standard (C, H, W), at which FLOPs are compared (and outputs, unless `compare_input`
is smaller), `output` which output of the archspec module corresponds to torchvision's (eval-mode) result.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Counterpart:
    builder: str
    kwargs: dict = field(default_factory=dict)
    input: tuple[int, int, int] = (3, 224, 224)
    output: str | None = None  # None: the single output; a name: that entry of a dict output
    torchvision_output: str | None = None  # torchvision returns a dict (segmentation): its key
    # a smaller (C, H, W) for the output comparison of a heavy spec (FLOPs stay at `input`)
    compare_input: tuple[int, int, int] | None = None


# heavy specs compare outputs at half the standard size (their FLOPs are still compared at `input`)
SMALL = (3, 112, 112)
SEGMENTATION = {"weights": None, "weights_backbone": None, "aux_loss": False, "num_classes": 21}

COUNTERPARTS: dict[str, Counterpart] = {
    "alexnet": Counterpart("alexnet"),
    "vgg11": Counterpart("vgg11", compare_input=SMALL),
    "vgg16": Counterpart("vgg16", compare_input=SMALL),
    "vgg19": Counterpart("vgg19", compare_input=SMALL),
    "vgg16_bn": Counterpart("vgg16_bn", compare_input=SMALL),
    "vgg13_bn": Counterpart("vgg13_bn", compare_input=SMALL),
    "googlenet": Counterpart("googlenet", {"aux_logits": True, "init_weights": True}, output="logits"),
    "resnet18": Counterpart("resnet18"),
    "resnet34": Counterpart("resnet34"),
    "resnet50": Counterpart("resnet50", compare_input=SMALL),
    "resnet101": Counterpart("resnet101", compare_input=SMALL),
    "resnet152": Counterpart("resnet152", compare_input=SMALL),
    "densenet121": Counterpart("densenet121", compare_input=SMALL),
    "densenet169": Counterpart("densenet169", compare_input=SMALL),
    "densenet201": Counterpart("densenet201", compare_input=SMALL),
    "mobilenet_v2": Counterpart("mobilenet_v2"),
    "shufflenet_v2_x1_0": Counterpart("shufflenet_v2_x1_0"),
    "efficientnet_b0": Counterpart("efficientnet_b0"),
    "efficientnet_b3": Counterpart("efficientnet_b3", input=(3, 300, 300), compare_input=(3, 150, 150)),
    "fcn_resnet50": Counterpart("fcn_resnet50", SEGMENTATION, output="out", torchvision_output="out",
                                 compare_input=SMALL),
    "deeplabv3_resnet50": Counterpart("deeplabv3_resnet50", SEGMENTATION, output="out", torchvision_output="out",
                                       compare_input=SMALL),
    "regnet_y_400mf": Counterpart("regnet_y_400mf"),
    "regnet_x_400mf": Counterpart("regnet_x_400mf"),
    "mobilenet_v3_large": Counterpart("mobilenet_v3_large"),
    "mobilenet_v3_small": Counterpart("mobilenet_v3_small"),
    "squeezenet1_1": Counterpart("squeezenet1_1"),
    "inception_v3": Counterpart("inception_v3", {"aux_logits": True, "init_weights": True}, input=(3, 299, 299),
                                output="logits"),
    "resnext50_32x4d": Counterpart("resnext50_32x4d", compare_input=SMALL),
    "wide_resnet50_2": Counterpart("wide_resnet50_2", compare_input=SMALL),
    "mnasnet1_0": Counterpart("mnasnet1_0"),
    "efficientnet_v2_s": Counterpart("efficientnet_v2_s", input=(3, 384, 384), compare_input=(3, 192, 192)),
    "convnext_tiny": Counterpart("convnext_tiny"),
    "convnext_small": Counterpart("convnext_small", compare_input=SMALL),
    "vit_b_16": Counterpart("vit_b_16"),
    "vit_l_16": Counterpart("vit_l_16"),
    "swin_t": Counterpart("swin_t"),
    "swin_s": Counterpart("swin_s", compare_input=SMALL),
    "maxvit_t": Counterpart("maxvit_t"),  # no smaller size: every stage's map must split into 7x7
}
