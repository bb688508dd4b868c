"""Placeholder expansion on token ids, from plans (SPEC §5).

The user's text is tokenized **once**; placeholders are found as token ids and each is replaced
by the ids of its media item's replacement, left to right, never rescanning what was inserted
(T14). Replacements are first built as :class:`Piece` tuples (token strings and short texts with
repeat counts: what the golden vectors call "items"), then turned into ids with a
:class:`Vocab`: special strings and short texts such as timestamps and frame separators are each
tokenized **alone** with ``add_special_tokens=False`` and cached (T15, T21). Nothing is decoded
back to text.

What each family's placeholders hold (pieces from plans) lives in that family's ``prompt.py``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError

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


_PROMPT_CACHE = 4096  # whole texts a Vocab remembers (then it starts over): a few MB at most
_PROMPT_CHARS = 1024  # longer texts are not remembered


class Vocab:
    """Ids from one tokenizer: a ``tokenizers.Tokenizer``, a ``tokenizer.json`` path (or a
    directory holding one) or a transformers tokenizer. Short texts are cached."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = _load_tokenizer(tokenizer)
        self._fast = _is_tokenizers(self.tokenizer)
        self._cache: dict[str, tuple[int, ...]] = {}
        self._prompts: dict[tuple[str, bool], tuple[int, ...]] = {}  # whole texts seen by encode_many

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        tok = self.tokenizer
        if self._fast:
            return tok.encode(text, add_special_tokens=add_special_tokens).ids
        return list(tok.encode(text, add_special_tokens=add_special_tokens))

    def encode_many(self, texts: Sequence[str], add_special_tokens: bool = False) -> list[list[int]]:
        """Each text's ids, the tokenizer called once for the texts not seen before: a text that
        repeats (the same instruction for many images) is tokenized once. The tokenizer is a pure
        function of the text, so a remembered text's ids are exactly what a new call returns."""
        add = bool(add_special_tokens)
        cache = self._prompts
        out: list[list[int] | None] = [None] * len(texts)
        missing: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            hit = cache.get((t, add))
            if hit is not None:
                out[i] = list(hit)
            else:
                missing.setdefault(t, []).append(i)
        if missing:
            new = list(missing)
            if len(cache) + len(new) > _PROMPT_CACHE:
                cache.clear()
            for t, ids in zip(new, self._encode_batch(new, add)):
                for i in missing[t]:
                    out[i] = ids if i == missing[t][0] else list(ids)
                if len(t) <= _PROMPT_CHARS:
                    cache[(t, add)] = tuple(ids)
        return out  # type: ignore[return-value]

    def _encode_batch(self, texts: list[str], add_special_tokens: bool) -> list[list[int]]:
        tok = self.tokenizer
        if self._fast:
            if len(texts) == 1:  # encode_batch's thread pool costs more than one short text
                return [tok.encode(texts[0], add_special_tokens=add_special_tokens).ids]
            # encode_batch_fast (tokenizers >= 0.20) skips the character offsets: same ids, ~25% less CPU
            batch = getattr(tok, "encode_batch_fast", tok.encode_batch)
            return [e.ids for e in batch(texts, add_special_tokens=add_special_tokens)]
        return [list(x) for x in tok(texts, add_special_tokens=add_special_tokens)["input_ids"]]

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


# -- argument checks ------------------------------------------------------------------------


def is_whole(value: Any) -> bool:
    """An int (or an integral finite float), never a bool, None, NaN or string."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(value) and int(value) == value




__all__ = [
    "Expansion", "Piece", "Span", "Target", "Vocab", "as_vocab", "expand", "find_placeholders",
    "is_whole", "pieces_items", "pieces_num_features", "pieces_rle", "pieces_to_ids",
]
