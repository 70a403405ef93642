"""Region-of-interest pooling (Fast R-CNN, Mask R-CNN): `roi_pool` and `roi_align`.

Both take a feature map and K boxes per image and give one fixed-size map per box, through
torchvision's kernels (`torchvision.ops.roi_pool`, `torchvision.ops.roi_align`).

The IR is per sample (shapes exclude the batch N), so a spec declares the boxes of one image as a
second input of shape [K, 5], K fixed in the spec: rows (batch_index, x1, y1, x2, y2), in
input-image pixels, torchvision's Tensor[K, 5] format. At run time the op receives features
(N, C, H, W) and rois (N, K, 5); it flattens the rois to (N·K, 5) and hands them to torchvision
as they are (column 0 picks the feature map, normally n for the rows of image n; an index outside
0..N-1 is clamped into it, so no row reads outside the batch), then reshapes the (N·K, C, h, w)
result to (N, K, C, h, w). The static per-sample output shape is therefore (K, C, h, w).

Counting: FlopCounterMode has no formula for these kernels, so their FLOPs are 0 (as for
pooling); `--all-ops` adds an estimate (see each entry's `extra_ops`).
"""
from __future__ import annotations

import math
from typing import Union

from pydantic import field_validator

from archspec.ops.common import format_shape, number_text, pair, pair_text
from archspec.ops.field import WHOLE
from archspec.ops.registry import Op, OpArgs, Saved, Shape, ShapeError, numel

OPS: list[Op] = []  # this module's entries, registered by archspec.ops.catalog

# the columns of one RoI row, torchvision's format
ROI_COLUMNS = "(batch_index, x1, y1, x2, y2)"


class RoIPoolArgs(OpArgs):
    output: Union[int, tuple[int, int]]  # bins per box, (h, w); torchvision's output_size
    # feature-map pixels per input pixel: 1/stride of the map (VGG-16's conv5_3: 1/16)
    spatial_scale: float = 1.0

    @field_validator("output")
    @classmethod
    def _at_least_one_bin(cls, value):
        if min(pair(value)) < 1:
            raise ValueError(f"the output size is the number of bins per box, at least 1 (e.g. 7 or [7, 7]), not {value}")
        return value

    @field_validator("spatial_scale")
    @classmethod
    def _positive_scale(cls, value):
        if value <= 0:
            raise ValueError(
                f"spatial_scale must be > 0, not {value}: it maps input pixels to feature-map pixels, "
                "1 / the map's stride (1/16 after four 2x2 poolings)"
            )
        return value


class RoIAlignArgs(RoIPoolArgs):
    sampling_ratio: int = -1  # sample points per bin and axis; <= 0: ceil(box size / bins), adaptive
    aligned: bool = False  # True: shift boxes by -0.5 pixel (Detectron2's pixel model)


def _roi_shape(name: str):
    def shape(args: RoIPoolArgs, inputs: list[Shape]) -> Shape:
        features, rois = inputs
        if len(features) != 3:
            raise ShapeError(
                f"{name} needs a (C, H, W) feature map as its first input but <in0> gives {format_shape(features)}",
                hint="list the feature map first, then the boxes: `from: [features, rois]`",
            )
        if len(rois) != 2 or rois[1] != 5:
            raise ShapeError(
                f"{name}'s second input holds the K boxes of each image, shape [K, 5] with rows {ROI_COLUMNS}, "
                f"but <in1> gives {format_shape(rois)}",
                hint="declare the boxes as a spec input `rois: [K, 5]` and pass it second",
            )
        return (rois[0], features[0], *pair(args.output))

    return shape


def _roi_field(args, ranges, inputs: list[Shape], output: Shape) -> list:
    """The boxes' values, known only at run time, decide where each output reads: statically any
    box may cover the whole map, a global field. The boxes themselves are no positions."""
    return [WHOLE, None]


def _roi_pool_ops(args: RoIPoolArgs, inputs: list[Shape], output: Shape) -> int:
    # one comparison per feature-map element inside the box and channel; a box is taken to cover
    # the whole map (an upper bound: the real boxes are known only at run time)
    boxes = output[0]
    return boxes * numel(inputs[0])


