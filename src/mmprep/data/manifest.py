"""Token counts of a whole dataset from metadata: :func:`count_dataset` (``mmprep.count_dataset``).

Records stream in chunks (:mod:`.records`); per chunk, paths are probed (headers only), then every
modality is counted with **one** vectorized call of the family's ``count_*_tokens`` and summed
per record with ``np.bincount``. A record that fails (bad line, missing file, zero-length media,
an image the model rejects) keeps its row with ``error`` set and counts of -1; the others go on.

What the columns count (tokens of the model's prompt):

* ``image_tokens`` / ``video_tokens`` / ``audio_tokens``: embedding slots, exactly what the
  family's ``count_*_tokens`` (= its plans) give.
* ``text_tokens``: every other prompt token. Taken from the record's ``text_tokens``, or, when
  the record has ``text`` and ``tokenizer=`` is given, computed exactly by the family's
  metadata-only ``prompt()`` (then it includes media wrappers such as timestamps and tags, and
  the media columns come from the same prompt's plans). A record with neither counts 0.
* ``total_tokens``: their sum, the sample's length for packing.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MmprepError
from ..loading import load
from ..types import VideoMetadata
from .records import FIELDS, MODALITIES, Chunk, Items, chunks

OUT_COLUMNS = ("text_tokens", "image_tokens", "video_tokens", "audio_tokens", "total_tokens",
               "num_images", "num_videos", "num_audios")
DEFAULT_CHUNK = 65_536
MAX_VALUE = float(2**40)  # metadata at or above this is rejected (and would not cast to int64 exactly)


@dataclass
class DatasetCounts:
    """Per-record counts of a dataset (arrays of equal length, in input order).

    Failed records keep their place: ``errors[i]`` says why and their counts are -1.
    ``media[m]`` is the flat item table of modality ``m`` (``rec``: record index, the metadata
    columns after probing, ``tokens``), which :func:`mmprep.pack`'s ``shrink`` policy reads.
    """

    ids: list[Any]
    columns: dict[str, np.ndarray]
    errors: list[str | None]
    media: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def __getattr__(self, name: str) -> np.ndarray:
        cols = self.__dict__.get("columns")
        if cols is not None and name in cols:
            return cols[name]
        raise AttributeError(name)

    @property
    def failed(self) -> list[tuple[Any, str]]:
        """``(id, reason)`` of every failed record."""
        return [(self.ids[i], e) for i, e in enumerate(self.errors) if e is not None]

    @property
    def ok(self) -> np.ndarray:
        return self.columns["total_tokens"] >= 0

    def summary(self) -> dict[str, int]:
        ok = self.ok
        return {"records": len(self), "failed": int((~ok).sum()),
                **{c: int(self.columns[c][ok].sum()) for c in OUT_COLUMNS}}


# -- counting one chunk --------------------------------------------------------------------------


def _whole_positive(col: np.ndarray) -> np.ndarray:
    return np.isfinite(col) & (col > 0) & (np.floor(col) == col)


def _probe(family: Any, m: str, items: Items, chunk: Chunk, target_rate: int | None) -> np.ndarray:
    """Fill path items' metadata from their headers; returns a mask of usable items."""
    from ..io import audio as io_audio
    from ..io import image as io_image
    from ..io import video as io_video

    usable = np.ones(items.size, dtype=bool)
    for k, path in enumerate(items.path):
        if path is None:
            continue
        try:
            if m == "image":
                values = tuple(io_image.probe_image(path))
            elif m == "video":
                meta = io_video.probe_video(path)
                values = (meta.total_frames, meta.fps, meta.height, meta.width)
            else:
                meta = io_audio.probe_audio(path)
                values = (meta.num_samples, meta.sampling_rate)
        except Exception as e:  # noqa: BLE001 - a missing or corrupt file fails its record only
            usable[k] = False
            chunk.fail(int(items.rec[k]), f"{m} {path}: {_reason(e)}")
            continue
        for f, v in zip(FIELDS[m], values):
            items.cols[f][k] = float(v)
    return usable


def _reason(e: BaseException) -> str:
    if isinstance(e, MmprepError):
        return str(e)
    if isinstance(e, FileNotFoundError):
        return f"file not found ({e.filename})"
    return f"{type(e).__name__}: {e}"


