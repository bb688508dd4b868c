"""Isaac's account of a count: the patch alignment, the bisection's branch and chosen scale."""

from __future__ import annotations

import math
from typing import Any

from ...explain import Explanation, Step, check_equal, plan_fields, rules_in_effect


def bisection_trace(height: int, width: int, s: Any) -> tuple[str, float | None, int, tuple[int, int], float]:
    """``(branch, chosen scale, iterations, target px, patches before)``: the sizing loop of
    :func:`~.sizing.isaac_target_size`, step for step, recording what it chose."""
    d, p = s.patch_size * s.pixel_shuffle_scale, s.patch_size

    def scaled(scale: float, length: int) -> int:
        return int(max(d, math.ceil((scale * length) / d) * d))

    ah, aw = max(d, math.ceil(height / d) * d), max(d, math.ceil(width / d) * d)
    n0 = (ah / p) * (aw / p)
    if s.min_num_patches is not None and n0 < s.min_num_patches:
        lo, hi, it, limit, up = 1.0, 100.0, 0, s.min_num_patches, True
    elif n0 <= s.max_num_patches:
        return "keep", None, 0, (int(ah), int(aw)), n0
    else:
        lo, hi, it, limit, up = s.eps / 10, 1.0, 0, s.max_num_patches, False
    while (hi - lo) >= s.eps:
        mid = (lo + hi) / 2
        n = (scaled(mid, height) / p) * (scaled(mid, width) / p)
        it += 1
        if (n >= limit) if up else (n <= limit):
            hi, lo = (mid, lo) if up else (hi, mid)
        else:
            hi, lo = (hi, mid) if up else (mid, lo)
    scale = hi if up else lo
    return ("scale_up" if up else "scale_down"), scale, it, (scaled(scale, height), scaled(scale, width)), n0


def isaac_explain_image(family: Any, height: int, width: int, plan: Any = None) -> Explanation:
    s = family.spec
    plan = plan or family.plan_image(height, width)
    height, width = plan.orig_height, plan.orig_width
    d = s.patch_size * s.pixel_shuffle_scale
    branch, scale, iters, target, n0 = bisection_trace(height, width, s)
    check_equal("target size", target, (plan.height, plan.width))
    steps = [] if s.max_image_pixels is None else [
        Step("pixel_limit", f"{height * width} px <= max_image_pixels {s.max_image_pixels}",
             {"pixels": height * width, "limit": s.max_image_pixels})]
    steps += [
        Step("align", f"sides up to multiples of {d} px (patch {s.patch_size} x shuffle {s.pixel_shuffle_scale})",
             {"aligned": [max(d, math.ceil(height / d) * d), max(d, math.ceil(width / d) * d)], "patches": n0}),
    ]
    if branch == "keep":
        steps.append(Step("budget", f"{n0:g} patches within [{s.min_num_patches}, {s.max_num_patches}]: kept",
                          {"branch": branch}))
    else:
        bound = s.min_num_patches if branch == "scale_up" else s.max_num_patches
        steps.append(Step("bisection", f"{branch}: {n0:g} patches vs {bound}; {iters} halvings of the scale "
                          f"(eps {s.eps}) chose {scale!r}", {"branch": branch, "scale": scale, "iterations": iters,
                                                           "target": list(target)}))
    _, gh, gw = plan.grid
    steps.append(Step("tokens", f"grid {gh}x{gw} patches / {s.pixel_shuffle_scale}^2 (pixel shuffle)",
                      {"patches": gh * gw, "tokens": gh * gw // s.pixel_shuffle_scale**2}))
    check_equal("tokens", gh * gw // s.pixel_shuffle_scale**2, plan.num_tokens)
    return Explanation("image", family.name, family.engine, {"height": height, "width": width}, tuple(steps),
                       plan.num_tokens, tuple(plan.grid), plan_fields(plan), rules_in_effect(family))
