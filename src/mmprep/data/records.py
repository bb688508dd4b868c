"""Dataset records in, columnar chunks out: the reading half of :func:`mmprep.count_dataset`.

A record is one training sample: an ``id``, its text (``text``) or a text token count
(``text_tokens``) and media lists ``images``, ``videos``, ``audios``. A media item is a path (the
header is probed later) or metadata::

    image  "cat.jpg" | {"path": ...} | {"height": 480, "width": 640} | [480, 640]
    video  "clip.mp4" | {"path": ...} | {"frames": 300, "fps": 30.0, "height": 720, "width": 1280}
    audio  "a.wav" | {"path": ...} | {"samples": 48000, "rate": 16000}   (rate: default the model's)

Sources: an iterable of dicts, a JSONL file (one record a line) or a Parquet file / pyarrow
Table (media as ``list<struct>`` columns with the same field names; read column-wise, without a
Python loop per record). Every source is cut into :class:`Chunk` s of ``chunk_size`` records.
A record that cannot be read (bad JSON, a wrong field type) keeps its place with its reason.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError

MODALITIES = ("image", "video", "audio")
# metadata fields per modality, in column order; aliases a record may use instead
FIELDS = {
    "image": ("height", "width"),
    "video": ("frames", "fps", "height", "width"),
    "audio": ("samples", "rate"),
}
ALIASES = {"frames": ("total_frames", "num_frames"), "samples": ("num_samples",), "rate": ("sampling_rate",)}


@dataclass
class Items:
    """One modality's items of a chunk, flattened: ``rec[k]`` is the record of item ``k``.

    Metadata columns are float64 (NaN = not given: a path item, probed later); ``path`` holds
    the path of path items (``None`` for metadata items).
    """

    rec: np.ndarray  # int64 (k,)
    cols: dict[str, np.ndarray]  # float64 (k,) per field of FIELDS[modality]
    path: list[str | None] | None  # None: no item of this chunk is a path

    @property
    def size(self) -> int:
        return int(self.rec.size)


@dataclass
class Chunk:
    """``n`` records in columns. ``errors[i]`` is ``None`` or why record ``i`` failed."""

    ids: list[Any]
    text_tokens: np.ndarray  # int64 (n,), -1 where not given
    texts: list[str | None] | None
    errors: list[str | None]
    items: dict[str, Items] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def fail(self, i: int, reason: str) -> None:
        """Keep the first reason a record failed for."""
        if self.errors[i] is None:
            self.errors[i] = reason

    def failed_mask(self) -> np.ndarray:
        if self.errors.count(None) == len(self.errors):  # C speed; the usual case
            return np.zeros(len(self.errors), dtype=bool)
        return np.array([e is not None for e in self.errors], dtype=bool)


# -- dict records ----------------------------------------------------------------------------


class _Builder:
    """Accumulates dict records into a Chunk (the slow, general path: one record at a time)."""

    def __init__(self, root: Path | None):
        self.root = root
        self.ids: list[Any] = []
        self.text_tokens: list[int] = []
        self.texts: list[str | None] = []
        self.errors: list[str | None] = []
        self.media = {m: ([], {f: [] for f in FIELDS[m]}, []) for m in MODALITIES}

    def __len__(self) -> int:
        return len(self.ids)

    def add_error(self, rid: Any, reason: str) -> None:
        self.ids.append(rid)
        self.text_tokens.append(-1)
        self.texts.append(None)
        self.errors.append(reason)

    def add(self, record: Any, position: int) -> None:
        if not isinstance(record, dict):
            self.add_error(position, f"a record must be an object, got {type(record).__name__}")
            return
        rid = record.get("id", position)
        staged = []  # (modality, values, path): added only if the whole record reads
        try:
            tt = record.get("text_tokens")
            if tt is not None and not _whole(tt, 0):
                raise InvalidInputError(f"text_tokens must be an int >= 0, got {tt!r}")
            text = record.get("text")
            if text is not None and not isinstance(text, str):
                raise InvalidInputError(f"text must be a string, got {type(text).__name__}")
            for m in MODALITIES:
                value = record.get(m + "s")
                if value is None:
                    continue
                if isinstance(value, np.ndarray):  # numpy batches (Ray) hold object arrays
                    value = list(value)
                if not isinstance(value, list):
                    raise InvalidInputError(f"{m}s must be a list, got {type(value).__name__}")
                for k, item in enumerate(value):
                    staged.append((m, *_item(m, item, k, self.root)))
        except InvalidInputError as e:
            self.add_error(rid, str(e))
            return
        i = len(self.ids)
        self.ids.append(rid)
        self.text_tokens.append(-1 if tt is None else int(tt))
        self.texts.append(text)
        self.errors.append(None)
        for m, values, path in staged:
            rec, cols, paths = self.media[m]
            rec.append(i)
            for f, v in zip(FIELDS[m], values):
                cols[f].append(v)
            paths.append(path)

    def chunk(self) -> Chunk:
        items = {}
        for m, (rec, cols, paths) in self.media.items():
            if rec:
                items[m] = Items(np.asarray(rec, np.int64), {f: np.asarray(v, np.float64) for f, v in cols.items()},
                                 paths if any(p is not None for p in paths) else None)
        texts = self.texts if any(t is not None for t in self.texts) else None
        return Chunk(self.ids, np.asarray(self.text_tokens, np.int64), texts, self.errors, items)


def _whole(v: Any, low: int) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(v) and int(v) == v and v >= low


def _item(m: str, item: Any, k: int, root: Path | None) -> tuple[tuple[float, ...], str | None]:
    """``(metadata values, path)`` of one media item (NaN values for a path item)."""
    names = FIELDS[m]
    nan = (math.nan,) * len(names)
    if isinstance(item, (str, os.PathLike)):
        return nan, _resolve(item, root)
    if isinstance(item, dict):
        if item.get("path") is not None:
            return nan, _resolve(item["path"], root)
        values = []
        for f in names:
            v = item.get(f)
            for alias in ALIASES.get(f, ()):
                v = item.get(alias) if v is None else v
            if v is None and not (m == "audio" and f == "rate"):
                raise InvalidInputError(f"{m} {k}: needs a path or {', '.join(names)}; {f} is missing")
            if v is not None and (isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number))):
                raise InvalidInputError(f"{m} {k}: {f} must be a number, got {v!r}")
            values.append(math.nan if v is None else float(v))
        return tuple(values), None
    if isinstance(item, np.ndarray) and item.dtype.kind in "iuf":
        item = item.tolist()
    if m == "image" and isinstance(item, (list, tuple)) and len(item) == 2 and all(
            isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in item):
        return (float(item[0]), float(item[1])), None
    raise InvalidInputError(f"{m} {k}: expected a path or a metadata object, got {item!r}"[:200])


def _resolve(path: Any, root: Path | None) -> str:
    p = Path(os.fspath(path))
    return str(root / p) if root is not None and not p.is_absolute() else str(p)


def dict_chunks(records: Iterable[Any], chunk_size: int, root: Path | None) -> Iterator[Chunk]:
    b = _Builder(root)
    for position, record in enumerate(records):
        b.add(record, position)
        if len(b) >= chunk_size:
            yield b.chunk()
            b = _Builder(root)
    if len(b):
        yield b.chunk()


def jsonl_records(path: Path) -> Iterator[Any]:
    """Records of a JSONL file; a malformed line becomes ``_BadLine`` (its number and reason)."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                yield _BadLine(f"line {n}", f"line {n} is not valid JSON: {e.msg} at column {e.colno}")


