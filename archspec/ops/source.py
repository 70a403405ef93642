"""How an op reads as standalone PyTorch source (`archspec export --format python`).

An op entry's `source` rule, (args, input shapes, in place) -> `Written`, says how one call of the
op is written where its builder alone would read less like torchvision: a relu as the module
`nn.ReLU(inplace=True)`, a global average pool as `nn.AdaptiveAvgPool2d((1, 1))` then
`torch.flatten(x, 1)`. An op without the rule is written from its `module` / `function` builder
(archspec.export.python_calls). Values in a `Call` are Python literals; `INPUTS` marks where a
function call takes the op's inputs (one after the other), `INPUT_LIST` where it takes them as one
list (`torch.cat([a, b], dim=1)`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


INPUTS = _Marker("INPUTS")
INPUT_LIST = _Marker("INPUT_LIST")


@dataclass(frozen=True)
class Name:
    """A name written as it is, as a value: `nn.GELU` passed as a layer to build."""

    text: str


@dataclass(frozen=True)
class Call:
    """`callee(*args, **keywords)` as source text; `callee` is what the file names (`nn.Conv2d`,
    `torch.flatten`, `F.relu6`) or one of the operators `+`, `*`, `+=` written between the inputs."""

    callee: str
    args: tuple[Any, ...] = ()
    keywords: tuple[tuple[str, Any], ...] = ()
    # keyword -> its default: the keyword is left out where its value is the default
    defaults: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Written:
    """One op call as source: a `module` built in `__init__` and called on the inputs in `forward`,
    then (or instead, without a module) the function call `then` on its result (on the inputs).
    `name`: the attribute name torchvision gives such a module (`avgpool`) where the node's own is
    an automatic one. `needs`: Python classes or functions whose source the file must hold."""

    module: Call | None = None
    then: Call | None = None
    name: str | None = None
    needs: tuple[Any, ...] = ()


def module(callee: str, *args: Any, name: str | None = None, **keywords: Any) -> Written:
    """An op written as the module `callee(*args, **keywords)` (keywords left out at their defaults)."""
    return Written(module=Call(callee, args, tuple(keywords.items())), name=name)
