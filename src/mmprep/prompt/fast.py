"""The many-sample path of ``prompt``: one tokenizer call and array work per chunk, not per token.

Same inputs and the same :class:`~mmprep.types.Batch` as :func:`.driver._run` + ``_batch``
(tested equal), built differently: every sample's ids are concatenated once; placeholders are
found with one comparison per target over the whole chunk; each replacement becomes a few
``(id, repeat)`` runs (cached per distinct piece tuple) spliced in by one ``np.concatenate``;
positions come from the family's batched MRoPE twin (``Rules.mrope_many``) over the flat
prompt; padding is one scatter. Per sample only the plans and the placeholders cost Python.

Anything unusual (a stray structural token, overlapping or boundary-crossing placeholders, a
count mismatch, an item limit) returns ``None``: the caller then runs the per-sample path,
which raises the precise error.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np

from ..errors import MmprepError
from ..types import Batch
from ..validate import MAX_TOKENS
from .driver import Rules, check_plans, pad_id, to_tensors
from .tokens import Span, Vocab

TYPE_CODE = {"image": 1, "video": 2, "audio": 3}


def _runs(pieces: tuple, modality: str, vocab: Vocab, cache: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """A replacement's ids, its token types (the modality's code on feature slots, else 0) and
    its number of feature slots (cached per piece tuple)."""
    if len(pieces) == 1 and pieces[0].feature:  # one run of embedding slots (images): no cache
        p = pieces[0]
        return (np.full(p.repeat, vocab.token_id(p.text), dtype=np.int64),
                np.full(p.repeat, TYPE_CODE[modality], dtype=np.int64), p.repeat)
    hit = cache.get((modality, pieces))
    if hit is not None:
        return hit
    values, counts, feats = [], [], []
    for p in pieces:
        if p.feature:
            values.append(vocab.token_id(p.text))
            counts.append(p.repeat)
            feats.append(True)
            continue
        one = vocab.text_ids(p.text)
        n = 1 if p.kind == "text" else p.repeat
        if len(one) == 1:
            values.append(one[0])
            counts.append(n)
            feats.append(False)
        else:
            for _ in range(n):
                values += one
                counts += [1] * len(one)
                feats += [False] * len(one)
    c = np.asarray(counts, dtype=np.int64)
    f = np.asarray(feats, dtype=bool)
    out = (np.repeat(np.asarray(values, dtype=np.int64), c), np.repeat(f * TYPE_CODE[modality], c).astype(np.int64),
           int(c[f].sum()) if feats else 0)
    cache[(modality, pieces)] = out
    return out


def _find(rules: Rules, family: Any, flat: np.ndarray, starts: np.ndarray, ends: np.ndarray, vocab: Vocab):
    """``(flat positions, target index)`` sorted, or None when the fast path must not decide."""
    targets, forbidden = rules.targets(family, vocab)
    pos_parts, tgt_parts, lens = [], [], []
    covered = np.zeros(flat.size, dtype=bool)
    for k, t in enumerate(targets):
        first = np.flatnonzero(flat == t.ids[0])
        n = len(t.ids)
        if n > 1:
            ok = first + n <= flat.size
            first = first[ok]
            for j in range(1, n):
                first = first[flat[first + j] == t.ids[j]]
            sample = np.searchsorted(starts, first, "right") - 1
            if (first + n > ends[sample]).any():
                return None
        pos_parts.append(first)
        tgt_parts.append(np.full(first.size, k, dtype=np.int64))
        lens.append(n)
        for j in range(n):
            covered[first + j] = True
    pos = np.concatenate(pos_parts)
    tgt = np.concatenate(tgt_parts)
    order = np.argsort(pos, kind="stable")
    pos, tgt = pos[order], tgt[order]
    tlen = np.asarray(lens, dtype=np.int64)[tgt]
    if pos.size > 1 and (pos[1:] < pos[:-1] + tlen[:-1]).any():
        return None  # overlapping placeholders
    for fid in forbidden or ():
        if ((flat == fid) & ~covered).any():
            return None
    return targets, pos, tgt, tlen


def fast_batch(rules: Rules, family: Any, texts: list[str], plans: list[dict[str, list]], vocab: Vocab,
               kw: dict, extra: dict, *, token_types: bool = False) -> Batch | None:
    """The Batch of ``_batch(_run(...))`` for many samples at once, or None to fall back."""
    check_plans(plans)  # hand-built plans are checked as the per-sample path does
    if rules.prepare_text is not None or kw.get("padding_side", "right") not in ("right", "left"):
        return None
    for m, limit in rules.max_items.items():
        if any(len(p.get(m, ())) > limit for p in plans):
            return None
    if any(m not in rules.modalities for p in plans for m in p):
        return None
    add = rules.add_special_tokens if kw.get("add_special_tokens") is None else bool(kw["add_special_tokens"])
    ids_list = vocab.encode_many(texts, add)
    lens = np.fromiter((len(x) for x in ids_list), dtype=np.int64, count=len(ids_list))
    flat = np.fromiter(chain.from_iterable(ids_list), dtype=np.int64, count=int(lens.sum()))
    ends = np.cumsum(lens)
    starts = ends - lens
    media = [sum(int(p.num_tokens) for plist in sp.values() for p in plist) for sp in plans]
    if any(int(n) + t > MAX_TOKENS for n, t in zip(lens, media)):  # the per-sample path refuses it by name
        return None
    try:
        found = _find(rules, family, flat, starts, ends, vocab)
        if found is None:
            return None
        targets, pos, tgt, tlen = found
        sample = np.searchsorted(starts, pos, "right") - 1
        return _expand(rules, family, flat, starts, lens, pos, tgt, tlen, sample, targets, plans, vocab, kw, extra,
                       token_types)
    except MmprepError:  # the per-sample path raises it again, naming the sample
        return None


def _expand(rules, family, flat, starts, lens, pos, tgt, tlen, sample, targets, plans, vocab, kw, extra,
            token_types) -> Batch | None:
    B = len(plans)
    modality = [targets[k].modality for k in tgt.tolist()]
    bounds = np.searchsorted(sample, np.arange(B + 1)).tolist()
    pos_l, tlen_l, starts_l, lens_l = pos.tolist(), tlen.tolist(), starts.tolist(), lens.tolist()
    cache: dict = {}
    zeros = np.zeros(int(lens.max(initial=0)) + 1, dtype=np.int64)
    id_parts, feat_parts = [], []
    spans: list[list[Span]] = []
    feats: list[list[tuple[int, str, Any]]] = []
    out_len = []
    for b in range(B):
        cur, end, length = starts_l[b], starts_l[b] + lens_l[b], 0
        counters: dict[str, int] = {}
        sp, ft = [], []
        for k in range(bounds[b], bounds[b + 1]):
            p, m = pos_l[k], modality[k]
            id_parts.append(flat[cur:p])
            feat_parts.append(zeros[:p - cur])
            length += p - cur
            i = counters.get(m, 0)
            counters[m] = i + 1
            items = plans[b].get(m, ())
            if i >= len(items):
                return None
            rep_ids, rep_mask, nfeat = _runs(rules.pieces[m](family, items[i]), m, vocab, cache)
            id_parts.append(rep_ids)
            feat_parts.append(rep_mask)
            sp.append(Span(m, i, length, rep_ids.size, nfeat))
            ft.append((length, m, items[i]))
            length += rep_ids.size
            cur = p + tlen_l[k]
        id_parts.append(flat[cur:end])
        feat_parts.append(zeros[:end - cur])
        length += end - cur
        if any(counters.get(m, 0) != len(items) for m, items in plans[b].items()):
            return None
        spans.append(sp)
        feats.append(ft)
        out_len.append(length)
    ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int64)
    fmask = np.concatenate(feat_parts) if feat_parts else np.zeros(0, np.int64)  # token types
    olens = np.asarray(out_len, dtype=np.int64)
    return _assemble(rules, family, ids, fmask, olens, spans, feats, plans, vocab, kw, extra, token_types)


def _assemble(rules, family, ids, fmask, olens, spans, feats, plans, vocab, kw, extra, token_types) -> Batch:
    """Pad into ``(B, L)`` with one scatter; positions from the family's batched MRoPE twin."""
    B = olens.size
    L = int(olens.max(initial=0))
    right = kw.get("padding_side", "right") == "right"
    ends = np.cumsum(olens).tolist()
    rows = [(b, e - n, e, 0 if right else L - n) for b, (n, e) in enumerate(zip(olens.tolist(), ends))]
    out_ids = np.full((B, L), pad_id(vocab, kw.get("pad_token_id")), dtype=np.int64)
    mask = np.zeros((B, L), dtype=np.int64)
    types = np.zeros((B, L), dtype=np.int64) if token_types else None
    for b, s, e, o in rows:  # row slices: cheaper than a masked scatter of the padded block
        out_ids[b, o:o + e - s] = ids[s:e]
        mask[b, o:o + e - s] = 1
        if types is not None:
            types[b, o:o + e - s] = fmask[s:e]
    data: dict[str, Any] = {"input_ids": out_ids, "attention_mask": mask}
    if types is not None:
        data["mm_token_type_ids"] = types
    if rules.mrope is not None:
        features = [[(off, tuple(int(v) for v in plan.grid), m) for off, m, plan in ft] for ft in feats]
        if rules.mrope_many is not None:
            flat_pos, deltas = rules.mrope_many(olens, features, family.spec)
        else:
            from ..positions import MediaFeature

            per = [rules.mrope(int(n), [MediaFeature(m, off, g) for off, g, m in f], family.spec)
                   for n, f in zip(olens.tolist(), features)]
            flat_pos = np.concatenate([p for p, _ in per], axis=1)
            deltas = np.array([d for _, d in per], dtype=np.int64)
        positions = np.zeros((3, B, L), dtype=np.int64)
        for b, s, e, o in rows:
            positions[:, b, o:o + e - s] = flat_pos[:, s:e]
        data["position_ids"] = positions
        data["mrope_position_delta"] = np.asarray(deltas, dtype=np.int64).reshape(B, 1)
    data.update(extra)
    batch_plans = {m: [p.get(m, []) for p in plans] for m in ("image", "video", "audio")}
    batch_plans["spans"] = [tuple(sp) for sp in spans]
    return Batch(to_tensors(data, kw.get("return_tensors", "np")), batch_plans)
