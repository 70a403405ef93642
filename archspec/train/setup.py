"""From a spec and a data set to a model: the task, the build parameters (num_classes from the
data), the input shapes and the loss / metric for every task."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from archspec.errors import ArchspecError

AUX_WEIGHT = 0.3  # GoogLeNet's weight for its auxiliary classifiers


@dataclass
class Plan:
    spec_path: Path
    spec_text: str
    name: str
    params: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]  # input name -> (C, H, W)
    outputs: dict[str, tuple[int, ...]]  # output name -> shape
    task: str
    ir: Any
    loaded: Any  # the LoadedSpec (its summary and paper go into the run's report)
    analysis: Any  # the static analysis of `ir`, batch 1

    @property
    def input_names(self) -> list[str]:
        return list(self.shapes)

    @property
    def main_output(self) -> str:
        return "logits" if "logits" in self.outputs else next(iter(self.outputs))

    def build(self) -> torch.nn.Module:
        from archspec.lower.fx import lower

        return lower(self.ir)

    def build_info(self) -> dict[str, Any]:
        return {"spec": str(self.spec_path), "params": self.params,
                "inputs": {k: list(v) for k, v in self.shapes.items()}, "task": self.task}


def _compile(spec_path: Path, params: dict[str, Any], inputs: dict[str, tuple[int, ...]]):
    from archspec.ir.build import build_ir
    from archspec.passes.counts import analyze
    from archspec.spec.document import load_spec

    loaded = load_spec(spec_path)
    named = dict(inputs)
    if "" in named:
        named[next(iter(loaded.document.inputs))] = named.pop("")
    ir = build_ir(loaded, params, named)
    return loaded, ir, analyze(ir)


def task_of(declared: str | None, outputs: dict[str, tuple[int, ...]]) -> str:
    if declared in ("classification", "segmentation", "embedding"):
        return declared
    first = next(iter(outputs.values()))
    if len(first) == 1:
        return "classification"
    if len(first) == 3:
        return "segmentation"
    raise ArchspecError(f"cannot tell the task from the output shape {first}; add `task:` to the spec")


def plan(spec_path: Path, params: dict[str, Any], inputs: dict[str, tuple[int, ...]],
         num_classes: int | None = None) -> Plan:
    """Compile the spec; with num_classes (from the data), set the spec's num_classes parameter,
    or check the output size when the spec has no such parameter."""
    spec_path = Path(spec_path)
    params = dict(params)
    loaded, ir, analysis = _compile(spec_path, params, inputs)
    task = task_of(loaded.document.task, analysis.outputs)
    if num_classes is not None and task != "embedding":
        declared = loaded.document.params or {}
        if "num_classes" in declared:
            if "num_classes" in params and params["num_classes"] != num_classes:
                raise ArchspecError(f"--set num_classes={params['num_classes']} but the data has {num_classes} classes")
            if declared.get("num_classes") != num_classes or "num_classes" not in params:
                params["num_classes"] = num_classes
                loaded, ir, analysis = _compile(spec_path, params, inputs)
        for out_name, shape in analysis.outputs.items():
            if shape[0] != num_classes:
                raise ArchspecError(
                    f"the spec's output '{out_name}' has {shape[0]} channels/classes but the data has {num_classes} "
                    "classes, and the spec has no num_classes parameter to set")
    shapes = {name: tuple(ir.shapes[node]) for name, node in ir.inputs.items()}
    return Plan(spec_path, spec_path.read_text(encoding="utf-8"), loaded.document.name, params, shapes,
                dict(analysis.outputs), task, ir, loaded, analysis)


# --- what a run will take, before any data is loaded -----------------------------------------------------
def model_bytes(spec_plan: Plan, batch: int, training: bool, optimizer: str | None = None) -> int:
    """The static estimate (archspec.passes.memory, fp32) of one step at `batch`: the inference peak,
    or the training peak (gradients, saved activations and, with an optimizer, its state), plus the inputs."""
    from archspec.passes.memory import estimate_memory

    memory = estimate_memory(spec_plan.ir, batch=batch, optimizer="adam" if optimizer == "adamw" else "sgd")
    inputs = sum(math.prod(shape) for shape in spec_plan.shapes.values()) * batch * 4
    if not training:
        return memory.inference_peak + inputs
    return memory.training_peak - (0 if optimizer else memory.optimizer_state) + inputs


def preflight(spec_path: Path, params: dict[str, Any], inputs: dict[str, tuple[int, ...]], data: str,
              batch_size: int, training: bool, optimizer: str | None = None):
    """Plan a train or evaluate run without loading its data: (plan, data info, [(what, bytes)])
    where the parts are the model at its batch and the data set at the spec's input size."""
    from archspec.train.data import data_classes, data_footprint

    spec_plan = plan(spec_path, params, inputs, num_classes=data_classes(data))
    shape = next(iter(spec_plan.shapes.values()))
    info = data_footprint(data, shape)
    count = info.train_count if training else info.test_count
    batch = max(1, min(batch_size, count)) if count else batch_size
    size = "x".join(map(str, shape))
    samples = f"{info.count:,} samples" if info.count is not None else "size unknown before loading"
    parts = [(f"the model at batch {batch}", model_bytes(spec_plan, batch, training, optimizer)),
             (f"the data set {info.name} at {size}, {samples}", info.bytes)]
    return spec_plan, info, parts


