"""Small tensor helpers the generated `forward` calls (torch.fx `call_function` targets).

Each is a plain function of tensors, so torch.compile traces straight through it. Sizes are read
from the tensors at run time, so a lowered module also runs at other input sizes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def flatten(x: torch.Tensor) -> torch.Tensor:
    return torch.flatten(x, 1)


def reshape(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    return x.reshape(x.shape[0], *shape)


class DropPath(torch.nn.Module):
    """Stochastic depth (Huang et al. 2016) as torchvision's StochasticDepth(p, "row"): in
    training, each sample's residual branch is dropped with probability p and the survivors
    are scaled by 1/(1-p); in eval mode it is the identity."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)
        noise = noise.bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}"


def global_avgpool(x: torch.Tensor) -> torch.Tensor:
    # (N, C, H, W) -> (N, C); the same kernel torchvision's AdaptiveAvgPool2d(1) uses
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def add_all(*xs: torch.Tensor) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def resize(x: torch.Tensor, like: torch.Tensor | None = None, **keywords) -> torch.Tensor:
    if like is not None:
        keywords["size"] = like.shape[-2:]
    return F.interpolate(x, **keywords)


def center_crop(x: torch.Tensor, like: torch.Tensor | None = None, size: tuple[int, int] | None = None) -> torch.Tensor:
    height, width = like.shape[-2:] if like is not None else size
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


def pad(x: torch.Tensor, like: torch.Tensor | None = None, amounts=(0, 0, 0, 0), value: float = 0.0) -> torch.Tensor:
    if like is not None:
        dh, dw = like.shape[-2] - x.shape[-2], like.shape[-1] - x.shape[-1]
        amounts = (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)
    return F.pad(x, amounts, value=value)


def _fit_all(xs, fit: str):
    if any(x.ndim != 4 for x in xs):
        return list(xs)  # as `fitted_spatial`: only feature maps (N, C, H, W) are fitted
    pick = min if fit == "crop" else max
    height = pick(x.shape[-2] for x in xs)
    width = pick(x.shape[-1] for x in xs)
    if fit == "crop":
        return [center_crop(x, size=(height, width)) for x in xs]
    return [pad(x, amounts=_centred(x, height, width)) for x in xs]


def _centred(x: torch.Tensor, height: int, width: int):
    dh, dw = height - x.shape[-2], width - x.shape[-1]
    return (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)


def add_fitted(*xs: torch.Tensor, fit: str) -> torch.Tensor:
    return add_all(*_fit_all(xs, fit))


def concat_fitted(xs: list[torch.Tensor], dim: int, fit: str) -> torch.Tensor:
    return torch.cat(_fit_all(xs, fit), dim=dim)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width).transpose(1, 2)
    return x.reshape(batch, channels, height, width)
