"""Nemotron Omni: the DynamicResolutionImageTiler (SPEC §1.4), all budget rounds, and a numpy twin."""

from __future__ import annotations

import math

import numpy as np

from ...errors import BudgetError


MAX_BUDGET_ROUNDS = 10


TEXT_RESERVE = 4  # tokens vLLM keeps free besides the text


def dynamic_grid(
    height: int, width: int, budget: int, patch_size: int, min_num_patches: int, factor_max: float = 1.0
) -> tuple[int, int]:
    """``process_media``: the patch grid ``(tph, tpw)`` of one image for a budget in patches."""
    cph = round(height / patch_size + 0.5)  # half to even, not ceil
    cpw = round(width / patch_size + 0.5)
    factor = min(math.sqrt(budget / (cph * cpw)), factor_max)
    tph = math.floor(factor * cph)
    tpw = math.floor(factor * cpw)
    if budget > min_num_patches and tph * tpw < min_num_patches:
        if tph * tpw == 0:
            raise BudgetError(
                f"image {height}x{width} px collapses to a {tph}x{tpw} patch grid for a budget of "
                f"{budget} patches; vLLM divides by zero here"
            )
        up = math.sqrt(min_num_patches / (tph * tpw))
        tph = math.ceil(up * tph)
        tpw = math.ceil(up * tpw)
    if tph % 2:
        tph = tph + 1 if (tph + 1) * tpw <= budget else max(2, tph - 1)
    if tpw % 2:
        tpw = tpw + 1 if tph * (tpw + 1) <= budget else max(2, tpw - 1)
    return tph, tpw


def first_round_budget(
    tokens_available: int, num_images: int, min_num_patches: int, max_num_patches: float, patches_per_token: int
) -> tuple[int, int]:
    """``(request budget, first-round per-image budget)`` in patches: tokens -> patches through the
    pixel shuffle, floored at ``min_num_patches`` per image, each image capped at the max."""
    budget = max(tokens_available * patches_per_token, min_num_patches * num_images)
    return budget, int(max(min(budget, max_num_patches), min_num_patches))


def dynamic_budgets(
    sizes: list[tuple[int, int]],
    tokens_available: int,
    patch_size: int,
    min_num_patches: int,
    max_num_patches: float,
    factor_max: float = 1.0,
    patches_per_token: int = 4,
    one_pass: bool = False,
) -> tuple[list[tuple[int, int]], int, list[int], int]:
    """``compute_params``: per-image grids, rounds taken, last budgets and the patch budget.

    ``one_pass``: every image keeps the first-round budget, with no check of the total
    (transformers' Omni image processor)."""
    budget, first = first_round_budget(tokens_available, len(sizes), min_num_patches, max_num_patches,
                                       patches_per_token)
    per_image = [first] * len(sizes)
    for round_no in range(1, MAX_BUDGET_ROUNDS + 1):
        grids = [dynamic_grid(h, w, b, patch_size, min_num_patches, factor_max) for (h, w), b in zip(sizes, per_image)]
        counts = [th * tw for th, tw in grids]
        if sum(counts) <= budget or one_pass:
            return grids, round_no, per_image, budget
        scale = budget / sum(counts)
        shrunk = [max(min_num_patches, int(c * scale)) for c in counts]
        if any(n < b for n, b in zip(shrunk, per_image)):
            per_image = shrunk
        else:
            per_image = [min_num_patches] * len(sizes)
    raise BudgetError(
        f"{len(sizes)} images do not fit {budget} patches after {MAX_BUDGET_ROUNDS} rounds "
        f"(last grids use {sum(counts)} patches); vLLM raises here too"
    )


def dynamic_grid_np(
    heights: np.ndarray,
    widths: np.ndarray,
    budget: int,
    patch_size: int,
    min_num_patches: int,
    factor_max: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorized :func:`dynamic_grid` for one budget; returns ``(tph, tpw, ok)``.

    ``ok`` is False where the scalar version raises (a collapsed grid).
    """
    p = float(patch_size)
    cph = np.rint(heights / p + 0.5)
    cpw = np.rint(widths / p + 0.5)
    factor = np.minimum(np.sqrt(budget / (cph * cpw)), factor_max)
    tph = np.floor(factor * cph)
    tpw = np.floor(factor * cpw)
    prod = tph * tpw
    need_up = (budget > min_num_patches) & (prod < min_num_patches)
    ok = ~(need_up & (prod == 0))
    upm = need_up & ok
    if upm.any():
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.sqrt(min_num_patches / prod)
        tph = np.where(upm, np.ceil(up * tph), tph)
        tpw = np.where(upm, np.ceil(up * tpw), tpw)
    odd = (tph % 2) == 1
    tph = np.where(odd, np.where((tph + 1) * tpw <= budget, tph + 1, np.maximum(2, tph - 1)), tph)
    odd = (tpw % 2) == 1
    tpw = np.where(odd, np.where(tph * (tpw + 1) <= budget, tpw + 1, np.maximum(2, tpw - 1)), tpw)
    return tph.astype(np.int64), tpw.astype(np.int64), ok