@dataclass(frozen=True)
class _BadLine:
    id: str
    reason: str


def jsonl_chunks(path: Path, chunk_size: int, root: Path | None) -> Iterator[Chunk]:
    b = _Builder(root)
    for position, record in enumerate(jsonl_records(path)):
        if isinstance(record, _BadLine):
            b.add_error(record.id, record.reason)
        else:
            b.add(record, position)
        if len(b) >= chunk_size:
            yield b.chunk()
            b = _Builder(root)
    if len(b):
        yield b.chunk()


# -- Arrow (Parquet) records: column-wise --------------------------------------------------------


def arrow_chunks(table: Any, chunk_size: int, root: Path | None, start: int = 0) -> Iterator[Chunk]:
    """Chunks of a pyarrow Table / RecordBatch, read column-wise (no Python loop per record)."""
    for offset in range(0, table.num_rows, chunk_size):
        yield arrow_chunk(table.slice(offset, chunk_size), root, start + offset)


def arrow_chunk(table: Any, root: Path | None, start: int = 0) -> Chunk:
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    names = table.schema.names
    ids = table.column("id").to_pylist() if "id" in names else list(range(start, start + n))
    errors: list[str | None] = [None] * n
    tt = np.full(n, -1, np.int64)
    if "text_tokens" in names:
        col = table.column("text_tokens")
        vals = col.to_numpy(zero_copy_only=False) if col.null_count == 0 else \
            pc.fill_null(col, -1).to_numpy(zero_copy_only=False)
        tt = np.asarray(vals).astype(np.int64, copy=False)
    texts = table.column("text").to_pylist() if "text" in names else None
    items = {}
    for m in MODALITIES:
        if m + "s" not in names:
            continue
        col = table.column(m + "s")
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if not pa.types.is_list(arr.type) and not pa.types.is_large_list(arr.type):
            raise InvalidInputError(f"column {m}s must be a list of structs, got {arr.type}")
        rec = np.asarray(pc.list_parent_indices(arr).to_numpy(zero_copy_only=False), np.int64)
        values = pc.list_flatten(arr)
        cols, paths = _struct_columns(m, values, root)
        items[m] = Items(rec, cols, paths)
    return Chunk(ids, tt, texts, errors, items)


