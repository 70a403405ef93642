"""The spec's `detection` key: how a detection spec's output grid is read (archspec.detect.targets).

    detection:
      classes: classes            # a number, or the spec parameter that holds it (set from the data)
      anchors: [[1.2, 1.2], [0.6, 0.6]]   # (w, h) in grid cells: one slot of 5 + C values per anchor
      boxes: 2                    # without anchors: YOLO v1's B boxes per cell sharing C class scores
      output: head                # the output holding the grid (default: the spec's main output)

The output is channels first, (channels, S, S). With `anchors` (or neither key: one slot, the
course's 3x3x8 toy) each cell holds A slots `[pc, bx, by, bh, bw, c1..cC]`, A x (5 + C) channels;
with `boxes: B` it holds B boxes `[pc, bx, by, bh, bw]` and then one set of C class scores, B x 5
+ C channels, as YOLO v1's 7x7x30 does.
"""
from __future__ import annotations

import math
from typing import Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator

MAX_ANCHORS = 64
MAX_COUNT = 100_000  # classes or boxes per cell


class DetectionHead(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    classes: Union[StrictInt, StrictStr]
    anchors: Optional[list[tuple[float, float]]] = Field(default=None, min_length=1, max_length=MAX_ANCHORS)
    boxes: Union[StrictInt, StrictStr] = 1
    output: Optional[str] = None

    @field_validator("classes", "boxes")
    @classmethod
    def _count(cls, value: Union[int, str]) -> Union[int, str]:
        if isinstance(value, int) and not 1 <= value <= MAX_COUNT:
            raise ValueError(f"must be 1 to {MAX_COUNT:,}, not {value}")
        if isinstance(value, str) and not value.isidentifier():
            raise ValueError(f"'{value}' is neither a number nor a parameter name")
        return value

    @field_validator("anchors")
    @classmethod
    def _anchors(cls, value):
        for w, h in value or ():
            if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
                raise ValueError(f"an anchor is a (w, h) shape in grid cells, both positive: not [{w}, {h}]")
        return value

    @model_validator(mode="after")
    def _one_layout(self) -> "DetectionHead":
        if self.anchors is not None and self.boxes != 1:
            raise ValueError("give `anchors` (one slot per anchor) or `boxes` (YOLO v1's boxes sharing the "
                             "class scores), not both")
        return self

    def counts(self) -> dict[str, Union[int, str]]:
        """{"classes": .., "boxes": ..}: numbers, or the parameters that hold them."""
        return {"classes": self.classes, "boxes": self.boxes}
