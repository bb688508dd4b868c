"""Placeholder expansion on token ids, from plans (SPEC §5).

The user's text is tokenized **once**; placeholders are found as token ids and each is replaced
by the ids of its media item's replacement, left to right, never rescanning what was inserted
(T14). Replacements are first built as :class:`Piece` tuples (token strings and short texts with
repeat counts: what the golden vectors call "items"), then turned into ids with a
:class:`Vocab`: special strings and short texts such as timestamps and frame separators are each
tokenized **alone** with ``add_special_tokens=False`` and cached (T15, T21). Nothing is decoded
back to text.

Pure helpers for the numbers the prompt prints (Nemotron frame timestamps, GLM timestamp texts,
GLM video grids) live here too, so the golden vectors and the processor share one code path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInputError

# -- pieces: a replacement before it becomes ids --------------------------------------------


@dataclass(frozen=True)
class Piece:
    """A run inside a replacement.

    ``kind="special"``: a token string (``<|video|>``), ``repeat`` copies, one item each.
    ``kind="text"``: plain text (a timestamp, a frame separator) tokenized alone; one item.
    ``feature``: every copy takes one row of the encoder's output (an embedding slot).
    """

    text: str
    repeat: int = 1
    kind: str = "special"
    feature: bool = False


def pieces_num_features(pieces: Sequence[Piece]) -> int:
    """Embedding slots (tokens) a replacement holds."""
    return sum(p.repeat for p in pieces if p.feature)


def pieces_items(pieces: Sequence[Piece]) -> list[str]:
    """The replacement as a flat list of items (a text piece is one item)."""
    out: list[str] = []
    for p in pieces:
        out.extend([p.text] * (1 if p.kind == "text" else p.repeat))
    return out


def pieces_rle(pieces: Sequence[Piece]) -> list[list]:
    """``[[item, repeat], ...]`` with maximal runs (adjacent equal items merged)."""
    rle: list[list] = []
    for p in pieces:
        n = 1 if p.kind == "text" else p.repeat
        if n == 0:
            continue
        if rle and rle[-1][0] == p.text:
            rle[-1][1] += n
        else:
            rle.append([p.text, n])
    return rle


# -- tokenizer access ------------------------------------------------------------------------


class Vocab:
    """Ids from one tokenizer: a ``tokenizers.Tokenizer``, a ``tokenizer.json`` path (or a
    directory holding one) or a transformers tokenizer. Short texts are cached."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = _load_tokenizer(tokenizer)
        self._fast = _is_tokenizers(self.tokenizer)
        self._cache: dict[str, tuple[int, ...]] = {}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        tok = self.tokenizer
        if self._fast:
            return tok.encode(text, add_special_tokens=add_special_tokens).ids
        return list(tok.encode(text, add_special_tokens=add_special_tokens))

    def encode_many(self, texts: Sequence[str], add_special_tokens: bool = False) -> list[list[int]]:
        tok = self.tokenizer
        if self._fast:
            if len(texts) == 1:  # encode_batch's thread pool costs more than one short text
                return [tok.encode(texts[0], add_special_tokens=add_special_tokens).ids]
            return [e.ids for e in tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)]
        return [list(x) for x in tok(list(texts), add_special_tokens=add_special_tokens)["input_ids"]]

    def text_ids(self, text: str) -> tuple[int, ...]:
        """``encode(text, add_special_tokens=False)`` of a short text on its own, cached."""
        ids = self._cache.get(text)
        if ids is None:
            ids = self._cache[text] = tuple(self.encode(text, False))
        return ids

    def token_id(self, token: str) -> int:
        """The single id of a special token string; raises if the tokenizer splits it."""
        ids = self.text_ids(token)
        if len(ids) != 1:
            raise InvalidInputError(
                f"the tokenizer has no single token for {token!r} (it encodes to {len(ids)} ids {list(ids)[:8]}); "
                "use the model's own tokenizer"
            )
        return ids[0]


def _is_tokenizers(obj: Any) -> bool:
    return type(obj).__module__.startswith("tokenizers")


