"""The specs that have a torchvision counterpart, and how to build and feed that counterpart.

Shared by tests/test_torchvision_equivalence.py and scripts/dump_torchvision_params.py.
`builder` is the torchvision.models function name, `kwargs` its arguments (random init),
`input` the (C, H, W) used for the output and FLOP comparisons, `output` which output of the
archspec module corresponds to torchvision's (eval-mode) result.
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


SEGMENTATION = {"weights": None, "weights_backbone": None, "aux_loss": False, "num_classes": 21}

COUNTERPARTS: dict[str, Counterpart] = {
    "alexnet": Counterpart("alexnet"),
    "vgg11": Counterpart("vgg11"),
    "vgg16": Counterpart("vgg16"),
    "vgg19": Counterpart("vgg19"),
    "vgg16_bn": Counterpart("vgg16_bn"),
    "googlenet": Counterpart("googlenet", {"aux_logits": True, "init_weights": True}, output="logits"),
    "resnet18": Counterpart("resnet18"),
    "resnet34": Counterpart("resnet34"),
    "resnet50": Counterpart("resnet50"),
    "resnet101": Counterpart("resnet101"),
    "resnet152": Counterpart("resnet152"),
    "densenet121": Counterpart("densenet121"),
    "densenet169": Counterpart("densenet169"),
    "mobilenet_v2": Counterpart("mobilenet_v2"),
    "shufflenet_v2_x1_0": Counterpart("shufflenet_v2_x1_0"),
    "efficientnet_b0": Counterpart("efficientnet_b0"),
    "efficientnet_b3": Counterpart("efficientnet_b3", input=(3, 300, 300)),
    "fcn_resnet50": Counterpart("fcn_resnet50", SEGMENTATION, output="out", torchvision_output="out"),
    "deeplabv3_resnet50": Counterpart("deeplabv3_resnet50", SEGMENTATION, output="out", torchvision_output="out"),
}
