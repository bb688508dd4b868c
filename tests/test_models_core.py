"""The shared model core: attention backends, rope twins, KV cache, sampling, weight tables."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mmprep.errors import BudgetError, InvalidInputError, WeightsError  # noqa: E402
from mmprep.models import attention as att  # noqa: E402
from mmprep.models import rope  # noqa: E402
from mmprep.models.cache import StaticKVCache  # noqa: E402
from mmprep.models.generate import sample_next  # noqa: E402
from mmprep.models.weights import check_table  # noqa: E402

FAST = settings(max_examples=25, deadline=None)


def _qkv(lengths, heads, kv_heads, dim, seed):
    g = torch.Generator().manual_seed(seed)
    total = sum(lengths)
    q = torch.randn(total, heads, dim, generator=g)
    k = torch.randn(total, kv_heads, dim, generator=g)
    v = torch.randn(total, kv_heads, dim, generator=g)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    return q, k, v, cu


def _attention_by_hand(q, k, v, lengths, causal, scale=None):
    """float64 softmax(q k^T * scale) v, one sequence and one query head at a time. Query head h
    reads KV head h // (H / Hkv). Shares no code with mmprep (no block mask, no expand_kv)."""
    heads, kv_heads, dim = q.shape[1], k.shape[1], q.shape[2]
    scale = dim**-0.5 if scale is None else scale
    out = torch.zeros(q.shape, dtype=torch.float64)
    start = 0
    for n in lengths:
        for h in range(heads):
            kh = h // (heads // kv_heads)
            qs, ks, vs = (t[start:start + n, hh].double() for t, hh in ((q, h), (k, kh), (v, kh)))
            scores = (qs @ ks.T) * scale
            if causal:
                scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
            out[start:start + n, h] = scores.softmax(-1) @ vs
        start += n
    return out


# -- attention -----------------------------------------------------------------------------------


@FAST
@given(lengths=st.lists(st.integers(1, 9), min_size=1, max_size=4), kv=st.sampled_from([1, 2, 4]),
       causal=st.booleans(), seed=st.integers(0, 99))
def test_every_cpu_backend_equals_attention_by_hand(lengths, kv, causal, seed):
    q, k, v, cu = _qkv(lengths, 4, kv, 8, seed)
    want = _attention_by_hand(q, k, v, lengths, causal)
    backends = ("sdpa", "sdpa_mask", "eager", "varlen", "flash_attn")  # flash names fall back on CPU
    for backend in backends:
        got = att.varlen_attention(q, k, v, cu, causal=causal, backend=backend)
        assert torch.allclose(got.double(), want, atol=1e-5), backend
    got = att.varlen_attention_reference(q, k, v, cu, causal=causal, scale=0.3)  # the tests' shared reference
    assert torch.allclose(got.double(), _attention_by_hand(q, k, v, lengths, causal, scale=0.3), atol=1e-5)


def test_varlen_attention_keeps_sequences_apart():
    q, k, v, cu = _qkv([3, 5], 2, 2, 8, 0)
    out = att.varlen_attention(q, k, v, cu)
    k2, v2 = k.clone(), v.clone()
    k2[3:], v2[3:] = torch.randn_like(k2[3:]), torch.randn_like(v2[3:])  # change only the 2nd sequence
    assert torch.equal(att.varlen_attention(q, k2, v2, cu)[:3], out[:3])


def test_reference_matches_a_per_sequence_softmax_by_hand():
    q, k, v, cu = _qkv([4], 1, 1, 4, 3)
    scores = (q[:, 0] @ k[:, 0].T) / 2
    scores = scores.masked_fill(torch.triu(torch.ones(4, 4, dtype=torch.bool), 1), float("-inf"))
    expected = scores.softmax(-1) @ v[:, 0]
    got = att.varlen_attention_reference(q, k, v, cu, causal=True)[:, 0]
    assert torch.allclose(got, expected, atol=1e-6)