def _load_tokenizer(tokenizer: Any) -> Any:
    if tokenizer is None:
        raise InvalidInputError("a tokenizer is needed: a tokenizers.Tokenizer, a tokenizer.json path or a transformers tokenizer")
    if isinstance(tokenizer, Vocab):
        return tokenizer.tokenizer
    if isinstance(tokenizer, (str, os.PathLike)):
        from tokenizers import Tokenizer

        path = os.fspath(tokenizer)
        if os.path.isdir(path):
            path = os.path.join(path, "tokenizer.json")
        try:
            return Tokenizer.from_file(path)
        except Exception as e:  # the tokenizers library raises plain Exceptions
            raise InvalidInputError(f"cannot read tokenizer {path!r}: {e}") from None
    if _is_tokenizers(tokenizer) or hasattr(tokenizer, "encode"):
        return tokenizer
    raise InvalidInputError(f"not a tokenizer: {type(tokenizer).__name__}")


_VOCABS: dict[int, tuple[Any, Vocab]] = {}


def as_vocab(tokenizer: Any) -> Vocab:
    """A (cached) :class:`Vocab` for ``tokenizer``; the cache keeps the last few objects alive."""
    if isinstance(tokenizer, Vocab):
        return tokenizer
    key = id(tokenizer) if not isinstance(tokenizer, (str, os.PathLike)) else hash(os.fspath(tokenizer))
    hit = _VOCABS.get(key)
    if hit is not None and (hit[0] is tokenizer or hit[0] == tokenizer):
        return hit[1]
    vocab = Vocab(tokenizer)
    if len(_VOCABS) >= 8:
        _VOCABS.pop(next(iter(_VOCABS)))
    _VOCABS[key] = (tokenizer, vocab)
    return vocab


