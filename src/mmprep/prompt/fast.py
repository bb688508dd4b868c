"""The many-sample path of ``prompt``: one tokenizer call and array work per chunk, not per token.

Same inputs and the same :class:`~mmprep.types.Batch` as :func:`.driver._run` + ``_batch``
(tested equal), built differently: every sample's ids are concatenated once; placeholders are
found with one comparison per target over the whole chunk; the k-th placeholder of a modality
in the chunk takes the k-th item of that modality; each replacement becomes a few
``(id, repeat)`` runs (cached per distinct piece tuple), inserted before its placeholder (whose
own tokens get repeat 0) and expanded by one ``np.repeat``; positions come from the family's
batched MRoPE twin (``Rules.mrope_many``) over the flat prompt; padding is one boolean-mask
assignment per array into one zeroed buffer. Per item only its replacement lookup and its
:class:`~.tokens.Span` cost Python.

Anything unusual (a stray structural token, overlapping or boundary-crossing placeholders, a
count mismatch, an item limit, a text the family's ``prepare_text`` refuses, a prompt over the
token budget) returns ``None``: the caller then runs the per-sample path, which raises the
precise error. One sample also returns ``None``: the per-sample path is cheaper for it.
"""

from __future__ import annotations

from itertools import chain, pairwise
from typing import Any

import numpy as np

from ..errors import MmprepError
from ..types import Batch
from ..validate import MAX_TOKENS
from .driver import Rules, pad_id, to_tensors
from .tokens import Span, Vocab

TYPE_CODE = {"image": 1, "video": 2, "audio": 3}


def _runs(pieces: tuple, modality: str, vocab: Vocab, cache: dict) -> tuple[list, list, list, int, int]:
    """A replacement as runs: ids, repeat counts, token types (the modality's code on feature
    slots, else 0), its length and its number of feature slots (cached per piece tuple)."""
    if len(pieces) == 1 and pieces[0].feature:  # one run of embedding slots (images): no cache
        p = pieces[0]
        return [vocab.token_id(p.text)], [p.repeat], [TYPE_CODE[modality]], p.repeat, p.repeat
    hit = cache.get((modality, pieces))
    if hit is not None:
        return hit
    values, counts, types = [], [], []
    for p in pieces:
        if p.feature:
            values.append(vocab.token_id(p.text))
            counts.append(p.repeat)
            types.append(TYPE_CODE[modality])
            continue
        one = vocab.text_ids(p.text)
        n = 1 if p.kind == "text" else p.repeat
        if len(one) == 1:
            values.append(one[0])
            counts.append(n)
            types.append(0)
        else:
            values += list(one) * n
            counts += [1] * (len(one) * n)
            types += [0] * (len(one) * n)
    nfeat = sum(c for c, t in zip(counts, types) if t)
    out = cache[(modality, pieces)] = (values, counts, types, sum(counts), nfeat)
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
    """The Batch of ``_batch(_run(...))`` for many samples at once, or None to fall back.
    ``plans`` have passed :func:`~.driver.check_plans` (the caller checks them before reading grids)."""
    if len(texts) < 2 or kw.get("padding_side", "right") not in ("right", "left"):
        return None  # one sample: the per-sample path's few small arrays cost less than the array setup here
    for m, limit in rules.max_items.items():
        if any(len(p.get(m, ())) > limit for p in plans):
            return None
    if any(m not in rules.modalities for p in plans for m in p):
        return None
    add = rules.add_special_tokens if kw.get("add_special_tokens") is None else bool(kw["add_special_tokens"])
    try:
        if rules.prepare_text is not None:
            texts = [rules.prepare_text(family, t, i) for i, t in enumerate(texts)]
        ids_list = vocab.encode_many(texts, add)
        lens = np.fromiter(map(len, ids_list), dtype=np.int64, count=len(ids_list))
        flat = np.fromiter(chain.from_iterable(ids_list), dtype=np.int64, count=int(lens.sum()))
        ends = np.cumsum(lens)
        starts = ends - lens
        found = _find(rules, family, flat, starts, ends, vocab)
        if found is None:
            return None
        exp = _expand(rules, family, flat, starts, lens, found, plans, vocab, token_types)
        if exp is None:
            return None
        return _assemble(rules, family, exp, plans, vocab, kw, extra)
    except MmprepError:  # the per-sample path raises it again, naming the sample
        return None


