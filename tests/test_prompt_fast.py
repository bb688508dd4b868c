"""The many-sample prompt path (prompt/fast.py) equals the per-sample path key by key, and falls
back to it (so its errors) on anything unusual."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmprep
from mmprep import InvalidInputError
from mmprep.families.glm4v.positions import (
    glm_mrope_positions,
    glm_mrope_positions_many,
)
from mmprep.families.glm4v.prompt import GLM, glm_size_plans
from mmprep.families.isaac.positions import (
    isaac_mrope_positions,
    isaac_mrope_positions_flat,
)
from mmprep.families.isaac.prompt import ISAAC
from mmprep.families.nemotron.prompt import NEMOTRON, _nemotron_image_plans
from mmprep.positions import MediaFeature
from mmprep.prompt import tokens as tk
from mmprep.prompt.driver import (
    _batch,
    _grids,
    _metadata_plans,
    _plain_plan,
    _run,
    check_plan,
    image_plan,
    split_samples,
)
from mmprep.prompt.fast import fast_batch
from tests.tokenizers_fixture import glm_tokenizer, isaac_tokenizer, nemotron_tokenizer

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
    plans = [{"image": [glm.plan_image(50, 50)]}, {}]  # (plans the caller has checked)
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


def _words(rng, n):
    return "".join(rng.choice(WORDS, int(rng.integers(0, n))))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kw", [{}, {"padding_side": "left", "pad_token_id": 3}, {"add_special_tokens": False}])
def test_isaac_many_sample_prompt_equals_the_per_sample_path(seed, kw):
    isaac, tok = mmprep.load("isaac"), isaac_tokenizer()
    rng = np.random.default_rng(seed)
    texts, images = [], []
    for _ in range(20):
        k = int(rng.integers(0, 4))
        texts.append("".join(_words(rng, 5) + "<image>" for _ in range(k)) + _words(rng, 5) + ".")
        images.append([(int(rng.integers(20, 900)), int(rng.integers(20, 900))) for _ in range(k)])
    _, texts, per = split_samples(texts, {"image": images})
    vocab = tk.as_vocab(tok)
    plans = _metadata_plans(isaac, per, lambda b, xs: [image_plan(isaac, x, i) for i, x in enumerate(xs)])
    extra = {"image_grid_thw": _grids(plans, "image")}
    fast = fast_batch(ISAAC, isaac, texts, plans, vocab, kw, extra)
    assert fast is not None  # the many-sample path took it
    ref = _batch(_run(ISAAC, isaac, texts, plans, vocab, kw), vocab, kw, extra)
    assert list(fast.keys()) == list(ref.keys())
    for key in ref:
        assert np.array_equal(fast[key], ref[key]), key
    assert fast.plans == ref.plans
    public = isaac.prompt(texts, images=images, tokenizer=tok, **kw)
    assert all(np.array_equal(public[k], ref[k]) for k in ref)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("model", ["nemotron-nano-vl", "nemotron-3-nano-omni"])
@pytest.mark.parametrize("kw", [{}, {"padding_side": "left", "text_len": "prompt"}, {"add_special_tokens": True}])
def test_nemotron_many_sample_prompt_equals_the_per_sample_path(seed, model, kw):
    family, tok = mmprep.load(model), nemotron_tokenizer()
    audio = family.spec.has_audio
    rng = np.random.default_rng(seed)
    texts, images, videos, audios = [], [], [], []
    for _ in range(16):
        k, v, a = int(rng.integers(0, 3)), int(rng.random() < 0.3), int(audio and rng.random() < 0.3)
        marks = ["<image>"] * k + ["<video>"] * v + ["<so_embedding>"] * a
        rng.shuffle(marks)
        texts.append("".join(_words(rng, 5) + m for m in marks) + _words(rng, 5) + ".")
        images.append([(int(rng.integers(20, 1200)), int(rng.integers(20, 1200))) for _ in range(k)])
        videos.append([mmprep.VideoMetadata(int(rng.integers(4, 60)), 4.0, 60, 80) for _ in range(v)])
        audios.append([int(rng.integers(8000, 40000)) for _ in range(a)])
    media = {"image": images, "video": videos, "audio": audios if audio else None}
    _, texts, per = split_samples(texts, media)
    vocab = tk.as_vocab(tok)
    plans = _metadata_plans(family, per, _nemotron_image_plans(family, vocab, texts, kw))
    opts = {k: v for k, v in kw.items() if k != "text_len"}
    fast = fast_batch(NEMOTRON, family, texts, plans, vocab, opts, {})
    assert fast is not None
    ref = _batch(_run(NEMOTRON, family, texts, plans, vocab, opts), vocab, opts, {})
    assert list(fast.keys()) == list(ref.keys())
    for key in ref:
        assert np.array_equal(fast[key], ref[key]), key
    assert fast.plans == ref.plans
    public = family.prompt(texts, images=images, videos=videos, tokenizer=tok, **kw,
                           **({"audios": audios} if audio else {}))
    assert all(np.array_equal(public[k], ref[k]) for k in ref)


def test_isaac_and_nemotron_fall_back_to_the_per_sample_errors():
    with pytest.raises(InvalidInputError, match="sample 1: the text contains '<|image_pad|>'"):
        mmprep.load("isaac").prompt(["a <image>", "b <|image_pad|>"], images=[[(64, 64)], []],
                                    tokenizer=isaac_tokenizer())
    with pytest.raises(InvalidInputError, match="sample 1"):
        mmprep.load("nemotron-nano-vl").prompt(["a <image>", "b"], images=[[(64, 64)], [(64, 64)]],
                                               tokenizer=nemotron_tokenizer())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.integers(1, 5000), st.integers(1, 5000)),
                          st.tuples(st.integers(-3, 3), st.integers(1, 10**7)),
                          st.tuples(st.integers(1, 40), st.integers(1, 40))), min_size=8, max_size=16),
       st.sampled_from(["glm-4.1v", "glm-4.6v"]))
def test_glm_bulk_size_plans_equal_plan_image(sizes, model):
    glm = mmprep.load(model)
    bulk = sum(h > 0 and w > 0 for h, w in sizes) >= 8  # fewer: all planned one by one
    for (h, w), plan in zip(sizes, glm_size_plans(glm, sizes)):
        if plan is not None:  # None: planned one by one (a bad or extreme size)
            assert plan == glm.plan_image(h, w)
        elif bulk and h > 0 and w > 0:
            with pytest.raises(InvalidInputError):
                glm.plan_image(h, w)


@settings(max_examples=300, deadline=None)
@given(st.integers(-2, 2**62), st.tuples(st.integers(-1, 2**60), st.integers(-1, 5), st.integers(-1, 5)))
def test_plain_plan_shortcut_accepts_only_what_check_plan_accepts(n, grid):
    plan = mmprep.ImagePlan(1, 1, 28, 28, grid, n)
    if _plain_plan(plan):
        check_plan(plan, "x")  # must not raise
    else:
        with pytest.raises(InvalidInputError):
            check_plan(plan, "x")


_PIECES = ["", "a", " b", "<image>", "<video>", "<so_embedding>", "<img>", "\n", "Frame 1"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_PIECES), max_size=6), min_size=2, max_size=6),
       st.sampled_from([{}, {"padding_side": "left"}, {"add_special_tokens": True}]), st.integers(0, 2**31))
def test_nemotron_fast_path_equals_or_defers_to_the_per_sample_path(parts, kw, seed):
    """Any text (adjacent placeholders, empty samples, stray structural tokens): the fast path
    returns the per-sample path's Batch, or None where the per-sample path decides (and raises)."""
    family, tok = mmprep.load("nemotron-3-nano-omni"), nemotron_tokenizer()
    rng = np.random.default_rng(seed)
    texts = ["".join(p) for p in parts]
    images = [[(int(rng.integers(20, 900)), int(rng.integers(20, 900))) for _ in range(t.count("<image>"))]
              for t in texts]
    videos = [[mmprep.VideoMetadata(int(rng.integers(4, 30)), 4.0, 60, 80) for _ in range(t.count("<video>"))]
              for t in texts]
    audios = [[int(rng.integers(8000, 30000)) for _ in range(t.count("<so_embedding>"))] for t in texts]
    try:
        _, texts, per = split_samples(texts, {"image": images, "video": videos, "audio": audios})
        vocab = tk.as_vocab(tok)
        plans = _metadata_plans(family, per, _nemotron_image_plans(family, vocab, texts, kw))
    except InvalidInputError:
        return  # e.g. more videos than the model takes: refused before any prompt is built
    try:
        ref = _batch(_run(NEMOTRON, family, texts, plans, vocab, kw), vocab, kw, {})
    except InvalidInputError:
        ref = None
    fast = fast_batch(NEMOTRON, family, texts, plans, vocab, kw, {})
    if fast is None:
        return
    assert ref is not None  # the fast path never accepts what the per-sample path refuses
    for key in ref:
        assert np.array_equal(fast[key], ref[key]), key
    assert fast.plans == ref.plans