def _count_items(family: Any, m: str, items: Items, usable: np.ndarray, target_rate: int | None) -> tuple[np.ndarray, list]:
    """Tokens per item (-1 where it fails) and the per-item reasons of the bad metadata."""
    c = items.cols
    reasons: list[str | None] = [None] * items.size
    valid = usable.copy()
    for f in FIELDS[m]:
        col = c[f]
        good = _whole_positive(col) if f not in ("fps", "rate") else (np.isfinite(col) & (col > 0))
        if f == "rate":
            good |= np.isnan(col)  # no rate: samples are at the model's rate
        for k in np.flatnonzero(valid & ~good):
            reasons[k] = f"{m}: {f} must be a positive number, got {col[k]}"
        valid &= good
        big = valid & (col >= MAX_VALUE)
        for k in np.flatnonzero(big):
            reasons[k] = f"{m}: {f} = {col[k]:.0f} is beyond any real media (limit 2**40)"
        good &= ~big
        valid &= good
    tokens = np.full(items.size, -1, dtype=np.int64)
    sel = np.flatnonzero(valid)
    if sel.size == 0:
        return tokens, reasons
    if m == "image":
        got = family.count_image_tokens(c["height"][sel].astype(np.int64), c["width"][sel].astype(np.int64),
                                        on_error="minus_one")
    elif m == "video":
        got = family.count_video_tokens(c["frames"][sel].astype(np.int64), c["fps"][sel], c["height"][sel].astype(np.int64),
                                        c["width"][sel].astype(np.int64), on_error="minus_one")
    else:
        got = family.count_audio_tokens(_audio_samples(c["samples"][sel], c["rate"][sel], target_rate),
                                        on_error="minus_one")
    tokens[sel] = np.asarray(got, dtype=np.int64).ravel()
    return tokens, reasons


def _audio_samples(samples: np.ndarray, rate: np.ndarray, target: int | None) -> np.ndarray:
    """Samples at the model's rate: resampled as the loader sizes it (per distinct source rate)."""
    from ..io.audio import resampled_length

    out = samples.astype(np.int64)
    for r in np.unique(rate[np.isfinite(rate)]).tolist():
        sel = rate == r
        out[sel] = resampled_length(samples[sel].astype(np.int64), r, target)
    return out


def _why(family: Any, m: str, items: Items, k: int, target_rate: int | None) -> str:
    """The plan's own error for a failed item (only failures are planned one by one)."""
    c = items.cols
    try:
        if m == "image":
            family.plan_image(int(c["height"][k]), int(c["width"][k]))
        elif m == "video":
            family.plan_video(VideoMetadata(int(c["frames"][k]), float(c["fps"][k]), int(c["height"][k]),
                                            int(c["width"][k])))
        else:
            n = _audio_samples(c["samples"][k:k + 1], c["rate"][k:k + 1], target_rate)
            family.plan_audio(int(n[0]))
    except Exception as e:  # noqa: BLE001
        return f"{m}: {_reason(e)}"
    return f"{m}: the model cannot plan it"


