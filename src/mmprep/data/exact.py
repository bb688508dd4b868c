"""Exact text counts: records with ``text`` run through the family's metadata-only ``prompt()``.

Samples go in batches (one tokenizer call per batch); a batch that raises is retried sample by
sample so one bad record fails alone, with its reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..types import VideoMetadata
from .records import Chunk

BATCH = 256


def _media(chunk: Chunk, media: dict, target_rate: int | None) -> dict[str, dict[int, list]]:
    """Per modality: record -> the items ``prompt()`` takes (sizes, VideoMetadata, samples)."""
    from .manifest import _audio_samples

    out: dict[str, dict[int, list]] = {}
    for m, t in media.items():
        per: dict[int, list] = {}
        if m == "audio":
            samples = _audio_samples(t["samples"], t["rate"], target_rate)
        for k, r in enumerate(t["rec"].tolist()):
            if t["tokens"][k] < 0:
                continue
            if m == "image":
                item = (int(t["height"][k]), int(t["width"][k]))
            elif m == "video":
                item = VideoMetadata(int(t["frames"][k]), float(t["fps"][k]), int(t["height"][k]), int(t["width"][k]))
            else:
                item = int(samples[k])
            per.setdefault(r, []).append(item)
        out[m] = per
    return out


def prompt_counts(family: Any, chunk: Chunk, rows: list[int], media: dict, tokenizer: Any,
                  out: dict[str, np.ndarray], text: np.ndarray, target_rate: int | None) -> None:
    """Fill ``text`` and the media columns of ``rows`` from the prompts ``family.prompt`` builds."""
    from .manifest import _reason

    per = _media(chunk, media, target_rate)
    rows = [r for r in rows if chunk.errors[r] is None]
    for s in range(0, len(rows), BATCH):
        part = rows[s:s + BATCH]
        try:
            _run(family, chunk, part, per, tokenizer, out, text)
        except Exception:  # noqa: BLE001 - find the bad sample(s) one by one
            for r in part:
                try:
                    _run(family, chunk, [r], per, tokenizer, out, text)
                except Exception as e:  # noqa: BLE001
                    chunk.fail(r, f"prompt: {_reason(e)}")


def _run(family, chunk, part, per, tokenizer, out, text) -> None:
    kwargs = {}
    for m, by_rec in per.items():
        if any(r in by_rec for r in part):
            kwargs[m + "s"] = [list(by_rec.get(r, [])) for r in part]
    batch = family.prompt([chunk.texts[r] for r in part], tokenizer=tokenizer, **kwargs)
    lengths = np.asarray(batch["attention_mask"]).sum(axis=1)
    for b, r in enumerate(part):
        media_total = 0
        for m in ("image", "video", "audio"):
            plans = batch.plans.get(m, [[]] * len(part))[b] if m + "s" in kwargs else []
            if m + "s" in kwargs:
                tokens = sum(int(p.num_tokens) for p in plans)
                out[f"{m}_tokens"][r] = tokens
                media_total += tokens
        text[r] = int(lengths[b]) - media_total