@FAST
@given(lengths=st.lists(st.integers(1, 7), min_size=1, max_size=3), seed=st.integers(0, 99))
def test_decode_attention_equals_the_last_row_of_causal_attention(lengths, seed):
    q, k, v, cu = _qkv(lengths, 4, 2, 8, seed)
    full = _attention_by_hand(q, k, v, lengths, causal=True)
    B, S = len(lengths), max(lengths) + 2
    kc, vc = torch.zeros(B, S, 2, 8), torch.zeros(B, S, 2, 8)
    for b, (s, e) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist())):
        kc[b, : e - s], vc[b, : e - s] = k[s:e], v[s:e]
        kc[b, e - s:] = 1e3  # garbage past the valid slots must be ignored
    lens = torch.tensor(lengths)
    last = cu[1:].long() - 1
    for backend in ("sdpa", "eager"):
        got = att.decode_attention(q[last], kc, vc, lens, backend=backend)
        assert torch.allclose(got.double(), full[last], atol=1e-5), backend


def test_backend_is_chosen_once_reported_and_overridable():
    assert att.attention_backend("cpu") == "sdpa"
    try:
        att.set_attention_backend("eager")
        assert att.attention_backend("cpu") == "eager"
    finally:
        att.set_attention_backend(None)
    assert att.attention_backend("cpu") == "sdpa"
    with pytest.raises(InvalidInputError, match="unknown attention backend"):
        att.set_attention_backend("magic")


def test_mismatched_qkv_shapes_raise():
    q, k, v, cu = _qkv([3], 4, 2, 8, 0)
    with pytest.raises(InvalidInputError):
        att.varlen_attention(q, k[:2], v, cu)


def test_block_diagonal_mask_layout():
    m = att.block_diagonal_mask(torch.tensor([0, 2, 3]), causal=True)
    assert m.tolist() == [[True, False, False], [True, True, False], [False, False, True]]


# -- rope ---------------------------------------------------------------------------------------


grids = st.lists(st.tuples(st.integers(1, 2), st.integers(1, 3).map(lambda x: 2 * x),
                           st.integers(1, 3).map(lambda x: 2 * x)), min_size=1, max_size=3)


@FAST
@given(grid=grids)
def test_vision_position_ids_equal_reference(grid):
    assert torch.equal(rope.vision_position_ids(grid, 2), rope.vision_position_ids_reference(grid, 2))


def test_vision_position_ids_follow_merge_windows():
    got = rope.vision_position_ids([(1, 2, 4)], 2).tolist()
    assert got == [[0, 0], [0, 1], [1, 0], [1, 1], [0, 2], [0, 3], [1, 2], [1, 3]]


@FAST
@given(grid=grids, head_dim=st.sampled_from([8, 16, 32]), seed=st.integers(0, 50))
def test_vision_rope_equals_reference(grid, head_dim, seed):
    pos = rope.vision_position_ids(grid, 2)
    cos, sin = rope.vision_rope_cos_sin(pos, head_dim, 10000.0)
    rc, rs = rope.vision_rope_cos_sin_reference(pos, head_dim, 10000.0)
    assert torch.allclose(cos, rc, atol=1e-5) and torch.allclose(sin, rs, atol=1e-5)
    x = torch.randn(pos.shape[0], 2, head_dim, generator=torch.Generator().manual_seed(seed))
    assert torch.allclose(rope.apply_rope_half(x, cos, sin), rope.apply_rope_half_reference(x, cos, sin), atol=1e-5)


@FAST
@given(length=st.integers(1, 12), sections=st.sampled_from([(2, 3, 3), (8, 12, 12), (1, 1, 2)]),
       seed=st.integers(0, 50))
def test_mrope_equals_reference(length, sections, seed):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randint(0, 500, (3, length), generator=g)
    rot = 2 * sum(sections)
    cos, sin = rope.mrope_cos_sin(pos, rot, 10000.0, sections)
    rc, rs = rope.mrope_cos_sin_reference(pos, rot, 10000.0, sections)
    assert torch.allclose(cos, rc, atol=1e-4) and torch.allclose(sin, rs, atol=1e-4)
    x = torch.randn(length, 3, rot + 6, generator=g)  # partial rotary: 6 dims pass through
    got = rope.apply_rope_interleaved(x, cos, sin)
    assert torch.allclose(got, rope.apply_rope_interleaved_reference(x, cos, sin), atol=1e-5)
    assert torch.equal(got[..., rot:], x[..., rot:])


