"""Placeholder pieces and expansion on token ids (SPEC §5, traps T14, T15, T16, T20, T21)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mmprep
from mmprep import MmprepError
from mmprep import tokens as tk
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


def test_glm_video_pieces_follow_the_seed_layout():
    pieces = tk.glm_video_pieces(GLM, [0, 1], (2, 4, 4))
    assert tk.pieces_items(pieces) == [
        "<|begin_of_video|>", "<|begin_of_image|>", *["<|video|>"] * 4, "<|end_of_image|>", "0",
        "<|begin_of_image|>", *["<|video|>"] * 4, "<|end_of_image|>", "1", "<|end_of_video|>",
    ]
    assert tk.pieces_num_features(pieces) == 8
    assert tk.pieces_rle(pieces)[2] == ["<|video|>", 4]


def test_glm46v_prints_whole_seconds_with_one_decimal():
    assert tk.glm_timestamp_text("4.6v", 3) == "3.0 seconds"
    assert tk.glm_timestamp_text("4.1v", 3) == "3"
    items = tk.pieces_items(tk.glm_video_pieces(GLM46, [7, 2400], (2, 2, 2)))
    assert "7.0 seconds" in items and "2400.0 seconds" in items


def test_glm_video_timestamps_must_match_temporal_groups():
    with pytest.raises(MmprepError, match="3 timestamps.*2"):
        tk.glm_video_pieces(GLM, [0, 1, 2], (2, 4, 4))


@pytest.mark.parametrize("frames, h, w", [(0, 56, 56), (4, 50, 56), (4, -56, 56)])
def test_glm_video_grid_rejects_bad_sizes(frames, h, w):
    with pytest.raises(MmprepError):
        tk.glm_video_grid(frames, h, w, 14, 2, 2)


def test_glm_video_grid_rounds_odd_frames_up():
    assert tk.glm_video_grid(11, 280, 504, 14, 2, 2) == (6, 20, 36)


def test_nemotron_timestamps_and_separators_match_python_formatting():
    assert tk.nemotron_frame_duration_ms(29.97) == 33
    assert tk.nemotron_frame_duration_ms(23.976) == 41
    assert tk.nemotron_timestamps([300], 33) == [9.9]
    assert tk.nemotron_separator(0, 1.485) == "Frame 1 sampled at 1.49 seconds: "
    assert tk.nemotron_separator(4, 0.495) == "Frame 5 sampled at 0.49 seconds: "


@pytest.mark.parametrize("fps", [0, -5, 1001, float("nan"), float("inf"), True])
def test_nemotron_bad_fps_raises(fps):
    with pytest.raises(MmprepError):
        tk.nemotron_frame_duration_ms(fps)


def test_nemotron_evs_puts_all_tokens_in_the_first_frame_with_the_float_hazard():
    assert tk.nemotron_evs_frame_tokens(100, 10, 0.9) == [100] + [0] * 9  # max(F, 99)
    assert tk.nemotron_evs_frame_tokens(10, 100, 0.9) == [99] + [0] * 99  # 1-0.9 < 0.1
    assert tk.nemotron_evs_frame_tokens(256, 3, None) == [256] * 3
    assert tk.nemotron_evs_frame_tokens(256, 3, 0.0) == [256] * 3


def test_nemotron_tokens_per_frame_two_formulas_differ_when_patch_does_not_divide():
    assert tk.nemotron_tokens_per_frame(1000, 16, 0.5, "processor") == 976
    assert tk.nemotron_tokens_per_frame(1000, 16, 0.5, "prompt_update") == 961
    assert tk.nemotron_tokens_per_frame(512, 16, 0.5) == 256


def test_nemotron_video_ids_tokenize_each_separator_alone():
    tok = nemotron_tokenizer()
    vocab = tk.Vocab(tok)
    pieces = tk.nemotron_video_pieces(NEMO, [0, 15, 30], 33, [3, 0, 1])
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
    reps = {"image": [tk.nemotron_image_pieces(NEMO, 5), tk.nemotron_image_pieces(NEMO, 2)]}
    exp = tk.expand(ids, [tk.Target("image", (image,))], reps, vocab)
    assert int((exp.input_ids == image).sum()) == 7
    assert [s.num_features for s in exp.spans] == [5, 2]
    assert exp.input_ids.size == len(ids) - 2 + 7 + 4


def test_expand_names_both_counts_on_mismatch():
    vocab = tk.Vocab(glm_tokenizer())
    ids = vocab.encode("<|image|> <|image|>")
    target = tk.Target("image", (vocab.token_id("<|image|>"),))
    with pytest.raises(MmprepError, match="2 image placeholder.*3 image item"):
        tk.expand(ids, [target], {"image": [tk.glm_image_pieces(GLM, 1)] * 3}, vocab, sample=4)


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
    reps = {"image": [tk.nemotron_image_pieces(NEMO, n) for _, n in chunks]}
    exp = tk.expand(ids, [tk.Target("image", (tok.token_to_id("<image>"),))], reps, vocab)
    assert exp.input_ids.size == len(ids) - len(chunks) + sum(n + 2 for _, n in chunks)
    assert int(exp.feature_mask.sum()) == sum(n for _, n in chunks)
    for span, (_, n) in zip(exp.spans, chunks):
        assert exp.input_ids[span.start] == tok.token_to_id("<img>") and span.length == n + 2
