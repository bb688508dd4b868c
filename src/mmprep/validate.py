"""Small helpers every family module uses: overrides, batch error handling, result arrays."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

import numpy as np

from .errors import InvalidInputError, UnknownModelError, item_prefix

S = TypeVar("S")

ON_ERROR = ("raise", "minus_one")

# Limits on what enters (docs/limits.md). Each is far above anything the reference can be given
# or produce, and keeps every int64 product and float64 quotient of the sizing code exact.
MAX_SIDE = 2**28  # px per side: above PIL's decompression-bomb limit (~1.8e8 px) even for a 1-px-high image
MAX_AREA = 2**52  # px: height * width stays exact in float64 (and far from int64 overflow)
MAX_TOKENS = 2**22  # tokens: one prompt's ids (4,194,304; the largest context of these models is 131,072)
MAX_COUNT = 2**40  # a frame count, a sample count or a token length given as an argument


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


SPEC_INT_MAX = 2**31 - 1  # any int a checkpoint holds (ids, lengths, patch counts)
SPEC_SMALL_MAX = 2**16  # px sizes and factors that size loops and allocations (patch, tile, FFT)
SPEC_FLOAT_MAX = 2.0**31


def check_spec(spec: Any, *, non_negative: tuple[str, ...] = (), any_int: tuple[str, ...] = (),
               small: tuple[str, ...] = ()) -> None:
    """Reject spec values no checkpoint can have: non-int sizes, sizes <= 0, NaN/inf floats, and
    values so large that the arithmetic downstream would overflow or allocate without bound.

    Int fields must be ints >= 1 (``non_negative``: >= 0, ``any_int``: any int, e.g. "<= 0 means
    no cap") and at most :data:`SPEC_INT_MAX` (``*_pixels`` areas: :data:`MAX_AREA`; ``small``
    fields: :data:`SPEC_SMALL_MAX`); float fields must be finite, > 0 unless listed in
    ``non_negative``, and at most :data:`SPEC_FLOAT_MAX`. ``None`` is allowed where the field's
    default is ``None``-able (its annotation says so).
    """
    for f in dataclasses.fields(spec):
        v = getattr(spec, f.name)
        kind = str(f.type)
        name = f"{type(spec).__name__}.{f.name}"
        if v is None and "None" in kind:
            continue
        if kind.startswith("tuple["):
            _check_tuple(spec, f.name, kind, v)
            continue
        if kind == "str":
            if not isinstance(v, str) or not v:
                raise InvalidInputError(f"{name} must be a non-empty string, got {v!r}")
            continue
        if not (kind.startswith("int") or kind.startswith("float") or kind.startswith("bool")):
            continue
        if kind.startswith("bool"):
            if not isinstance(v, (bool, np.bool_)):
                raise InvalidInputError(f"{name} must be a bool, got {v!r}")
            continue
        is_int = isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
        if kind.startswith("int"):
            if not is_int:
                raise InvalidInputError(f"{name} must be an int, got {v!r}")
            floor = None if f.name in any_int else (0 if f.name in non_negative else 1)
            most = SPEC_SMALL_MAX if f.name in small else MAX_AREA if f.name.endswith("_pixels") else SPEC_INT_MAX
            if abs(v) > most:
                raise InvalidInputError(f"{name} must be at most {most}, got {v!r}")
        else:
            if not (is_int or isinstance(v, (float, np.floating))) or not math.isfinite(v):
                raise InvalidInputError(f"{name} must be a finite number, got {v!r}")
            if abs(v) > SPEC_FLOAT_MAX:
                raise InvalidInputError(f"{name} must be at most {SPEC_FLOAT_MAX:g}, got {v!r}")
            if f.name in any_int:
                continue
            floor = 0 if f.name in non_negative else None
            if floor is None and v <= 0:
                raise InvalidInputError(f"{name} must be positive, got {v!r}")
        if floor is not None and v < floor:
            raise InvalidInputError(f"{name} must be >= {floor}, got {v!r}")


def _check_tuple(spec: Any, name: str, kind: str, v: Any) -> None:
    """A ``tuple[float, float, float]``-style field: that many finite numbers (ints for
    ``tuple[int, ...]``); a normalization ``*_std`` must be positive (pixels would be inf)."""
    arity = kind.count(",") + 1
    integer = kind.startswith("tuple[int")
    ok = isinstance(v, (tuple, list)) and len(v) == arity and all(
        isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))
        and math.isfinite(x) and (not integer or float(x).is_integer()) for x in v)
    if ok and name.endswith("std"):
        ok = all(x > 0 for x in v)
    if not ok:
        what = "positive" if name.endswith("std") else "finite"
        raise InvalidInputError(
            f"{type(spec).__name__}.{name} must be {arity} {what} {'ints' if integer else 'numbers'}, got {v!r}"
        )


def check_int(value: Any, what: str, *, minimum: int = 0, maximum: int = MAX_COUNT) -> int:
    """An int argument (a whole float is accepted) within ``[minimum, maximum]``, else an error
    naming ``what``; bools, NaN, inf, strings and None are refused."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        ok, value = True, int(value)
    if not ok or not minimum <= value <= maximum:
        raise InvalidInputError(f"{what} must be an int in [{minimum}, {maximum}], got {value!r}")
    return int(value)


