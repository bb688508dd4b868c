"""Processor calls per family: ``process`` (pixels + prompt) and ``prompt`` (metadata only).

Both paths read one plan per media item: ``*_prompt`` builds plans from metadata (``ImagePlan``
or ``(h, w)``; ``VideoPlan`` or ``VideoMetadata``; ``AudioPlan`` or a sample count), ``*_process``
takes them from the pixel/audio outputs, and from there the same code expands placeholders and
computes positions, so ``prompt(...)`` returns exactly ``process(...)``'s ``input_ids`` and
``position_ids``. Chat templates stay the caller's job (docs/prompts.md).

Common keyword arguments: ``tokenizer`` (``tokenizers.Tokenizer``, ``tokenizer.json`` path or a
transformers tokenizer), ``return_tensors`` ("np" | "pt"), ``padding_side`` ("right" | "left"),
``pad_token_id``, ``add_special_tokens`` (default: the reference's; False for Nemotron, T17).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import tokens as tk
from .errors import InvalidInputError
from .positions import glm_mrope_positions, isaac_mrope_positions
from .prompting import (
    Rules, SamplePrompt, assemble, build_sample, check_slots, pad_id, per_sample, split_samples,
    to_tensors, tokenize,
)
from .types import AudioPlan, Batch, ImagePlan, VideoMetadata, VideoPlan

# -- family rules -------------------------------------------------------------------------------


def _glm_targets(family, vocab):
    s = family.spec
    names = (s.video_start_token, s.video_token, s.video_end_token)
    video = tuple(vocab.token_id(t) for t in names)
    targets = [tk.Target("image", (vocab.token_id(s.image_token),)), tk.Target("video", video)]
    return targets, dict(zip(video, names))  # any of the three outside a video placeholder is stray


def _glm_video_pieces(family, plan: VideoPlan):
    stamps = [int(t) if float(t).is_integer() else t for t in plan.timestamps]  # whole seconds (T20)
    return tk.glm_video_pieces(family.spec, stamps, plan.grid)


GLM = Rules(
    modalities=("image", "video"),
    targets=_glm_targets,
    pieces={"image": lambda f, p: tk.glm_image_pieces(f.spec, p.num_tokens), "video": _glm_video_pieces},
    mrope=lambda n, feats, spec: glm_mrope_positions(n, feats, spec.merge_size),
    max_items={"video": 1},  # vLLM: get_supported_mm_limits (T36)
)


def _isaac_text(family, text: str, sample: int) -> str:
    """``<image>`` -> one ``<|image_pad|>`` stand-in (an added token), as the reference's text
    replacement does, so the text is tokenized once whether or not ``<image>`` is one token."""
    s = family.spec
    if s.image_pad_token in text:
        raise InvalidInputError(
            f"sample {sample}: the text contains {s.image_pad_token!r}, which only image expansion may write; "
            f"mark images with {s.vision_token!r}"
        )
    return text.replace(s.vision_token, s.image_pad_token)


ISAAC = Rules(
    modalities=("image",),
    targets=lambda f, v: ([tk.Target("image", (v.token_id(f.spec.image_pad_token),))], {}),
    pieces={"image": lambda f, p: tk.isaac_image_pieces(f.spec, p.num_tokens)},
    mrope=lambda n, feats, spec: isaac_mrope_positions(n, feats, spec.pixel_shuffle_scale),
    prepare_text=_isaac_text,
)


def _nemotron_targets(family, vocab):
    s = family.spec
    targets = [tk.Target("image", (vocab.token_id(s.img_context_token),)),
               tk.Target("video", (vocab.token_id(s.video_context_token),))]
    names = [s.img_start_token, s.img_end_token]
    if s.has_audio:
        targets.append(tk.Target("audio", (vocab.token_id(s.audio_context_token),)))
        names += [s.audio_start_token, s.audio_end_token]
    return targets, {vocab.token_id(t): t for t in names}


def nemotron_frame_tokens(family, plan: VideoPlan) -> list[int]:
    """Per-frame placeholder tokens: the plan's, else the spec's (EVS: all in frame 1)."""
    if plan.frame_tokens:
        return list(plan.frame_tokens)
    s = family.spec
    return tk.nemotron_evs_frame_tokens(s.tokens_per_tile, plan.num_frames, s.video_pruning_rate)


def _nemotron_video_pieces(family, plan: VideoPlan):
    ms = plan.frame_duration_ms
    if ms is None:
        raise InvalidInputError("a Nemotron video plan needs frame_duration_ms (int(1000 / fps))")
    return tk.nemotron_video_pieces(family.spec, plan.frame_indices, ms, nemotron_frame_tokens(family, plan))


NEMOTRON = Rules(
    modalities=("image", "video", "audio"),
    targets=_nemotron_targets,
    pieces={
        "image": lambda f, p: tk.nemotron_image_pieces(f.spec, p.num_tokens),
        "video": _nemotron_video_pieces,
        "audio": lambda f, p: tk.nemotron_audio_pieces(f.spec, p.num_tokens),
    },
    add_special_tokens=False,  # get_default_tok_params: no BOS (T17)
)


# -- plans from metadata ------------------------------------------------------------------------


def image_plan(family, item: Any, index: int) -> ImagePlan:
    """An ImagePlan as is, or ``(height, width)`` px planned by the family."""
    if isinstance(item, ImagePlan):
        return item
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return family.plan_image(item[0], item[1], index=index)
    raise InvalidInputError(f"image {index}: expected an ImagePlan or (height, width), got {type(item).__name__}")


def video_plan(family, item: Any, index: int) -> VideoPlan:
    """A VideoPlan as is, or VideoMetadata / a source planned by ``family.plan_video``."""
    if isinstance(item, VideoPlan):
        return item
    try:
        return family.plan_video(item)
    except ImportError:
        raise InvalidInputError(f"video {index}: pass a VideoPlan (the video planner is not installed)") from None


def audio_plan(family, item: Any, index: int) -> AudioPlan:
    """An AudioPlan as is, or a sample count (at the spec's rate) / source planned by the family."""
    if isinstance(item, AudioPlan):
        return item
    return family.plan_audio(item, index=index)


def _metadata_plans(family, per: list[dict], plan_images) -> list[dict[str, list]]:
    out = []
    for b, media in enumerate(per):
        plans: dict[str, list] = {}
        if media.get("image"):
            plans["image"] = plan_images(b, media["image"])
        if media.get("video"):
            plans["video"] = [video_plan(family, x, i) for i, x in enumerate(media["video"])]
        if media.get("audio"):
            plans["audio"] = [audio_plan(family, x, i) for i, x in enumerate(media["audio"])]
        out.append(plans)
    return out


# -- shared driver -----------------------------------------------------------------------------


def _run(rules: Rules, family, texts, plans, vocab, kw) -> list[SamplePrompt]:
    ids = tokenize(rules, family, texts, vocab, kw.get("add_special_tokens"))
    return [build_sample(rules, family, ids[b], plans[b], vocab, b) for b in range(len(texts))]


def _batch(prompts, vocab, kw, extra: dict, *, token_types=False) -> Batch:
    data = assemble(prompts, pad=pad_id(vocab, kw.get("pad_token_id")),
                    padding_side=kw.get("padding_side", "right"), token_types=token_types)
    data.update(extra)
    plans = {m: [p.plans.get(m, []) for p in prompts] for m in ("image", "video", "audio")}
    plans["spans"] = [p.expansion.spans for p in prompts]
    return Batch(to_tensors(data, kw.get("return_tensors", "np")), plans)


def _grids(plans: list[dict], modality: str) -> np.ndarray:
    rows = [tuple(p.grid) for sample in plans for p in sample.get(modality, [])]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def _flat(per: list[dict], modality: str) -> list:
    return [x for media in per for x in media.get(modality, [])]


def _counts(per: list[dict], modality: str) -> list[int]:
    return [len(media.get(modality, [])) for media in per]


_KW = ("return_tensors", "padding_side", "pad_token_id", "add_special_tokens")


def _check_kw(kw: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(kw) - set(_KW) - set(allowed))
    if unknown:
        raise InvalidInputError(f"unknown keyword argument(s) {unknown}")


# -- GLM ---------------------------------------------------------------------------------------


def glm_prompt(family, text, images=(), videos=(), tokenizer=None, **kw) -> Batch:
    """Expanded ``input_ids``, ``position_ids`` and grids from metadata alone (no pixels)."""
    _check_kw(kw, ())
    _, texts, per = split_samples(text, {"image": images, "video": videos})
    vocab = tk.as_vocab(tokenizer)
    plans = _metadata_plans(family, per, lambda b, xs: [image_plan(family, x, i) for i, x in enumerate(xs)])
    prompts = _run(GLM, family, texts, plans, vocab, kw)
    extra = {"image_grid_thw": _grids(plans, "image"), "video_grid_thw": _grids(plans, "video")}
    return _batch(prompts, vocab, kw, extra, token_types=True)


def glm_process(family, text=None, images=None, videos=None, tokenizer=None, **kw) -> Batch:
    """Pixels, grids, expanded ids and MRoPE positions, like transformers' Glm4vProcessor."""
    _check_kw(kw, ("backend",))
    _, texts, per = split_samples(text, {"image": images, "video": videos})
    vocab = tk.as_vocab(tokenizer)
    rt, backend = kw.get("return_tensors", "np"), kw.get("backend", "fast")
    plans: list[dict] = [dict() for _ in texts]
    extra: dict[str, Any] = {}
    merge2 = family.spec.merge_size**2
    checks = []  # (sample, modality, index, encoder rows)
    for modality, call, pix_key, grid_key in (
        ("image", family.pixels, "pixel_values", "image_grid_thw"),
        ("video", family.video_pixels, "pixel_values_videos", "video_grid_thw"),
    ):
        items = _flat(per, modality)
        if not items:
            continue
        pb = call(items, backend=backend, return_tensors=rt)
        grids = np.asarray(pb.grids, dtype=np.int64).reshape(-1, 3)
        _check_rows(pb.pixel_values, int(grids.prod(axis=1).sum()), modality)
        for b, chunk in enumerate(per_sample(list(pb.plans), _counts(per, modality))):
            plans[b][modality] = chunk
        k = 0
        for b, n in enumerate(_counts(per, modality)):
            checks += [(b, modality, i, int(grids[k + i].prod()) // merge2) for i in range(n)]
            k += n
        extra[pix_key], extra[grid_key] = pb.pixel_values, grids
    prompts = _run(GLM, family, texts, plans, vocab, kw)
    _check_all(prompts, checks, "the pixel grid")
    return _batch(prompts, vocab, kw, extra, token_types=True)


def _check_rows(pixel_values, expected: int, modality: str) -> None:
    rows = int(pixel_values.shape[0])
    if rows != expected:
        raise InvalidInputError(f"{modality} pixels have {rows} rows but the grids say {expected} patches")


def _check_all(prompts: list[SamplePrompt], checks, what: str) -> None:
    for b, modality, i, rows in checks:
        span = [s for s in prompts[b].expansion.spans if s.modality == modality and s.index == i][0]
        check_slots(b, modality, i, span.num_features, rows, what)


# -- Isaac -------------------------------------------------------------------------------------


def isaac_prompt(family, text, images=(), tokenizer=None, **kw) -> Batch:
    """Expanded ``input_ids`` and MRoPE positions from image sizes or plans alone."""
    _check_kw(kw, ())
    _, texts, per = split_samples(text, {"image": images})
    vocab = tk.as_vocab(tokenizer)
    plans = _metadata_plans(family, per, lambda b, xs: [image_plan(family, x, i) for i, x in enumerate(xs)])
    prompts = _run(ISAAC, family, texts, plans, vocab, kw)
    return _batch(prompts, vocab, kw, {"image_grid_thw": _grids(plans, "image")})


def isaac_process(family, text=None, images=None, tokenizer=None, **kw) -> Batch:
    """Packed patches ``(Σ patches, 768)``, real grids ``[1, hp, wp]``, ids and positions."""
    _check_kw(kw, ("backend",))
    _, texts, per = split_samples(text, {"image": images})
    vocab = tk.as_vocab(tokenizer)
    rt, backend = kw.get("return_tensors", "np"), kw.get("backend", "fast")
    plans: list[dict] = [dict() for _ in texts]
    extra: dict[str, Any] = {}
    checks = []
    items = _flat(per, "image")
    if items:
        pb = family.pixels(items, backend=backend, return_tensors=rt)
        grids = np.asarray(pb.grids, dtype=np.int64).reshape(-1, 3)
        _check_rows(pb.pixel_values, int(grids.prod(axis=1).sum()), "image")
        s2 = family.spec.pixel_shuffle_scale**2
        k = 0
        for b, chunk in enumerate(per_sample(list(pb.plans), _counts(per, "image"))):
            plans[b]["image"] = chunk
            checks += [(b, "image", i, int(grids[k + i].prod()) // s2) for i in range(len(chunk))]
            k += len(chunk)
        extra = {"pixel_values": pb.pixel_values, "image_grid_thw": grids}
    prompts = _run(ISAAC, family, texts, plans, vocab, kw)
    _check_all(prompts, checks, "the patch grid")
    return _batch(prompts, vocab, kw, extra)


# -- Nemotron ----------------------------------------------------------------------------------


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
        return list(family.plan_request([tuple(x) for x in xs], text_len=n,
                                        max_model_len=kw.get("max_model_len")).images)

    return plan


def nemotron_prompt(family, text, images=(), videos=(), audios=(), tokenizer=None, **kw) -> Batch:
    """Expanded ``input_ids`` from sizes, video plans/metadata and audio lengths alone."""
    _check_kw(kw, ("text_len", "max_model_len"))
    _, texts, per = split_samples(text, {"image": images, "video": videos, "audio": audios})
    vocab = tk.as_vocab(tokenizer)
    plans = _metadata_plans(family, per, _nemotron_image_plans(family, vocab, texts, kw))
    prompts = _run(NEMOTRON, family, texts, plans, vocab, kw)
    return _batch(prompts, vocab, kw, {})


def nemotron_process(family, text=None, images=None, videos=None, audios=None, tokenizer=None, **kw) -> Batch:
    """Tiles / dynamic patches, video frames, audio features and expanded ids, with the seed's
    key names (``pixel_values_flat``, ``image_num_patches`` ...)."""
    from .processor_nemotron import nemotron_media

    _check_kw(kw, ("backend", "text_len", "max_model_len"))
    _, texts, per = split_samples(text, {"image": images, "video": videos, "audio": audios})
    vocab = tk.as_vocab(tokenizer)
    plans, extra, checks = nemotron_media(family, vocab, texts, per, kw)
    prompts = _run(NEMOTRON, family, texts, plans, vocab, kw)
    _check_all(prompts, checks, "the media outputs")
    return _batch(prompts, vocab, kw, extra)


__all__ = [
    "audio_plan", "glm_process", "glm_prompt", "image_plan", "isaac_process", "isaac_prompt",
    "nemotron_frame_tokens", "nemotron_process", "nemotron_prompt", "nemotron_text_len", "video_plan",
]
