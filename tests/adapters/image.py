"""Golden adapters for image sizing: each builds a family from the case's args and calls the
public API (plan_image / plan_request / count_image_tokens / pixels)."""

from __future__ import annotations

import numpy as np

import mmprep


# small images also run the pixel pipeline, so the optional pixel_values_shape is always checked
PIXEL_CHECK_LIMIT = 2_000_000


def _check_vectorized(family, args, num_tokens):
    got = family.count_image_tokens(np.array([args["height"]]), np.array([args["width"]]))
    assert int(got[0]) == num_tokens, (int(got[0]), num_tokens)


def _pixels_shape(family, height, width):
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    batch = family.pixels([image], backend="reference")
    return list(batch.pixel_values.shape)


def isaac_image_size(a):
    isaac = mmprep.load(
        "isaac", patch_size=a["patch_size"], max_num_patches=a["max_num_patches"],
        min_num_patches=a["min_num_patches"], pixel_shuffle_scale=a["pixel_shuffle_scale"],
        eps=a["eps"], max_image_pixels=a["max_image_pixels"],
    )
    plan = isaac.plan_image(a["height"], a["width"])
    _check_vectorized(isaac, a, plan.num_tokens)
    s = a["pixel_shuffle_scale"]
    _, gh, gw = plan.grid
    out = dict(
        target_height=plan.height, target_width=plan.width, grid_h=gh, grid_w=gw,
        image_grid_thw=list(plan.grid), num_patches=plan.num_patches,
        llm_grid_h=gh // s, llm_grid_w=gw // s, num_tokens=plan.num_tokens,
    )
    if a["height"] * a["width"] <= PIXEL_CHECK_LIMIT:
        out["pixel_values_shape"] = _pixels_shape(isaac, a["height"], a["width"])
    return out


def glm4v_image_size(a):
    glm = mmprep.load(
        "glm-4.1v", patch_size=a["patch_size"], merge_size=a["merge_size"],
        temporal_patch_size=a["temporal_patch_size"], image_min_pixels=a["min_pixels"],
        image_max_pixels=a["max_pixels"],
    )
    plan = glm.plan_image(a["height"], a["width"])
    _check_vectorized(glm, a, plan.num_tokens)
    out = dict(resized_height=plan.height, resized_width=plan.width, grid_thw=list(plan.grid),
               num_patches=plan.num_patches, num_tokens=plan.num_tokens)
    if a["height"] * a["width"] <= PIXEL_CHECK_LIMIT:
        out["pixel_values_shape"] = _pixels_shape(glm, a["height"], a["width"])
    return out


def internvl_tiles(a):
    nem = mmprep.load(
        "nemotron-nano-vl", image_size=a["image_size"], min_num_tiles=a["min_num"],
        max_num_tiles=a["max_num"], use_thumbnail=a["use_thumbnail"],
    )
    plan = nem.plan_image(a["height"], a["width"])
    t = plan.tiles
    num_tokens = t.num_tiles * a["tokens_per_tile"]
    if nem.spec.tokens_per_tile == a["tokens_per_tile"]:
        _check_vectorized(nem, a, plan.num_tokens)
        assert plan.num_tokens == num_tokens
    out = dict(cols=t.cols, rows=t.rows, target_ratio=[t.cols, t.rows], target_width=plan.width,
               target_height=plan.height, num_tiles=t.num_tiles, num_tokens=num_tokens)
    if a["height"] * a["width"] <= PIXEL_CHECK_LIMIT:
        out["pixel_values_shape"] = _pixels_shape(nem, a["height"], a["width"])
    return out


def nemotron_dynamic_tiles(a):
    nem = mmprep.load(
        "nemotron-3-nano-omni", patch_size=a["patch_size"], downsample_ratio=a["downsample_ratio"],
        min_num_patches=a["min_num_patches"], max_num_patches=a["max_num_patches"],
        factor_max=a["factor_max"], max_model_len=a["max_model_len"],
    )
    req = nem.plan_request([tuple(s) for s in a["images"]], text_len=a["text_len"],
                           max_model_len=a["max_model_len"])
    images = [
        dict(patch_grid_w=p.grid[2], patch_grid_h=p.grid[1], target_width=p.width,
             target_height=p.height, num_patches=p.num_patches, num_tokens=p.num_tokens)
        for p in req.images
    ]
    out = dict(
        num_tokens_available=req.num_tokens_available, patch_budget=req.patch_budget,
        rounds=req.rounds, final_per_image_patch_budget=list(req.final_per_image_patch_budget),
        images=images, num_tokens_per_image=list(req.num_tokens_per_image),
        total_tokens=req.total_tokens, total_patches=req.total_patches, fits_context=req.fits_context,
    )
    if sum(h * w for h, w in a["images"]) <= PIXEL_CHECK_LIMIT and req.total_patches <= 100_000:
        images = [np.zeros((h, w, 3), np.uint8) for h, w in a["images"]]
        batch = nem.pixels(images, backend="reference", text_len=a["text_len"],
                           max_model_len=a["max_model_len"])
        out["pixel_values_shape"] = list(batch.pixel_values.shape)
    return out


RUNNERS = {
    "isaac_image_size": isaac_image_size,
    "glm4v_image_size": glm4v_image_size,
    "internvl_tiles": internvl_tiles,
    "nemotron_dynamic_tiles": nemotron_dynamic_tiles,
}