def check_number(value: Any, what: str, *, minimum: float = 0.0, strict: bool = True,
                 maximum: float = math.inf) -> float:
    """A finite real argument ``> minimum`` (``>=`` unless ``strict``) and ``<= maximum``."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not ok or not math.isfinite(value) or value < minimum or (strict and value == minimum) or value > maximum:
        bound = f"{'>' if strict else '>='} {minimum}" + (f" and <= {maximum}" if maximum < math.inf else "")
        raise InvalidInputError(f"{what} must be a finite number {bound}, got {value!r}")
    return value


def check_on_error(on_error: str) -> None:
    if not isinstance(on_error, str) or on_error not in ON_ERROR:
        raise InvalidInputError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")


def size_arrays(heights, widths, on_error: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int64 sizes plus a validity mask; raises for the first bad item unless asked not to.

    Bad items (NaN, inf, fractions, sizes <= 0 or above :data:`MAX_SIDE` / :data:`MAX_AREA`)
    are replaced by 1 x 1 and marked False with ``on_error="minus_one"``.
    """
    check_on_error(on_error)
    h, w, ok = as_size_arrays(heights, widths)
    if not ok.all() and on_error == "raise":
        i = int(np.flatnonzero(~ok.ravel())[0])
        raise InvalidInputError(f"{item_prefix(i)}{size_problem(_element(heights, i), _element(widths, i))}")
    return h, w, ok


def _element(values, i: int):
    """The ``i``-th element of a (flattened) size input, as given (for error messages)."""
    return np.asarray(values).ravel()[i]


def size_problem(height, width) -> str:
    """Why one ``(height, width)`` is refused (the message of :func:`check_size`)."""
    try:
        check_size(height, width)
    except InvalidInputError as e:
        return str(e)
    return f"image {height}x{width} is not a valid size"


def _int_array(a: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(int64 values, ok)``: floats must be whole and finite; bad entries become 1."""
    if a.dtype.kind == "f":
        ok = np.isfinite(a) & (a == np.trunc(a)) & (np.abs(a) <= MAX_AREA)
        return np.where(ok, a, 1).astype(np.int64), ok
    if a.dtype.kind == "u" and a.dtype.itemsize >= 8:
        ok = a <= np.uint64(MAX_AREA)
        return np.where(ok, a, 1).astype(np.int64), ok
    if a.dtype.kind not in "iu" or a.dtype == bool:
        raise InvalidInputError(f"{name} must be numeric, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False), np.ones(a.shape, bool)


def as_size_arrays(heights, widths) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorized sizes as int64 arrays of equal shape and a mask of the valid ones.

    Invalid entries (not whole, not finite, <= 0, a side above :data:`MAX_SIDE`, an area above
    :data:`MAX_AREA`) are set to 1 so later arithmetic stays harmless; the caller applies its
    error policy to the mask.
    """
    h = np.asarray(heights)
    w = np.asarray(widths)
    if h.shape != w.shape:
        raise InvalidInputError(f"heights and widths differ in shape: {h.shape} vs {w.shape}")
    h, h_ok = _int_array(h, "heights")
    w, w_ok = _int_array(w, "widths")
    ok = h_ok & w_ok & (h > 0) & (w > 0) & (h <= MAX_SIDE) & (w <= MAX_SIDE)
    h, w = np.where(ok, h, 1), np.where(ok, w, 1)
    ok &= (h * w) <= MAX_AREA  # sides <= 2**28 each: the product fits int64
    return np.where(ok, h, 1), np.where(ok, w, 1), ok


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
        if as_int > MAX_SIDE:
            raise InvalidInputError(f"{item_prefix(index)}{name} {as_int} px is above the limit of {MAX_SIDE} px per side")
        out.append(as_int)
    if out[0] * out[1] > MAX_AREA:
        raise InvalidInputError(
            f"{item_prefix(index)}image {out[0]}x{out[1]} has {out[0] * out[1]} px, above the limit of {MAX_AREA} px"
        )
    return out[0], out[1]


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
