"""Isaac prompts: ``<image>`` becomes ``<|image_pad|>`` x tokens; ``prompt`` / ``process``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...family import DEFAULT_BACKEND
from ...errors import InvalidInputError
from ...prompt import tokens as tk
from ...prompt.tokens import Piece
from ...prompt.driver import (
    Rules, _batch, _check_all, _check_kw, _check_rows, _counts, _flat, _grids, _metadata_plans, _run,
    check_plans, image_plan, per_sample, split_samples,
)
from ...prompt.fast import fast_batch
from ...types import Batch
from .positions import isaac_mrope_positions, isaac_mrope_positions_flat


def isaac_image_pieces(spec: Any, num_tokens: int) -> tuple[Piece, ...]:
    """``<|image_pad|>`` x tokens (patches / pixel_shuffle_scale**2)."""
    return (Piece(spec.image_pad_token, int(num_tokens), feature=True),)


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
    pieces={"image": lambda f, p: isaac_image_pieces(f.spec, p.num_tokens)},
    mrope=lambda n, feats, spec: isaac_mrope_positions(n, feats, spec.pixel_shuffle_scale, spec.mrope_rule),
    mrope_many=lambda lengths, sample, offsets, grids, modality, spec: isaac_mrope_positions_flat(
        lengths, sample, offsets, grids, spec.pixel_shuffle_scale, spec.mrope_rule),
    prepare_text=_isaac_text,
)


def isaac_prompt(family, text, images=(), tokenizer=None, **kw) -> Batch:
    """Expanded ``input_ids`` and MRoPE positions from image sizes or plans alone."""
    _check_kw(kw, ())
    _, texts, per = split_samples(text, {"image": images})
    vocab = tk.as_vocab(tokenizer)
    plans = _metadata_plans(family, per, lambda b, xs: [image_plan(family, x, i) for i, x in enumerate(xs)])
    check_plans(plans)  # before the grids are read from them
    extra = {"image_grid_thw": _grids(plans, "image")}
    fast = fast_batch(ISAAC, family, texts, plans, vocab, kw, extra)  # None: the per-sample path says why
    if fast is not None:
        return fast
    prompts = _run(ISAAC, family, texts, plans, vocab, kw)
    return _batch(prompts, vocab, kw, extra)


def isaac_process(family, text=None, images=None, tokenizer=None, **kw) -> Batch:
    """Packed patches ``(Σ patches, 768)``, real grids ``[1, hp, wp]``, ids and positions."""
    _check_kw(kw, ("backend",))
    _, texts, per = split_samples(text, {"image": images})
    vocab = tk.as_vocab(tokenizer)
    rt, backend = kw.get("return_tensors", "np"), kw.get("backend", DEFAULT_BACKEND)
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
