"""Nemotron's account of a count: InternVL tile ratios, the dynamic tiler's budget rounds, the
video loader, frame size, tubelets and EVS, and the audio frame rule."""

from __future__ import annotations

import math
from typing import Any

from ...evs import retained_count
from ...explain import (
    Explanation,
    Step,
    check_equal,
    plan_fields,
    preview,
    rules_in_effect,
)
from ...types import AudioPlan, ImagePlan, RequestPlan, VideoPlan
from .audio import CLIP_MIN_SECONDS, CLIP_SECONDS, subsampled_length
from .dynamic import TEXT_RESERVE, dynamic_grid, first_round_budget
from .tiles import internvl_target_ratios

_VIDEO_RULES = ("video_temporal_patch_size", "video_target_num_patches", "video_maintain_aspect_ratio",
                "video_frame_newline", "video_pruning_rate")


def _tile_steps(family: Any, plan: ImagePlan) -> list[Step]:
    s = family.spec
    h, w = plan.orig_height, plan.orig_width
    ratios = internvl_target_ratios(s.min_num_tiles, s.max_num_tiles)
    aspect, area = w / h, w * h
    best, best_diff, ties = (1, 1), math.inf, []
    for cols, rows in ratios:  # find_closest_aspect_ratio, recording the exact ties it took
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff, ties = (cols, rows), diff, []
        elif diff == best_diff and area > 0.5 * s.image_size**2 * cols * rows:
            ties.append([cols, rows])
            best = (cols, rows)
    check_equal("tile grid", best, (plan.tiles.cols, plan.tiles.rows))
    t = plan.tiles
    return [
        Step("ratios", f"{len(ratios)} (cols, rows) grids of {s.min_num_tiles}..{s.max_num_tiles} tiles, "
             f"closest to aspect w/h = {aspect:.6g}",
             {"candidates": len(ratios), "aspect": aspect, "ratios": [list(r) for r in ratios]}),
        Step("closest", f"({t.cols}, {t.rows}) at |diff| {best_diff:.6g}"
             + (f"; exact ties moved to {ties} (area > half the grid)" if ties else ""),
             {"cols": t.cols, "rows": t.rows, "diff": best_diff, "ties_taken": ties}),
        Step("tiles", f"{t.cols * t.rows} tiles of {s.image_size} px" + (" + thumbnail" if t.thumbnail else ""),
             {"tiles": t.num_tiles, "tokens_per_tile": s.tokens_per_tile}),
    ]


def _grid_steps(s: Any, h: int, w: int, budget: int) -> tuple[list[Step], tuple[int, int]]:
    """``process_media`` for one budget, step by step."""
    p = s.patch_size
    cph, cpw = round(h / p + 0.5), round(w / p + 0.5)
    factor = min(math.sqrt(budget / (cph * cpw)), s.factor_max)
    tph, tpw = math.floor(factor * cph), math.floor(factor * cpw)
    steps = [Step("closest_grid", f"round(side / {p} + 0.5): {cph}x{cpw} patches; factor "
                  f"min(sqrt({budget} / {cph * cpw}), {s.factor_max}) = {factor:.6g} -> {tph}x{tpw}",
                  {"closest": [cph, cpw], "factor": factor, "scaled": [tph, tpw]})]
    out = dynamic_grid(h, w, budget, p, s.min_num_patches, s.factor_max)
    if budget > s.min_num_patches and tph * tpw < s.min_num_patches:
        steps.append(Step("min_patches", f"{tph * tpw} < min_num_patches {s.min_num_patches}: scaled up", {}))
    steps.append(Step("even", f"both sides to even (up while within {budget} patches, else down): "
                      f"{out[0]}x{out[1]}", {"grid": list(out)}))
    return steps, out


