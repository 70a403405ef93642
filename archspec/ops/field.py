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
- ops with neither rule nor window (activations, norms) read the same positions.
"""
from __future__ import annotations

import math

Range = tuple[float, float]
Ranges = tuple[Range, Range]  # (height, width)


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


def whole_ranges(shape) -> Ranges:
    return tuple((0, n - 1) for n in shape[1:])