@pytest.mark.parametrize("rule", ["vllm", "perceptron"])
def test_batched_isaac_positions_equal_the_scalar_function(rule):
    rng = np.random.default_rng(1)
    lengths, sample, offsets, grids, want = [], [], [], [], []
    for b in range(60):
        n, fs = 0, []
        for _ in range(int(rng.integers(0, 4))):
            off = n + int(rng.integers(0, 5))
            h, w = 2 * int(rng.integers(1, 12)), 2 * int(rng.integers(1, 12))
            fs.append(MediaFeature("image", off, (1, h, w)))
            sample.append(b)
            offsets.append(off)
            grids.append((1, h, w))
            n = off + h * w // 4
        n += int(rng.integers(0 if fs else 1, 5))
        lengths.append(n)
        want.append(isaac_mrope_positions(n, fs, 2, rule))
    pos, deltas = isaac_mrope_positions_flat(np.array(lengths), np.array(sample, dtype=np.int64),
                                             np.array(offsets, dtype=np.int64),
                                             np.array(grids, dtype=np.int64).reshape(-1, 3), 2, rule)
    assert np.array_equal(pos, np.concatenate([p for p, _ in want], axis=1))
    assert deltas.tolist() == [d for _, d in want]


def test_fast_path_defers_an_over_budget_sample_before_building_it():
    from mmprep.errors import BudgetError
    from mmprep.validate import MAX_TOKENS

    glm, tok = mmprep.load("glm-4.1v"), glm_tokenizer()
    huge = mmprep.ImagePlan(28, 28, 28, 28, (1, 2, 2), MAX_TOKENS)  # passes check_plan; the text tips it over
    plans = [{}, {"image": [huge]}]
    texts = ["a", f"b {IMG}"]
    assert fast_batch(GLM, glm, texts, plans, tk.as_vocab(tok), {}, {}) is None
    with pytest.raises(BudgetError, match="sample 1"):
        glm.prompt(texts, images=[[], [huge]], tokenizer=tok)


def test_repeated_texts_are_tokenized_once_and_give_the_same_ids():
    tok = glm_tokenizer()
    vocab = tk.Vocab(tok)
    texts = [f"Describe {IMG} briefly.", "other text", f"Describe {IMG} briefly.", ""]
    for add in (True, False):
        want = [tok.encode(t, add_special_tokens=add).ids for t in texts]
        assert vocab.encode_many(texts, add) == want
        again = vocab.encode_many(texts[::-1], add)  # every text remembered now
        assert again == want[::-1]
        again[0].append(-1)  # callers get copies: the remembered ids stay intact
        assert vocab.encode_many(texts, add) == want
    glm = mmprep.load("glm-4.1v")
    a = glm.prompt(texts[:3], images=[[(64, 64)], [], [(90, 300)]], tokenizer=vocab)
    b = glm.prompt(texts[:3], images=[[(64, 64)], [], [(90, 300)]], tokenizer=tk.Vocab(tok))
    assert all(np.array_equal(a[k], b[k]) for k in b)