# --- losses ---------------------------------------------------------------------------------------------
def as_dict(result: Any, plan: Plan) -> dict[str, torch.Tensor]:
    return result if isinstance(result, dict) else {plan.main_output: result}


def fit_target(target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Centre-crop a (N, H, W) mask to a valid-convolution U-Net's smaller output."""
    h, w = target.shape[-2:]
    if (h, w) == tuple(size):
        return target
    if size[0] > h or size[1] > w:
        raise ArchspecError(f"the model's output {tuple(size)} is larger than the mask {(h, w)}")
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    return target[..., top:top + size[0], left:left + size[1]]


def loss_weights(plan: Plan, given: dict[str, float] | None) -> dict[str, float]:
    weights = {name: (1.0 if name == plan.main_output else AUX_WEIGHT) for name in plan.outputs}
    for name, value in (given or {}).items():
        if name not in weights:
            raise ArchspecError(f"--loss-weight {name}: the spec's outputs are {', '.join(weights)}")
        weights[name] = float(value)
    return weights


SEGMENTATION_LOSSES = ("ce", "ce+dice")


def supervised_loss(outputs: dict[str, torch.Tensor], target: torch.Tensor, weights: dict[str, float],
                    segmentation_loss: str = "ce") -> torch.Tensor:
    """Cross-entropy per output (per pixel for a segmentation map), weighted; "ce+dice" adds the
    soft Dice loss of the segmentation maps, which scores the foreground as IoU/Dice do (on small
    shapes, per-pixel cross-entropy is dominated by the background)."""
    total = 0.0
    for name, weight in weights.items():
        if weight == 0:
            continue
        out = outputs[name].float()
        goal = fit_target(target, out.shape[-2:]) if out.ndim == 4 else target
        loss = F.cross_entropy(out, goal)
        if out.ndim == 4 and segmentation_loss == "ce+dice":
            loss = loss + soft_dice_loss(out, goal)
        total = total + weight * loss
    return total


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - mean over the foreground classes (all classes when there is one) of
    (2 sum(p g) + s) / (sum(p) + sum(g) + s), p the softmax probabilities, g the one-hot masks,
    summed over the whole batch (Milletari et al., V-Net, 2016)."""
    probabilities = logits.softmax(1)
    one_hot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(probabilities.dtype)
    if logits.shape[1] > 1:
        probabilities, one_hot = probabilities[:, 1:], one_hot[:, 1:]
    dims = (0, 2, 3)
    overlap = (probabilities * one_hot).sum(dims)
    dice = (2 * overlap + smooth) / (probabilities.sum(dims) + one_hot.sum(dims) + smooth)
    return 1 - dice.mean()


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    """FaceNet: max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + margin, 0), on L2-normalised embeddings."""
    a, p, n = (F.normalize(t.float().flatten(1), dim=1) for t in (anchor, positive, negative))
    return F.relu((a - p).pow(2).sum(1) - (a - n).pow(2).sum(1) + margin).mean()


def triplet_indices(labels: torch.Tensor, anchors: torch.Tensor, generator: torch.Generator):
    """A positive (same class, another sample where there is one) and a negative (another class)
    for every anchor index, drawn from `generator`."""
    positives, negatives = [], []
    by_class = {int(c): torch.nonzero(labels == c).flatten() for c in labels.unique()}
    others = {c: torch.nonzero(labels != c).flatten() for c in by_class}
    for index in anchors.tolist():
        c = int(labels[index])
        same = by_class[c]
        pick = same[torch.randint(len(same), (1,), generator=generator)].item()
        if pick == index and len(same) > 1:
            pick = same[(torch.nonzero(same == index).item() + 1) % len(same)].item()
        positives.append(pick)
        other = others[c]
        if len(other) == 0:
            raise ArchspecError("a triplet loss needs at least two classes in the data")
        negatives.append(other[torch.randint(len(other), (1,), generator=generator)].item())
    return torch.tensor(positives), torch.tensor(negatives)


def embed_triplets(model, plan: Plan, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor):
    """f(A), f(P), f(N): a two-input Siamese spec gets [A; P] on its first input and N on its
    second (the weights are shared); a one-input spec gets [A; P; N]."""
    names = plan.input_names
    outs = list(plan.outputs)
    if len(names) >= 2:
        result = as_dict(model(**{names[0]: torch.cat([a, p]), names[1]: n}), plan)
        first, second = result[outs[0]], result[outs[1] if len(outs) > 1 else outs[0]]
        return first[: len(a)], first[len(a):], second
    result = as_dict(model(**{names[0]: torch.cat([a, p, n])}), plan)[outs[0]]
    return result[: len(a)], result[len(a): 2 * len(a)], result[2 * len(a):]