def pieces_to_ids(pieces: Sequence[Piece], vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """A replacement's ids (int64) and its feature mask (tokens that take encoder rows)."""
    ids: list[np.ndarray] = []
    mask: list[np.ndarray] = []
    for p in pieces:
        if p.feature:
            tid = vocab.token_id(p.text)  # an embedding slot must be exactly one token
            ids.append(np.full(p.repeat, tid, dtype=np.int64))
            mask.append(np.ones(p.repeat, dtype=bool))
            continue
        one = np.asarray(vocab.text_ids(p.text), dtype=np.int64)
        n = 1 if p.kind == "text" else p.repeat
        ids.append(np.tile(one, n))
        mask.append(np.zeros(one.size * n, dtype=bool))
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    return np.concatenate(ids), np.concatenate(mask)


# -- finding placeholders and splicing -------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A placeholder as token ids (GLM's video placeholder is three tokens)."""

    modality: str
    ids: tuple[int, ...]


@dataclass(frozen=True)
class Span:
    """Where one media item's replacement sits in the expanded prompt (token indices)."""

    modality: str
    index: int  # item index within its modality
    start: int
    length: int
    num_features: int  # embedding slots inside the span


@dataclass(frozen=True)
class Expansion:
    input_ids: np.ndarray  # (L,) int64
    feature_mask: np.ndarray  # (L,) bool: tokens that receive encoder embeddings
    spans: tuple[Span, ...]

    def spans_of(self, modality: str) -> list[Span]:
        return [s for s in self.spans if s.modality == modality]


def _prefix(sample: int | None) -> str:
    return f"sample {sample}: " if sample is not None else ""


def find_placeholders(
    ids: np.ndarray, targets: Sequence[Target], forbidden: Mapping[int, str] | None = None,
    sample: int | None = None,
) -> list[tuple[int, int]]:
    """``(position, target index)`` of every placeholder, left to right, non-overlapping.

    Raises for a ``forbidden`` id (``{id: token string}``: a structural token such as ``<img>``
    typed in the text) found outside a placeholder: the reference would silently mis-align.
    """
    found: list[tuple[int, int]] = []
    for k, t in enumerate(targets):
        first = np.flatnonzero(ids == t.ids[0])
        n = len(t.ids)
        for pos in first.tolist():
            if n == 1 or tuple(ids[pos:pos + n].tolist()) == t.ids:
                found.append((pos, k))
    found.sort()
    covered = np.zeros(ids.size, dtype=bool)
    last_end = 0
    for pos, k in found:
        if pos < last_end:
            raise InvalidInputError(f"{_prefix(sample)}placeholders overlap at token {pos}")
        last_end = pos + len(targets[k].ids)
        covered[pos:last_end] = True
    if forbidden:
        stray = np.zeros(ids.size, dtype=bool)
        for fid in forbidden:  # a handful of ids: cheaper than np.isin's sort
            stray |= ids == fid
        stray &= ~covered
        if stray.any():
            at = int(np.flatnonzero(stray)[0])
            name = forbidden[int(ids[at])]
            raise InvalidInputError(
                f"{_prefix(sample)}the text holds {name!r} (id {int(ids[at])}) at token {at} outside a placeholder "
                f"({int(stray.sum())} such tokens); only media expansion may write it"
            )
    return found


def expand(
    ids: Sequence[int] | np.ndarray,
    targets: Sequence[Target],
    replacements: dict[str, Sequence[Sequence[Piece]]],
    vocab: Vocab,
    *,
    forbidden: Mapping[int, str] | None = None,
    sample: int | None = None,
) -> Expansion:
    """Replace the k-th placeholder of each modality with the k-th replacement of it."""
    ids = np.asarray(ids, dtype=np.int64)
    found = find_placeholders(ids, targets, forbidden, sample)
    for modality in {t.modality for t in targets} | set(replacements):
        have = sum(1 for _, k in found if targets[k].modality == modality)
        want = len(replacements.get(modality, ()))
        if have != want:
            raise InvalidInputError(
                f"{_prefix(sample)}the text has {have} {modality} placeholder(s) but {want} {modality} item(s) were given"
            )
    out_ids: list[np.ndarray] = []
    out_mask: list[np.ndarray] = []
    spans: list[Span] = []
    counters: dict[str, int] = {}
    cur = length = 0
    for pos, k in found:
        t = targets[k]
        text = ids[cur:pos]
        out_ids.append(text)
        out_mask.append(np.zeros(text.size, dtype=bool))
        length += text.size
        i = counters.get(t.modality, 0)
        counters[t.modality] = i + 1
        rep_ids, rep_mask = pieces_to_ids(replacements[t.modality][i], vocab)
        out_ids.append(rep_ids)
        out_mask.append(rep_mask)
        spans.append(Span(t.modality, i, length, rep_ids.size, int(rep_mask.sum())))
        length += rep_ids.size
        cur = pos + len(t.ids)
    out_ids.append(ids[cur:])
    out_mask.append(np.zeros(ids.size - cur, dtype=bool))
    return Expansion(np.concatenate(out_ids), np.concatenate(out_mask), tuple(spans))


# -- the numbers a prompt prints -------------------------------------------------------------


def _is_whole(value: Any) -> bool:
    """An int (or an integral finite float), never a bool, None, NaN or string."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(value) and int(value) == value


def glm_timestamp_text(version: str, second: int) -> str:
    """``"3"`` for GLM-4.1V, ``"3.0 seconds"`` for 4.6V (the value is whole seconds, T20)."""
    if version == "4.1v":
        return "{}".format(second)
    if version == "4.6v":
        return "{:.1f} seconds".format(second)
    raise InvalidInputError(f"GLM version must be '4.1v' or '4.6v', got {version!r}")


def glm_video_grid(
    num_frames: int, height: int, width: int, patch_size: int, merge_size: int, temporal_patch_size: int
) -> tuple[int, int, int]:
    """``(ceil(F/tps), height/p, width/p)`` patches for ``F`` frames resized to height x width px."""
    for name, v in (("num_frames", num_frames), ("patch_size", patch_size), ("merge_size", merge_size),
                    ("temporal_patch_size", temporal_patch_size), ("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise InvalidInputError(f"video {name} must be a positive int, got {v!r}")
    factor = patch_size * merge_size
    if height % factor or width % factor:
        raise InvalidInputError(
            f"video frame {height}x{width} px is not a multiple of patch_size*merge_size = {factor}"
        )
    return (-(-num_frames // temporal_patch_size), height // patch_size, width // patch_size)


def nemotron_frame_duration_ms(fps: float) -> int:
    """``int(1000.0 / fps)`` ms, truncated (29.97 fps -> 33); rejects fps that print no time."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) or not math.isfinite(fps) or fps <= 0:
        raise InvalidInputError(f"video fps must be a positive finite number, got {fps!r}")
    ms = int(1000.0 / fps)
    if ms <= 0:
        raise InvalidInputError(
            f"video fps {fps} is above 1000: the frame duration truncates to 0 ms and every timestamp would print 0.00"
        )
    return ms


def nemotron_timestamps(frames_indices: Sequence[int], frame_duration_ms: int) -> list[float]:
    """Seconds per frame: ``int(idx) * ms / 1000.0`` (int product, then float division)."""
    out = []
    for i, idx in enumerate(frames_indices):
        if not _is_whole(idx) or idx < 0:
            raise InvalidInputError(f"frame {i}: frame index must be a non-negative int, got {idx!r}")
        out.append(int(idx) * frame_duration_ms / 1000.0)
    return out


def nemotron_separator(i: int, timestamp: float) -> str:
    """The text before frame ``i`` (0-based): ``"Frame {i+1} sampled at {t:.2f} seconds: "``."""
    return f"Frame {i + 1} sampled at {timestamp:.2f} seconds: "


def nemotron_tokens_per_frame(image_size: int, patch_size: int, downsample_ratio: float, formula: str = "prompt_update") -> int:
    """Tokens of one video frame before EVS. Two reference formulas (T19) that agree when ``p``
    divides ``S``: ``"prompt_update"`` ``int((S//p)**2 * r**2)`` (the prompt vLLM serves) and
    ``"processor"`` ``int((S*S // p**2) * r**2)`` (the HF-style processor's own text)."""
    if min(image_size, patch_size) <= 0 or not 0 < downsample_ratio <= 1:
        raise InvalidInputError(
            f"frame size {image_size} px, patch {patch_size} px and downsample ratio {downsample_ratio} must be positive"
        )
    if formula == "prompt_update":
        return int((image_size // patch_size) ** 2 * downsample_ratio**2)
    if formula == "processor":
        return int((image_size * image_size // patch_size**2) * downsample_ratio**2)
    raise InvalidInputError(f"formula must be 'prompt_update' or 'processor', got {formula!r}")


def nemotron_evs_frame_tokens(tokens_per_frame: int, num_frames: int, pruning_rate: float | None) -> list[int]:
    """Per-frame placeholder tokens: ``[F]*T`` without EVS; ``[R, 0, ..., 0]`` with it (T32)."""
    if not _is_whole(num_frames) or num_frames <= 0:
        raise InvalidInputError(f"a video needs a positive int number of frames, got {num_frames!r}")
    if not _is_whole(tokens_per_frame) or tokens_per_frame <= 0:
        raise InvalidInputError(f"tokens per frame must be a positive int, got {tokens_per_frame!r}")
    num_frames, tokens_per_frame = int(num_frames), int(tokens_per_frame)
    if pruning_rate is not None:
        from .evs import check_rate

        check_rate(pruning_rate)  # vLLM treats q < 0 as "off" and q >= 1 as "keep one frame": reject
    if pruning_rate is None or not pruning_rate > 0.0:
        return [tokens_per_frame] * num_frames
    return [retained_count(tokens_per_frame, num_frames, pruning_rate)] + [0] * (num_frames - 1)


def retained_count(tokens_per_frame: int, num_frames: int, q: float) -> int:
    """EVS tokens kept: ``max(F, int(F*T*(1-q)))`` (:func:`mmprep.evs.retained_count`)."""
    from .evs import retained_count as evs_retained_count

    return int(evs_retained_count(tokens_per_frame, num_frames, q))


# -- per-family replacements (pure: plans and spec in, pieces out) --------------------------


def isaac_image_pieces(spec: Any, num_tokens: int) -> tuple[Piece, ...]:
    """``<|image_pad|>`` x tokens (patches / pixel_shuffle_scale**2)."""
    return (Piece(spec.image_pad_token, int(num_tokens), feature=True),)


def glm_image_pieces(spec: Any, num_tokens: int) -> tuple[Piece, ...]:
    """``<|image|>`` x tokens; begin/end-of-image come from the user's prompt (T28)."""
    return (Piece(spec.image_token, int(num_tokens), feature=True),)


def glm_video_pieces(spec: Any, timestamps: Sequence[int], grid: Sequence[int]) -> tuple[Piece, ...]:
    """bov, then per temporal group: boi, ``<|video|>`` x h*w/merge², eoi, timestamp text; eov.

    ``grid`` is ``video_grid_thw`` in patches; one timestamp per temporal group is required
    (vLLM does not check it; a mismatch desynchronises placeholders and encoder rows, §3.4).
    """
    if len(grid) != 3 or not all(_is_whole(v) and v > 0 for v in grid):
        raise InvalidInputError(f"video grid must be three positive ints (t, h, w), got {list(grid)!r}")
    t, h, w = (int(v) for v in grid)
    for i, second in enumerate(timestamps):
        if isinstance(second, bool) or not isinstance(second, (int, float, np.integer, np.floating)) \
                or not math.isfinite(second) or second < 0:
            raise InvalidInputError(f"temporal group {i}: timestamp must be a non-negative number of seconds, got {second!r}")
    if len(timestamps) != t:
        raise InvalidInputError(
            f"video has {len(timestamps)} timestamps but grid_t = {t} temporal groups; they must be equal"
        )
    if spec.merge_size <= 0:
        raise InvalidInputError(f"merge_size must be positive, got {spec.merge_size}")
    n = h * w // spec.merge_size**2
    pieces = [Piece(spec.video_start_token)]
    for ts in timestamps:
        pieces += [
            Piece(spec.image_start_token), Piece(spec.video_token, n, feature=True),
            Piece(spec.image_end_token), Piece(glm_timestamp_text(spec.version, ts), kind="text"),
        ]
    pieces.append(Piece(spec.video_end_token))
    return tuple(pieces)


def nemotron_image_pieces(spec: Any, num_tokens: int) -> tuple[Piece, ...]:
    """``<img>`` + ``<image>`` x tokens + ``</img>``."""
    return (Piece(spec.img_start_token), Piece(spec.img_context_token, int(num_tokens), feature=True),
            Piece(spec.img_end_token))


def nemotron_video_pieces(
    spec: Any, frames_indices: Sequence[int], frame_duration_ms: int, frame_tokens: Sequence[int]
) -> tuple[Piece, ...]:
    """Per frame: separator text, ``<img>``, ``<image>`` x n_i, ``</img>`` (seed get_video_repl)."""
    timestamps = nemotron_timestamps(frames_indices, frame_duration_ms)
    if len(timestamps) != len(frame_tokens):
        raise InvalidInputError(
            f"video has {len(timestamps)} frame indices but {len(frame_tokens)} per-frame token counts"
        )
    if not timestamps:
        raise InvalidInputError("a video needs at least one frame, got 0")
    pieces: list[Piece] = []
    for i, (ts, n) in enumerate(zip(timestamps, frame_tokens)):
        if not _is_whole(n) or n < 0:
            raise InvalidInputError(f"frame {i}: token count must be a non-negative int, got {n!r}")
        pieces += [Piece(nemotron_separator(i, ts), kind="text"), Piece(spec.img_start_token),
                   Piece(spec.img_context_token, int(n), feature=True), Piece(spec.img_end_token)]
    return tuple(pieces)


def nemotron_audio_pieces(spec: Any, num_tokens: int) -> tuple[Piece, ...]:
    """``<so_start>`` + ``<so_embedding>`` x tokens + ``<so_end>``."""
    return (Piece(spec.audio_start_token), Piece(spec.audio_context_token, int(num_tokens), feature=True),
            Piece(spec.audio_end_token))


__all__ = [
    "Expansion", "Piece", "Span", "Target", "Vocab", "as_vocab", "expand",
    "find_placeholders", "glm_image_pieces", "glm_timestamp_text", "glm_video_grid",
    "glm_video_pieces", "isaac_image_pieces", "nemotron_audio_pieces", "nemotron_evs_frame_tokens",
    "nemotron_frame_duration_ms", "nemotron_tokens_per_frame", "nemotron_image_pieces", "nemotron_separator",
    "nemotron_timestamps", "nemotron_video_pieces", "pieces_items", "pieces_num_features",
    "pieces_rle", "pieces_to_ids", "retained_count",
]