def test_mrope_with_equal_axes_is_plain_rope():
    pos = torch.arange(7)
    cos, sin = rope.mrope_cos_sin(pos[None].expand(3, -1), 16, 10000.0, (2, 3, 3))
    freqs = torch.tensor([10000.0 ** (-2 * i / 16) for i in range(8)], dtype=torch.float64)  # theta^(-2i/d)
    angles = (pos[:, None].double() * freqs).repeat_interleave(2, -1)
    assert torch.allclose(cos.double(), angles.cos(), atol=1e-5) and torch.allclose(sin.double(), angles.sin(), atol=1e-5)


def test_mrope_sections_must_cover_the_rotary_dim():
    with pytest.raises(ValueError, match="sum to rotary_dim/2"):
        rope.mrope_cos_sin(torch.zeros(3, 2, dtype=torch.long), 16, 1e4, (2, 2, 2))


# -- cache and sampling -------------------------------------------------------------------------


def test_cache_slots_pack_rows_and_refuse_overflow():
    cache = StaticKVCache.allocate(1, 2, 4, 1, 2, dtype=torch.float32, device="cpu")
    rows, slots = cache.slots(torch.tensor([2, 3]))
    assert rows.tolist() == [0, 0, 1, 1, 1] and slots.tolist() == [0, 1, 0, 1, 2]
    cache.advance(torch.tensor([2, 3]))
    rows, slots = cache.slots(torch.tensor([1, 1]))
    assert slots.tolist() == [2, 3]
    cache.advance(torch.tensor([1, 1]))
    with pytest.raises(BudgetError, match="item 1: 5 tokens exceed the KV cache of 4"):
        cache.slots(torch.tensor([0, 1]))


@FAST
@given(k=st.integers(1, 5), seed=st.integers(0, 200))
def test_top_k_samples_only_among_the_k_best(k, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 10, generator=g)
    ids = sample_next(logits, temperature=1.0, top_k=k, generator=g)
    best = logits.topk(k, -1).indices
    assert all(int(i) in best[r].tolist() for r, i in enumerate(ids))


@FAST
@given(p=st.floats(0.05, 0.99), seed=st.integers(0, 200))
def test_top_p_keeps_the_smallest_set_reaching_p(p, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, 12, generator=g) * 3
    probs, order = logits.softmax(-1).sort(-1, descending=True)
    keep = int((probs.cumsum(-1) - probs < p).sum())
    allowed = set(order[0, :keep].tolist())
    for _ in range(5):
        assert int(sample_next(logits, temperature=1.0, top_p=p, generator=g)) in allowed


def test_greedy_is_argmax_and_bad_options_raise():
    logits = torch.tensor([[0.1, 3.0, -1.0], [5.0, 0.0, 0.0]])
    assert sample_next(logits).tolist() == [1, 0]
    with pytest.raises(InvalidInputError):
        sample_next(logits, temperature=1.0, top_p=0.0)


# -- weight tables ------------------------------------------------------------------------------


def test_check_table_lists_every_problem_at_once():
    table = {"a.w": "x.w", "b.w": "y.w", "c.w": "z.w"}
    shapes = {"a.w": (2, 3), "b.w": (4,), "d.w": (1,)}
    params = {"x.w": (2, 3), "y.w": (5,), "z.w": (1,), "q.w": (1,)}
    with pytest.raises(WeightsError) as err:
        check_table(table, shapes, params, where="ckpt")
    msg = str(err.value)
    assert "1 missing keys: c.w" in msg and "1 unexpected keys: d.w" in msg
    assert "b.w [4] (expected [5])" in msg and "parameters no checkpoint key fills: q.w" in msg
    check_table({"a.w": "x.w"}, {"a.w": (2, 3)}, {"x.w": (2, 3)})  # a consistent table passes


