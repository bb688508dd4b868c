"""Property tests for image sizing: vectorized == scalar, divisors, limits, monotonicity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mmprep
from mmprep import InvalidInputError, MmprepError
from mmprep.testing import strategies as mst

sizes = st.integers(1, 7_000)  # 7000² < the Isaac pixel limit
small = st.integers(1, 3000)

ISAAC = mmprep.load("isaac")
GLM = mmprep.load("glm-4.1v")
GLM46 = mmprep.load("glm-4.6v")
TILES = mmprep.load("nemotron-nano-vl")
OMNI = mmprep.load("nemotron-3-nano-omni")
FAMILIES = [ISAAC, GLM, TILES, OMNI]


def scalar_or_minus_one(family, h, w):
    try:
        return family.plan_image(h, w).num_tokens
    except MmprepError:
        return -1


@pytest.mark.parametrize("family", FAMILIES, ids=repr)
@given(data=st.data())
def test_vectorized_count_equals_scalar_plan(family, data):
    # sizes around the family's own edges (mmprep.testing), invalid ones included
    hs, ws = zip(*data.draw(st.lists(mst.image_sizes(family, valid=False), min_size=1, max_size=40)))
    got = family.count_image_tokens(np.array(hs), np.array(ws), on_error="minus_one")
    want = [scalar_or_minus_one(family, h, w) for h, w in zip(hs, ws)]
    assert got.tolist() == want


@pytest.mark.parametrize("family", FAMILIES, ids=repr)
def test_vectorized_count_on_extreme_aspects(family):
    rng = np.random.default_rng(0)
    h = np.concatenate([rng.integers(1, 50, 300), rng.integers(1, 100_000, 300), [1, 7, 28, 200, 5000]])
    w = np.concatenate([rng.integers(1, 100_000, 300), rng.integers(1, 50, 300), [200, 1400, 5600, 1, 1]])
    got = family.count_image_tokens(h, w, on_error="minus_one")
    want = [scalar_or_minus_one(family, int(a), int(b)) for a, b in zip(h, w)]
    assert got.tolist() == want


@given(h=sizes, w=sizes)
def test_isaac_sizes_are_multiples_of_the_divisor_and_tokens_match_grid(h, w):
    p = ISAAC.plan_image(h, w)
    d = ISAAC.spec.patch_size * ISAAC.spec.pixel_shuffle_scale
    assert p.height % d == 0 and p.width % d == 0
    assert p.grid == (1, p.height // 16, p.width // 16)
    assert p.num_tokens * 4 == p.num_patches
    # the max is a guarantee unless the minimum pushed the size up first (SPEC §1.1)
    if p.num_patches > ISAAC.spec.max_num_patches:
        assert p.num_patches <= 4 or np.ceil(h / d) * np.ceil(w / d) * 4 < ISAAC.spec.min_num_patches


@given(h=sizes, w=sizes)
def test_glm_sizes_are_multiples_of_28_within_max_pixels(h, w):
    try:
        p = GLM.plan_image(h, w)
    except InvalidInputError:
        assert max(h, w) / min(h, w) > 100  # only absurd aspect ratios are refused
        return
    assert p.height % 28 == 0 and p.width % 28 == 0
    assert p.num_tokens * 4 == p.num_patches
    assert 2 * p.height * p.width <= GLM.spec.image_max_pixels or min(p.height, p.width) == 28


@given(h=small, w=small)
def test_internvl_tiles_stay_within_bounds(h, w):
    p = TILES.plan_image(h, w)
    t = p.tiles
    assert 1 <= t.cols * t.rows <= 12
    assert t.num_tiles == t.cols * t.rows + (t.cols * t.rows != 1)
    assert p.num_tokens == t.num_tiles * 256
    assert (p.height, p.width) == (512 * t.rows, 512 * t.cols)


@given(h=sizes, w=sizes)
def test_dynamic_tiler_one_image_fits_its_budget(h, w):
    try:
        p = OMNI.plan_image(h, w)
    except MmprepError:
        return
    _, gh, gw = p.grid
    assert gh % 2 == 0 and gw % 2 == 0
    assert p.num_tokens == gh * gw // 4
    assert (p.height, p.width) == (gh * 16, gw * 16)


@given(h=st.integers(112, 4000), w=st.integers(112, 4000), k=st.integers(2, 4))
def test_glm_tokens_grow_with_uniform_upscaling(h, w, k):
    # monotone for uniform upscaling of images above the min-pixels floor (below it, and with
    # non-uniform changes, rounding to 28 px breaks monotonicity: e.g. 28x49 -> 12, 56x98 -> 8)
    a = GLM.plan_image(h, w).num_tokens
    b = GLM.plan_image(h * k, w * k).num_tokens
    assert b >= a or b >= 0.9 * GLM.spec.image_max_pixels / (2 * 28 * 28)


@given(s=st.integers(1, 1500), k=st.integers(2, 5))
def test_isaac_square_tokens_are_monotone_in_size(s, k):
    assert ISAAC.plan_image(s * k, s * k).num_tokens >= ISAAC.plan_image(s, s).num_tokens


@pytest.mark.parametrize("family", FAMILIES, ids=repr)
@pytest.mark.parametrize("h,w", [(0, 10), (10, 0), (-5, 10), (None, 3), (2.5, 4), (float("nan"), 4), (True, 4)])
def test_bad_sizes_raise_naming_the_numbers(family, h, w):
    with pytest.raises(InvalidInputError, match="height|width"):
        family.plan_image(h, w)


@pytest.mark.parametrize("family", FAMILIES, ids=repr)
def test_vectorized_error_names_the_item_and_minus_one_keeps_the_others(family):
    with pytest.raises(InvalidInputError, match="item 2"):
        family.count_image_tokens([100, 200, 0], [100, 200, 300])
    got = family.count_image_tokens([100, 0, 300], [100, 50, 300], on_error="minus_one")
    assert got[1] == -1 and got[0] > 0 and got[2] > 0


def test_glm_rejects_absurd_aspect_ratio():
    with pytest.raises(InvalidInputError, match="aspect ratio"):
        GLM.plan_image(20, 4001)


def test_isaac_rejects_images_above_the_pixel_limit():
    with pytest.raises(InvalidInputError, match="60000000"):
        ISAAC.plan_image(7501, 8000)


def test_worked_examples_from_the_spec():
    assert [ISAAC.plan_image(h, w).num_tokens for h, w in [(480, 640), (3000, 4000), (1080, 1920), (1, 5000)]] == [300, 1530, 1508, 157]
    assert [GLM.plan_image(h, w).num_tokens for h, w in [(1080, 1920), (480, 640), (100, 100)]] == [2691, 391, 16]
    assert [TILES.plan_image(h, w).num_tokens for h, w in [(1080, 1920), (480, 640), (512, 1024), (1087, 1087)]] == [2304, 3328, 768, 2560]
    assert OMNI.plan_image(1080, 1920).grid == (1, 68, 120)
    req = OMNI.plan_request([(720, 1280)] * 20, text_len=0, max_model_len=16384)
    assert req.rounds == 2 and set(req.num_tokens_per_image) == {798}


def test_glm46v_counts_equal_glm41v_for_images():
    h, w = np.array([100, 1080, 3000]), np.array([100, 1920, 4000])
    assert GLM46.count_image_tokens(h, w).tolist() == GLM.count_image_tokens(h, w).tolist()
    assert GLM46.spec.image_token_id == 151363 and GLM.spec.image_token_id == 151343


def test_plan_request_strict_raises_when_the_images_do_not_fit():
    with pytest.raises(mmprep.BudgetError, match="max_model_len 1000"):
        OMNI.plan_request([(640, 480)], text_len=1200, max_model_len=1000, strict=True)
    assert not OMNI.plan_request([(640, 480)], text_len=1200, max_model_len=1000).fits_context


@pytest.mark.parametrize("max_num", [2, 4, 5, 12])
def test_internvl_exact_midpoint_ties_match_the_sequential_scan(max_num):
    # aspect 1.5 lies exactly between 1 and 2 when 3:2 is not a ratio (max < 6): both groups tie
    fam = mmprep.load("nemotron-nano-vl", max_num_tiles=max_num, image_size=448)
    k = np.arange(1, 400)
    for hs, ws in [(2 * k, 3 * k), (3 * k, 2 * k), (4 * k, 5 * k), (2 * k, 5 * k), (k, k)]:
        got = fam.count_image_tokens(hs, ws).tolist()
        assert got == [fam.plan_image(int(a), int(b)).num_tokens for a, b in zip(hs, ws)]
