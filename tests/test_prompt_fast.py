"""The many-sample prompt path (prompt/fast.py) equals the per-sample path key by key, and falls
back to it (so its errors) on anything unusual."""

from __future__ import annotations

import numpy as np
import pytest

import mmprep
from mmprep import InvalidInputError
from mmprep.families.glm4v.positions import (
    glm_mrope_positions,
    glm_mrope_positions_many,
)
from mmprep.families.glm4v.prompt import GLM
from mmprep.positions import MediaFeature
from mmprep.prompt import tokens as tk
from mmprep.prompt.driver import (
    _batch,
    _grids,
    _metadata_plans,
    _run,
    image_plan,
    split_samples,
)
from mmprep.prompt.fast import fast_batch
from tests.tokenizers_fixture import glm_tokenizer

IMG = "<|begin_of_image|><|image|><|end_of_image|>"
VID = "<|begin_of_video|><|video|><|end_of_video|>"
WORDS = ["Describe", " the", " image", " 12", " seconds", ".", " <not special>"]


def samples(n, seed, videos=True):
    rng = np.random.default_rng(seed)
    texts, images, vids = [], [], []
    for _ in range(n):
        k = int(rng.integers(0, 4))
        v = bool(videos and rng.random() < 0.3)
        parts = ["".join(rng.choice(WORDS, int(rng.integers(0, 6)))) for _ in range(k + 1 + v)]
        marks = [IMG] * k + ([VID] if v else [])
        rng.shuffle(marks)
        texts.append("".join(p + m for p, m in zip(parts, marks)) + parts[-1] + ".")
        images.append([(int(rng.integers(20, 900)), int(rng.integers(20, 900))) for _ in range(k)])
        vids.append([mmprep.VideoMetadata(int(rng.integers(30, 900)), 30.0, 240, 320)] if v else [])
    return texts, images, vids


def slow(glm, texts, images, vids, tok, **kw):
    _, texts, per = split_samples(texts, {"image": images, "video": vids})
    vocab = tk.as_vocab(tok)
    plans = _metadata_plans(glm, per, lambda b, xs: [image_plan(glm, x, i) for i, x in enumerate(xs)])
    extra = {"image_grid_thw": _grids(plans, "image"), "video_grid_thw": _grids(plans, "video")}
    return _batch(_run(GLM, glm, texts, plans, vocab, kw), vocab, kw, extra, token_types=True)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kw", [{}, {"padding_side": "left", "pad_token_id": 3}, {"add_special_tokens": False}])
@pytest.mark.parametrize("videos", [True, False])  # False: the all-images run splice
def test_glm_many_sample_prompt_equals_the_per_sample_path(seed, kw, videos):
    glm = mmprep.load("glm-4.6v" if seed % 2 else "glm-4.1v")
    tok = glm_tokenizer()
    texts, images, vids = samples(25, seed, videos=videos)
    fast = glm.prompt(texts, images=images, videos=vids, tokenizer=tok, **kw)
    ref = slow(glm, texts, images, vids, tok, **kw)
    assert list(fast.keys()) == list(ref.keys())
    for key in ref:
        assert np.array_equal(fast[key], ref[key]), key
    assert fast.plans == ref.plans


def test_fast_path_declines_and_the_per_sample_path_raises():
    glm, tok = mmprep.load("glm-4.1v"), glm_tokenizer()
    vocab = tk.as_vocab(tok)
    plans = [{"image": [glm.plan_image(50, 50)]}, {}]
    assert fast_batch(GLM, glm, ["a", "b"], plans, vocab, {}, {}) is None  # 0 placeholders for 1 image
    with pytest.raises(InvalidInputError, match="sample 0"):
        glm.prompt(["a", "b"], images=[[(50, 50)], []], tokenizer=tok)
    with pytest.raises(InvalidInputError, match="at least one token"):
        glm.prompt(["a", ""], tokenizer=tok)
    with pytest.raises(InvalidInputError, match="<|begin_of_video|>"):
        glm.prompt(["x <|begin_of_video|>", "y"], tokenizer=tok)


def test_batched_glm_positions_equal_the_scalar_function():
    rng = np.random.default_rng(0)
    lengths, feats, want = [], [], []
    for _ in range(50):
        n, off, fs = 0, 0, []
        for _ in range(int(rng.integers(0, 4))):
            off = n + int(rng.integers(0, 5))
            t, h, w = (1 if rng.random() < 0.6 else int(rng.integers(1, 4))), 2 * int(rng.integers(1, 6)), 2 * int(rng.integers(1, 6))
            fs.append((off, (t, h, w), "image" if t == 1 else "video"))
            n = off + t * h * w // 4
        n += int(rng.integers(1, 5))
        lengths.append(n)
        feats.append(fs)
        want.append(glm_mrope_positions(n, [MediaFeature(m, o, g) for o, g, m in fs], 2))
    pos, deltas = glm_mrope_positions_many(np.array(lengths), feats, 2)
    assert np.array_equal(pos, np.concatenate([p for p, _ in want], axis=1))
    assert deltas.tolist() == [d for _, d in want]
