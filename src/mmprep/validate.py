"""Small helpers every family module uses: overrides, batch error handling, result arrays."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

import numpy as np

from .errors import InvalidInputError, UnknownModelError, item_prefix

S = TypeVar("S")

ON_ERROR = ("raise", "minus_one")


def with_overrides(spec: S, overrides: dict[str, Any]) -> S:
    """``dataclasses.replace`` that names unknown fields instead of a bare TypeError."""
    if not overrides:
        return spec
    names = {f.name for f in dataclasses.fields(spec)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise UnknownModelError(
            f"unknown {type(spec).__name__} field(s) {unknown}; known fields: {sorted(names)}"
        )
    return dataclasses.replace(spec, **overrides)  # type: ignore[type-var]


def check_spec(spec: Any, *, non_negative: tuple[str, ...] = (), any_int: tuple[str, ...] = ()) -> None:
    """Reject spec values no checkpoint can have: non-int sizes, sizes <= 0, NaN/inf floats.

    Int fields must be ints >= 1 (``non_negative``: >= 0, ``any_int``: any int, e.g. "<= 0 means
    no cap"); float fields must be finite and > 0 unless listed in ``non_negative``. ``None`` is
    allowed where the field's default is ``None``-able (its annotation says so).
    """
    for f in dataclasses.fields(spec):
        v = getattr(spec, f.name)
        kind = str(f.type)
        if v is None and "None" in kind:
            continue
        if kind.startswith("int") or kind.startswith("float") or kind.startswith("bool"):
            pass
        else:
            continue
        if kind.startswith("bool"):
            if not isinstance(v, (bool, np.bool_)):
                raise InvalidInputError(f"{type(spec).__name__}.{f.name} must be a bool, got {v!r}")
            continue
        is_int = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
        if kind.startswith("int"):
            if not is_int:
                raise InvalidInputError(f"{type(spec).__name__}.{f.name} must be an int, got {v!r}")
            floor = None if f.name in any_int else (0 if f.name in non_negative else 1)
        else:
            if not (is_int or isinstance(v, (float, np.floating))) or not np.isfinite(v):
                raise InvalidInputError(f"{type(spec).__name__}.{f.name} must be a finite number, got {v!r}")
            if f.name in any_int:
                continue
            floor = 0 if f.name in non_negative else None
            if floor is None and v <= 0:
                raise InvalidInputError(f"{type(spec).__name__}.{f.name} must be positive, got {v!r}")
        if floor is not None and v < floor:
            raise InvalidInputError(f"{type(spec).__name__}.{f.name} must be >= {floor}, got {v!r}")


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise InvalidInputError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")


def size_arrays(heights, widths, on_error: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int64 sizes plus a validity mask; raises for the first bad item unless asked not to."""
    check_on_error(on_error)
    h, w = as_size_arrays(heights, widths)
    bad = (h <= 0) | (w <= 0)
    if bad.any() and on_error == "raise":
        i = int(np.flatnonzero(bad.ravel())[0])
        raise InvalidInputError(
            f"{item_prefix(i)}image size must be positive, got {int(h.ravel()[i])}x{int(w.ravel()[i])}"
        )
    if not bad.any():
        return h, w, ~bad
    return np.where(bad, 1, h), np.where(bad, 1, w), ~bad


def finish_counts(counts: np.ndarray, ok: np.ndarray, on_error: str, why) -> np.ndarray:
    """Apply the batch error policy: raise naming the first failed item, or mark it -1."""
    if not ok.all():
        if on_error == "raise":
            i = int(np.flatnonzero(~ok.ravel())[0])
            raise InvalidInputError(f"{item_prefix(i)}{why(i)}")
        counts = np.where(ok, counts, -1)
    return counts.astype(np.int64)


def check_size(height: object, width: object, index: int | None = None) -> tuple[int, int]:
    """Return ``(height, width)`` as ints, or raise for None, NaN, non-integers and sizes <= 0."""
    out = []
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or value is None:
            raise InvalidInputError(f"{item_prefix(index)}{name} must be a positive int, got {value!r}")
        if isinstance(value, (float, np.floating)):
            if not math.isfinite(value) or value != int(value):
                raise InvalidInputError(f"{item_prefix(index)}{name} must be a positive int, got {value!r}")
            value = int(value)
        try:
            as_int = int(value)  # numpy ints, ints
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"{item_prefix(index)}{name} must be a positive int, got {value!r}"
            ) from None
        if as_int != value or as_int <= 0:
            raise InvalidInputError(f"{item_prefix(index)}{name} must be a positive int, got {value!r}")
        out.append(as_int)
    return out[0], out[1]