# -- packing and placeholder slots ------------------------------------------------------------------


@FAST
@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4), left=st.booleans())
def test_pack_and_unpack_round_trip_for_either_padding_side(lengths, left):
    from mmprep.models.inputs import pack_tokens, unpack

    L = max(lengths)
    ids = torch.zeros(len(lengths), L, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, n in enumerate(lengths):
        cols = slice(L - n, L) if left else slice(0, n)
        ids[b, cols] = torch.arange(1, n + 1) + 10 * b
        mask[b, cols] = 1
    packed = pack_tokens({"input_ids": ids, "attention_mask": mask}, "cpu", max_context=99, has_media=False)
    assert packed.ids.tolist() == [10 * b + i for b, n in enumerate(lengths) for i in range(1, n + 1)]
    assert packed.cu_seqlens.tolist() == [0, *torch.tensor(lengths).cumsum(0).tolist()]
    assert packed.positions[0].tolist() == [i for n in lengths for i in range(n)]
    assert packed.deltas.tolist() == [0] * len(lengths)
    assert torch.equal(unpack(packed.ids, packed.valid), ids * mask)


def test_pack_refuses_long_prompts_and_media_without_positions():
    from mmprep.models.inputs import pack_tokens

    with pytest.raises(BudgetError, match="item 1: 5 tokens exceed the model's context of 4"):
        pack_tokens({"input_ids": [[1, 2, 3, 0, 0], [1, 2, 3, 4, 5]], "attention_mask": [[1, 1, 1, 0, 0], [1] * 5]},
                    "cpu", max_context=4, has_media=False)
    with pytest.raises(InvalidInputError, match="position_ids"):
        pack_tokens({"input_ids": [1, 2]}, "cpu", max_context=4, has_media=True)
    with pytest.raises(InvalidInputError, match="does not fit"):
        pack_tokens({"input_ids": [1, 2], "position_ids": [[0, 1, 2]] * 3}, "cpu", max_context=9, has_media=True)


TEXT, IMAGE, VIDEO, VSTART, VEND = 1, 10, 11, 8, 9


def _slots_reference(rows):
    image, video = [], []
    for row in rows:  # depth of <|begin_of_video|> ... <|end_of_video|> nesting, as transformers counts it
        depth = 0
        for t in row:
            depth += (t == VSTART) - (t == VEND)
            inside = depth > 0
            image.append(t == IMAGE and not inside)
            video.append(t == VIDEO or (t == IMAGE and inside))
    return image, video


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(st.lists(st.sampled_from([TEXT, IMAGE, VIDEO, VSTART, VEND]), min_size=1, max_size=12),
                     min_size=1, max_size=3))
def test_placeholder_slots_equal_a_per_row_state_machine(rows):
    from mmprep.models.glm4v import Glm4vConfig, placeholder_slots

    cfg = Glm4vConfig(image_token_id=IMAGE, video_token_id=VIDEO, video_start_token_id=VSTART, video_end_token_id=VEND)
    ids = torch.tensor([t for r in rows for t in r])
    cu = torch.tensor([0, *torch.tensor([len(r) for r in rows]).cumsum(0).tolist()], dtype=torch.int32)
    image, video = placeholder_slots(ids, cu, cfg)
    assert (image.tolist(), video.tolist()) == _slots_reference(rows)


def test_slot_counts_name_the_row_and_the_items():
    from mmprep.models.inputs import check_slot_counts

    check_slot_counts("image", [6, 0, 8], [2, 4, 8])
    with pytest.raises(InvalidInputError, match=r"item 1: 5 image placeholder tokens, but images 1..1 give 8"):
        check_slot_counts("image", [6, 5], [6, 8])
    with pytest.raises(InvalidInputError, match=r"1 video\(s\) left without placeholder tokens"):
        check_slot_counts("video", [4], [4, 4])
    with pytest.raises(InvalidInputError, match="no images give 0"):
        check_slot_counts("image", [3], [])


