"""Ray Data: mmprep's counting and preprocessing as callable classes for ``Dataset.map_batches``.

    import ray, mmprep.integrations.ray as mr
    ds = ray.data.read_parquet("manifest.parquet")            # or read_json, or mr.from_paths(...)
    counted = ds.map_batches(mr.CountTokens, fn_constructor_kwargs={"model": "glm-4.1v"},
                             batch_format="numpy", **mr.actors(2))
    counted.write_parquet("counts/")

Each worker loads the family once (the constructor) and counts a whole batch with the same
vectorized code as :func:`mmprep.count_dataset` (per-modality ``count_*`` calls), so the rows
equal the single-process ones. A bad row is never dropped: it comes back with ``error`` set and
counts of -1. :class:`Preprocess` runs the full ``family.process`` per row (ids, positions,
pixels). Ray itself is imported only by :func:`actors` and :func:`from_paths`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..data.manifest import OUT_COLUMNS, count_chunk
from ..data.records import Chunk, arrow_chunk, dict_chunks

MEDIA_COLUMNS = ("images", "videos", "audios")


def _records(batch: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """A numpy batch (columns of equal length; nested lists as object arrays) as record dicts."""
    cols = {k: (v.tolist() if isinstance(v, np.ndarray) and v.dtype != object else v) for k, v in batch.items()}
    n = len(next(iter(cols.values()))) if cols else 0
    rows = []
    for i in range(n):
        row = {}
        for k, v in cols.items():
            x = v[i]
            if x is None or (isinstance(x, float) and k == "text_tokens" and np.isnan(x)):
                continue
            row[k] = x.item() if isinstance(x, np.generic) else x
        rows.append(row)
    return rows


def _chunk(batch: Any, root: str | None) -> Chunk:
    if type(batch).__module__.startswith("pyarrow"):
        return arrow_chunk(batch, None if root is None else _path(root))
    chunks = list(dict_chunks(_records(batch), max(1, len(next(iter(batch.values()), ()))), _path(root)))
    return chunks[0] if chunks else Chunk([], np.zeros(0, np.int64), None, [])


def _path(root: str | None):
    from pathlib import Path

    return None if root is None else Path(root)


class CountTokens:
    """``map_batches`` callable: a batch of records in, ``id``, the count columns and ``error``
    out (``""`` when the row counted). Records as for :func:`mmprep.count_dataset`: metadata or
    paths (headers are probed on the worker); ``batch_format="numpy"`` or ``"pyarrow"``."""

    def __init__(self, model: Any, tokenizer: Any = None, root: str | os.PathLike | None = None):
        from ..data.manifest import _target_rate
        from ..loading import load

        self.family = load(model) if isinstance(model, (str, os.PathLike)) else model
        self.tokenizer = tokenizer
        self.root = None if root is None else os.fspath(root)
        self.rate = _target_rate(self.family)

    def __call__(self, batch: Any) -> dict[str, np.ndarray]:
        chunk = _chunk(batch, self.root)
        cols, _ = count_chunk(self.family, chunk, self.tokenizer, self.rate)
        out = {"id": np.asarray([str(i) for i in chunk.ids], dtype=object)}
        out.update({c: cols[c] for c in OUT_COLUMNS})
        out["error"] = np.asarray([e or "" for e in chunk.errors], dtype=object)
        return out


_COUNTERS: dict[tuple, CountTokens] = {}


def count_batch(batch: Any, model: str, tokenizer: Any = None, root: str | None = None) -> dict[str, np.ndarray]:
    """Task-style twin of :class:`CountTokens` (``map_batches(count_batch, fn_kwargs={"model": ...})``):
    Ray reuses worker processes across tasks, so the family is loaded once per worker."""
    key = (model, id(tokenizer) if tokenizer is not None else None, root)
    counter = _COUNTERS.get(key)
    if counter is None:
        counter = _COUNTERS[key] = CountTokens(model, tokenizer, root)
    return counter(batch)


class Preprocess:
    """``map_batches`` callable: each row's ``text`` and media (paths or arrays) through
    ``family.process`` with ``tokenizer``: ``input_ids``, ``position_ids`` (MRoPE families),
    ``pixel_values`` and grids per row (ragged object columns), ``error`` for rows that fail."""

    KEYS = ("input_ids", "position_ids", "pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw")

    def __init__(self, model: Any, tokenizer: Any, root: str | os.PathLike | None = None, **options: Any):
        from ..loading import load

        self.family = load(model) if isinstance(model, (str, os.PathLike)) else model
        self.tokenizer, self.options = tokenizer, options
        self.root = None if root is None else os.fspath(root)

    def _media(self, row: dict, key: str) -> list | None:
        items = row.get(key)
        if items is None or len(items) == 0:
            return None
        out = []
        for x in items:
            if isinstance(x, dict):
                x = x.get("path")
            if isinstance(x, str) and self.root is not None and not os.path.isabs(x):
                x = os.path.join(self.root, x)
            out.append(x)
        return out

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = _records(batch)
        cols: dict[str, list] = {k: [] for k in ("id", *self.KEYS, "error")}
        for i, row in enumerate(rows):
            cols["id"].append(str(row.get("id", i)))
            try:
                b = self.family.process(row.get("text"), images=self._media(row, "images"),
                                        videos=self._media(row, "videos"), audios=self._media(row, "audios"),
                                        tokenizer=self.tokenizer, **self.options)
                got = {k: np.asarray(b[k]) for k in self.KEYS if k in b}
                if "input_ids" in got:
                    got["input_ids"] = got["input_ids"][0]
                if "position_ids" in got:
                    got["position_ids"] = got["position_ids"][:, 0]
                err = ""
            except Exception as e:  # noqa: BLE001 - a bad row is reported, never dropped
                got, err = {}, f"{type(e).__name__}: {e}"
            for k in self.KEYS:
                cols[k].append(got.get(k))
            cols["error"].append(err)
        return {k: _object_column(v) for k, v in cols.items()}


def _object_column(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def actors(n: int) -> dict[str, Any]:
    """``map_batches`` keyword arguments for a pool of ``n`` actors on this Ray version."""
    import ray.data

    strategy = getattr(ray.data, "ActorPoolStrategy", None)
    if strategy is not None:
        return {"compute": strategy(size=n)}
    return {"concurrency": n}


def from_paths(paths: Any, modality: str = "images") -> Any:
    """A Ray dataset of one record per media file: ``{"id": path, modality: [path]}``."""
    import ray.data

    return ray.data.from_items([{"id": str(p), modality: [str(p)]} for p in paths])
