"""EVS (Efficient Video Sampling): Nemotron's video token pruning and its MRoPE helpers.

Exact to vLLM's ``vllm/multimodal/evs.py`` as SPEC §4 describes it:

* :func:`retained_count` - ``max(F, int(F*T*(1-q)))`` tokens survive (scalar or numpy arrays).
* :func:`retention_mask` - which tokens survive: cosine dissimilarity to the same position in the
  previous frame, frame 0 forced to 255, a stable descending sort (ties: lower (t, y, x) wins).
* :func:`mrope_for_media` / :func:`recompute_mrope_positions` - MRoPE positions of pruned media.

torch is imported lazily (only :func:`retention_mask` on tensors needs it).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .errors import InvalidInputError

FIRST_FRAME_SCORE = 255.0  # beats any cosine dissimilarity (<= 2): frame 0 is always kept


def check_rate(q: Any) -> float:
    """``q`` (video_pruning_rate) must be a finite float in [0, 1)."""
    if isinstance(q, bool) or not isinstance(q, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"pruning rate q must be a number in [0, 1), got {q!r}")
    if not (math.isfinite(q) and 0 <= q < 1):
        raise InvalidInputError(f"pruning rate q must be in [0, 1), got {q!r}")
    return q


def _check_positive_ints(**values: Any) -> None:
    for name, v in values.items():
        arr = np.asarray(v)
        if arr.dtype.kind not in "iu" or (arr <= 0).any():
            raise InvalidInputError(f"{name} must be positive ints, got {v!r}")


def _ints(value: Any, name: str) -> np.ndarray:
    """``value`` as an int64 array; NaN, inf, None, strings and fractions raise (never truncate)."""
    try:
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            if not np.isfinite(arr).all() or (arr != np.trunc(arr)).any():
                raise ValueError
        elif arr.dtype.kind not in "iub" or arr.dtype.kind == "b" and arr.size:
            raise ValueError
        return arr.astype(np.int64)
    except (ValueError, TypeError):
        raise InvalidInputError(f"{name} must hold ints, got {value!r:.200}") from None


def retained_count(tokens_per_frame, num_frames, q: float):
    """Tokens EVS keeps from a video of ``num_frames`` frames of ``tokens_per_frame`` tokens.

    ``int(F*T*(1-q))`` with ``1-q`` formed first as a double (q=0.9 on 1000 tokens gives 99,
    T32), never below one whole frame. Scalars give an ``int``; arrays broadcast to an int64 array.
    """
    check_rate(q)
    _check_positive_ints(tokens_per_frame=tokens_per_frame, num_frames=num_frames)
    if np.ndim(tokens_per_frame) == 0 and np.ndim(num_frames) == 0:
        total = int(tokens_per_frame) * int(num_frames)
        return max(int(tokens_per_frame), int(total * (1 - q)))
    f = np.asarray(tokens_per_frame, dtype=np.int64)
    total = f * np.asarray(num_frames, dtype=np.int64)
    evs = np.trunc(total.astype(np.float64) * (1 - q)).astype(np.int64)  # exact below 2**53
    return np.maximum(f, evs)


def _grid(T: Any, H: Any, W: Any, m: Any) -> tuple[int, int, int]:
    _check_positive_ints(T=T, H=H, W=W, spatial_merge_size=m)
    T, H, W, m = int(T), int(H), int(W), int(m)
    h, w = H // m, W // m
    if h == 0 or w == 0:
        raise InvalidInputError(f"grid {H}x{W} is smaller than spatial_merge_size {m}")
    return T, h, w


def retention_mask(embeddings, T: int, H: int, W: int, spatial_merge_size: int, q: float):
    """Boolean keep-mask over ``T*(H//m)*(W//m)`` tokens in (t, y, x) order.

    ``embeddings``: ``(T*(H//m)*(W//m), D)`` rows, a torch tensor (any device and dtype; vLLM
    passes the projected bf16 embeddings) or a numpy array (computed with torch on CPU when it is
    installed, so the floats match; otherwise a numpy twin). ``H``, ``W`` in patches before
    the merge. Returns the same kind of array it was given. Exactly ``retained_count(h*w, T, q)``
    entries are true.
    """
    check_rate(q)
    T, h, w = _grid(T, H, W, spatial_merge_size)
    rows = embeddings.shape[0] if embeddings.ndim >= 1 else 0
    if embeddings.ndim != 2 or rows != T * h * w:
        raise InvalidInputError(
            f"embeddings of shape {tuple(embeddings.shape)} do not hold T*h*w = {T}*{h}*{w} = "
            f"{T * h * w} rows of one vector each"
        )
    keep = retained_count(h * w, T, q)
    if isinstance(embeddings, np.ndarray):
        try:
            import torch
        except ImportError:
            return _retention_mask_np(embeddings, T, h, w, keep)
        return _retention_mask_torch(torch.from_numpy(np.ascontiguousarray(embeddings)), T, h, w, keep).numpy()
    return _retention_mask_torch(embeddings, T, h, w, keep)


def _retention_mask_torch(emb, T: int, h: int, w: int, keep: int):
    import torch

    e = emb.reshape(T, h, w, emb.shape[-1])
    dis = 1 - torch.nn.functional.cosine_similarity(e[1:], e[:-1], dim=-1)
    dis = torch.cat([FIRST_FRAME_SCORE * torch.ones_like(e[:1, :, :, 0]), dis], dim=0).reshape(-1)
    order = torch.argsort(dis, descending=True, stable=True)
    mask = torch.zeros_like(dis, dtype=torch.bool)
    mask[order[:keep]] = True
    return mask


def _retention_mask_np(emb: np.ndarray, T: int, h: int, w: int, keep: int) -> np.ndarray:
    e = emb.reshape(T, h, w, emb.shape[-1])
    a, b = e[1:], e[:-1]
    eps = np.asarray(1e-8, dtype=e.dtype)
    na = np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), eps)
    nb = np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), eps)
    dis = (1 - ((a / na) * (b / nb)).sum(-1)).astype(e.dtype)
    dis = np.concatenate([np.full((1, h, w), FIRST_FRAME_SCORE, dtype=e.dtype), dis]).reshape(-1)
    order = np.argsort(-dis, kind="stable")  # descending, ties keep the lower index
    mask = np.zeros(dis.shape, dtype=bool)
    mask[order[:keep]] = True
    return mask


def tokens_per_frame(mask, T: int) -> list[int]:
    """Per-frame kept-token counts of a (t, y, x) mask (what Nemotron's model side computes)."""
    arr = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
    if T <= 0 or arr.size % T:
        raise InvalidInputError(f"a mask of {arr.size} tokens cannot be split into {T} frames")
    return arr.reshape(T, -1).sum(axis=1).astype(np.int64).tolist()


def mrope_for_media(
    video_size_thw: Sequence[int], spatial_merge_size: int,
    tokens_per_second: float = 1.0, video_second_per_grid: float = 1.0,
) -> np.ndarray:
    """``(T*h*w, 4)`` int64 rows ``[t, y, x, llm_grid_w]`` in (t, y, x) order.

    ``video_size_thw`` in patches; ``h, w = H//m, W//m``. ``t = int(i * (tokens_per_second *
    video_second_per_grid))`` where the reference multiplies an int64 arange by a Python float,
    which torch evaluates in float32; the same float32 product is formed here.
    """
    thw = _ints(video_size_thw, "video_size_thw")
    if thw.shape != (3,):
        raise InvalidInputError(f"video_size_thw must be [t, h, w], got {video_size_thw!r}")
    T, H, W = (int(v) for v in thw)
    for name, v in (("tokens_per_second", tokens_per_second), ("video_second_per_grid", video_second_per_grid)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
            raise InvalidInputError(f"{name} must be a finite number, got {v!r}")
    m = spatial_merge_size
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m <= 0:
        raise InvalidInputError(f"spatial_merge_size must be a positive int, got {m!r}")
    if min(T, H, W) < 0:
        raise InvalidInputError(f"video_size_thw must be non-negative, got {list(video_size_thw)}")
    h, w = H // m, W // m
    scale = np.float32(tokens_per_second * video_second_per_grid)
    t_idx = np.trunc(np.arange(T, dtype=np.float32) * scale).astype(np.int64)
    out = np.empty((T, h, w, 4), dtype=np.int64)
    out[..., 0] = t_idx[:, None, None]
    out[..., 1] = np.arange(h)[None, :, None]
    out[..., 2] = np.arange(w)[None, None, :]
    out[..., 3] = w
    return out.reshape(-1, 4)


def _delta(positions: np.ndarray, n: int) -> int:
    return int(positions.max() + 1 - n) if positions.size else -n


def recompute_mrope_positions(
    input_ids, multimodal_positions, mrope_positions, num_computed_tokens: int,
    vision_start_token_id: int, image_token_id: int, video_token_id: int,
) -> tuple[np.ndarray, int]:
    """MRoPE positions after pruning (see :func:`_recompute_mrope_positions`).

    Shapes that disagree with each other (a media item longer than its span, a position row of
    the wrong length) raise :class:`InvalidInputError` naming numpy's complaint.
    """
    try:
        return _recompute_mrope_positions(input_ids, multimodal_positions, mrope_positions, num_computed_tokens,
                                          vision_start_token_id, image_token_id, video_token_id)
    except InvalidInputError:
        raise
    except (ValueError, IndexError, TypeError) as e:
        raise InvalidInputError(f"multimodal_positions do not fit input_ids / mrope_positions: {e}") from None


def _recompute_mrope_positions(
    input_ids, multimodal_positions, mrope_positions, num_computed_tokens: int,
    vision_start_token_id: int, image_token_id: int, video_token_id: int,
) -> tuple[np.ndarray, int]:
    """MRoPE positions after pruning, for chunked prefill (SPEC §4.4; vLLM reference 7987c3c8).

    ``input_ids``: the whole prompt (N ids). ``multimodal_positions``: the media items whose
    embeddings this chunk carries, each ``(4, n_i)`` rows ``t, h, w, llm_grid_w`` (or the 5-row
    Qwen3-VL form ``t, h, w, is_vision_start, is_vision``), positioned as if the media started
    at 0. ``mrope_positions``: ``(3, N)`` incoming. Returns ``(positions (3, N), delta)``.
    An item is anchored after its ``<vision_start>``: the last one before ``num_computed_tokens``
    when the cursor is inside that media, else the next one.
    """
    ids = _ints(input_ids, "input_ids").ravel()
    n = ids.size
    pos = _ints(mrope_positions, "mrope_positions").copy()
    if pos.ndim != 2 or pos.shape[1] != n:
        raise InvalidInputError(f"mrope_positions must be (3, {n}) for {n} input ids, got {pos.shape}")
    nct = int(_ints(num_computed_tokens, "num_computed_tokens"))
    if not 0 <= nct <= n:
        raise InvalidInputError(f"num_computed_tokens {nct} is outside [0, {n}]")
    media = (ids == image_token_id) | (ids == video_token_id)
    text = ~media
    items = [_ints(p, f"multimodal_positions[{k}]") for k, p in enumerate(multimodal_positions)]
    if not items:
        return pos, _delta(pos, n)
    seen = int(media[:nct].sum())
    if seen == int(media.sum()):
        return pos, _delta(pos, n)
    starts = np.flatnonzero(ids == vision_start_token_id)
    for k, mm in enumerate(items):
        if mm.ndim != 2 or mm.shape[0] not in (4, 5) or mm.shape[1] == 0:
            raise InvalidInputError(f"multimodal_positions[{k}] must be (4|5, n>0), got {mm.shape}")
        start, done, ts_tokens, video = _anchor(mm, starts, media, seen, nct, n, k)
        if video and done == 0:  # Qwen3-VL: timestamps precede the vision start
            start -= ts_tokens
            base = pos[-1, start - 1] + 1
            lo = start + done
        else:
            base = pos[-1, start] + 1
            lo = start + 1 + done
        hi = lo + mm.shape[1]
        if hi > n:
            raise InvalidInputError(
                f"multimodal_positions[{k}] ({mm.shape[1]} tokens from index {lo}) runs past the {n}-token prompt"
            )
        pos[:, lo:hi] = mm[0:3] + base
        offset = (mm[0:3].max() + base + 1) if mm.shape[0] == 5 else (mm[3, 0] + base)
        pos[:, hi:] = np.cumsum(text[hi:]) + offset - 1
        nct += mm.shape[1]
    return pos, _delta(pos, n)


def _anchor(mm: np.ndarray, starts: np.ndarray, media: np.ndarray, seen: int, nct: int, n: int, k: int):
    """``(vision_start index, media tokens of it already seen, timestamp tokens, has video)``."""
    video = mm.shape[0] == 5 and bool(mm[4].any())
    ts_tokens = 0
    if video:
        first_vs = np.flatnonzero(mm[3] == 1)
        ts_tokens = int(first_vs[0]) if first_vs.size else 0
    before_cursor = starts[starts < nct]
    if before_cursor.size:
        last = int(before_cursor[-1])
        before = int(media[:last].sum())
        # a count cannot see a cursor sitting on the first media token: look at the token too
        inside = seen > before or (nct < n and bool(media[nct]))
        if not inside and video and last < nct <= last + ts_tokens + 1:
            inside = True
        if inside:
            return last, seen - before, ts_tokens, video
    after = starts[starts >= nct]
    if not after.size:
        raise InvalidInputError(
            f"multimodal_positions[{k}]: no <vision_start> token (id) at or after index {nct} to anchor the media"
        )
    return int(after[0]), 0, ts_tokens, video
