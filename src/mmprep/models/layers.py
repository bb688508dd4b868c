"""Layers every mmprep model shares: norms, MLPs and the per-head q/k norm.

Each is a plain ``nn.Module`` whose parameter names are the checkpoint names the families use
(``weight``/``bias``, ``gate_proj``/``up_proj``/``down_proj``, ``fc1``/``fc2``), so a model's
weight table maps checkpoint keys to them one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """``w * (x / sqrt(mean(x^2) + eps))`` over the last dim; statistics in fp32.

    The product runs in ``x``'s dtype (Llama / Qwen / GLM), or in fp32 before the cast back when
    ``weight_in_fp32`` (NemotronH). Applied to ``(T, heads, head_dim)`` it is the per-head q/k
    norm of Qwen3-style attention.
    """

    def __init__(self, dim: int, eps: float, *, weight_in_fp32: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.weight_in_fp32 = weight_in_fp32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.weight_in_fp32:
            return (self.weight.float() * xf).to(x.dtype)
        return self.weight * xf.to(x.dtype)


def layer_norm(dim: int, eps: float, bias: bool = True) -> nn.LayerNorm:
    """A LayerNorm with ``weight`` (and ``bias``) parameters, as SigLIP / the GLM merger store them."""
    return nn.LayerNorm(dim, eps=eps, bias=bias)


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))`` with separate gate/up projections (Qwen3, GLM vision)."""

    def __init__(self, dim: int, hidden: int, bias: bool = False):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=bias)
        self.up_proj = nn.Linear(dim, hidden, bias=bias)
        self.down_proj = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class FusedSwiGLU(nn.Module):
    """SwiGLU whose gate and up projections are stored as one ``gate_up_proj`` (gate first; GLM-4)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_up_proj = nn.Linear(dim, 2 * hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "silu": F.silu,
    "relu": F.relu,
    "relu2": lambda x: F.relu(x).square(),
}


def activation(name: str):
    """The activation function a config names (``hidden_act``); unknown names raise ``KeyError``."""
    return ACTIVATIONS[name]


class FeedForward(nn.Module):
    """``fc2(act(fc1(x)))``: the SigLIP / ViT MLP (``act`` names a config ``hidden_act``)."""

    def __init__(self, dim: int, hidden: int, act: str, bias: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def space_to_depth(x: torch.Tensor, grids_hw: list[tuple[int, int]], scale: int) -> torch.Tensor:
    """Pixel shuffle over packed per-image patch rows: ``(Σ h*w, D) -> (Σ h*w / s², D * s²)``.

    Each image's rows are its ``h x w`` grid, row-major. Output token ``(i, j)`` of an image
    concatenates patches ``(s*i + a, s*j + b)`` for ``a, b < s`` in row-major ``(a, b)`` order.
    ``h`` and ``w`` must be multiples of ``s`` (callers check and name the image).
    """
    out, start = [], 0
    for h, w in grids_hw:
        block = x[start:start + h * w].view(h // scale, scale, w // scale, scale, -1)
        out.append(block.permute(0, 2, 1, 3, 4).reshape((h // scale) * (w // scale), -1))
        start += h * w
    return torch.cat(out) if out else x.new_zeros(0, x.shape[-1] * scale * scale)


def space_to_depth_reference(x: torch.Tensor, grids_hw: list[tuple[int, int]], scale: int) -> torch.Tensor:
    """Token-by-token twin of :func:`space_to_depth`."""
    rows, start = [], 0
    for h, w in grids_hw:
        for i in range(h // scale):
            for j in range(w // scale):
                parts = [x[start + (scale * i + a) * w + scale * j + b] for a in range(scale) for b in range(scale)]
                rows.append(torch.cat(parts))
        start += h * w
    return torch.stack(rows) if rows else x.new_zeros(0, x.shape[-1] * scale * scale)
