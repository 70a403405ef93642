"""Weights saved by another program (torchvision's `vgg19().state_dict()`, a renamed spec) for a
lowered module: which checkpoint tensor goes to which of the module's tensors.

Two mappings are tried, in this order:
- by name: every tensor of the module has a tensor of the same name, shape and kind of dtype in
  the checkpoint (specs built "as torchvision builds it" keep torchvision's names, so its
  checkpoints load this way);
- by order and shape: the module's tensors, in state_dict order, are the checkpoint's first ones
  in its order, shape for shape (a spec whose layers are named otherwise, a flat spec).
Either way the checkpoint may hold more tensors than the module (a classifier the module does not
have); they are left out and reported. Nothing else is guessed: a checkpoint that fits neither is
refused with the first tensor that does not line up.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from archspec.errors import ArchspecError

SHOWN = 4  # names listed in a summary or a refusal before "..."


@dataclass(frozen=True)
class MatchedWeights:
    state: dict[str, torch.Tensor]  # the module's names -> the checkpoint's tensors
    mapping: str  # "by name" or "by order and shape"
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (module name, checkpoint name)
    unused: list[str] = field(default_factory=list)  # checkpoint tensors the module has no place for

    def summary(self) -> str:
        """One line saying which mapping was used, for the command's output."""
        text = f"loaded {len(self.state)} tensors {self.mapping}"
        if self.renamed:
            text += " (" + _listed([f"{ours} <- {theirs}" for ours, theirs in self.renamed]) + ")"
        if self.unused:
            text += f"; {len(self.unused)} checkpoint tensors unused: {_listed(self.unused)}"
        return text


def match_weights(own: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]) -> MatchedWeights:
    """The checkpoint `tensors` for a module whose state_dict is `own`, by name or else by order
    and shape; an ArchspecError naming the first tensor that fits neither way."""
    if all(name in tensors and _fits(own[name], tensors[name]) for name in own):
        return MatchedWeights({name: tensors[name] for name in own}, "by name",
                              unused=[name for name in tensors if name not in own])
    ours, theirs = list(own.items()), list(tensors.items())
    for index, (name, tensor) in enumerate(ours):
        if index >= len(theirs):
            raise ArchspecError(f"{_names_differ(own, tensors)}, and by order it has too few tensors: "
                                f"{len(theirs)} for the module's {len(ours)}")
        other, value = theirs[index]
        if not _fits(tensor, value):
            raise ArchspecError(f"{_names_differ(own, tensors)}, and its tensors do not line up with the module's "
                                f"by order and shape: the module's tensor {index + 1}, {name} {_form(tensor)}, "
                                f"meets the checkpoint's {other} {_form(value)}")
    renamed = [(name, theirs[index][0]) for index, (name, _) in enumerate(ours) if name != theirs[index][0]]
    return MatchedWeights({name: theirs[index][1] for index, (name, _) in enumerate(ours)}, "by order and shape",
                          renamed, [name for name, _ in theirs[len(ours):]])


def _fits(tensor: torch.Tensor, value: torch.Tensor) -> bool:
    # the same shape and kind of dtype: float16 loads into float32, an integer never into a float
    return tuple(tensor.shape) == tuple(value.shape) and _kind(tensor) == _kind(value)


def _kind(tensor: torch.Tensor) -> str:
    if tensor.is_complex():
        return "complex"
    if tensor.is_floating_point():
        return "floating"
    return "bool" if tensor.dtype == torch.bool else "integer"


def _form(tensor: torch.Tensor) -> str:
    kind = "" if tensor.is_floating_point() else f" {str(tensor.dtype).removeprefix('torch.')}"
    return f"{tuple(tensor.shape)}{kind}"


def _names_differ(own: dict, tensors: dict) -> str:
    missing = [name for name in own if name not in tensors]
    unexpected = [name for name in tensors if name not in own]
    misfits = [name for name in own if name in tensors and not _fits(own[name], tensors[name])]
    parts = [f"{label} {_listed(names)}" for label, names in
             (("missing", missing), ("unexpected", unexpected), ("of another shape or dtype", misfits)) if names]
    return "its tensor names are not the module's (" + "; ".join(parts) + ")"


def _listed(names: list[str]) -> str:
    shown = [" ".join(str(name).split())[:120] for name in names[:SHOWN]]  # names from a file: bounded
    return ", ".join(shown) + (f", ... ({len(names)} in all)" if len(names) > SHOWN else "")
