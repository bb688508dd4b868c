"""Rotary position embeddings: 2D vision rope and multimodal rope (MRoPE).

Two rotation layouts exist in the supported models:

* *half* (NeoX) layout: dimension ``k`` pairs with ``k + rot/2`` (GLM vision tower, Qwen3 / Isaac
  decoder, GLM-4.5V MoE decoder with partial rotary).
* *interleaved* (GPT-J) layout: dimension ``2i`` pairs with ``2i+1`` (GLM-4 decoder, partial rotary).

MRoPE sections assign frequencies to the t/h/w position rows either in consecutive *blocks*
(GLM, Isaac) or *interleaved* t, h, w, t, h, w, ... (Qwen3-VL).

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
    """Rotate the first ``rotary_dim`` (``cos.shape[-1]``) dims of ``x (T, H, D)`` in the half
    (NeoX) layout, pairing ``k`` with ``k + rotary_dim/2``; the remaining dims pass through."""
    rot = cos.shape[-1]
    xf = x[..., :rot].float()
    x1, x2 = xf.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    out = (xf * cos[:, None] + rotated * sin[:, None]).to(x.dtype)
    return out if rot == x.shape[-1] else torch.cat([out, x[..., rot:]], dim=-1)


def apply_rope_half_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Pair ``(k, k + rot/2)`` as a complex number and multiply by ``exp(i * angle_k)``."""
    rot = cos.shape[-1]
    half = rot // 2
    z = torch.complex(x[..., :half].double(), x[..., half:rot].double())
    angle = torch.atan2(sin[:, :half].double(), cos[:, :half].double())[:, None]
    z = z * torch.polar(torch.ones_like(angle), angle)
    return torch.cat([z.real.to(x.dtype), z.imag.to(x.dtype), x[..., rot:]], dim=-1)


# -- multimodal rope (MRoPE) --------------------------------------------------------------------


def mrope_axes(sections: Sequence[int], section_layout: str = "blocks") -> list[int]:
    """The position axis (0 = t, 1 = h, 2 = w) each of the ``sum(sections)`` frequencies reads.

    ``"blocks"``: consecutive runs, section ``s`` from axis ``s % 3`` (GLM-4, Qwen2-VL, Isaac).
    ``"interleaved"``: frequency ``j`` cycles t, h, w (``j % 3``) while that axis has frequencies
    left in its section, the rest stay on t (Qwen3-VL's interleaved MRoPE).
    """
    n = int(sum(sections))
    if section_layout == "blocks":
        return [s % 3 for s, count in enumerate(sections) for _ in range(count)]
    if section_layout == "interleaved":
        axes = [0] * n
        for axis in (1, 2):
            for j in range(axis, min(n, 3 * int(sections[axis])), 3):
                axes[j] = axis
        return axes
    raise ValueError(f"unknown mrope section layout {section_layout!r}; use 'blocks' or 'interleaved'")


def mrope_cos_sin(
    positions: torch.Tensor, rotary_dim: int, theta: float, sections: Sequence[int], *,
    layout: str = "interleaved", section_layout: str = "blocks",
) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 ``cos, sin`` ``(T, rotary_dim)`` for ``(3, T)`` (temporal, height, width) positions.

    Frequency ``j`` (of ``rotary_dim/2``, ``theta ** (-2j/rotary_dim)``) takes its position from
    the axis :func:`mrope_axes` gives it. ``layout`` says which dims share an angle:
    ``"interleaved"`` pairs ``(2j, 2j+1)`` (GLM-4 decoder, :func:`apply_rope_interleaved`) and
    ``"half"`` pairs ``(j, j + rotary_dim/2)`` (Qwen3, GLM-4.5V MoE, :func:`apply_rope_half`).
    """
    if sum(sections) != rotary_dim // 2:
        raise ValueError(f"mrope sections {list(sections)} must sum to rotary_dim/2 = {rotary_dim // 2}")
    freqs = inv_freq(rotary_dim, theta, positions.device)
    axis = torch.tensor(mrope_axes(sections, section_layout), device=positions.device)
    pos = positions.float()[axis]  # (F, T): the position each frequency reads
    angles = pos.T * freqs
    if layout == "interleaved":
        angles = angles.repeat_interleave(2, dim=-1)
    elif layout == "half":
        angles = torch.cat([angles, angles], dim=-1)
    else:
        raise ValueError(f"unknown rope layout {layout!r}; use 'interleaved' or 'half'")
    return angles.cos(), angles.sin()


def mrope_cos_sin_reference(positions: torch.Tensor, rotary_dim: int, theta: float, sections, *,
                            layout: str = "interleaved", section_layout: str = "blocks"):
    n_freq = rotary_dim // 2
    if section_layout == "blocks":
        owner = [s % 3 for s, count in enumerate(sections) for _ in range(count)]
    else:  # Qwen3-VL: t h w t h w ... until h/w run out of frequencies
        owner = []
        left = {1: sections[1], 2: sections[2]}
        for j in range(n_freq):
            ax = j % 3
            if ax and left[ax] > 0 and j < 3 * sections[ax]:
                left[ax] -= 1
                owner.append(ax)
            else:
                owner.append(0)
    total = positions.shape[1]
    cos = torch.zeros(total, rotary_dim, dtype=torch.float64)
    sin = torch.zeros(total, rotary_dim, dtype=torch.float64)
    for t in range(total):
        for j in range(n_freq):
            a = torch.tensor(float(positions[owner[j], t]) * theta ** (-2 * j / rotary_dim), dtype=torch.float64)
            cols = (2 * j, 2 * j + 1) if layout == "interleaved" else (j, j + n_freq)
            for c in cols:
                cos[t, c], sin[t, c] = torch.cos(a), torch.sin(a)
    return cos.float(), sin.float()


def rope_cos_sin(positions: torch.Tensor, rotary_dim: int, theta: float, *, layout: str = "half"):
    """Plain 1-D rope: ``positions (T,)`` -> fp32 ``cos, sin (T, rotary_dim)`` (every frequency on one axis)."""
    pos = positions.reshape(1, -1).expand(3, -1)
    return mrope_cos_sin(pos, rotary_dim, theta, (rotary_dim // 2,), layout=layout)


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