def _struct_columns(m: str, values: Any, root: Path | None) -> tuple[dict[str, np.ndarray], list]:
    import pyarrow as pa

    k = len(values)
    cols = {}
    fields = {f.name for f in values.type} if pa.types.is_struct(values.type) else set()
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):  # bare paths
        return {f: np.full(k, np.nan) for f in FIELDS[m]}, [_resolve(p, root) for p in values.to_pylist()] or None
    for f in FIELDS[m]:
        name = next((a for a in (f, *ALIASES.get(f, ())) if a in fields), None)
        if name is None:
            cols[f] = np.full(k, np.nan)
            continue
        child = values.field(name)
        cols[f] = np.asarray(child.to_numpy(zero_copy_only=False), dtype=np.float64)  # nulls -> NaN
    paths = None
    if "path" in fields:
        raw = values.field("path")
        if raw.null_count < k:
            paths = [None if p is None else _resolve(p, root) for p in raw.to_pylist()]
    return cols, paths


def parquet_chunks(path: Path, chunk_size: int, root: Path | None, columns: list[str] | None = None) -> Iterator[Chunk]:
    """Stream a Parquet file batch by batch (bounded memory)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidInputError("reading Parquet needs pyarrow: pip install 'mmprep[data]'") from None
    start = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size, columns=columns):
        yield arrow_chunk(batch, root, start)
        start += batch.num_rows


def chunks(source: Any, chunk_size: int, root: str | os.PathLike | None = None) -> Iterator[Chunk]:
    """Chunks of any supported source (see the module docstring)."""
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be >= 1, got {chunk_size}")
    base = Path(root) if root is not None else None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InvalidInputError(f"manifest {str(path)!r} does not exist")
        base = base if base is not None else path.parent
        if path.suffix.lower() in (".parquet", ".pq"):
            return parquet_chunks(path, chunk_size, base)
        return jsonl_chunks(path, chunk_size, base)
    if type(source).__module__.startswith("pyarrow"):
        return arrow_chunks(source, chunk_size, base)
    if isinstance(source, dict):
        raise InvalidInputError("records must be an iterable of dicts (got one dict)")
    return dict_chunks(source, chunk_size, base)
