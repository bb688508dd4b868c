"""GLM's account of a count: smart_resize step by step, the sampler's branch and frames,
timestamps, temporal groups."""

from __future__ import annotations

import math
from typing import Any

from ...explain import (
    Explanation,
    Step,
    check_equal,
    plan_fields,
    preview,
    rules_in_effect,
)
from ...types import ImagePlan, VideoPlan


def smart_resize_steps(num_frames: int, height: int, width: int, temporal_factor: int, factor: int,
                       min_pixels: int, max_pixels: int) -> tuple[list[Step], tuple[int, int]]:
    """The steps of :func:`~.sizing.smart_resize` with their numbers, and its result."""
    steps = []
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        h2, w2 = int(height * scale), int(width * scale)
        steps.append(Step("upscale_small_side", f"a side below {factor} px: x{scale:.6g}, truncated",
                          {"scale": scale, "size": [h2, w2]}))
        height, width = h2, w2
    ratio = max(height, width) / min(height, width)
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    steps.append(Step("round", f"sides to the nearest multiple of {factor} px (half to even); aspect {ratio:.4g} <= 200",
                      {"size": [h_bar, w_bar], "t_bar": t_bar, "volume": t_bar * h_bar * w_bar}))
    vol = t_bar * h_bar * w_bar
    if vol > max_pixels:
        beta = math.sqrt((num_frames * height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
        steps.append(Step("max_pixels", f"volume {vol} > max_pixels {max_pixels}: sides / beta, floored to {factor}",
                          {"beta": beta, "size": [h_bar, w_bar]}))
    elif vol < min_pixels:
        beta = math.sqrt(min_pixels / (num_frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
        steps.append(Step("min_pixels", f"volume {vol} < min_pixels {min_pixels}: sides x beta, ceiled to {factor}",
                          {"beta": beta, "size": [h_bar, w_bar]}))
    else:
        steps.append(Step("pixel_bounds", f"volume within [{min_pixels}, {max_pixels}]: kept", {}))
    return steps, (h_bar, w_bar)


def glm_explain_image(family: Any, height: int, width: int, plan: ImagePlan | None = None) -> Explanation:
    s = family.spec
    plan = plan or family.plan_image(height, width)
    height, width = plan.orig_height, plan.orig_width
    steps, size = smart_resize_steps(s.temporal_patch_size, height, width, s.temporal_patch_size, s.factor,
                                     s.image_min_pixels, s.image_max_pixels)
    check_equal("resized size", size, (plan.height, plan.width))
    _, gh, gw = plan.grid
    steps.append(Step("tokens", f"grid {gh}x{gw} patches of {s.patch_size} px / merge {s.merge_size}^2",
                      {"tokens": gh * gw // s.merge_size**2}))
    check_equal("tokens", gh * gw // s.merge_size**2, plan.num_tokens)
    return Explanation("image", family.name, family.engine, {"height": height, "width": width}, tuple(steps),
                       plan.num_tokens, tuple(plan.grid), plan_fields(plan), rules_in_effect(family))


def glm_explain_video(family: Any, plan: VideoPlan) -> Explanation:
    s = family.spec
    meta, x = plan.metadata, dict(plan.extra)
    n = plan.num_frames
    sampler = "GLM-4.1V (fps, max_duration)" if s.version == "4.1v" else "GLM-4.6V (dynamic fps)"
    vals = {k: x[k] for k in ("branch", "num_before_dedupe", "extract_t", "target_fps", "max_second") if k in x}
    steps = [
        Step("sampler", f"{sampler}: branch {x.get('branch')!r}; {x.get('num_before_dedupe')} picks, "
             f"de-duplicated and padded to pairs -> {n} frames", {**vals, "frames": preview(plan.frame_indices)}),
        Step("timestamps", f"one per temporal pair ({s.timestamp_rule}): "
             + ("int(idx / fps)" if s.timestamp_rule == "int_seconds" else "idx / fps"),
             {"timestamps": preview(plan.timestamps)}),
    ]
    rs, size = smart_resize_steps(n, meta.height, meta.width, s.temporal_patch_size, s.video_factor,
                                  s.video_min_pixels, s.video_max_pixels)
    steps += [Step("video_" + st.name, st.text, st.values) for st in rs]
    check_equal("resized frame size", size, (plan.height, plan.width))
    t, gh, gw = plan.grid
    steps.append(Step("tokens", f"{t} temporal groups (ceil({n} / {s.temporal_patch_size})) x {gh}x{gw} patches "
                      f"/ merge {s.video_merge}^2 = {t} x {plan.tokens_per_frame}",
                      {"groups": t, "per_group": plan.tokens_per_frame, "slot_token":
                       s.image_token if s.video_token_rule == "image" else s.video_token}))
    check_equal("tokens", t * (gh * gw // s.video_merge**2), plan.num_tokens)
    inputs = {"total_frames": meta.total_frames, "fps": meta.fps, "height": meta.height, "width": meta.width}
    return Explanation("video", family.name, family.engine, inputs, tuple(steps), plan.num_tokens,
                       tuple(plan.grid), plan_fields(plan), rules_in_effect(family))