def _items(rules: Rules, plans: list[dict[str, list]], sample: np.ndarray, qmod: np.ndarray):
    """Each placeholder's plan and its index within its modality and sample, or None when a
    sample's placeholders and items disagree in number. The k-th placeholder of a modality in the
    chunk takes the k-th item of the modality's items in sample order."""
    B, M = len(plans), len(rules.modalities)
    want = np.array([[len(p.get(m, ())) for m in rules.modalities] for p in plans], dtype=np.int64).reshape(B, M)
    have = np.bincount(sample * M + qmod, minlength=B * M).reshape(B, M)
    if not np.array_equal(have, want):
        return None
    items: list[Any] = [None] * qmod.size
    index = np.empty(qmod.size, dtype=np.int64)
    for j, m in enumerate(rules.modalities):
        at = np.flatnonzero(qmod == j)
        if not at.size:
            continue
        flat_m = [x for p in plans for x in p.get(m, ())]
        for q, x in zip(at.tolist(), flat_m):
            items[q] = x
        first = np.cumsum(want[:, j]) - want[:, j]
        index[at] = np.arange(at.size) - first[sample[at]]
    return items, index


def _expand(rules, family, flat, starts, lens, found, plans, vocab, token_types) -> dict | None:
    """Every placeholder replaced at once: the chunk as runs ``(id, repeat)`` (text tokens one
    each, a placeholder's own tokens zero, its replacement's runs inserted before it), expanded
    by one ``np.repeat``."""
    targets, pos, tgt, tlen = found
    sample = np.searchsorted(starts, pos, "right") - 1
    tmod = np.array([rules.modalities.index(t.modality) for t in targets], dtype=np.int64)
    qmod = tmod[tgt] if tgt.size else np.zeros(0, np.int64)
    got = _items(rules, plans, sample, qmod)
    if got is None:
        return None
    items, index = got
    names = [rules.modalities[j] for j in qmod.tolist()]
    cache: dict = {}
    values, counts, types, nruns, rlen, nfeat = [], [], [], [], [], []
    for m, plan in zip(names, items):
        v, c, t, n, f = _runs(rules.pieces[m](family, plan), m, vocab, cache)
        values += v
        counts += c
        types += t
        nruns.append(len(v))
        rlen.append(n)
        nfeat.append(f)
    rlen_a = np.asarray(rlen, dtype=np.int64)
    B = len(plans)
    olens = lens + np.bincount(sample, weights=rlen_a - tlen, minlength=B).astype(np.int64)
    # the per-sample path refuses ids + the pieces' repeats above MAX_TOKENS by name; every
    # replacement holds at least its pieces' repeats (no piece text is empty), so this is the
    # same refusal or an earlier one, before any large array exists
    if (olens + np.bincount(sample, weights=tlen, minlength=B).astype(np.int64) > MAX_TOKENS).any():
        return None
    at = np.repeat(pos, np.asarray(nruns, dtype=np.int64))
    keep = np.ones(flat.size, dtype=np.int64)
    if tlen.size:
        inside = np.repeat(pos - (np.cumsum(tlen) - tlen), tlen) + np.arange(int(tlen.sum()))
        keep[inside] = 0  # the placeholder's own tokens go
    rep = np.insert(keep, at, np.asarray(counts, dtype=np.int64))
    ids = np.repeat(np.insert(flat, at, np.asarray(values, dtype=np.int64)), rep)
    tflat = None
    if token_types:
        tflat = np.repeat(np.insert(np.zeros(flat.size, np.int64), at, np.asarray(types, dtype=np.int64)), rep)
    before = np.cumsum(rep) - rep  # output index of each run
    first_run = np.cumsum(nruns, dtype=np.int64) - np.asarray(nruns, dtype=np.int64)
    ostarts = np.cumsum(olens) - olens
    offset = before[pos + first_run] - ostarts[sample] if pos.size else np.zeros(0, np.int64)
    spans = list(map(Span, names, index.tolist(), offset.tolist(), rlen, nfeat))
    bounds = np.searchsorted(sample, np.arange(B + 1)).tolist()
    return {"ids": ids, "types": tflat, "olens": olens, "sample": sample, "offset": offset, "items": items,
            "names": names, "spans": [tuple(spans[a:b]) for a, b in pairwise(bounds)]}