def _roi_align_ops(args: RoIAlignArgs, inputs: list[Shape], output: Shape) -> int:
    # 4 taps per bilinear sample (as bilinear upsampling counts), sampling_ratio² samples per bin;
    # adaptive (<= 0): ceil(H/h)·ceil(W/w) samples, as for a box that covers the whole map
    _, height, width = inputs[0]
    bins_h, bins_w = pair(args.output)
    if args.sampling_ratio > 0:
        samples = args.sampling_ratio**2
    else:
        samples = math.ceil(height / bins_h) * math.ceil(width / bins_w)
    return 4 * samples * numel(output)


def _roi_pool_saved(args, inputs, output) -> Saved:
    # torchvision's backward keeps the rois and the int32 argmax of each output (not the features)
    return Saved(inputs=(1,), extra=((numel(output), "int32", True),))


def _roi_align_saved(args, inputs, output) -> Saved:
    return Saved(inputs=(1,))  # the rois; the features' sizes only


def _scale_text(scale: float) -> str:
    """`1/16` for 0.0625, else the number as written."""
    inverse = 1 / scale
    return f"1/{round(inverse)}" if inverse > 1 and math.isclose(inverse, round(inverse)) else number_text(scale)


def _roi_label(name: str):
    """`roi_pool 7x7, 1/16`: the bins per box and the spatial scale."""

    def label(args: RoIPoolArgs) -> str:
        return f"{name} {pair_text(args.output)}, {_scale_text(args.spatial_scale)}"

    return label


# --- run time: the lowered forward calls these (torch imported there, never at module level) ---
def roi_pool_per_image(features, rois, *, output_size, spatial_scale):
    """(N, C, H, W) features and (N, K, 5) rois -> (N, K, C, h, w), by torchvision.ops.roi_pool."""
    from torchvision.ops import roi_pool

    return _per_image(roi_pool, features, rois, output_size, spatial_scale)


def roi_align_per_image(features, rois, *, output_size, spatial_scale, sampling_ratio, aligned):
    """(N, C, H, W) features and (N, K, 5) rois -> (N, K, C, h, w), by torchvision.ops.roi_align."""
    from torchvision.ops import roi_align

    return _per_image(roi_align, features, rois, output_size, spatial_scale, sampling_ratio, aligned)


def _per_image(pool, features, rois, *settings):
    import torch

    images, boxes = rois.shape[0], rois.shape[1]
    flat = rois.reshape(images * boxes, 5)
    # torchvision reads feature map `int(row[0])` unchecked: keep the index inside the batch
    index = flat[:, :1].clamp(0, features.shape[0] - 1)
    pooled = pool(features, torch.cat([index, flat[:, 1:]], dim=1), *settings)
    return pooled.reshape(images, boxes, *pooled.shape[1:])


def _build_roi_pool(args: RoIPoolArgs, inputs: list[Shape]):
    return roi_pool_per_image, {"output_size": pair(args.output), "spatial_scale": args.spatial_scale}


def _build_roi_align(args: RoIAlignArgs, inputs: list[Shape]):
    keywords = {"output_size": pair(args.output), "spatial_scale": args.spatial_scale}
    return roi_align_per_image, {**keywords, "sampling_ratio": args.sampling_ratio, "aligned": args.aligned}


_CONVENTION = (
    "; the K boxes of one image are a second input [K, 5] of rows (batch_index, x1, y1, x2, y2) in "
    "input pixels, giving (K, C, h, w) per image"
)

def _roi_op(name: str, summary: str, args, extra_ops, function, saved) -> Op:
    return Op(name=name, summary=summary + _CONVENTION, args=args, shape=_roi_shape(name), extra_ops=extra_ops,
              arity=(2, 2), function=function, receptive_field=_roi_field, saved=saved, fresh_output=True,
              family="pool", label=_roi_label(name))


OPS.append(_roi_op("roi_pool", "RoI max pooling (Fast R-CNN; torchvision.ops.roi_pool): each box, scaled by "
                   "spatial_scale and rounded to map pixels, max-pooled into h x w bins",
                   RoIPoolArgs, _roi_pool_ops, _build_roi_pool, _roi_pool_saved))
OPS.append(_roi_op("roi_align", "RoI align (Mask R-CNN; torchvision.ops.roi_align): each box, scaled by "
                   "spatial_scale without rounding, averaged from bilinear samples into h x w bins",
                   RoIAlignArgs, _roi_align_ops, _build_roi_align, _roi_align_saved))
