"""MRoPE positions: SPEC §6 examples, fast == reference twin on random layouts, the family
differences (T6-T8), errors, and GLM == transformers' Glm4vModel.get_rope_index for images."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmprep import MmprepError
from mmprep.families.glm4v.positions import glm_mrope_positions, glm_mrope_positions_reference
from mmprep.families.isaac.positions import isaac_mrope_positions, isaac_mrope_positions_reference
from mmprep.positions import MediaFeature, batch_positions, decode_positions


def img(offset, h, w):
    return {"modality": "image", "offset": offset, "grid_thw": [1, h, w]}


def test_glm_spec_example_one_image_offsets_all_rows():
    pos, delta = glm_mrope_positions(12, [img(3, 4, 4)], 2)
    assert pos.tolist() == [
        [0, 1, 2, 3, 3, 3, 3, 5, 6, 7, 8, 9],
        [0, 1, 2, 3, 3, 4, 4, 5, 6, 7, 8, 9],
        [0, 1, 2, 3, 4, 3, 4, 5, 6, 7, 8, 9],
    ]
    assert delta == -2


def test_glm_spec_example_image_then_contiguous_video():
    feats = [img(2, 4, 4), {"modality": "video", "offset": 8, "grid_thw": [2, 4, 4]}]
    pos, delta = glm_mrope_positions(20, feats, 2)
    assert pos[0].tolist() == [0, 1, 2, 2, 2, 2, 4, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 9, 10, 11]
    assert pos[1].tolist() == [0, 1, 2, 2, 3, 3, 4, 5, 6, 6, 7, 7, 6, 6, 7, 7, 8, 9, 10, 11]
    assert delta == -8


def test_isaac_spec_example_offsets_t_row_only():
    pos, delta = isaac_mrope_positions(15, [img(5, 4, 6)], 2)
    assert pos.tolist() == [
        [0, 1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 6, 7, 8, 9],
        [0, 1, 2, 3, 4, 0, 0, 0, 1, 1, 1, 6, 7, 8, 9],
        [0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 6, 7, 8, 9],
    ]
    assert delta == -5


def test_isaac_text_between_images_uses_max_but_trailing_text_uses_t():
    pos, delta = isaac_mrope_positions(16, [img(1, 6, 6), img(12, 2, 4)], 2)
    assert pos[0].tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 4, 5, 5, 6, 7]
    assert pos[2].tolist() == [0, 0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 4, 0, 1, 6, 7]
    assert delta == -8


def test_text_only_is_arange_with_zero_delta():
    for fn in (glm_mrope_positions, isaac_mrope_positions):
        pos, delta = fn(7, [], 2)
        assert (pos == np.arange(7)).all() and delta == 0


def test_features_are_sorted_by_offset_and_accept_dataclasses():
    a = glm_mrope_positions(30, [MediaFeature("image", 20, (1, 4, 4)), MediaFeature("image", 2, (1, 4, 4))])
    b = glm_mrope_positions(30, [img(2, 4, 4), img(20, 4, 4)])
    assert (a[0] == b[0]).all() and a[1] == b[1]


@pytest.mark.parametrize(
    "fn, feats, n",
    [
        (glm_mrope_positions, [{"modality": "audio", "offset": 0, "grid_thw": [1, 4, 4]}], 10),
        (isaac_mrope_positions, [{"modality": "video", "offset": 0, "grid_thw": [1, 4, 4]}], 10),
        (glm_mrope_positions, [{"modality": "image", "offset": 0, "grid_thw": [2, 4, 4]}], 10),
        (glm_mrope_positions, [img(0, 1, 4)], 10),  # below the merge: no tokens
        (glm_mrope_positions, [img(2, 4, 4), img(4, 4, 4)], 20),  # overlap
        (isaac_mrope_positions, [img(8, 4, 4)], 10),  # past the end
        (glm_mrope_positions, [], 0),  # empty prompt
        (glm_mrope_positions, [img(-1, 4, 4)], 10),
    ],
)
def test_bad_layouts_raise(fn, feats, n):
    with pytest.raises(MmprepError):
        fn(n, feats, 2)


@st.composite
def layouts(draw, video: bool):
    """Random text/image/video layouts: (num_tokens, features)."""
    feats, pos = [], 0
    for _ in range(draw(st.integers(0, 4))):
        pos += draw(st.integers(0, 6))
        kind = draw(st.sampled_from(["image", "video"] if video else ["image"]))
        t = draw(st.integers(1, 3)) if kind == "video" else 1
        h, w = 2 * draw(st.integers(1, 5)), 2 * draw(st.integers(1, 5))
        feats.append({"modality": kind, "offset": pos, "grid_thw": [t, h, w]})
        pos += t * h * w // 4
    return pos + draw(st.integers(0 if feats else 1, 6)), feats


@given(layouts(video=True))
def test_glm_fast_equals_reference(layout):
    n, feats = layout
    pos, delta = glm_mrope_positions(n, feats, 2)
    ref, ref_delta = glm_mrope_positions_reference(n, feats, 2)
    assert pos.shape == (3, n) and pos.dtype == np.int64
    assert (pos == ref).all() and delta == ref_delta == int(pos.max()) + 1 - n


@given(layouts(video=False))
def test_isaac_fast_equals_reference(layout):
    n, feats = layout
    pos, delta = isaac_mrope_positions(n, feats, 2)
    ref, ref_delta = isaac_mrope_positions_reference(n, feats, 2)
    assert (pos == ref).all() and delta == ref_delta == int(pos.max()) + 1 - n


@given(layouts(video=False))
def test_families_agree_on_text_and_differ_only_inside_images(layout):
    n, feats = layout
    g, _ = glm_mrope_positions(n, feats, 2)
    i, _ = isaac_mrope_positions(n, feats, 2)
    if not feats:
        assert (g == i).all()
    else:  # the t row of the first image starts at the same place in both
        f = feats[0]["offset"]
        assert (g[:, :f] == i[:, :f]).all() and g[0, f] == i[0, f]


def test_decode_and_batch_positions():
    pos, delta = glm_mrope_positions(12, [img(3, 4, 4)], 2)
    nxt = decode_positions(delta, 12, 3)
    assert nxt.tolist() == [[10, 11, 12]] * 3
    out = batch_positions([pos, pos[:, :5]], 12, "left")
    assert out.shape == (3, 2, 12) and (out[:, 1, 7:] == pos[:, :5]).all() and (out[:, 1, :7] == 0).all()


@pytest.fixture(scope="module")
def glm_model():
    pytest.importorskip("transformers")
    from tests._torchvision import import_torchvision

    import_torchvision()
    import torch
    from transformers import Glm4vConfig
    from transformers.models.glm4v.modeling_glm4v import Glm4vModel

    cfg = Glm4vConfig(
        text_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         intermediate_size=32, vocab_size=64),
        vision_config=dict(depth=1, hidden_size=16, num_heads=2, out_hidden_size=16, intermediate_size=32),
    )
    with torch.device("meta"):
        return Glm4vModel(cfg)


def test_glm_positions_equal_transformers_get_rope_index_for_images(glm_model):
    import torch

    rng = np.random.default_rng(0)
    for _ in range(40):
        feats, types, pos = [], [], 0
        for _ in range(rng.integers(0, 4)):
            text = int(rng.integers(0 if not feats else 1, 5))  # real prompts: boi/eoi between images
            h, w = 2 * int(rng.integers(1, 6)), 2 * int(rng.integers(1, 6))
            types += [0] * text + [1] * (h * w // 4)
            feats.append(img(pos + text, h, w))
            pos += text + h * w // 4
        types += [0] * int(rng.integers(1, 5))
        n = len(types)
        ours, delta = glm_mrope_positions(n, feats, 2)
        ids = torch.zeros(1, n, dtype=torch.long)
        grids = torch.tensor([f["grid_thw"] for f in feats]).reshape(-1, 3) if feats else None
        ref, ref_delta = glm_model.get_rope_index(ids, torch.tensor([types]), image_grid_thw=grids)
        assert (ref[:, 0].numpy() == ours).all()
        assert int(ref_delta) == delta


@given(layouts(video=False))
def test_isaac_perceptron_rule_fast_equals_reference(layout):
    n, feats = layout
    pos, delta = isaac_mrope_positions(n, feats, 2, "perceptron")
    ref, ref_delta = isaac_mrope_positions_reference(n, feats, 2, "perceptron")
    np.testing.assert_array_equal(pos, ref)
    assert delta == ref_delta


def test_isaac_perceptron_rule_advances_one_after_every_image():
    # text(2) image 6x8 patches (3x4 tokens) text(3) image 4x4 (2x2) text(2)
    feats = [img(2, 6, 8), img(17, 4, 4)]
    vllm, _ = isaac_mrope_positions(23, feats, 2, "vllm")
    perc, delta = isaac_mrope_positions(23, feats, 2, "perceptron")
    assert perc[0, 14:17].tolist() == [3, 4, 5]  # image t = 2, then +1
    assert vllm[0, 14:17].tolist() == [4, 5, 6]  # max(2, 3-1, 4-1) + 1 = 4
    assert perc[0, 17] == 6 and perc[0, 21:].tolist() == [7, 8]  # trailing text: t + 1 in both rules
    assert delta == int(perc.max()) + 1 - 23
    with pytest.raises(ValueError, match="mrope_rule"):
        isaac_mrope_positions(23, feats, 2, "other")
