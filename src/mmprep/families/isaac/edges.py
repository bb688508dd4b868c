"""Where Isaac's counts jump, derived from the spec (``Isaac.edges()``, for :mod:`mmprep.testing`)."""

from __future__ import annotations

import math
from typing import Any

from ...testing.edges import Edges, ImageEdges, steps

PIXEL_KEYS = {"image": "pixel_values"}  # isaac_process's batch key
ITEM_KEYS = {"image_grid_thw": ("image", "grid")}


def isaac_edges(family: Any) -> Edges:
    """Sides round *up* to multiples of ``patch * pixel_shuffle_scale`` (the step sits between
    ``k*d`` and ``k*d + 1``); the min/max patch budgets start the scale bisection; images above
    ``max_image_pixels`` are rejected. The bisection's own scale steps are found by the
    strategies' step search (``image_sizes(family, "steps")``)."""
    s = family.spec
    d = s.patch_size * s.pixel_shuffle_scale
    p2 = s.patch_size**2
    areas = {s.max_num_patches * p2}
    if s.min_num_patches is not None:
        areas.add(s.min_num_patches * p2)
    max_side = 8192 if s.max_image_pixels is None else math.isqrt(s.max_image_pixels)
    if s.max_image_pixels is not None:
        areas.add(s.max_image_pixels)
    image = ImageEdges(sides=steps(0, d, max_side), areas=tuple(sorted(areas)), ratios=(), min_side=1,
                       max_side=max_side)
    return Edges(modalities=family.modalities, image=image, placeholders={"image": s.vision_token},
                 pixel_keys=PIXEL_KEYS, item_keys=ITEM_KEYS)
