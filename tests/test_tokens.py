"""Placeholder pieces and expansion on token ids (SPEC §5, traps T14, T15, T16, T20, T21)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mmprep
from mmprep import MmprepError
from mmprep import VideoMetadata
from mmprep.families.glm4v import prompt as glm_prompt
from mmprep.families.nemotron import prompt as nem_prompt
from mmprep.prompt import tokens as tk
from tests.tokenizers_fixture import glm_tokenizer, hf_tokenizer, isaac_tokenizer, nemotron_tokenizer

GLM = mmprep.load("glm-4.1v").spec
GLM46 = mmprep.load("glm-4.6v").spec
NEMO = mmprep.load("nemotron-nano-vl").spec


def test_vocab_reads_tokenizer_objects_files_directories_and_transformers(tmp_path):
    tok = glm_tokenizer()
    tok.save(str(tmp_path / "tokenizer.json"))
    text = "Frame 2 sampled at 0.50 seconds: <|image|>"
    want = tok.encode(text, add_special_tokens=False).ids
    for source in (tok, tmp_path / "tokenizer.json", str(tmp_path), hf_tokenizer(tok)):
        vocab = tk.Vocab(source)
        assert vocab.encode(text) == want
        assert vocab.encode_many([text, "3"]) == [want, tok.encode("3").ids]
        assert vocab.token_id("<|video|>") == tok.token_to_id("<|video|>")


def test_vocab_rejects_missing_files_and_non_tokenizers(tmp_path):
    with pytest.raises(MmprepError):
        tk.Vocab(tmp_path / "nope.json")
    with pytest.raises(MmprepError):
        tk.Vocab(42)
    with pytest.raises(MmprepError):
        tk.Vocab(None)


def test_token_id_raises_when_the_tokenizer_splits_the_token():
    with pytest.raises(MmprepError, match="<image>"):
        tk.Vocab(isaac_tokenizer()).token_id("<image>")


def _glm_video_plan(family, frames: int, height: int, width: int, stamps=None):
    """A plan through the public API: every frame chosen at 1 fps (so one stamp per second pair)."""
    plan = family.plan_video(VideoMetadata(frames, 1.0, height, width), frame_indices=range(frames))
    return plan if stamps is None else dataclasses.replace(plan, timestamps=tuple(stamps))


def test_glm_video_pieces_follow_the_seed_layout():
    glm = mmprep.load("glm-4.1v")
    plan = _glm_video_plan(glm, 4, 112, 112, [0, 1])  # grid (2, 8, 8): 16 tokens per pair
    pieces = glm.placeholder(plan)
    assert tk.pieces_items(pieces) == [
        "<|begin_of_video|>", "<|begin_of_image|>", *["<|video|>"] * 16, "<|end_of_image|>", "0",
        "<|begin_of_image|>", *["<|video|>"] * 16, "<|end_of_image|>", "1", "<|end_of_video|>",
    ]
    assert tk.pieces_num_features(pieces) == 32 == plan.num_tokens
    assert tk.pieces_rle(pieces)[2] == ["<|video|>", 16]


def test_glm46v_prints_whole_seconds_with_one_decimal():
    assert glm_prompt.glm_timestamp_text("4.6v", 3) == "3.0 seconds"
    assert glm_prompt.glm_timestamp_text("4.1v", 3) == "3"
    glm46 = mmprep.load("glm-4.6v")
    items = tk.pieces_items(glm46.placeholder(_glm_video_plan(glm46, 4, 56, 56, [7, 2400])))
    assert "7.0 seconds" in items and "2400.0 seconds" in items


def test_glm_video_timestamps_must_match_temporal_groups():
    glm = mmprep.load("glm-4.1v")
    with pytest.raises(MmprepError, match="3 timestamps.*2"):
        glm.placeholder(_glm_video_plan(glm, 4, 112, 112, [0, 1, 2]))


@pytest.mark.parametrize("frames, h, w", [(0, 56, 56), (4, -56, 56), (4, 56, 0)])
def test_glm_video_plan_rejects_bad_sizes(frames, h, w):
    with pytest.raises(MmprepError):
        mmprep.load("glm-4.1v").plan_video(VideoMetadata(max(frames, 1), 1.0, h, w), frame_indices=range(frames))


def test_glm_video_grid_rounds_odd_frames_up():
    # 11 chosen frames are padded to 12 (pairs): grid_t = 6; 280x504 px stays (multiples of 28)
    plan = mmprep.load("glm-4.1v").plan_video(VideoMetadata(11, 1.0, 280, 504), frame_indices=range(11))
    assert plan.grid == (6, 20, 36) and plan.num_frames == 12 and plan.frame_indices[-2:] == (10, 10)


def test_nemotron_timestamps_and_separators_match_python_formatting():
    nemo = mmprep.load("nemotron-nano-vl")
    assert nemo.plan_video(VideoMetadata(301, 29.97), frame_indices=[300]).frame_duration_ms == 33
    assert nemo.plan_video(VideoMetadata(301, 23.976), frame_indices=[300]).frame_duration_ms == 41
    assert nemo.plan_video(VideoMetadata(301, 29.97), frame_indices=[300]).timestamps == (9.9,)
    assert nem_prompt.nemotron_separator(0, 1.485) == "Frame 1 sampled at 1.49 seconds: "
    assert nem_prompt.nemotron_separator(4, 0.495) == "Frame 5 sampled at 0.49 seconds: "


@pytest.mark.parametrize("fps", [0, -5, 1001, float("nan"), float("inf"), True])
def test_nemotron_bad_fps_raises(fps):
    with pytest.raises(MmprepError):
        mmprep.load("nemotron-nano-vl").plan_video(VideoMetadata(10, 30.0), frame_indices=[0, 5], fps=fps)


@pytest.mark.parametrize("tokens, frames, q, want", [
    (256, 10, 0.9, [256] + [0] * 9),   # max(F, int(2560 * 0.1)) = 256
    (4, 100, 0.9, [39] + [0] * 99),    # 1 - 0.9 < 0.1: int(400 * 0.0999...) = 39
    (256, 3, 0.0, [256] * 3),
])
def test_nemotron_evs_puts_all_tokens_in_the_first_frame_with_the_float_hazard(tokens, frames, q, want):
    side = int((tokens * 4) ** 0.5) * 16  # S with (S/16)^2 / 4 == tokens
    nemo = mmprep.load("nemotron-nano-vl", image_size=side, video_pruning_rate=q)
    plan = nemo.plan_video(VideoMetadata(frames, 1.0), frame_indices=range(frames))
    assert list(plan.frame_tokens) == want and plan.num_tokens == sum(want)


def test_nemotron_tokens_per_frame_two_formulas_differ_when_patch_does_not_divide():
    # S=1000, p=16, r=0.5: (1000*1000 // 256) * 0.25 = 976 vs (1000 // 16)**2 * 0.25 = 961
    assert mmprep.load("nemotron-nano-vl", image_size=1000, video_frame_tokens_rule="processor").spec.tokens_per_frame == 976
    assert mmprep.load("nemotron-nano-vl", image_size=1000).spec.tokens_per_frame == 961
    assert mmprep.load("nemotron-nano-vl").spec.tokens_per_frame == 256


def test_nemotron_video_ids_tokenize_each_separator_alone():
    tok = nemotron_tokenizer()
    vocab = tk.Vocab(tok)
    nemo = mmprep.load("nemotron-nano-vl")
    plan = nemo.plan_video(VideoMetadata(31, 30.0), frame_indices=[0, 15, 30], frame_tokens=[3, 0, 1])
    pieces = nemo.placeholder(plan)
    ids, mask = tk.pieces_to_ids(pieces, vocab)
    want = []
    for i, (idx, n) in enumerate(zip([0, 15, 30], [3, 0, 1])):
        sep = f"Frame {i + 1} sampled at {idx * 33 / 1000.0:.2f} seconds: "
        want += tok.encode(sep, add_special_tokens=False).ids
        want += [tok.token_to_id("<img>")] + [tok.token_to_id("<image>")] * n + [tok.token_to_id("</img>")]
    assert ids.tolist() == want
    assert mask.sum() == 4 and (ids[mask] == tok.token_to_id("<image>")).all()


def test_expand_never_rescans_inserted_context_tokens():
    """Nemotron's image target and context token are both ``<image>`` (T14)."""
    tok = nemotron_tokenizer()
    vocab = tk.Vocab(tok)
    image = tok.token_to_id("<image>")
    ids = tok.encode("a <image> b <image>", add_special_tokens=False).ids
    reps = {"image": [nem_prompt.nemotron_image_pieces(NEMO, 5), nem_prompt.nemotron_image_pieces(NEMO, 2)]}
    exp = tk.expand(ids, [tk.Target("image", (image,))], reps, vocab)
    assert int((exp.input_ids == image).sum()) == 7
    assert [s.num_features for s in exp.spans] == [5, 2]
    assert exp.input_ids.size == len(ids) - 2 + 7 + 4


