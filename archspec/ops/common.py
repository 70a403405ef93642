"""Small pieces the op modules share: argument types and the sliding-window size formula."""
from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from archspec.ops.registry import Shape, ShapeError

PositiveInt = Annotated[int, Field(strict=False, ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
# an int used for both axes, or [height, width]
IntPair = Union[PositiveInt, tuple[PositiveInt, PositiveInt]]
NonNegativePair = Union[NonNegativeInt, tuple[NonNegativeInt, NonNegativeInt]]


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def feature_map(inputs: list[Shape], op: str) -> Shape:
    """The single (C, H, W) input of a spatial op, or a ShapeError saying what came instead."""
    (shape,) = inputs[:1]
    if len(shape) != 3:
        raise ShapeError(
            f"{op} needs a (C, H, W) feature map but gets shape {format_shape(shape)}"
            + (" (was it flattened before?)" if len(shape) == 1 else "")
        )
    return shape


def window_output(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool, axis: str) -> int:
    """floor((n + 2p - d(k-1) - 1) / s) + 1, PyTorch's rule for conv and pooling windows."""
    span = dilation * (kernel - 1) + 1
    if size + 2 * padding < span:
        raise ShapeError(
            f"kernel {kernel}"
            + (f" (dilated to {span})" if dilation > 1 else "")
            + f" is larger than the padded input {size}+2*{padding}={size + 2 * padding} along {axis}"
        )
    numerator = size + 2 * padding - span
    out = (-(-numerator // stride) if ceil_mode else numerator // stride) + 1
    # PyTorch: with ceil_mode the last window must start inside the input or left padding
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def format_shape(shape: Shape) -> str:
    return "x".join(str(s) for s in shape) if shape else "scalar"


# --- label text, for the op entries' `label` rules (`conv 3x3/2, 128`) ------------------------
def pair_text(value: int | tuple[int, int]) -> str:
    """`3x3` for 3 or (3, 3), `3x5` for (3, 5)."""
    height, width = pair(value)
    return f"{height}x{width}"


def factor_text(value: int | tuple[int, int]) -> str:
    """`2` for 2 or (2, 2), `2x1` for (2, 1)."""
    height, width = pair(value)
    return str(height) if height == width else f"{height}x{width}"


def stride_text(value: int | tuple[int, int] | None) -> str:
    """`/2` for a stride of 2, `/2x1` for (2, 1); nothing for 1 (or no stride)."""
    return "" if value is None or pair(value) == (1, 1) else "/" + factor_text(value)


def window_text(kernel: int | tuple[int, int], stride: int | tuple[int, int] | None) -> str:
    """A sliding window: `3x3/2`, or `3x3` at stride 1."""
    return pair_text(kernel) + stride_text(stride)


def number_text(value: float) -> str:
    """A rate or factor as written: 0.5, 2, 1e-05."""
    return f"{value:g}"


def transposed_axes(args) -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, padding, output_padding, dilation) of each spatial axis of a transposed
    convolution (height, width): its shape rule and its explanation read them alike."""
    return list(zip(pair(args.kernel), pair(args.stride), pair(args.padding), pair(args.output_padding), pair(args.dilation)))