def count_chunk(
    family: Any, chunk: Chunk, tokenizer: Any = None, target_rate: int | None = None
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """Count one chunk (failures go to ``chunk.errors``): the output columns (int64, -1 =
    failed) and the per-modality item tables."""
    n = len(chunk)
    out = {c: np.zeros(n, dtype=np.int64) for c in OUT_COLUMNS}
    media = {}
    for m in MODALITIES:
        items = chunk.items.get(m)
        if items is None or items.size == 0:
            continue
        out[f"num_{m}s"] = np.bincount(items.rec, minlength=n).astype(np.int64)
        try:
            usable = _probe(family, m, items, chunk, target_rate) if items.path is not None \
                else np.ones(items.size, dtype=bool)
            tokens, reasons = _count_items(family, m, items, usable, target_rate)
        except MmprepError as e:  # a modality the model lacks: every record using it fails
            for r in np.unique(items.rec).tolist():
                chunk.fail(r, _reason(e))
            tokens, reasons = np.full(items.size, -1, np.int64), [None] * items.size
            usable = np.zeros(items.size, dtype=bool)
        for k in np.flatnonzero(tokens < 0):
            r = int(items.rec[k])
            if chunk.errors[r] is None:
                chunk.fail(r, reasons[k] or _why(family, m, items, int(k), target_rate))
        out[f"{m}_tokens"] = np.bincount(items.rec, weights=np.maximum(tokens, 0), minlength=n).astype(np.int64)
        media[m] = {"rec": items.rec, **{f: items.cols[f] for f in FIELDS[m]}, "tokens": tokens}
    text = chunk.text_tokens.copy()
    need = np.flatnonzero(text < 0)
    if chunk.texts is not None and need.size:
        has_text = [int(i) for i in need if chunk.texts[i] is not None]
        if tokenizer is None:
            for i in has_text:
                chunk.fail(i, "text given without text_tokens: pass tokenizer= to count it")
        elif has_text:
            from .exact import prompt_counts

            prompt_counts(family, chunk, has_text, media, tokenizer, out, text, target_rate)
    text[text < 0] = 0
    out["text_tokens"] = text
    out["total_tokens"] = text + out["image_tokens"] + out["video_tokens"] + out["audio_tokens"]
    bad = chunk.failed_mask()
    for c in ("text_tokens", "image_tokens", "video_tokens", "audio_tokens", "total_tokens"):
        out[c][bad] = -1
    return out, media


# -- the dataset loop ------------------------------------------------------------------------------


def count_dataset(
    records: Any,
    model: Any,
    *,
    tokenizer: Any = None,
    out: str | os.PathLike | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    root: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> DatasetCounts:
    """Per-record text/image/video/audio/total tokens of a dataset, from metadata.

    ``records``: an iterable of dicts, a JSONL or Parquet path, or a pyarrow Table (field names
    in :mod:`mmprep.data.records`). ``model``: a name for ``mmprep.load`` or a loaded family.
    ``tokenizer``: counts ``text`` exactly with the family's metadata-only ``prompt()``.
    ``out``: also write one row per record to ``.jsonl`` or ``.parquet`` as chunks finish.
    ``root``: where relative media paths start (default: the manifest's folder, else the cwd).
    ``progress``: a tqdm bar on stderr (default: when stderr is a terminal).

    Never raises for a bad record: see ``.failed`` / ``.errors``.
    """
    family = load(model) if isinstance(model, (str, os.PathLike)) else model
    target_rate = _target_rate(family)
    writer = _writer(out) if out is not None else None
    bar = _bar(records, progress)
    ids: list[Any] = []
    errors: list[str | None] = []
    parts: dict[str, list[np.ndarray]] = {c: [] for c in OUT_COLUMNS}
    media_parts: dict[str, list[dict]] = {m: [] for m in MODALITIES}
    start = 0
    try:
        for chunk in chunks(records, chunk_size, root):
            cols, media = count_chunk(family, chunk, tokenizer, target_rate)
            if writer is not None:
                writer.write(chunk.ids, cols, chunk.errors)
            ids.extend(chunk.ids)
            errors.extend(chunk.errors)
            for c in OUT_COLUMNS:
                parts[c].append(cols[c])
            for m, table in media.items():
                media_parts[m].append({**table, "rec": table["rec"] + start})
            start += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.close()
    columns = {c: np.concatenate(v) if v else np.zeros(0, np.int64) for c, v in parts.items()}
    media_out = {m: {k: np.concatenate([p[k] for p in ps]) for k in ps[0]} for m, ps in media_parts.items() if ps}
    return DatasetCounts(ids, columns, errors, media_out)


def _target_rate(family: Any) -> int | None:
    """The model's audio rate (from a plan of one second at it), or None without audio."""
    if "audio" not in getattr(family, "modalities", ()):
        return None
    for n in (16_000, 48_000, 8_000):
        try:
            return int(family.plan_audio(n).sampling_rate)
        except MmprepError:
            continue
    return None


def _bar(records: Any, progress: bool | None):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm import tqdm

    total = None
    if isinstance(records, (str, os.PathLike)) and str(records).endswith((".parquet", ".pq")):
        try:
            import pyarrow.parquet as pq

            total = pq.ParquetFile(records).metadata.num_rows
        except Exception:  # noqa: BLE001 - the bar is cosmetic
            total = None
    elif hasattr(records, "__len__"):
        total = len(records)
    return tqdm(total=total, desc="counting", unit="rec", file=sys.stderr, leave=False, unit_scale=True)


# -- output ------------------------------------------------------------------------------------------


def _writer(path: str | os.PathLike):
    path = os.fspath(path)
    if path.endswith((".parquet", ".pq")):
        return _ParquetWriter(path)
    return _JsonlWriter(path)


class _JsonlWriter:
    def __init__(self, path: str):
        self.f = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close(), chunk by chunk

    def write(self, ids: list, cols: dict[str, np.ndarray], errors: list) -> None:
        import json

        lists = {c: cols[c].tolist() for c in OUT_COLUMNS}
        lines = []
        for i, rid in enumerate(ids):
            row = {"id": rid, **{c: lists[c][i] for c in OUT_COLUMNS}, "error": errors[i]}
            lines.append(json.dumps(row))
        self.f.write("\n".join(lines) + ("\n" if lines else ""))

    def close(self) -> None:
        self.f.close()


class _ParquetWriter:
    def __init__(self, path: str):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            from ..errors import InvalidInputError

            raise InvalidInputError("writing Parquet needs pyarrow: pip install 'mmprep[data]'") from None
        self.pa = pa
        self.schema = pa.schema([("id", pa.string()), *((c, pa.int64()) for c in OUT_COLUMNS), ("error", pa.string())])
        self.w = pq.ParquetWriter(path, self.schema)

    def write(self, ids: list, cols: dict[str, np.ndarray], errors: list) -> None:
        pa = self.pa
        arrays = [pa.array([str(i) for i in ids], pa.string()), *(pa.array(cols[c]) for c in OUT_COLUMNS),
                  pa.array(errors, pa.string())]
        self.w.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self.w.close()


def read_counts(path: str | os.PathLike) -> DatasetCounts:
    """Read a counts file written by ``count_dataset(out=...)`` back (JSONL or Parquet)."""
    path = os.fspath(path)
    if path.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        t = pq.read_table(path)
        ids, errors = t.column("id").to_pylist(), t.column("error").to_pylist()
        cols = {c: t.column(c).to_numpy().astype(np.int64) for c in OUT_COLUMNS}
        return DatasetCounts(ids, cols, errors)
    import json

    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    cols = {c: np.array([r[c] for r in rows], dtype=np.int64) for c in OUT_COLUMNS}
    return DatasetCounts([r["id"] for r in rows], cols, [r["error"] for r in rows])

