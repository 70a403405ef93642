"""The spec's `init` key: how the lowered module's weights start (applied by archspec.lower.init).

Either a scheme name, or a mapping that adds options to it:

    init: kaiming_normal
    init: {scheme: torchvision, family: vgg}
    init: {scheme: torchvision, family: resnet, zero_init_residual: true}

- `torch`: each layer's own `reset_parameters` (the default).
- `kaiming_normal`: conv and linear weights from N(0, 2 / fan_in), zero biases (He et al., 2015;
  what the U-Net paper prescribes).
- `torchvision`: the init loop of torchvision's model code for `family`, reproduced layer kind by
  layer kind (chosen by torch class, as torchvision's `isinstance` checks choose them). torchvision
  initialises each family its own way, so the family is required: a bare `init: torchvision` is
  an error. "conv" means `nn.Conv2d`, "BN" `nn.BatchNorm2d`, "GN" `nn.GroupNorm`; what a family
  does not name keeps torch's default.

  | family          | torchvision      | conv weight (bias)                      | BN / GN γ, β | linear weight (bias)         |
  |-----------------|------------------|-----------------------------------------|--------------|------------------------------|
  | `resnet`        | resnet.py        | kaiming_normal_ fan_out, relu           | 1, 0 (both)  | torch's default              |
  | `vgg`           | vgg.py           | kaiming_normal_ fan_out, relu (0)       | 1, 0 (BN)    | N(0, 0.01) (0)               |
  | `alexnet`       | alexnet.py       | torch's default: no init loop           | -            | torch's default              |
  | `densenet`      | densenet.py      | kaiming_normal_ fan_in, leaky_relu a=0  | 1, 0 (BN)    | torch's default (0)          |
  | `googlenet`     | googlenet.py     | trunc_normal_ std 0.01 in [-2, 2]       | 1, 0 (BN)    | the same as conv (default)   |
  | `mobilenet_v2`  | mobilenetv2.py   | kaiming_normal_ fan_out (0)             | 1, 0 (both)  | N(0, 0.01) (0)               |
  | `efficientnet`  | efficientnet.py  | kaiming_normal_ fan_out (0)             | 1, 0 (both)  | U(±1/sqrt(out_features)) (0) |
  | `shufflenet_v2` | shufflenetv2.py  | torch's default: no init loop           | -            | torch's default              |
  | `fcn`           | segmentation/fcn.py       | `resnet` in the `backbone` scope; torch's default in the head |
  | `deeplabv3`     | segmentation/deeplabv3.py | `resnet` in the `backbone` scope; torch's default in the head |

  kaiming_normal_ draws N(0, gain² / fan) with gain sqrt(2) for relu and for leaky_relu with
  a = 0, so `densenet` differs from `resnet` by its fan (in, not out). googlenet's truncation at
  ±2 is 200 standard deviations away: the draws are N(0, 0.01²) in effect. The segmentation
  families find the backbone by its module path (`backbone`, as torchvision names it); a spec
  without one is refused when it is lowered.
- `zero_init_residual: true` starts the last BN of each residual branch (the BN feeding a
  residual sum's first input) at γ = 0, so each residual block starts as the identity; the BN of
  a projection shortcut keeps γ = 1, as in torchvision's `resnet*(zero_init_residual=True)`.
  Under `scheme: torchvision` only `family: resnet` takes it (torchvision offers it nowhere
  else); with `torch` or `kaiming_normal` it applies to any residual network (the course's tip).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Tag, model_validator

SchemeName = Literal["torch", "kaiming_normal", "torchvision"]
Family = Literal["resnet", "vgg", "alexnet", "densenet", "googlenet", "mobilenet_v2", "efficientnet",
                 "shufflenet_v2", "fcn", "deeplabv3", "convnext",
                 "mobilenet_v3", "squeezenet", "inception_v3", "mnasnet", "regnet", "vit", "swin", "maxvit"]
FAMILIES: tuple[str, ...] = get_args(Family)
RESIDUAL_FAMILIES = ("resnet",)  # where torchvision offers zero_init_residual


class InitError(ValueError):
    """A wrong `init`, with a hint (archspec.spec.document shows it under the located message)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


FAMILY_HINT = (f"write `init: {{scheme: torchvision, family: resnet}}`, naming the family of the "
               f"model (torchvision's module): {', '.join(FAMILIES)}")


class InitScheme(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: SchemeName = "torch"
    family: Optional[Family] = None  # scheme torchvision: which of torchvision's init loops
    zero_init_residual: bool = False

    @model_validator(mode="after")
    def _options_fit_the_scheme(self) -> "InitScheme":
        if self.scheme == "torchvision" and self.family is None:
            raise InitError("scheme torchvision needs `family`: torchvision initialises each family its own way",
                            FAMILY_HINT)
        if self.scheme != "torchvision" and self.family is not None:
            raise InitError(f"`family` chooses one of torchvision's schemes; scheme {self.scheme} has none",
                            "write `scheme: torchvision` with it, or drop `family`")
        if self.scheme == "torchvision" and self.zero_init_residual and self.family not in RESIDUAL_FAMILIES:
            raise InitError(f"torchvision offers zero_init_residual for its ResNets only, not family {self.family}",
                            "drop zero_init_residual, or use `family: resnet`")
        return self


def _named(name: str) -> str:
    if name == "torchvision":
        raise InitError("`init: torchvision` needs the model family: torchvision initialises each family "
                        "its own way", FAMILY_HINT)
    return name


def _form(value: Any) -> str | None:
    """Which member of InitChoice a value is read as (anything else: the union's own error)."""
    if isinstance(value, str):
        return "str"
    return "mapping" if isinstance(value, (dict, InitScheme)) else None


# discriminated by form, so a wrong value gets the error of the form it was written in
InitChoice = Annotated[
    Union[Annotated[SchemeName, AfterValidator(_named), Tag("str")], Annotated[InitScheme, Tag("mapping")]],
    Discriminator(_form, custom_error_type="init_form",
                  custom_error_message="must be a scheme name (torch, kaiming_normal) or a mapping "
                                       "{scheme: torchvision, family: ...}"),
]


def scheme_of(init: str | InitScheme) -> InitScheme:
    """The `init` key in its mapping form, whichever form the spec wrote."""
    return init if isinstance(init, InitScheme) else InitScheme(scheme=init)