def _assemble(rules, family, exp, plans, vocab, kw, extra) -> Batch:
    """Pad into ``(B, L)`` with one boolean-mask assignment per array (row-major order is the
    flat order, for either padding side); positions from the family's batched MRoPE twin.

    The padded arrays are views of one zeroed ``(k, B, L)`` buffer: one large allocation
    page-faults far less than k separate ones, which was most of this function's CPU time.
    """
    olens = exp["olens"]
    B, L = olens.size, int(olens.max(initial=0))
    cols = np.arange(L, dtype=np.int64)
    valid = cols < olens[:, None] if kw.get("padding_side", "right") == "right" else cols >= (L - olens)[:, None]
    types = exp["types"] is not None
    buf = np.zeros((2 + types + 3 * (rules.mrope is not None), B, L), dtype=np.int64)
    out_ids, mask = buf[0], buf[1]
    pad = pad_id(vocab, kw.get("pad_token_id"))
    if pad:
        out_ids.fill(pad)
    out_ids[valid] = exp["ids"]
    np.copyto(mask, valid)
    data: dict[str, Any] = {"input_ids": out_ids, "attention_mask": mask}
    if types:
        buf[2][valid] = exp["types"]
        data["mm_token_type_ids"] = buf[2]
    if rules.mrope is not None:
        flat_pos, deltas = _positions(rules, family, exp)
        positions = buf[2 + types:]
        for r in range(3):  # a 2-D mask per row: numpy's (3, B, L)[:, mask] path is ~6x slower
            positions[r][valid] = flat_pos[r]
        data["position_ids"] = positions
        data["mrope_position_delta"] = np.asarray(deltas, dtype=np.int64).reshape(B, 1)
    data.update(extra)
    batch_plans = {m: [p.get(m, []) for p in plans] for m in ("image", "video", "audio")}
    batch_plans["spans"] = exp["spans"]
    return Batch(to_tensors(data, kw.get("return_tensors", "np")), batch_plans)


def _positions(rules, family, exp) -> tuple[np.ndarray, np.ndarray]:
    """``(3, sum(lengths))`` positions and the deltas: the batched twin, else per sample."""
    olens, sample, offset, items = exp["olens"], exp["sample"], exp["offset"], exp["items"]
    grids = np.array([p.grid for p in items], dtype=np.int64).reshape(-1, 3)
    names = np.array(exp["names"], dtype=object)
    if rules.mrope_many is not None:
        return rules.mrope_many(olens, sample, offset, grids, names, family.spec)
    from ..positions import MediaFeature

    bounds = np.searchsorted(sample, np.arange(olens.size + 1)).tolist()
    per = []
    for b, n in enumerate(olens.tolist()):
        feats = [MediaFeature(exp["names"][q], int(offset[q]), tuple(int(v) for v in grids[q]))
                 for q in range(bounds[b], bounds[b + 1])]
        per.append(rules.mrope(int(n), feats, family.spec))
    return np.concatenate([p for p, _ in per], axis=1), np.array([d for _, d in per], dtype=np.int64)