def request_steps(family: Any, sizes: list, text_len: int = 0, max_model_len: int | None = None) -> tuple[
        list[Step], RequestPlan]:
    """The dynamic tiler's budget and rounds for a request's images."""
    s = family.spec
    plan = family.plan_request(sizes, text_len=text_len, max_model_len=max_model_len)
    cap = s.max_num_patches if s.max_num_patches and s.max_num_patches > 0 else float("inf")
    budget, first = first_round_budget(plan.num_tokens_available, len(sizes), s.min_num_patches, cap,
                                       s.patches_per_token)
    steps = [Step("budget", f"max_model_len {plan.max_model_len} - text {plan.text_len} - {TEXT_RESERVE} = "
                  f"{plan.num_tokens_available} tokens x {s.patches_per_token} = {budget} patches (floor "
                  f"{s.min_num_patches} per image); first per-image budget {first} (cap {s.max_num_patches})",
                  {"tokens_available": plan.num_tokens_available, "patch_budget": budget, "first_budget": first,
                   "image_budget": s.image_budget})]
    per = [first] * len(sizes)
    for r in range(1, plan.rounds + 1):  # compute_params, round by round
        grids = [dynamic_grid(h, w, b, s.patch_size, s.min_num_patches, s.factor_max) for (h, w), b in zip(sizes, per)]
        counts = [a * b for a, b in grids]
        fits = sum(counts) <= budget
        steps.append(Step(f"round_{r}", f"budgets {per} -> {sum(counts)} patches "
                          + ("fit" if fits else f"over {budget}") + ("" if fits or r < plan.rounds else
                                                                    " (kept: one pass per image)"),
                          {"budgets": list(per), "patches": counts}))
        if r < plan.rounds:
            scale = budget / sum(counts)
            shrunk = [max(s.min_num_patches, int(c * scale)) for c in counts]
            per = shrunk if any(n < b for n, b in zip(shrunk, per)) else [s.min_num_patches] * len(sizes)
    check_equal("last budgets", tuple(per), plan.final_per_image_patch_budget)
    if not plan.fits_context:
        steps.append(Step("over_context", f"{plan.total_tokens} tokens exceed {plan.num_tokens_available}: "
                          "returned anyway (vLLM does)", {}))
    return steps, plan


