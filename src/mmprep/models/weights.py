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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import WeightsError

_LIST_LIMIT = 20  # names shown per category in an error message


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
    table: Mapping[str, str], shapes: Mapping[str, tuple[int, ...]], params: Mapping[str, tuple[int, ...]],
    where: str = "checkpoint",
) -> None:
    """Raise one :class:`WeightsError` naming every missing, unexpected or mis-shaped tensor."""
    problems = []
    missing = sorted(k for k, t in table.items() if k not in shapes and t is not None)
    skipped = tuple(k[:-1] for k, t in table.items() if t is None and k.endswith("*"))  # "prefix.*": a block
    unexpected = sorted(k for k in shapes if k not in table and not k.startswith(skipped))
    targets = [t for t in table.values() if t is not None]
    dup = sorted({t for t in targets if targets.count(t) > 1}) if len(set(targets)) != len(targets) else []
    unknown = sorted(t for t in set(targets) if t not in params)
    uncovered = sorted(p for p in params if p not in set(targets))
    bad_shape = sorted(
        f"{k} {list(shapes[k])} (expected {list(params[t])})"
        for k, t in table.items() if k in shapes and t is not None and t in params
        and tuple(shapes[k]) != tuple(params[t])
    )
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("mis-shaped keys", bad_shape), ("table targets used twice", dup),
                         ("table targets that are not parameters", unknown),
                         ("parameters no checkpoint key fills", uncovered)):
        if items:
            problems.append(_fmt(title, items))
    if problems:
        raise WeightsError(f"{where}: " + "; ".join(problems))


def load_weights(
    module: torch.nn.Module,
    directory: str | Path,
    table: Mapping[str, str],
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    keep_fp32: tuple[str, ...] = (),
) -> torch.nn.Module:
    """Fill ``module`` (usually built on the meta device) from the safetensors in ``directory``.

    ``table`` maps each checkpoint key to a parameter name of ``module``; both sides must match
    exactly (see the module docstring). A key mapped to ``None`` is a known tensor the model does
    not use: skipped when present, not required; ``"prefix.*": None`` skips every key under it.
    Floating tensors are cast to ``dtype`` (default: as stored) unless their parameter name ends
    with one of ``keep_fp32``.
    """
    files = checkpoint_files(directory)
    params = {n: tuple(p.shape) for n, p in module.state_dict(keep_vars=True).items()}
    check_table(table, checkpoint_shapes(files), params, where=str(directory))
    from safetensors import safe_open

    state: dict[str, torch.Tensor] = {}
    by_file: dict[Path, list[str]] = {}
    for name in (k for k, t in table.items() if t is not None):
        by_file.setdefault(files[name], []).append(name)
    dev = torch.device(device)
    for f, names in by_file.items():
        with safe_open(str(f), framework="pt", device=str(dev)) as handle:
            for name in names:
                target = table[name]
                t = handle.get_tensor(name)
                if dtype is not None and t.is_floating_point():
                    t = t.to(torch.float32 if target.endswith(keep_fp32) and keep_fp32 else dtype)
                state[target] = t
    module.load_state_dict(state, strict=True, assign=True)
    return module
