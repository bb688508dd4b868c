"""Sequence packing: every sample in exactly one bin, no bin over budget, best-fit decreasing at
least as full as first fit, bounded streaming, the overflow policies (raise / skip / shrink, the
shrink exact: the chosen size fits and the next size up does not) and a second budget."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mmprep
from mmprep import BudgetError, InvalidInputError
from mmprep.data.pack import StreamPacker, pack_stream
from mmprep.data.shrink import largest_fit, scaled


def mixed_lengths(n, seed=0, max_len=8192):
    """Text-only (lognormal ~300), one or two images (~400-2700 each), videos (~2-7k)."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(3, n, p=[0.4, 0.5, 0.1])
    text = np.clip(rng.lognormal(5.5, 0.9, n), 8, 4000).astype(np.int64)
    img = rng.integers(1, 3, n) * rng.integers(300, 2700, n)
    vid = rng.integers(2000, 7000, n)
    return np.minimum(text + np.where(kind == 1, img, 0) + np.where(kind == 2, vid, 0), max_len)


def check_bins(res, lengths, max_len, n):
    flat = [i for b in res.bins for i in b]
    assert sorted(flat + list(res.skipped)) == list(range(n))  # each sample exactly once
    assert all(int(np.asarray(lengths)[b].sum()) <= max_len for b in res.bins)


@given(st.lists(st.integers(1, 100), min_size=0, max_size=200), st.integers(100, 300),
       st.sampled_from(["bfd", "first_fit", "stream"]))