def nemotron_explain_image(family: Any, plan: ImagePlan, budget: int | None = None) -> Explanation:
    s = family.spec
    if s.dynamic:
        steps, grid = _grid_steps(s, plan.orig_height, plan.orig_width, budget)
        check_equal("patch grid", grid, plan.grid[1:])
        steps.append(Step("tokens", f"{grid[0]}x{grid[1]} patches / {s.patches_per_token} (pixel shuffle)",
                          {"tokens": grid[0] * grid[1] // s.patches_per_token}))
    else:
        steps = _tile_steps(family, plan)
    inputs = {"height": plan.orig_height, "width": plan.orig_width}
    return Explanation("image", family.name, family.engine, inputs, tuple(steps), plan.num_tokens,
                       tuple(plan.grid), plan_fields(plan), rules_in_effect(family, ("image_budget", "resize_rule")))


def nemotron_explain_one_image(family: Any, height: int, width: int) -> Explanation:
    """One image: the tiles, or the dynamic tiler's one-image request at the spec's max_model_len."""
    if not family.spec.dynamic:
        return nemotron_explain_image(family, family.plan_image(height, width))
    steps, req = request_steps(family, [(height, width)])
    e = nemotron_explain_image(family, req.images[0], req.final_per_image_patch_budget[0])
    return Explanation(e.modality, e.family, e.engine, e.inputs, tuple(steps) + e.steps, e.num_tokens, e.grid,
                       e.plan, e.rules)


def nemotron_explain_video(family: Any, plan: VideoPlan) -> Explanation:
    s, meta, x = family.spec, plan.metadata, dict(plan.extra)
    T = plan.num_frames
    steps = [
        Step("loader", f"{x.get('loader') or 'frame_indices given'}: {T} of {meta.total_frames} frames",
             {"frames": preview(plan.frame_indices), "num_frames": s.video_num_frames, "target_fps": s.video_fps}),
        Step("timestamps", f"idx x int(1000 / fps) ms = idx x {plan.frame_duration_ms} ms / 1000, printed '%.2f'",
             {"timestamps": preview(plan.timestamps)}),
    ]
    if s.video_target_num_patches is None:
        steps.append(Step("frame_size", f"one {s.image_size}x{s.image_size} tile per frame", {}))
    else:
        steps.append(Step("frame_size", f"{plan.height}x{plan.width} px: ~{s.video_target_num_patches} patches "
                          f"({'aspect-preserving' if s.video_maintain_aspect_ratio else 'square'}), sides even"
                          + (" (size unknown: square)" if "frame_size_from" in x else ""),
                          {"patch_grid": [plan.height // s.video_patch, plan.width // s.video_patch]}))
    groups = plan.grid[0]
    t = s.video_temporal_patch_size
    steps.append(Step("spans", (f"tubelets of {t} frames: ceil({T} / {t}) = {groups}" if t > 1 else
                                f"one span per frame: {groups}") + f", {plan.tokens_per_frame} tokens each",
                      {"spans": groups, "per_span": plan.tokens_per_frame}))
    if s.video_pruning_rate and s.video_pruning_rate > 0 and x.get("frame_tokens_from") != "model":
        kept = int(retained_count(plan.tokens_per_frame, groups, s.video_pruning_rate))
        steps.append(Step("evs", f"EVS q={s.video_pruning_rate}: {groups * plan.tokens_per_frame} -> {kept} tokens, "
                          "all in the first span", {"retained": kept}))
        check_equal("EVS tokens", kept, plan.num_tokens)
    else:
        check_equal("tokens", sum(plan.frame_tokens), plan.num_tokens)
    inputs = {"total_frames": meta.total_frames, "fps": meta.fps, "height": meta.height, "width": meta.width}
    return Explanation("video", family.name, family.engine, inputs, tuple(steps), plan.num_tokens,
                       tuple(plan.grid), plan_fields(plan), rules_in_effect(family, _VIDEO_RULES))


def nemotron_explain_audio(family: Any, plan: AudioPlan) -> Explanation:
    s = family.spec
    n, hop, f = plan.num_samples, s.audio_hop_length, s.audio_subsampling_factor
    rule = s.audio_token_rule
    if rule == "vllm-clips":
        clip, tail = round(CLIP_SECONDS * s.audio_sampling_rate), round(CLIP_MIN_SECONDS * s.audio_sampling_rate)
        m = max(n, tail)
        full, rem = divmod(m, clip)
        sizes = [clip] * full + ([max(rem, tail)] if rem else [])
        per = [int(subsampled_length(c // hop, f)) for c in sizes]
        steps = [Step("clips", f"{CLIP_SECONDS:g} s clips (tail >= {CLIP_MIN_SECONDS:g} s): {len(sizes)} clip(s)",
                      {"clip_samples": preview(sizes), "tokens": preview(per)})]
        tokens = max(1, sum(per))
    else:
        frames = n // hop + (1 if rule == "transformers" else 0)
        tokens = max(1, int(subsampled_length(frames, f)))
        steps = [Step("frames", f"{'1 + ' if rule == 'transformers' else ''}{n} // {hop} = {frames} feature frames",
                      {"frames": frames}),
                 Step("subsample", f"{int(math.log2(f))} conv layers (kernel 3, stride 2): {tokens} tokens",
                      {"tokens": tokens})]
    check_equal("audio tokens", tokens, plan.num_tokens)
    steps.append(Step("valid_frames", f"{plan.num_frames} valid feature frames for the extractor's mask", {}))
    return Explanation("audio", family.name, family.engine, {"num_samples": n, "sampling_rate": plan.sampling_rate},
                       tuple(steps), plan.num_tokens, None, plan_fields(plan), rules_in_effect(family, ("audio_token_rule",)))


def nemotron_request(family: Any, text_len: int = 0, max_model_len: int | None = None):
    """``request_steps(images, planned=False)`` for :func:`mmprep.explain.explain_prompt`."""
    def run(images, planned: bool = False):
        if not family.spec.dynamic:
            return (), [x if isinstance(x, ImagePlan) else family.plan_image(*x, index=i) for i, x in enumerate(images)]
        sizes = [(p.orig_height, p.orig_width) if isinstance(p, ImagePlan) else tuple(p) for p in images]
        steps, req = request_steps(family, sizes, text_len, max_model_len)
        if planned:
            check_equal("request plans", tuple(req.images), tuple(images))
        return tuple(steps), list(zip(req.images, req.final_per_image_patch_budget))
    return run


def nemotron_item(family: Any):
    def item(modality, x, i):
        if modality == "image":
            if isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], ImagePlan):
                return nemotron_explain_image(family, *x)
            return nemotron_explain_image(family, x if isinstance(x, ImagePlan) else family.plan_image(*x, index=i))
        if modality == "video":
            return nemotron_explain_video(family, x if isinstance(x, VideoPlan) else family.plan_video(x, index=i))
        return nemotron_explain_audio(family, x if isinstance(x, AudioPlan) else family.plan_audio(x, index=i))
    return item
