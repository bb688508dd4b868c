"""Rotary position embeddings: 2D vision rope and multimodal rope (MRoPE).

Two rotation layouts exist in the supported models:

* *half* (NeoX) layout: dimension ``k`` pairs with ``k + D/2`` (GLM vision tower, SigLIP2-style towers).
* *interleaved* (GPT-J) layout: dimension ``2i`` pairs with ``2i+1`` (GLM-4 decoder, partial rotary).

Angles are always computed in fp32 from integer positions; the rotation itself runs in fp32 and
is cast back to the input dtype. Every function has a slow ``*_reference`` twin used by tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def inv_freq(dim: int, theta: float, device: torch.device | str | None = None) -> torch.Tensor:
    """``theta ** (-2i/dim)`` for ``i < dim/2``: the fp32 inverse frequencies of a ``dim``-wide rope."""
    exponent = torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim
    return 1.0 / (theta**exponent)


# -- 2D vision rope --------------------------------------------------------------------------------


def vision_position_ids(grid_thw: torch.Tensor | Sequence[Sequence[int]], merge: int) -> torch.Tensor:
    """``(N, 2)`` long ``(h, w)`` patch coordinates in merge-window order, repeated ``t`` times.

    Patches arrive grouped in ``merge x merge`` windows (row-major over windows, row-major inside
    one), so coordinates follow that order. ``grid_thw`` rows are ``(t, h, w)`` in patches.
    """
    grids = torch.as_tensor(grid_thw, dtype=torch.int64).reshape(-1, 3).tolist()
    out = []
    for t, h, w in grids:
        hh = torch.arange(h).view(h // merge, merge, 1, 1).expand(-1, -1, w // merge, merge)
        ww = torch.arange(w).view(1, 1, w // merge, merge).expand(h // merge, merge, -1, -1)
        # window order: (h_block, w_block, h_in, w_in)
        hh, ww = hh.permute(0, 2, 1, 3).reshape(-1), ww.permute(0, 2, 1, 3).reshape(-1)
        out.append(torch.stack([hh, ww], dim=-1).repeat(t, 1))
    return torch.cat(out) if out else torch.zeros(0, 2, dtype=torch.int64)


def vision_position_ids_reference(grid_thw, merge: int) -> torch.Tensor:
    """Plain-loop twin of :func:`vision_position_ids`."""
    rows = []
    for t, h, w in torch.as_tensor(grid_thw).reshape(-1, 3).tolist():
        for _ in range(t):
            for bh in range(h // merge):
                for bw in range(w // merge):
                    for ih in range(merge):
                        for iw in range(merge):
                            rows.append((bh * merge + ih, bw * merge + iw))
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, 2)


def vision_rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 ``cos, sin`` of shape ``(N, head_dim)`` for ``(N, 2)`` (h, w) positions, half layout.

    The first quarter of the angles uses h, the second w (each with ``head_dim/4`` frequencies
    ``theta ** (-2i / (head_dim/2))``); the second half of ``head_dim`` repeats the first.
    """
    freqs = inv_freq(head_dim // 2, theta, positions.device)
    angles = (positions.float()[..., None] * freqs).flatten(-2)  # (N, 2 * head_dim/4): [h..., w...]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def vision_rope_cos_sin_reference(positions: torch.Tensor, head_dim: int, theta: float):
    quarter = head_dim // 4
    n = positions.shape[0]
    cos = torch.zeros(n, head_dim, dtype=torch.float64)
    sin = torch.zeros(n, head_dim, dtype=torch.float64)
    for row in range(n):
        for axis in range(2):
            for i in range(quarter):
                a = float(positions[row, axis]) * theta ** (-2 * i / (head_dim // 2))
                for half in range(2):
                    col = half * (head_dim // 2) + axis * quarter + i
                    cos[row, col], sin[row, col] = torch.cos(torch.tensor(a)), torch.sin(torch.tensor(a))
    return cos.float(), sin.float()


def apply_rope_half(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x (T, H, D)`` with ``cos/sin (T, D)`` in the half (NeoX) layout, over all of D."""
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (xf * cos[:, None] + rotated * sin[:, None]).to(x.dtype)


def apply_rope_half_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Pair ``(k, k + D/2)`` as a complex number and multiply by ``exp(i * angle_k)``."""
    half = x.shape[-1] // 2
    z = torch.complex(x[..., :half].double(), x[..., half:].double())
    angle = torch.atan2(sin[:, :half].double(), cos[:, :half].double())[:, None]
    z = z * torch.polar(torch.ones_like(angle), angle)
    return torch.cat([z.real, z.imag], dim=-1).to(x.dtype)


# -- multimodal rope (MRoPE) --------------------------------------------------------------------


def mrope_cos_sin(
    positions: torch.Tensor, rotary_dim: int, theta: float, sections: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 ``cos, sin`` ``(T, rotary_dim)`` for ``(3, T)`` (temporal, height, width) positions.

    Frequency ``j`` (of ``rotary_dim/2``) takes its position from axis ``s % 3`` where ``s`` is the
    section holding ``j`` (sections are consecutive frequency counts, e.g. 8, 12, 12); each angle
    is then used by the interleaved pair ``(2j, 2j+1)``.
    """
    if sum(sections) != rotary_dim // 2:
        raise ValueError(f"mrope sections {list(sections)} must sum to rotary_dim/2 = {rotary_dim // 2}")
    freqs = inv_freq(rotary_dim, theta, positions.device)
    axis = torch.repeat_interleave(
        torch.arange(len(sections), device=positions.device) % 3,
        torch.tensor(list(sections), device=positions.device),
    )
    pos = positions.float()[axis]  # (F, T): the position each frequency reads
    angles = (pos.T * freqs).repeat_interleave(2, dim=-1)
    return angles.cos(), angles.sin()


def mrope_cos_sin_reference(positions: torch.Tensor, rotary_dim: int, theta: float, sections):
    n_freq = rotary_dim // 2
    owner = [s % 3 for s, count in enumerate(sections) for _ in range(count)]
    total = positions.shape[1]
    cos = torch.zeros(total, rotary_dim, dtype=torch.float64)
    sin = torch.zeros(total, rotary_dim, dtype=torch.float64)
    for t in range(total):
        for j in range(n_freq):
            a = torch.tensor(float(positions[owner[j], t]) * theta ** (-2 * j / rotary_dim), dtype=torch.float64)
            cos[t, 2 * j] = cos[t, 2 * j + 1] = torch.cos(a)
            sin[t, 2 * j] = sin[t, 2 * j + 1] = torch.sin(a)
    return cos.float(), sin.float()


def apply_rope_interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``rotary_dim`` dims of ``x (T, H, D)`` pairwise ``(2i, 2i+1)``; keep the rest."""
    rot = cos.shape[-1]
    xf = x[..., :rot].float()
    pairs = xf.unflatten(-1, (-1, 2))
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
    out = xf * cos[:, None] + rotated * sin[:, None]
    return torch.cat([out.to(x.dtype), x[..., rot:]], dim=-1)


def apply_rope_interleaved_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    rot = cos.shape[-1]
    pairs = x[..., :rot].double().unflatten(-1, (-1, 2))
    z = torch.complex(pairs[..., 0], pairs[..., 1])
    angle = torch.atan2(sin[:, 0::2].double(), cos[:, 0::2].double())[:, None]
    z = z * torch.polar(torch.ones_like(angle), angle)
    out = torch.stack([z.real, z.imag], dim=-1).flatten(-2)
    return torch.cat([out.to(x.dtype), x[..., rot:]], dim=-1)
