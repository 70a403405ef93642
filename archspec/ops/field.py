"""Receptive-field rules: which input positions an op's output positions read.

An op's rule maps the output index ranges being asked about to the index ranges they read in
each input, per spatial axis (height, width). Ranges are inclusive `(first, last)` and are not
clipped at the borders: positions that fall in the padding count, as in the usual definition of
a receptive field. Walking these rules backwards from a node to the graph input gives, for any
output position, exactly the input interval it depends on, through residuals, concatenations,
branches, dilations, transposed convolutions and bridges (the union over all paths).

Rules (PyTorch's index arithmetic):
- sliding windows (conv, pooling): [lo·s - p, hi·s - p + d(k-1)];
- transposed conv: output o reads inputs i with i·s - p + t·d = o, t < k:
  [ceil((lo + p - d(k-1)) / s), floor((hi + p) / s)];
- resize: nearest reads floor(o·in/out); bilinear (align_corners=False) reads around
  (o + 0.5)·in/out - 0.5, both neighbours unless it falls exactly on a pixel;
- adaptive pooling: bin o covers [floor(o·n/m), ceil((o+1)·n/m) - 1];
- crop / pad / `fit` shift positions; broadcast 1x1 inputs read position 0;
- ops with neither rule nor window (activations, norms) read the same positions;
- a rule may return WHOLE for an input: every output position depends on the whole of that
  input (a reshape that regroups the map), which makes the field global.

Positions need not be the last two axes: a value's `Layout` names the axes (without the batch)
that hold its rows and columns, (1, 2) for a (C, H, W) map and (0, 1) for channels-last (H, W, C)
tokens (ConvNeXt's MLP, Swin). Ranges always come in (rows, columns) order. An op whose entry has
a `layout` rule (permute, linear, layernorm, merges, Swin's windows...) follows positions in any
layout; every other rule reads (C, H, W) maps, and positions anywhere else count as read whole.

Every rule maps each axis, and each end of a range, on its own and never backwards: an output
bound depends only on the same bound of the asked range, and grows with it. Unions of ranges
therefore pass through rules unchanged, and `affine_reads` can tell, by running a rule on
unknown positions, when its reads are an exact affine map (conv-like) rather than a rounding one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

Range = tuple[float, float]
Ranges = tuple[Range, Range]  # (height, width)
WHOLE = "whole"  # what a rule returns for an input read whole (and the demand of a vector node)
Layout = "tuple[int, int] | None"  # the axes of a value's rows and columns; None: it has no positions
MAP = (1, 2)  # the layout of a (C, H, W) map


def positional_sizes(shape, layout) -> tuple[int, int]:
    """The number of rows and columns of a value with positions."""
    return shape[layout[0]], shape[layout[1]]


def reordered_layout(layout, order) -> tuple[int, int] | None:
    """The layout after the axes are reordered so that output axis k is input axis order[k]."""
    return None if layout is None else tuple(list(order).index(axis) for axis in layout)


def layout_without(layout, removed) -> tuple[int, int] | None:
    """The layout once the non-positional axes `removed` are gone (a select, a mean)."""
    return None if layout is None else tuple(axis - sum(r < axis for r in removed) for axis in layout)


def read_whole_along(ranges: Ranges, layout, shape, axes) -> Ranges:
    """`ranges` with the positional axes among `axes` read from first to last (a layer that mixes
    that axis: a linear over the width, a softmax over the rows)."""
    if layout is None:
        return ranges
    return tuple(
        (0, shape[axis] - 1) if axis in axes else asked for asked, axis in zip(ranges, layout)
    )


def window_ranges(ranges: Ranges, kernel, stride, padding, dilation) -> Ranges:
    return tuple(
        (lo * s - p, hi * s - p + d * (k - 1))
        for (lo, hi), k, s, p, d in zip(ranges, kernel, stride, padding, dilation)
    )


def transposed_ranges(ranges: Ranges, kernel, stride, padding, dilation) -> Ranges:
    return tuple(
        (math.ceil((lo + p - d * (k - 1)) / s), math.floor((hi + p) / s))
        for (lo, hi), k, s, p, d in zip(ranges, kernel, stride, padding, dilation)
    )


def resized_ranges(ranges: Ranges, in_size, out_size, two_taps: bool) -> Ranges:
    result = []
    for (lo, hi), n_in, n_out in zip(ranges, in_size, out_size):
        scale = n_in / n_out
        if not two_taps:
            result.append((math.floor(lo * scale), math.floor(hi * scale)))
            continue
        first = max((lo + 0.5) * scale - 0.5, 0.0)  # PyTorch clamps negative sources to 0
        last = max((hi + 0.5) * scale - 0.5, 0.0)
        result.append((math.floor(first), math.floor(last) + (0 if last.is_integer() else 1)))
    return tuple(result)


def adaptive_ranges(ranges: Ranges, in_size, out_size) -> Ranges:
    return tuple(
        (math.floor(lo * n / m), math.ceil((hi + 1) * n / m) - 1)
        for (lo, hi), n, m in zip(ranges, in_size, out_size)
    )


def shifted_ranges(ranges: Ranges, shift) -> Ranges:
    return tuple((lo + d, hi + d) for (lo, hi), d in zip(ranges, shift))


def window_cells(ranges: Ranges, sizes, windows, shifts) -> Ranges:
    """Window attention, per axis: each position reads the window it falls in. Swin pads the map
    to a multiple of the window M and rolls it by -shift; its attention mask splits the window
    that wraps around, so in the map's own coordinates the windows are [0, s), [s + kM,
    s + (k+1)M), ..., the last ending at the padded size (torchvision does not shift an axis
    that one window covers). A position outside the map (a later layer's padding) reads itself."""
    result = []
    for (lo, hi), n, m, s in zip(ranges, sizes, windows, shifts):
        padded = -(-n // m) * m
        shift = 0 if m >= padded else s
        cell = lambda p: (p, p) if p < 0 or p >= n else _window_of(p, m, shift, padded)  # noqa: E731
        last = max(cell(hi)[1], cell(min(hi, n - 1))[1]) if hi >= 0 else cell(hi)[1]
        result.append((cell(lo)[0], last))
    return tuple(result)


def _window_of(position: int, window: int, shift: int, padded: int) -> Range:
    if position < shift:
        return (0, shift - 1)
    start = shift + (position - shift) // window * window
    return (start, min(start + window, padded) - 1)


def whole_ranges(shape, layout=MAP) -> Ranges:
    return tuple((0, n - 1) for n in positional_sizes(shape, layout))


# --- following a rule over unknown positions (archspec.passes.receptive_field) ----------------
class NotAffine(Exception):
    """A rule did something the position algebra below cannot follow exactly (a floor of a
    fractional scale, a comparison, a clamp): its reads are not affine in the position."""


@dataclass(frozen=True)
class AffineRead:
    """On one axis, output positions [a, b] read input positions [scale·a + lo, scale·b + hi]
    (scale 0: a fixed interval, whatever the output position)."""

    scale: int
    lo: int
    hi: int


SAME_POSITIONS = AffineRead(1, 0, 0)


def window_read(kernel, stride, padding, dilation) -> tuple[AffineRead, AffineRead]:
    """`window_ranges` as affine reads, one per axis."""
    return tuple(AffineRead(s, -p, -p + d * (k - 1)) for k, s, p, d in zip(kernel, stride, padding, dilation))


class _Position:
    """scale·x + offset for an unknown integer x, the `bound` ((axis, end)) of the ranges asked.

    Only exact operations are defined; anything else (a comparison, int(), a fractional floor)
    raises NotAffine, so a rule that runs to the end on these computes an affine map exactly."""

    __slots__ = ("bound", "scale", "offset")

    def __init__(self, bound, scale, offset):
        self.bound, self.scale, self.offset = bound, scale, offset  # ints, or Fractions once divided

    def _plus(self, other, sign: int) -> "_Position":
        if isinstance(other, _Position):
            if other.bound != self.bound:
                raise NotAffine("a rule mixes two bounds")
            return _Position(self.bound, self.scale + sign * other.scale, self.offset + sign * other.offset)
        return _Position(self.bound, self.scale, self.offset + sign * _exact(other))

    def __add__(self, other):
        return self._plus(other, 1)

    __radd__ = __add__

    def __sub__(self, other):
        return self._plus(other, -1)

    def __rsub__(self, other):
        return -self + other

    def __neg__(self):
        return _Position(self.bound, -self.scale, -self.offset)

    def __mul__(self, other):
        factor = _exact(other)
        return _Position(self.bound, self.scale * factor, self.offset * factor)

    __rmul__ = __mul__

    def __truediv__(self, other):
        divisor = _exact(other)
        if divisor == 0:
            raise NotAffine("division by zero")
        return _Position(self.bound, Fraction(self.scale) / divisor, Fraction(self.offset) / divisor)

    def __floor__(self):
        return self._rounded(math.floor)

    def __ceil__(self):
        return self._rounded(math.ceil)

    def _rounded(self, rounding) -> "_Position":
        if _fractional(self.scale):  # floor(x / 2) steps unevenly: not affine
            raise NotAffine("a fractional scale is rounded")
        return _Position(self.bound, int(self.scale), rounding(self.offset))  # integer x: exact

    def __bool__(self):
        raise NotAffine("a rule tests a position")

    __eq__ = __lt__ = __le__ = __gt__ = __ge__ = lambda self, other: _not_affine()  # noqa: E731
    __hash__ = None
    __int__ = __index__ = __float__ = __round__ = lambda self, *rest: _not_affine()  # noqa: E731


def _not_affine():
    raise NotAffine("a rule compares or converts a position")


def _exact(value) -> int | Fraction:
    if isinstance(value, _Position):
        raise NotAffine("a rule multiplies two positions")
    if isinstance(value, float):
        if not value.is_integer():  # the rule's own float rounding would not be followed exactly
            raise NotAffine("a fractional float")
        return int(value)
    if isinstance(value, (int, Fraction)):
        return value
    raise NotAffine(f"a rule uses a {type(value).__name__}")


def _fractional(value) -> bool:
    return isinstance(value, Fraction) and value.denominator != 1


def affine_reads(rule, args, inputs, output) -> list:
    """Run a `receptive_field` rule on unknown positions: per input None (not read), WHOLE, or
    one AffineRead per axis. Raises NotAffine when the rule's reads are not affine."""
    unknown = tuple((_Position((axis, 0), 1, 0), _Position((axis, 1), 1, 0)) for axis in range(2))
    try:
        reads = rule(args, unknown, inputs, output)
    except (TypeError, AttributeError, ValueError) as err:  # an operation the algebra lacks
        raise NotAffine(str(err)) from None
    return [read if read is None or read is WHOLE else tuple(_axis_read(axis, r) for axis, r in enumerate(read)) for read in reads]


def _axis_read(axis: int, bounds) -> AffineRead:
    parts = [_as_affine(value, (axis, end)) for end, value in enumerate(bounds)]
    (scale_lo, lo), (scale_hi, hi) = parts
    if scale_lo != scale_hi or scale_lo < 0:  # the two bounds must move together, forwards
        raise NotAffine("the bounds do not move together")
    return AffineRead(scale_lo, lo, hi)


def _as_affine(value, bound) -> tuple[int, int]:
    scale, offset = (value.scale, value.offset) if isinstance(value, _Position) else (0, _exact(value))
    if isinstance(value, _Position) and value.bound != bound and scale != 0:
        raise NotAffine("a bound is read from another axis or end")
    if _fractional(scale) or _fractional(offset):
        raise NotAffine("a fractional position")
    return int(scale), int(offset)