def test_expand_names_both_counts_on_mismatch():
    vocab = tk.Vocab(glm_tokenizer())
    ids = vocab.encode("<|image|> <|image|>")
    target = tk.Target("image", (vocab.token_id("<|image|>"),))
    with pytest.raises(MmprepError, match="2 image placeholder.*3 image item"):
        tk.expand(ids, [target], {"image": [glm_prompt.glm_image_pieces(GLM, 1)] * 3}, vocab, sample=4)


def test_expand_rejects_structural_tokens_typed_in_the_text():
    vocab = tk.Vocab(nemotron_tokenizer())
    ids = vocab.encode("look <img> here")
    target = tk.Target("image", (vocab.token_id("<image>"),))
    with pytest.raises(MmprepError, match="<img>"):
        tk.expand(ids, [target], {}, vocab, forbidden={vocab.token_id("<img>"): "<img>"})


def test_multi_token_targets_match_only_the_full_sequence():
    vocab = tk.Vocab(glm_tokenizer())
    s = [vocab.token_id(t) for t in ("<|begin_of_video|>", "<|video|>", "<|end_of_video|>")]
    ids = np.array([1, s[0], s[1], s[2], 2, s[0], 3], dtype=np.int64)
    found = tk.find_placeholders(ids, [tk.Target("video", tuple(s))])
    assert found == [(1, 0)]


@given(st.lists(st.tuples(st.sampled_from(["hello", " world", " 3.0", "x y", ""]), st.integers(1, 40)), max_size=5),
       st.sampled_from(["hi", " end", ""]))
def test_expanded_length_is_text_plus_replacements(chunks, tail):
    """len(ids) == text tokens + Σ replacement tokens (Nemotron: + <img>/</img> per image)."""
    tok = nemotron_tokenizer()
    vocab = tk.Vocab(tok)
    text = "".join(t + "<image>" for t, _ in chunks) + tail
    ids = vocab.encode(text)
    reps = {"image": [nem_prompt.nemotron_image_pieces(NEMO, n) for _, n in chunks]}
    exp = tk.expand(ids, [tk.Target("image", (tok.token_to_id("<image>"),))], reps, vocab)
    assert exp.input_ids.size == len(ids) - len(chunks) + sum(n + 2 for _, n in chunks)
    assert int(exp.feature_mask.sum()) == sum(n for _, n in chunks)
    for span, (_, n) in zip(exp.spans, chunks):
        assert exp.input_ids[span.start] == tok.token_to_id("<img>") and span.length == n + 2
