"""Weight-transfer hooks of the op entries, for the graph rewrites (archspec.rewrite).

Folding a BatchNorm into the layer before it (`fold_bn`) is two hooks: the BatchNorm's
`affine_at_inference` gives it as y = x·scale + shift per channel, and the layer's `fold_affine`
takes that map into its weight and bias. The tensors are torch tensors, but nothing here imports
torch: tensor methods suffice. Arithmetic is in float64 and the results in the weight's dtype.
"""
from __future__ import annotations

from typing import Any, Callable

Tensors = dict[str, Any]


def batchnorm_affine(args: Any) -> Callable[[Tensors], tuple[Any, Any]] | None:
    """A BatchNorm at inference: (x − μ)/√(σ²+ε)·γ + β = x·scale + shift with scale = γ/√(σ²+ε)
    and shift = β − μ·scale. None without running statistics: it then normalises with the
    batch's statistics even in eval mode, which is no fixed map."""
    if not args.track_running_stats:
        return None

    def affine(tensors: Tensors) -> tuple[Any, Any]:
        mean = tensors["running_mean"].double()
        scale = (tensors["running_var"].double() + args.eps).rsqrt()
        if args.affine:
            scale = scale * tensors["weight"].double()
            return scale, tensors["bias"].double() - mean * scale
        return scale, -mean * scale

    return affine


def scale_output_rows(args: Any, tensors: Tensors, scale: Any, shift: Any) -> Tensors:
    """y·scale + shift after a layer whose weight has one row per output channel (conv, dwconv:
    (out, C/groups, kh, kw); linear: (out, in)): W' = W·scale per row, b' = b·scale + shift."""
    weight = tensors["weight"]
    rows = scale.reshape(-1, *([1] * (weight.dim() - 1)))
    return _folded(weight, weight.double() * rows, tensors.get("bias"), scale, shift)


def scale_transposed_columns(args: Any, tensors: Tensors, scale: Any, shift: Any) -> Tensors:
    """The same after a transposed conv, whose weight is (C_in, C_out/groups, kh, kw): output
    channel g·(C_out/groups) + j is column j of the rows of group g."""
    weight = tensors["weight"]
    rows, columns = weight.shape[0], weight.shape[1]
    groups = args.groups
    grouped = weight.double().reshape(groups, rows // groups, columns, *weight.shape[2:])
    factors = scale.reshape(groups, 1, columns, *([1] * (weight.dim() - 2)))
    return _folded(weight, (grouped * factors).reshape(weight.shape), tensors.get("bias"), scale, shift)


def _folded(weight: Any, scaled: Any, bias: Any, scale: Any, shift: Any) -> Tensors:
    new_bias = shift if bias is None else bias.double() * scale + shift
    return {"weight": scaled.to(weight.dtype), "bias": new_bias.to(weight.dtype)}


def linear_as_conv(args: Any, shape: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    """A linear layer reading a flattened C×H×W map is a conv with an H×W kernel on the map: torch's
    flatten orders features C, then H, then W, as a conv weight (out, C, H, W) is laid out."""
    _, height, width = shape
    return "conv", {"out": args.out, "kernel": height if height == width else (height, width), "bias": args.bias}
