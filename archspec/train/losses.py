"""The training losses: weighted cross-entropy over a spec's outputs (with the soft Dice loss for
segmentation maps), and the triplet loss with its triplet mining for embeddings."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from archspec.errors import ArchspecError

if TYPE_CHECKING:
    from archspec.train.setup import Plan

AUX_WEIGHT = 0.3  # GoogLeNet's weight for its auxiliary classifiers


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


def supervised_loss(outputs: dict[str, torch.Tensor], target: torch.Tensor, weights: dict[str, float],
                    segmentation_loss: str = "ce") -> torch.Tensor:
    """Cross-entropy per output (per pixel for a segmentation map), weighted; "ce+dice" adds the
    soft Dice loss of the segmentation maps, which scores the foreground as IoU/Dice do (on small
    shapes, per-pixel cross-entropy is dominated by the background)."""
    total = None
    for name, weight in weights.items():
        if weight == 0:
            continue
        out = outputs[name].float()
        goal = fit_target(target, out.shape[-2:]) if out.ndim == 4 else target
        loss = F.cross_entropy(out, goal)
        if out.ndim == 4 and segmentation_loss == "ce+dice":
            loss = loss + soft_dice_loss(out, goal)
        loss = loss if weight == 1 else weight * loss  # no op (and no backward node) for the usual 1
        total = loss if total is None else total + loss
    return total if total is not None else torch.zeros(())


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


def normalised(*embeddings: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each (N, ...) embedding flattened to (N, D) and L2-normalised, in float32."""
    return tuple(F.normalize(t.float().flatten(1), dim=1) for t in embeddings)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    """FaceNet: max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + margin, 0), on L2-normalised embeddings."""
    a, p, n = normalised(anchor, positive, negative)
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
