"""EVS: retained counts, retention masks, MRoPE helpers (properties and torch references)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import mmprep
from mmprep import MmprepError
from mmprep import evs
from mmprep.testing import strategies as mst

# uniform rates, and the rates where a 32-frame video's retained count steps (mmprep.testing)
RATES = st.one_of(st.floats(0.0, 0.999, exclude_max=False).filter(lambda q: q < 1),
                  mst.evs_rates(mmprep.load("nemotron-nano-vl")))


@given(st.integers(1, 5000), st.integers(1, 2000), RATES)
def test_retained_count_bounds_and_vectorized_equals_scalar(f, t, q):
    r = evs.retained_count(f, t, q)
    assert f <= r <= f * t
    assert r == max(f, int(f * t * (1 - q)))
    assert int(evs.retained_count(np.array([f, f]), np.array([t, 1]), q)[0]) == r


def test_retained_count_float_hazard_and_doc_example():
    assert evs.retained_count(10, 100, 0.9) == 99  # 1 - 0.9 = 0.09999999999999998
    assert evs.retained_count(256, 16, 0.75) == 1024
    assert evs.retained_count(256, 1, 0.7) == 256


@pytest.mark.parametrize("f, t, q", [(256, 8, 1.0), (256, 8, -0.1), (256, 0, 0.5), (0, 8, 0.5),
                                     (256, 8, float("nan")), (256, 8, True)])
def test_retained_count_rejects_bad_input(f, t, q):
    with pytest.raises(MmprepError):
        evs.retained_count(f, t, q)


@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 5), st.sampled_from([1, 2]), RATES,
       st.integers(0, 2**32 - 1), st.booleans())
def test_retention_mask_sum_is_the_count_and_frame0_is_kept(T, h, w, m, q, seed, repeat):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((T * h * w, 8)).astype(np.float32)
    if repeat:  # identical ±1 frames: cosine is exactly 1, every later token ties at 0,
        # and the lower (t, y, x) index wins
        emb = np.tile(rng.choice([-1.0, 1.0], (h * w, 4)).astype(np.float32), (T, 1))
    mask = evs.retention_mask(torch.from_numpy(emb), T, h * m, w * m, m, q)
    count = evs.retained_count(h * w, T, q)
    assert int(mask.sum()) == count
    assert mask[: h * w].all()
    assert sum(evs.tokens_per_frame(mask, T)) == count
    if repeat:
        assert mask.nonzero().ravel().tolist() == list(range(count))
    np_mask = evs.retention_mask(emb, T, h * m, w * m, m, q)
    assert isinstance(np_mask, np.ndarray) and np.array_equal(np_mask, mask.numpy())


def test_numpy_fallback_matches_torch_on_separated_scores():
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((4 * 6, 16)).astype(np.float32)
    keep = evs.retained_count(6, 4, 0.5)
    a = evs._retention_mask_np(emb, 4, 2, 3, keep)
    b = evs._retention_mask_torch(torch.from_numpy(emb), 4, 2, 3, keep).numpy()
    assert np.array_equal(a, b)


def test_retention_mask_runs_in_bf16_and_rejects_bad_shapes():
    emb = torch.randn(3 * 4, 8, dtype=torch.bfloat16)
    assert int(evs.retention_mask(emb, 3, 2, 2, 1, 0.5).sum()) == evs.retained_count(4, 3, 0.5)
    with pytest.raises(MmprepError):
        evs.retention_mask(emb, 3, 2, 3, 1, 0.5)  # rows != T*h*w
    with pytest.raises(MmprepError):
        evs.retention_mask(emb, 0, 2, 2, 1, 0.5)
    with pytest.raises(MmprepError):
        evs.retention_mask(emb, 3, 2, 2, 1, 1.0)


def _mrope_torch(thw, m, tps, vspg):
    t, h, w = thw[0], thw[1] // m, thw[2] // m
    ti = torch.arange(t).view(-1, 1).expand(-1, h * w).mul(tps * vspg).long().flatten()
    hi = torch.arange(h).view(1, -1, 1).expand(t, -1, w).flatten()
    wi = torch.arange(w).view(1, 1, -1).expand(t, h, -1).flatten()
    return torch.stack([ti, hi, wi, torch.full_like(ti, w)], dim=1).numpy()


@given(st.integers(0, 40), st.integers(0, 9), st.integers(0, 9), st.sampled_from([1, 2]),
       st.floats(0.01, 10), st.floats(0.01, 10))
def test_mrope_for_media_matches_torch_float32_product(t, h, w, m, tps, vspg):
    got = evs.mrope_for_media([t, h, w], m, tps, vspg)
    assert np.array_equal(got, _mrope_torch([t, h, w], m, tps, vspg))


def test_mrope_for_media_rejects_merge_zero():
    with pytest.raises(MmprepError):
        evs.mrope_for_media([1, 2, 2], 0)


@given(st.integers(0, 6), st.integers(1, 4), st.integers(1, 4), st.integers(0, 6))
def test_recompute_for_one_whole_media_is_the_usual_mrope(pre, h, w, post):
    ids = [1] * pre + [777] + [999] * (h * w) + [778] + [1] * post
    n = len(ids)
    mm = evs.mrope_for_media([1, h, w], 1).T
    pos, delta = evs.recompute_mrope_positions(ids, [mm], np.tile(np.arange(n), (3, 1)), 0, 777, 999, 888)
    base = pre + 1
    assert pos[:, base: base + h * w].tolist() == (mm[:3] + base).tolist()
    tail = pos[:, base + h * w:]
    assert (tail == tail[0]).all() and tail[0].tolist() == list(range(base + w, base + w + 1 + post))
    assert delta == int(pos.max()) + 1 - n


def test_recompute_without_a_vision_start_raises():
    with pytest.raises(MmprepError):
        evs.recompute_mrope_positions([1, 999, 999, 3], [[[0, 0], [0, 0], [0, 1], [2, 2]]],
                                      np.tile(np.arange(4), (3, 1)), 0, 777, 999, 888)