def as_size_arrays(heights, widths) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized inputs as int64 arrays of equal shape (sizes are checked by the caller)."""
    h = np.asarray(heights)
    w = np.asarray(widths)
    if h.shape != w.shape:
        raise InvalidInputError(f"heights and widths differ in shape: {h.shape} vs {w.shape}")
    for name, a in (("heights", h), ("widths", w)):
        if a.dtype.kind == "f":
            bad = ~np.isfinite(a) | (a != np.trunc(a))
            if bad.any():
                i = int(np.flatnonzero(bad.ravel())[0])
                raise InvalidInputError(f"item {i}: {name[:-1]} must be a positive int, got {a.ravel()[i]!r}")
        elif a.dtype.kind not in "iu":
            raise InvalidInputError(f"{name} must be numeric, got dtype {a.dtype}")
    return h.astype(np.int64, copy=False), w.astype(np.int64, copy=False)


class HfConfig(dict):
    """One checkpoint JSON object (or a section of one) with typed reads for ``from_hf``.

    ``where`` names the file (and section) in error messages; ``origins`` maps keys that came from
    another file to that file's name (``load_checkpoint`` merges several files into one mapping).
    A missing key and a JSON ``null`` both read as ``None``; any other value of the wrong type or
    range raises :class:`InvalidInputError` naming the file and the key, never a TypeError.
    """

    def __init__(self, data: Any = None, where: str = "checkpoint", origins: dict[str, str] | None = None):
        if isinstance(data, HfConfig):
            where, origins = data.where, {**data.origins, **(origins or {})}
        elif data is not None and not isinstance(data, dict):
            raise InvalidInputError(f"{where}: expected a JSON object, got {type(data).__name__}")
        super().__init__(data or {})
        self.where, self.origins = where, dict(origins or {})

    def where_of(self, key: str) -> str:
        return self.origins.get(key, self.where)

    def _bad(self, key: str, what: str) -> InvalidInputError:
        return InvalidInputError(f"{self.where_of(key)}: key {key!r} must be {what}, got {self.get(key)!r}")

    def section(self, key: str) -> HfConfig:
        """A nested object (``{}`` when absent or null)."""
        v = self.get(key)
        if v is not None and not isinstance(v, dict):
            raise self._bad(key, "a JSON object or null")
        return HfConfig(v, f"{self.where_of(key)} {key}")

    def get_int(self, key: str, *, minimum: int | None = 1) -> int | None:
        v = self.get(key)
        if v is None:
            return None
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and float(v).is_integer()
        if not ok or (minimum is not None and v < minimum):
            raise self._bad(key, "an int" + ("" if minimum is None else f" >= {minimum}"))
        return int(v)

    def get_float(self, key: str, *, minimum: float = 0.0, strict: bool = True) -> float | None:
        v = self.get(key)
        if v is None:
            return None
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) \
                or v < minimum or (strict and v == minimum):
            raise self._bad(key, f"a finite number {'>' if strict else '>='} {minimum}")
        return float(v)

    def get_bool(self, key: str) -> bool | None:
        v = self.get(key)
        if v is not None and not isinstance(v, bool):
            raise self._bad(key, "true or false")
        return v

    def get_str(self, key: str) -> str | None:
        v = self.get(key)
        if v is not None and not isinstance(v, str):
            raise self._bad(key, "a string")
        return v

    def get_floats(self, key: str, n: int = 3, *, integer: bool = False) -> tuple | None:
        """A list of ``n`` finite numbers (``integer``: whole numbers, returned as ints)."""
        v = self.get(key)
        if v is None:
            return None
        if not isinstance(v, (list, tuple)) or len(v) != n or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)
                and (not integer or float(x).is_integer()) for x in v):
            raise self._bad(key, f"a list of {n} finite {'whole ' if integer else ''}numbers")
        return tuple(int(x) if integer else float(x) for x in v)
