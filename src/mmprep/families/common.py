"""Small helpers every family module uses: overrides, batch error handling, result arrays."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import numpy as np

from ..errors import InvalidInputError, UnknownModelError, item_prefix
from ..geometry import as_size_arrays

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
