"""family.pack_batch: one row per bin with each sample's ids and its own (restarting) positions,
cu_seqlens, and media concatenated in sample order — equal, segment by segment, to the samples
processed alone."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import mmprep
from mmprep import InvalidInputError
from tests.tokenizers_fixture import glm_tokenizer, isaac_tokenizer, nemotron_tokenizer

IMG = "<|begin_of_image|><|image|><|end_of_image|>"


def rand_image(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def glm_samples():
    glm, tok = mmprep.load("glm-4.1v"), glm_tokenizer()
    specs = [("Describe " + IMG + " please.", [(60, 90)]), ("no image here", []),
             (IMG + " and " + IMG, [(300, 200), (33, 700)])]
    samples = [glm.process(t, images=[rand_image(h, w, k) for k, (h, w) in enumerate(s)] or None, tokenizer=tok)
               for t, s in specs]
    return glm, samples, specs


def segments(row):
    cu = row["cu_seqlens"].tolist()
    return [slice(a, b) for a, b in itertools.pairwise(cu)]


def test_glm_packed_row_equals_each_sample_alone():
    glm, samples, _ = glm_samples()
    bins = [[2, 0, 1], [1]]
    rows = glm.pack_batch(samples, bins)
    assert len(rows) == 2
    row = rows[0]
    assert row["cu_seqlens"].dtype == np.int32 and row["cu_seqlens"][0] == 0
    assert row["input_ids"].shape == (1, sum(samples[i]["input_ids"].shape[1] for i in bins[0]))
    for seg, i in zip(segments(row), bins[0]):
        s = samples[i]
        assert (row["input_ids"][0, seg] == s["input_ids"][0]).all()
        assert (row["position_ids"][:, 0, seg] == s["position_ids"][:, 0]).all()  # restarts per sample
        assert (row["mm_token_type_ids"][0, seg] == s["mm_token_type_ids"][0]).all()
    assert row["position_ids"][:, 0, segments(row)[1].start].tolist() == [0, 0, 0]
    assert row["rope_deltas"][:, 0].tolist() == [int(samples[i]["mrope_position_delta"][0, 0]) for i in bins[0]]
    want_pix = np.concatenate([samples[i]["pixel_values"] for i in bins[0] if "pixel_values" in samples[i]])
    assert np.array_equal(row["pixel_values"], want_pix)
    assert row["image_grid_thw"].tolist() == samples[2]["image_grid_thw"].tolist() + samples[0]["image_grid_thw"].tolist()
    assert row["max_seqlen"] == max(samples[i]["input_ids"].shape[1] for i in bins[0])
    assert row["sample_index"].tolist() == [2, 0, 1] and (row["attention_mask"] == 1).all()
    assert "pixel_values" not in rows[1] or rows[1]["pixel_values"].shape[0] == 0


def test_packing_plans_from_count_dataset_then_rows():
    glm, samples, _ = glm_samples()
    lengths = [s["input_ids"].shape[1] for s in samples]
    res = mmprep.pack(lengths, max(lengths) + 20)
    rows = glm.pack_batch(samples, res.bins)
    assert sorted(int(i) for r in rows for i in r["sample_index"]) == [0, 1, 2]
    assert all(r["input_ids"].shape[1] <= max(lengths) + 20 for r in rows)


def test_isaac_and_nemotron_rows():
    isaac, tok = mmprep.load("isaac"), isaac_tokenizer()
    s = [isaac.prompt("Look:<image>and", images=[(58, 94)], tokenizer=tok), isaac.prompt("text only", tokenizer=tok)]
    row = isaac.pack_batch(s, [[1, 0]])[0]
    seg = segments(row)
    assert (row["position_ids"][:, 0, seg[1]] == s[0]["position_ids"][:, 0]).all()
    nemo, tok = mmprep.load("nemotron-nano-vl"), nemotron_tokenizer()
    s = [nemo.prompt("Compare <image>.", images=[(300, 500)], tokenizer=tok), nemo.prompt("hi there", tokenizer=tok)]
    row = nemo.pack_batch(s, [[0, 1]])[0]
    n0 = s[0]["input_ids"].shape[1]
    assert row["position_ids"].shape == (1, row["input_ids"].shape[1])
    assert row["position_ids"][0, :n0].tolist() == list(range(n0)) and row["position_ids"][0, n0] == 0
    assert "rope_deltas" not in row


def test_torch_in_torch_out_and_bad_bins():
    torch = pytest.importorskip("torch")
    glm, tok = mmprep.load("glm-4.1v"), glm_tokenizer()
    s = [glm.prompt("a " + IMG, images=[(56, 56)], tokenizer=tok, return_tensors="pt")]
    row = glm.pack_batch(s, [[0]])[0]
    assert isinstance(row["input_ids"], torch.Tensor) and row["cu_seqlens"].dtype == torch.int32
    with pytest.raises(InvalidInputError, match="out of range"):
        glm.pack_batch(s, [[1]])
    with pytest.raises(InvalidInputError, match="empty"):
        glm.pack_batch(s, [[]])
    two = glm.prompt(["a", "b c"], tokenizer=tok)
    with pytest.raises(InvalidInputError, match="single-sample"):
        glm.pack_batch([two], [[0]])