def test_every_sample_lands_in_exactly_one_bin_under_budget(lengths, max_len, algorithm):
    res = mmprep.pack(np.array(lengths, dtype=np.int64), max_len, algorithm=algorithm, buffer=3)
    check_bins(res, np.array(lengths, dtype=np.int64), max_len, len(lengths))
    assert res.skipped == []
    if lengths:
        assert res.num_bins >= -(-sum(lengths) // max_len)


@pytest.mark.parametrize("seed", range(4))
def test_best_fit_decreasing_fills_at_least_as_well_as_first_fit(seed):
    lengths = mixed_lengths(30_000, seed)
    bfd = mmprep.pack(lengths, 8192)
    ff = mmprep.pack(lengths, 8192, algorithm="first_fit")
    check_bins(bfd, lengths, 8192, lengths.size)
    assert bfd.num_bins <= ff.num_bins and bfd.fill_rate >= ff.fill_rate
    assert bfd.fill_rate >= 0.995


def test_overflow_raise_names_the_sample_and_skip_reports_it():
    lengths = np.array([10, 500, 20, 0, -1])
    with pytest.raises(BudgetError, match="sample 1: length 500 > max_len 100"):
        mmprep.pack(lengths, 100)
    res = mmprep.pack(lengths, 100, on_overflow="skip")
    assert res.skipped == [1, 3, 4] and res.bins == [[2, 0]]
    assert "500 > max_len 100" in res.reasons[1] and "length 0" in res.reasons[3]
    assert res.summary()["skipped"] == 3 and res.fill_rate == 0.3


def test_failed_records_of_a_dataset_are_skipped_with_their_reason():
    counts = mmprep.count_dataset([{"id": "a", "text_tokens": 5}, {"id": "b", "text_tokens": 1, "images": [[0, 5]]}],
                                  model="isaac")
    res = mmprep.pack(counts, 64)
    assert res.bins == [[0]] and res.skipped == [1] and "'b' failed to count" in res.reasons[1]


def test_a_second_budget_no_sample_fits_reports_every_sample():
    lengths, images = np.array([10, 20, 30]), np.array([1, 2, 1])
    res = mmprep.pack(lengths, 100, second=images, max_second=0, on_overflow="skip")
    assert res.bins == [] and res.skipped == [0, 1, 2] and "max_second 0" in res.reasons[1]
    with pytest.raises(BudgetError, match="second budget"):
        mmprep.pack(lengths, 100, second=images, max_second=0)


@pytest.mark.parametrize("algorithm", ["bfd", "first_fit", "stream"])
def test_the_second_budget_holds_in_every_bin(algorithm):
    rng = np.random.default_rng(1)
    lengths, images = rng.integers(1, 500, 3000), rng.integers(0, 4, 3000)
    res = mmprep.pack(lengths, 2048, second=images, max_second=6, algorithm=algorithm)
    check_bins(res, lengths, 2048, 3000)
    assert all(int(images[b].sum()) <= 6 for b in res.bins)


def test_streaming_keeps_at_most_buffer_bins_open_and_yields_every_sample():
    lengths = mixed_lengths(5000, 7)
    p = StreamPacker(8192, buffer=8)
    bins = []
    for i, n in enumerate(lengths.tolist()):
        bins += p.push(i, n)
        assert len(p._open) <= 8
    bins += p.close()
    assert sorted(i for b in bins for i in b) == list(range(5000))
    skipped = []
    streamed = list(pack_stream(iter([5, 10_000, 7]), 100, on_overflow="skip", skipped=skipped))
    assert streamed == [[0, 2]] and skipped[0][0] == 1
    with pytest.raises(BudgetError):
        list(pack_stream([5, 10_000], 100))


def test_bad_arguments_raise():
    with pytest.raises(InvalidInputError):
        mmprep.pack([1, 2], 0)
    with pytest.raises(InvalidInputError):
        mmprep.pack([1.5], 10)
    with pytest.raises(InvalidInputError, match="DatasetCounts"):
        mmprep.pack([100], 10, on_overflow="shrink")


# -- shrink ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["glm-4.1v", "isaac", "nemotron-nano-vl", "nemotron-3-nano-omni"])
@pytest.mark.parametrize("size", [(1080, 1920), (3000, 400), (640, 640), (123, 4567)])
def test_shrink_is_exact_the_size_fits_and_the_next_size_up_does_not(name, size):
    fam = mmprep.load(name)
    h, w = size
    full = fam.plan_image(h, w).num_tokens
    longest = max(h, w)
    for budget in (full - 1, full // 2, full // 5, 1):
        got = largest_fit(fam, [(h, w)], [], budget)
        step = 0  # nothing fits: no step from 1 up may fit either
        if got is not None:
            (nh, nw), = got["image"]
            assert fam.plan_image(nh, nw).num_tokens == got["tokens"] <= budget
            step = round(got["scale"] * longest)
        up = [scaled(np.array([s]), np.arange(step + 1, longest + 1), longest)[:, 0] for s in (h, w)]
        counts = fam.count_image_tokens(up[0], up[1], on_error="minus_one")
        assert not ((counts >= 0) & (counts <= budget)).any()  # no larger step fits


def test_shrink_policy_packs_the_shrunk_sample_and_skips_what_cannot_shrink():
    recs = [{"id": "big", "text_tokens": 100, "images": [[2000, 3000], [1000, 1000]]},
            {"id": "text", "text_tokens": 5000},
            {"id": "small", "text_tokens": 10, "images": [[100, 100]]},
            {"id": "video", "text_tokens": 10, "videos": [{"frames": 900, "fps": 30.0, "height": 720, "width": 1280}]}]
    glm = mmprep.load("glm-4.1v")
    counts = mmprep.count_dataset(recs, model=glm)
    res = mmprep.pack(counts, 2048, on_overflow="shrink", model=glm)
    assert sorted(res.resized) == [0, 3] and res.skipped == [1]
    assert "nothing to shrink" in res.reasons[1]
    big = res.resized[0]
    assert big["length"] == 100 + sum(glm.plan_image(*s).num_tokens for s in big["image"]) <= 2048
    assert big["image"][0][1] / big["image"][0][0] == pytest.approx(1.5, rel=0.01)
    check_bins(res, res.lengths, 2048, 4)