@given(length=st.integers(1, 10), sections=st.sampled_from([(2, 3, 3), (4, 2, 2), (24, 20, 20), (1, 1, 2)]),
       layout=st.sampled_from(["half", "interleaved"]), section_layout=st.sampled_from(["blocks", "interleaved"]),
       extra=st.sampled_from([0, 8]), seed=st.integers(0, 50))
@settings(max_examples=40, deadline=None)
def test_mrope_layouts_equal_reference(length, sections, layout, section_layout, extra, seed):
    """Both pair layouts x both section layouts; ``extra`` dims beyond the rotary part pass through."""
    g = torch.Generator().manual_seed(seed)
    rot = 2 * sum(sections)
    pos = torch.randint(0, 300, (3, length), generator=g)
    cos, sin = rope.mrope_cos_sin(pos, rot, 10000.0, sections, layout=layout, section_layout=section_layout)
    rcos, rsin = rope.mrope_cos_sin_reference(pos, rot, 10000.0, sections, layout=layout,
                                              section_layout=section_layout)
    # fp32 angles up to 300 rad: ~1e-5 of rounding in cos/sin is the float32 spacing, not a bug
    torch.testing.assert_close(cos, rcos, atol=5e-5, rtol=0)
    torch.testing.assert_close(sin, rsin, atol=5e-5, rtol=0)
    x = torch.randn(length, 2, rot + extra, generator=g)
    apply, ref = ((rope.apply_rope_half, rope.apply_rope_half_reference) if layout == "half"
                  else (rope.apply_rope_interleaved, rope.apply_rope_interleaved_reference))
    torch.testing.assert_close(apply(x, cos, sin), ref(x, cos, sin), atol=2e-5, rtol=0)
    torch.testing.assert_close(apply(x, cos, sin)[..., rot:], x[..., rot:])


def test_interleaved_sections_cycle_t_h_w_then_stay_on_t():
    assert rope.mrope_axes((4, 2, 2), "blocks") == [0, 0, 0, 0, 1, 1, 2, 2]
    assert rope.mrope_axes((4, 2, 2), "interleaved") == [0, 1, 2, 0, 1, 2, 0, 0]
    with pytest.raises(ValueError, match="section layout"):
        rope.mrope_axes((4, 2, 2), "zigzag")


@given(grids=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 4)), min_size=1, max_size=3),
       scale=st.sampled_from([1, 2, 3]), seed=st.integers(0, 50))
@settings(max_examples=30, deadline=None)
def test_space_to_depth_equals_reference(grids, scale, seed):
    from mmprep.models.layers import space_to_depth, space_to_depth_reference

    hw = [(h * scale, w * scale) for h, w in grids]
    x = torch.randn(sum(h * w for h, w in hw), 3, generator=torch.Generator().manual_seed(seed))
    out = space_to_depth(x, hw, scale)
    assert out.shape == (x.shape[0] // scale**2, 3 * scale**2)
    torch.testing.assert_close(out, space_to_depth_reference(x, hw, scale))


def test_hybrid_cache_keeps_kv_only_for_attention_layers():
    cache = StaticKVCache.allocate([1, 4], 2, 6, 2, 4, dtype=torch.float32, device="cpu")
    assert cache.keys.shape == (2, 2, 6, 2, 4)
    rows, slots = cache.slots(torch.tensor([2, 1]))
    k = torch.arange(3 * 2 * 4, dtype=torch.float32).view(3, 2, 4)
    cache.write(4, rows, slots, k, -k)
    keys, values = cache.layer_kv(4)
    assert torch.equal(keys[0, :2], k[:2]) and torch.equal(values[1, :1], -k[2:])
    assert not cache.layer_kv(1)[0].any()
    cache.states[2] = {"ssm": torch.zeros(2, 3)}  # a recurrent layer's own state
    with pytest.raises(KeyError):
        cache.layer_kv(2)
