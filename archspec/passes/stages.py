"""The stages of a network: the one definition behind `compare`'s per-stage rows and the file
reports' charts (parameters and MACs per stage; the stage bands of the per-layer memory chart).

A stage is what torchvision makes a top-level child of the model: `layer1`..`layer4` of a
ResNet, `block1`..`block13` of MobileNet v1, and, where the model groups its blocks in one
`features` sequence, the blocks of that sequence: `features.0`..`features.8` of EfficientNet,
`features.denseblock1`.. of DenseNet. So a top-level `seq` that holds blocks is opened and its
blocks are the stages; so is a `repeat` that is the only scope inside an opened one or at the top
(VGG's `features.vgg_stage1`, whose copies `features.vgg_stage1.0`..`.4` are then the stages).

Layers outside any stage are stages of their own (`conv1`, `fc`) where they have parameters or
MACs; the others (ReLU, pooling) add nothing to either figure and are left out, so the stages of
a spec always sum to its totals. With `depth=N` the stages are the blocks at nesting depth N.
`stage_runs` places every layer in its stage (or none) for charts drawn per layer.
"""
from __future__ import annotations

from dataclasses import dataclass

from archspec.passes.counts import Analysis, LayerStats


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str  # block kind of the stage, or the op of a layer outside any block
    is_block: bool
    layers: tuple[str, ...]  # the layers in it, in execution order
    params: int
    trainable: int
    macs: int
    flops: int


def stages(analysis: Analysis, depth: int | None = None) -> tuple[Stage, ...]:
    """The stages of one analysis, in execution order (see the module docstring)."""
    kinds = {block.name: block.kind for block in analysis.blocks}
    opened = _opened_scopes(analysis) if depth is None else set()
    members: dict[str, list[LayerStats]] = {}
    found: dict[str, tuple[str, bool]] = {}
    for layer in analysis.layers:
        name, kind, is_block = _stage_of(layer, kinds, opened, depth)
        f = layer.figures
        if not is_block and name not in members and not (f.params or f.macs or f.flops):
            continue  # a parameter-free, MAC-free layer outside any block (ReLU, pooling)
        members.setdefault(name, []).append(layer)
        found.setdefault(name, (kind, is_block))
    return tuple(_stage(name, *found[name], layers) for name, layers in members.items())


def stage_runs(analysis: Analysis, found: tuple[Stage, ...]) -> list[tuple[str | None, int]]:
    """(stage name, layers) of each run of consecutive layers in one stage, in execution order,
    covering every layer; None for the layers in no stage (parameter-free layers outside every
    block). `found` are this analysis' `stages(...)`: charts read stages from here, not anew."""
    stage_of = {name: stage.name for stage in found for name in stage.layers}
    runs: list[tuple[str | None, int]] = []
    for layer in analysis.layers:
        name = stage_of.get(layer.name)
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1] + 1)
        else:
            runs.append((name, 1))
    return runs


def _stage(name: str, kind: str, is_block: bool, layers: list[LayerStats]) -> Stage:
    return Stage(
        name, kind, is_block, tuple(layer.name for layer in layers),
        params=sum(layer.figures.params for layer in layers),
        trainable=sum(layer.figures.trainable for layer in layers),
        macs=sum(layer.figures.macs for layer in layers),
        flops=sum(layer.figures.flops for layer in layers),
    )


def _opened_scopes(analysis: Analysis) -> set[str]:
    """Scopes looked into rather than taken as one stage: a `seq` that holds other scopes, and a
    `repeat` that is the only scope inside an opened one or at the top."""
    parent: dict[str, str | None] = {}
    for layer in analysis.layers:
        for index, scope in enumerate(layer.scopes):
            parent.setdefault(scope, layer.scopes[index - 1] if index else None)
    children: dict[str | None, list[str]] = {}
    for scope, up in parent.items():
        children.setdefault(up, []).append(scope)
    opened: set[str] = set()
    for block in sorted(analysis.blocks, key=lambda b: b.depth):
        up = parent.get(block.name)
        if block.name not in children or not (up is None or up in opened):
            continue
        if block.kind == "seq" or (block.kind == "repeat" and len(children[up]) == 1):
            opened.add(block.name)
    return opened


def _stage_of(layer: LayerStats, kinds: dict[str, str], opened: set[str], depth: int | None) -> tuple[str, str, bool]:
    """(stage name, kind, whether the stage is a block) of one layer."""
    scopes = layer.scopes
    if depth is not None:
        if len(scopes) >= depth:
            return scopes[depth - 1], kinds[scopes[depth - 1]], True
    else:
        for scope in scopes:
            if scope not in opened:
                return scope, kinds[scope], True
    # a layer directly in the enclosing (open) scope: its own stage, one path segment below it
    enclosing = scopes[-1] if scopes else ""
    rest = layer.name[len(enclosing) + 1:] if enclosing and layer.name.startswith(enclosing + ".") else layer.name
    head = rest.split(".")[0]
    return (f"{enclosing}.{head}" if enclosing else head), layer.op, False
