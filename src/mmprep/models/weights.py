"""Load safetensors checkpoints into a module through an explicit name table.

A family module lists every checkpoint tensor it expects and the parameter that receives it
(``{"model.visual.blocks.0.norm1.weight": "visual.blocks.0.norm1.weight", ...}``). Loading then
checks, before reading any tensor data:

* every checkpoint key is in the table (else: *unexpected*),
* every table entry is in the checkpoint (else: *missing*),
* every table target is a parameter of the module and every parameter is a target,
* every shape matches,

and raises one :class:`~mmprep.errors.WeightsError` listing all problems. The module is built on
the meta device and receives the tensors with ``load_state_dict(assign=True)``: no double
allocation, no random initialisation.

Two more table forms, both explicit and checked like the plain one:

* ``key -> Stack(param, index, offset)``: the key fills ``param[index, offset:offset + rows]``
  (``rows`` = the key's first dim). Per-expert checkpoint tensors become one fused ``(experts, ...)``
  parameter this way (``experts.3.up_proj.weight -> Stack("...gate_up_proj", 3, moe_width)``). The
  stacked parts of a parameter must tile it exactly: every index, every row, once.
* ``"prefix.*" -> SKIP``: every checkpoint key under ``prefix.`` is known and not loaded (e.g. the
  multi-token-prediction layer GLM-4.5V checkpoints carry); ``key -> SKIP`` (or ``None``): one
  known tensor the model does not use, skipped when present and not required.

A model whose checkpoints come in more than one layout (GLM-4.6V: per-expert tensors on the Hub,
fused ones from transformers' ``save_pretrained`` of the ``Glm46V`` class) gives a tuple of tables;
the first one the checkpoint satisfies is used, else the closest layout's problems are raised.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import WeightsError

_LIST_LIMIT = 20  # names shown per category in an error message


@dataclass(frozen=True)
class Stack:
    """Table value: the checkpoint key fills ``param[index, offset:offset + rows]`` of a stacked parameter."""

    param: str
    index: int
    offset: int = 0


SKIP = "<skip>"  # table value of a ``"prefix.*"`` key: checkpoint keys under the prefix are not loaded

Table = Mapping[str, "str | Stack"]


def _is_skip(value) -> bool:
    return value is None or (isinstance(value, str) and value == SKIP)


def split_table(table: Table, keys) -> tuple[dict[str, str | Stack], set[str], list[str]]:
    """``(entries, skipped checkpoint keys, skip prefixes that matched nothing)`` of a table over ``keys``.

    ``SKIP`` (or ``None``) as a value: a ``"prefix.*"`` key skips every checkpoint key under the
    prefix; an exact key is a known tensor the model does not use (skipped when present, not required).
    """
    prefixes = [k[:-1] for k, v in table.items() if _is_skip(v) and k.endswith(".*")]
    exact = {k for k, v in table.items() if _is_skip(v) and not k.endswith(".*")}
    entries = {k: v for k, v in table.items() if not _is_skip(v)}
    skipped = {k for k in keys if k in exact or any(k.startswith(p) for p in prefixes)}
    unused = [p + "*" for p in prefixes if not any(k.startswith(p) for k in keys)]
    return entries, skipped, unused


def checkpoint_files(directory: str | Path) -> dict[str, Path]:
    """Checkpoint key -> safetensors file, from ``model.safetensors.index.json`` or the single files."""
    d = Path(directory)
    index = d / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError) as e:
            raise WeightsError(f"{index}: unreadable index ({e})") from None
        files = {name: d / fname for name, fname in weight_map.items()}
        for f in sorted(set(files.values())):
            if not f.is_file():
                raise WeightsError(f"{index} names {f.name}, which is not in {d}")
        return files
    singles = sorted(d.glob("*.safetensors"))
    if not singles:
        raise WeightsError(f"{d}: no model.safetensors or model.safetensors.index.json")
    from safetensors import safe_open

    out: dict[str, Path] = {}
    for f in singles:
        with safe_open(str(f), framework="pt") as handle:
            for name in handle.keys():
                if name in out:
                    raise WeightsError(f"{name} appears in both {out[name].name} and {f.name}")
                out[name] = f
    return out


def checkpoint_shapes(files: Mapping[str, Path]) -> dict[str, tuple[int, ...]]:
    """Shapes from the safetensors headers (no tensor data is read)."""
    from safetensors import safe_open

    by_file: dict[Path, list[str]] = {}
    for name, f in files.items():
        by_file.setdefault(f, []).append(name)
    shapes: dict[str, tuple[int, ...]] = {}
    for f, names in by_file.items():
        with safe_open(str(f), framework="pt") as handle:
            present = set(handle.keys())
            for name in names:
                if name not in present:
                    raise WeightsError(f"the index places {name} in {f.name}, which does not hold it")
                shapes[name] = tuple(handle.get_slice(name).get_shape())
    return shapes


def _fmt(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    more = f" (+{len(items) - _LIST_LIMIT} more)" if len(items) > _LIST_LIMIT else ""
    return f"{len(items)} {title}: {shown}{more}"


def check_table(
    table: Table, shapes: Mapping[str, tuple[int, ...]], params: Mapping[str, tuple[int, ...]],
    where: str = "checkpoint",
) -> None:
    """Raise one :class:`WeightsError` naming every missing, unexpected or mis-shaped tensor."""
    entries, skipped, _ = split_table(table, shapes)
    problems = []
    missing = sorted(k for k in entries if k not in shapes)
    unexpected = sorted(k for k in shapes if k not in entries and k not in skipped)
    plain = [t for t in entries.values() if isinstance(t, str)]
    stacked = {t.param for t in entries.values() if isinstance(t, Stack)}
    dup = sorted({t for t in plain if plain.count(t) > 1} | (set(plain) & stacked))
    unknown = sorted(t for t in set(plain) | stacked if t not in params)
    uncovered = sorted(p for p in params if p not in set(plain) | stacked)
    bad_shape = sorted(
        f"{k} {list(shapes[k])} (expected {list(params[t])})"
        for k, t in entries.items()
        if isinstance(t, str) and k in shapes and t in params and tuple(shapes[k]) != tuple(params[t])
    )
    bad_shape += _check_stacks(entries, shapes, params)
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("mis-shaped keys", bad_shape), ("table targets used twice", dup),
                         ("table targets that are not parameters", unknown),
                         ("parameters no checkpoint key fills", uncovered)):
        if items:
            problems.append(_fmt(title, items))
    if problems:
        raise WeightsError(f"{where}: " + "; ".join(problems))


def _check_stacks(entries: Mapping[str, str | Stack], shapes, params) -> list[str]:
    """Shape problems of stacked parts; each stacked parameter must be tiled exactly once."""
    bad: list[str] = []
    parts: dict[str, dict[int, list[tuple[int, int]]]] = {}
    for k, t in entries.items():
        if not isinstance(t, Stack) or k not in shapes or t.param not in params:
            continue
        full, got = params[t.param], tuple(shapes[k])
        rows = got[0] if got else 0
        if len(got) != len(full) - 1 or got[1:] != full[2:] or not 0 <= t.index < full[0] \
                or t.offset < 0 or t.offset + rows > full[1]:
            bad.append(f"{k} {list(got)} (expected rows of {t.param} {list(full)} at [{t.index}, {t.offset}:])")
            continue
        parts.setdefault(t.param, {}).setdefault(t.index, []).append((t.offset, t.offset + rows))
    for name, by_index in parts.items():
        full = params[name]
        for i in range(full[0]):
            spans = sorted(by_index.get(i, []))
            ends = [0] + [b for _, b in spans]
            if [a for a, _ in spans] != ends[:-1] or ends[-1] != full[1]:
                bad.append(f"{name}[{i}] rows {spans} do not tile 0:{full[1]} exactly")
    return bad


def _pick_layout(tables: Table | tuple[Table, ...], shapes, params, where: str) -> Table:
    """The first table the checkpoint satisfies; else the :class:`WeightsError` of the closest
    layout (fewest missing + unexpected keys), so the message names what is really wrong."""
    layouts = (tables,) if isinstance(tables, Mapping) else tuple(tables)
    errors: list[tuple[int, int, WeightsError]] = []
    for i, t in enumerate(layouts):
        try:
            check_table(t, shapes, params, where=where)
            return t
        except WeightsError as e:
            entries, skipped, _ = split_table(t, shapes)
            distance = sum(k not in shapes for k in entries) + sum(k not in entries and k not in skipped for k in shapes)
            errors.append((distance, i, e))
    _, _, closest = min(errors, key=lambda x: x[:2])
    if len(layouts) > 1:
        raise WeightsError(f"{closest} (the other {len(layouts) - 1} known layout(s) do not match either)") from None
    raise closest


def load_weights(
    module: torch.nn.Module,
    directory: str | Path,
    table: Table | tuple[Table, ...],
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    keep_fp32: tuple[str, ...] = (),
) -> torch.nn.Module:
    """Fill ``module`` (usually built on the meta device) from the safetensors in ``directory``.

    ``table`` maps each checkpoint key to a parameter name of ``module``; both sides must match
    exactly (see the module docstring). A tuple of tables lists alternative checkpoint layouts.
    Floating tensors are cast to ``dtype`` (default: as stored) unless their parameter name ends
    with one of ``keep_fp32``.
    """
    files = checkpoint_files(directory)
    params = {n: tuple(p.shape) for n, p in module.state_dict(keep_vars=True).items()}
    table = _pick_layout(table, checkpoint_shapes(files), params, str(directory))
    entries, _, _ = split_table(table, files)
    from safetensors import safe_open

    dev = torch.device(device)

    def target_dtype(stored: torch.dtype, target: str) -> torch.dtype:
        if dtype is None or not stored.is_floating_point:
            return stored
        return torch.float32 if keep_fp32 and target.endswith(keep_fp32) else dtype

    def cast(t: torch.Tensor, target: str) -> torch.Tensor:
        return t.to(target_dtype(t.dtype, target))

    state: dict[str, torch.Tensor] = {}
    by_file: dict[Path, list[str]] = {}
    for name in entries:
        by_file.setdefault(files[name], []).append(name)
    for f, names in by_file.items():
        with safe_open(str(f), framework="pt", device=str(dev)) as handle:
            for name in names:
                target = entries[name]
                t = handle.get_tensor(name)
                if isinstance(target, str):
                    state[target] = cast(t, target)
                    continue
                if target.param not in state:  # the fused tensor, allocated once on the device
                    state[target.param] = torch.empty(params[target.param], device=dev,
                                                      dtype=target_dtype(t.dtype, target.param))
                state[target.param][target.index, target.offset:target.offset + t.shape[0]].copy_(t)
    module.load_state_dict(state, strict=True, assign=True)
    return module
