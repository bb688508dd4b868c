"""Nemotron prompts: image/video/audio placeholder pieces, frame timestamps and separators, the
rules the prompt driver reads, and ``prompt`` / ``process``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import InvalidInputError
from ...prompt import tokens as tk
from ...prompt.tokens import Piece, is_whole
from ...prompt.driver import (
    Rules, _batch, _check_all, _check_kw, _metadata_plans, _run,
    check_plans, image_plan, split_samples,
)
from ...prompt.fast import fast_batch
from ...types import Batch, ImagePlan, VideoPlan


def nemotron_separator(i: int, timestamp: float) -> str:
    """The text before frame ``i`` (0-based): ``"Frame {i+1} sampled at {t:.2f} seconds: "``."""
    return f"Frame {i + 1} sampled at {timestamp:.2f} seconds: "


def nemotron_image_pieces(spec: Any, num_tokens: int) -> tuple[Piece, ...]:
    """``<img>`` + ``<image>`` x tokens + ``</img>``."""
    return (Piece(spec.img_start_token), Piece(spec.img_context_token, int(num_tokens), feature=True),
            Piece(spec.img_end_token))


def nemotron_tubelet_separator(first: int, timestamps: Sequence[float]) -> str:
    """The text before a tubelet whose frames start at ``first`` (0-based) (current vLLM):
    ``"Frame 1 sampled at 0.00 seconds and frame 2 sampled at 0.50 seconds: "``."""
    parts = [f"{'Frame' if j == 0 else 'frame'} {first + j + 1} sampled at {ts:.2f} seconds"
             for j, ts in enumerate(timestamps)]
    return " and ".join(parts) + ": "


def nemotron_video_pieces(spec: Any, timestamps: Sequence[float], frame_tokens: Sequence[int]) -> tuple[Piece, ...]:
    """Per frame (or tubelet): separator text, ``<img>``, ``<image>`` x n_i, ``</img>`` (get_video_repl).

    ``timestamps`` (s) are the plan's, one per frame; ``frame_tokens`` one per prompt span: per
    frame, or per tubelet of ``spec.video_temporal_patch_size`` frames. With
    ``spec.video_frame_newline`` every separator but the first starts with ``"\n"`` (current vLLM).
    """
    t = getattr(spec, "video_temporal_patch_size", 1)
    groups = -(-len(timestamps) // t)
    if groups != len(frame_tokens):
        raise InvalidInputError(
            f"video has {len(timestamps)} frame timestamps ({groups} spans of {t}) but "
            f"{len(frame_tokens)} per-span token counts"
        )
    if not timestamps:
        raise InvalidInputError("a video needs at least one frame, got 0")
    pieces: list[Piece] = []
    for i, n in enumerate(frame_tokens):
        if not is_whole(n) or n < 0:
            raise InvalidInputError(f"frame {i}: token count must be a non-negative int, got {n!r}")
        if t > 1:
            sep = nemotron_tubelet_separator(i * t, timestamps[i * t:(i + 1) * t])
        else:
            sep = nemotron_separator(i, timestamps[i])
        if i > 0 and getattr(spec, "video_frame_newline", False):
            sep = "\n" + sep
        pieces += [Piece(sep, kind="text"), Piece(spec.img_start_token),
                   Piece(spec.img_context_token, int(n), feature=True), Piece(spec.img_end_token)]
    return tuple(pieces)


def nemotron_audio_pieces(spec: Any, num_tokens: int) -> tuple[Piece, ...]:
    """``<so_start>`` + ``<so_embedding>`` x tokens + ``<so_end>``."""
    return (Piece(spec.audio_start_token), Piece(spec.audio_context_token, int(num_tokens), feature=True),
            Piece(spec.audio_end_token))


def _nemotron_targets(family, vocab):
    s = family.spec
    targets = [tk.Target("image", (vocab.token_id(s.img_context_token),)),
               tk.Target("video", (vocab.token_id(s.video_context_token),))]
    names = [s.img_start_token, s.img_end_token]
    if s.has_audio:
        targets.append(tk.Target("audio", (vocab.token_id(s.audio_context_token),)))
        names += [s.audio_start_token, s.audio_end_token]
    return targets, {vocab.token_id(t): t for t in names}


def _nemotron_video_pieces(family, plan: VideoPlan):
    return nemotron_video_pieces(family.spec, plan.timestamps, plan.frame_tokens)


NEMOTRON = Rules(
    modalities=("image", "video", "audio"),
    targets=_nemotron_targets,
    pieces={
        "image": lambda f, p: nemotron_image_pieces(f.spec, p.num_tokens),
        "video": _nemotron_video_pieces,
        "audio": lambda f, p: nemotron_audio_pieces(f.spec, p.num_tokens),
    },
    add_special_tokens=False,  # get_default_tok_params: no BOS (T17)
)


def nemotron_text_len(family, vocab, text: str, text_len: Any) -> int:
    """Tokens the dynamic tiler budgets for text (SPEC §9 Q3).

    ``0`` (the default): vLLM with its processor cache on (the default) runs the HF-style
    processor on dummy text made of placeholders only, so no text is budgeted. ``"prompt"``: the
    seed processor's own rule on the real text (every ``<image>`` removed, no special tokens),
    what vLLM does with the cache off. An int is used as given.
    """
    if text_len == "prompt":
        return len(vocab.encode(text.replace(family.spec.img_context_token, ""), False))
    if isinstance(text_len, bool) or not isinstance(text_len, (int, np.integer)) or text_len < 0:
        raise InvalidInputError(f"text_len must be 'prompt' or a non-negative int, got {text_len!r}")
    return int(text_len)


def _nemotron_image_plans(family, vocab, texts, kw):
    s = family.spec

    def plan(b: int, xs: list) -> list[ImagePlan]:
        if not s.dynamic or all(isinstance(x, ImagePlan) for x in xs):
            return [image_plan(family, x, i) for i, x in enumerate(xs)]
        if any(isinstance(x, ImagePlan) for x in xs):
            raise InvalidInputError(f"sample {b}: give all images of a request as sizes or all as plans")
        n = nemotron_text_len(family, vocab, texts[b], kw.get("text_len", 0))
        return list(family.plan_request(list(xs), text_len=n,
                                        max_model_len=kw.get("max_model_len")).images)

    return plan


def nemotron_prompt(family, text, images=(), videos=(), audios=(), tokenizer=None, **kw) -> Batch:
    """Expanded ``input_ids`` from sizes, video plans/metadata and audio lengths alone."""
    _check_kw(kw, ("text_len", "max_model_len"))
    _, texts, per = split_samples(text, {"image": images, "video": videos, "audio": audios})
    vocab = tk.as_vocab(tokenizer)
    plans = _metadata_plans(family, per, _nemotron_image_plans(family, vocab, texts, kw))
    check_plans(plans)  # hand-built plans, as the per-sample path checks them
    # the many-sample path (the tiler's text budgets are in the plans already); None: the
    # per-sample path says why
    fast = fast_batch(NEMOTRON, family, texts, plans, vocab, kw, {})
    if fast is not None:
        return fast
    prompts = _run(NEMOTRON, family, texts, plans, vocab, kw)
    return _batch(prompts, vocab, kw, {})


def nemotron_process(family, text=None, images=None, videos=None, audios=None, tokenizer=None, **kw) -> Batch:
    """Tiles / dynamic patches, video frames, audio features and expanded ids, with the seed's
    key names (``pixel_values_flat``, ``image_num_patches`` ...)."""
    from .media import nemotron_media

    _check_kw(kw, ("backend", "text_len", "max_model_len"))
    _, texts, per = split_samples(text, {"image": images, "video": videos, "audio": audios})
    vocab = tk.as_vocab(tokenizer)
    plans, extra, checks = nemotron_media(family, vocab, texts, per, kw)
    prompts = _run(NEMOTRON, family, texts, plans, vocab, kw)
    _check_all(prompts, checks, "the media outputs")
    return _batch(prompts, vocab, kw, extra)
