"""The course's style-transfer costs, literally, normalisation included.

Every activation `a` is one image's activation at one layer, shaped (1, n_C, n_H, n_W) as torch
lays it out; the course writes `a_ijk` with i over the height, j over the width, k over channels.

- content cost   J_content(C, G) = 1/2 ||a[l](C) - a[l](G)||^2                (sum of squares, halved)
- Gram matrix    G_kk' = sum_i sum_j a_ijk a_ijk'                              (unnormalised, n_C x n_C)
- layer style    J_style^[l](S, G) = 1/(2 n_H n_W n_C)^2 sum_k sum_k' (G^(S)_kk' - G^(G)_kk')^2
- style cost     J_style(S, G) = sum_l lambda^[l] J_style^[l](S, G)            (lambda^[l] = 1 by default)
- total cost     J(G) = alpha J_content(C, G) + beta J_style(S, G)
"""
from __future__ import annotations

from collections.abc import Mapping

import torch


def _check_one_image(activation: torch.Tensor) -> None:
    if activation.dim() != 4 or activation.shape[0] != 1:
        raise ValueError(f"expected one image's activation shaped (1, C, H, W), got {tuple(activation.shape)}")


def content_cost(content: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """J_content(C, G) = 1/2 ||a[l](C) - a[l](G)||^2: half the plain sum of squared differences
    (no division by the number of elements)."""
    _check_one_image(content)
    _check_one_image(generated)
    return 0.5 * ((content - generated) ** 2).sum()


def gram_matrix(activation: torch.Tensor) -> torch.Tensor:
    """G_kk' = sum_i sum_j a_ijk a_ijk': the n_C x n_C matrix of channel correlations, summed over
    every position and not divided by anything."""
    _check_one_image(activation)
    channels = activation.reshape(activation.shape[1], -1)  # (n_C, n_H * n_W)
    return channels @ channels.T


def layer_style_cost_from_gram(style_gram: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """J_style^[l] with the style image's Gram matrix computed once beforehand (as `transfer` does)."""
    _check_one_image(generated)
    _, n_c, n_h, n_w = generated.shape
    difference = style_gram - gram_matrix(generated)
    return (difference ** 2).sum() / (2 * n_h * n_w * n_c) ** 2


def layer_style_cost(style: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """J_style^[l](S, G) = 1/(2 n_H n_W n_C)^2 sum_k sum_k' (G^(S)_kk' - G^(G)_kk')^2, with n_H, n_W,
    n_C the layer's height, width and channels and G the unnormalised Gram matrices."""
    if style.shape != generated.shape:
        raise ValueError(f"style and generated activations differ in shape: {tuple(style.shape)} vs {tuple(generated.shape)}")
    return layer_style_cost_from_gram(gram_matrix(style), generated)


def style_cost(
    style: Mapping[str, torch.Tensor],
    generated: Mapping[str, torch.Tensor],
    weights: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """J_style(S, G) = sum_l lambda^[l] J_style^[l](S, G) over the layers named in `style`; a layer
    missing from `weights` has lambda^[l] = 1."""
    weights = weights or {}
    if not style:
        raise ValueError("style cost needs at least one layer")
    layers = [weights.get(name, 1.0) * layer_style_cost(style[name], generated[name]) for name in style]
    return torch.stack(layers).sum()


def total_cost(content_term: torch.Tensor, style_term: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """J(G) = alpha J_content(C, G) + beta J_style(S, G)."""
    return alpha * content_term + beta * style_term
