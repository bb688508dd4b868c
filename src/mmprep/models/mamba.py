"""The Mamba2 mixer of NemotronH's ``M`` layers, on packed variable-length tokens.

    x (T, hidden) --in_proj--> gate z (inner) | xBC (inner + 2·G·N) | dt (H)
      xBC --causal depthwise conv (kernel K) + SiLU--> x (H, P) | B (G, N) | C (G, N)
      dt --softplus(dt + dt_bias), clamped to dt_limit--> step sizes (H)
      SSD scan per sequence: h_t = exp(dt_t·A)·h_{t-1} + dt_t·x_t ⊗ B_t,  y_t = h_t·C_t + D·x_t
      y --gated RMSNorm (y·silu(z), normalised per group of inner/G channels)--> out_proj

``inner = H·P`` (mamba heads x head dim), ``G`` groups share B and C among ``H/G`` heads, ``N``
is the state size. The scan runs in fp32. :func:`ssd_scan` is the chunked form (quadratic inside a
chunk, a recurrence across chunks); :func:`ssd_scan_reference` is its token-by-token twin.

Prefill keeps each sequence (``cu_seqlens`` segment) apart: its conv starts from zeros and its
scan from a zero state. With a cache, each row's last ``K-1`` conv inputs and final SSM state are
stored in ``cache.states[layer]`` (``"conv"`` ``(B, conv_dim, K-1)``, ``"ssm"`` ``(B, H, P, N)``
fp32); decode steps advance them one token at a time.

dt clamp: ``NemotronHConfig.dt_limit``. By default ``(time_step_min, inf)`` as transformers 5's
mixer clamps (the reference the model layer is checked against); ``dt_floor_rule=
"time_step_limit"`` gives the released remote code's and vLLM's ``time_step_limit`` (default
``(0, inf)``). They differ only where ``softplus(dt + dt_bias) < time_step_min``.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from .decoder import Step


class GatedRMSNorm(nn.Module):
    """``weight · rmsnorm_per_group(y · silu(z))`` in fp32 (the mixer's ``norm``)."""

    def __init__(self, dim: int, group_size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.group_size, self.eps = group_size, eps

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        dtype = y.dtype
        h = y.float() * F.silu(z.float())
        g = h.view(*h.shape[:-1], -1, self.group_size)
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * g.view(h.shape).to(dtype)


def ssd_scan(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
             chunk: int, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD scan of one sequence (fp32).

    ``x (L, H, P)``, ``dt (L, H)`` (after softplus and clamp), ``A (H)`` (negative), ``B``/``C``
    ``(L, H, N)`` (already repeated from groups to heads), ``state (H, P, N)`` or ``None`` (zeros).
    Returns ``y (L, H, P)`` without the ``D`` skip and the final state ``(H, P, N)``.
    """
    L, H, P = x.shape
    N = B.shape[-1]
    pad = (-L) % chunk
    a = dt * A  # (L, H) log decay per token
    xdt = x * dt[..., None]
    if pad:
        a, xdt, B, C = (F.pad(t, (0, 0) * (t.ndim - 1) + (0, pad)) for t in (a, xdt, B, C))
    n = (L + pad) // chunk
    a, xdt = a.view(n, chunk, H), xdt.view(n, chunk, H, P)
    B, C = B.reshape(n, chunk, H, N), C.reshape(n, chunk, H, N)
    cum = torch.cumsum(a, dim=1)  # (n, Q, H)
    # inside each chunk: y_l = Σ_{s<=l} exp(cum_l - cum_s) (C_l·B_s) dt_s x_s
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=x.device).tril()
    seg = (cum[:, :, None, :] - cum[:, None, :, :]).masked_fill(~causal[None, :, :, None], float("-inf"))
    scores = torch.einsum("clhn,cshn->clsh", C, B) * seg.exp()
    y = torch.einsum("clsh,cshp->clhp", scores, xdt)
    # each chunk's own contribution to the state at its end
    to_end = (cum[:, -1:, :] - cum).exp()  # (n, Q, H)
    chunk_states = torch.einsum("clhn,clh,clhp->chpn", B, to_end, xdt)
    # across chunks: carry the state, decayed by each chunk's total
    h = x.new_zeros(H, P, N) if state is None else state.float()
    starts = []
    total = cum[:, -1, :].exp()  # (n, H)
    for c in range(n):
        starts.append(h)
        h = h * total[c][:, None, None] + chunk_states[c]
    start = torch.stack(starts)  # (n, H, P, N)
    y = y + torch.einsum("clhn,chpn->clhp", C, start) * cum.exp()[..., None]
    return y.reshape(n * chunk, H, P)[:L], h


def ssd_scan_reference(x, dt, A, B, C, state=None):
    """Token-by-token twin of :func:`ssd_scan` (tests only)."""
    L, H, P = x.shape
    h = x.new_zeros(H, P, B.shape[-1]) if state is None else state.float().clone()
    ys = []
    for t in range(L):
        h = h * torch.exp(dt[t] * A)[:, None, None] + (dt[t][:, None] * x[t])[..., None] * B[t][:, None, :]
        ys.append(torch.einsum("hpn,hn->hp", h, C[t]))
    return torch.stack(ys) if ys else x.new_zeros(0, H, P), h


class Mamba2Mixer(nn.Module):
    """One ``M`` layer's mixer. Weight names: ``in_proj``, ``conv1d``, ``dt_bias``, ``A_log``, ``D``,
    ``norm``, ``out_proj`` (the checkpoint's)."""

    def __init__(self, hidden: int, heads: int, head_dim: int, groups: int, state: int, conv_kernel: int, layer: int,
                 *, chunk: int, eps: float, dt_limit: tuple[float, float] = (0.0, float("inf")),
                 conv_bias: bool = True, proj_bias: bool = False):
        super().__init__()
        self.layer, self.heads, self.head_dim, self.groups, self.state = layer, heads, head_dim, groups, state
        self.inner = heads * head_dim
        self.conv_dim = self.inner + 2 * groups * state
        self.kernel, self.chunk, self.dt_limit = conv_kernel, chunk, dt_limit
        self.in_proj = nn.Linear(hidden, self.inner + self.conv_dim + heads, bias=proj_bias)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, conv_kernel, groups=self.conv_dim, bias=conv_bias)
        self.dt_bias = nn.Parameter(torch.ones(heads))
        self.A_log = nn.Parameter(torch.zeros(heads))
        self.D = nn.Parameter(torch.ones(heads))
        self.norm = GatedRMSNorm(self.inner, self.inner // groups, eps)
        self.out_proj = nn.Linear(self.inner, hidden, bias=proj_bias)

    def new_state(self, batch: int, dtype: torch.dtype, device) -> dict[str, torch.Tensor]:
        """Empty per-row state: conv inputs ``(B, conv_dim, K-1)`` and SSM state ``(B, H, P, N)`` fp32."""
        return {"conv": torch.zeros(batch, self.conv_dim, self.kernel - 1, dtype=dtype, device=device),
                "ssm": torch.zeros(batch, self.heads, self.head_dim, self.state, dtype=torch.float32, device=device)}

    def _step_sizes(self, dt: torch.Tensor) -> torch.Tensor:
        dt = F.softplus(dt.float() + self.dt_bias.float())
        return dt.clamp(self.dt_limit[0], self.dt_limit[1])

    def _split(self, xbc: torch.Tensor):
        """Conv output ``(T, conv_dim)`` -> x ``(T, H, P)``, B and C ``(T, H, N)`` fp32."""
        T, G, N = xbc.shape[0], self.groups, self.state
        x, b, c = xbc.float().split([self.inner, G * N, G * N], dim=-1)
        rep = self.heads // G
        b = b.view(T, G, N).repeat_interleave(rep, dim=1)
        c = c.view(T, G, N).repeat_interleave(rep, dim=1)
        return x.view(T, self.heads, self.head_dim), b, c

    def forward(self, hidden: torch.Tensor, step: Step) -> torch.Tensor:
        z, xbc, dt = self.in_proj(hidden).split([self.inner, self.conv_dim, self.heads], dim=-1)
        if step.decode:
            y = self._decode(xbc, dt, step.cache.states[self.layer])
        else:
            y = self._prefill(xbc, dt, step)
        return self.out_proj(self.norm(y.reshape(y.shape[0], -1), z).to(hidden.dtype))  # y and the norm in fp32

    def _prefill(self, xbc: torch.Tensor, dt: torch.Tensor, step: Step) -> torch.Tensor:
        A = -torch.exp(self.A_log.float())
        w = self.conv1d.weight  # (conv_dim, 1, K)
        cache = step.cache
        cu = step.cu_seqlens.tolist()
        out = []
        for i, (s, e) in enumerate(itertools.pairwise(cu)):
            seq = xbc[s:e].T[None]  # (1, conv_dim, L)
            conv = F.silu(F.conv1d(F.pad(seq, (self.kernel - 1, 0)), w, self.conv1d.bias, groups=self.conv_dim))
            x, b, c = self._split(conv[0].T)
            dts = self._step_sizes(dt[s:e])
            y, final = ssd_scan(x, dts, A, b, c, self.chunk)
            out.append(y + x * self.D.float()[:, None])
            if cache is not None:  # segment i is cache row i in prefill
                st = cache.states[self.layer]
                tail = F.pad(seq[0], (self.kernel - 1, 0))[:, -(self.kernel - 1):] if self.kernel > 1 else seq[0, :, :0]
                st["conv"][i] = tail.to(st["conv"].dtype)
                st["ssm"][i] = final
        return torch.cat(out)

    def _decode(self, xbc: torch.Tensor, dt: torch.Tensor, st: dict[str, torch.Tensor]) -> torch.Tensor:
        """One token per row: shift the conv window, advance the SSM state."""
        window = torch.cat([st["conv"], xbc[:, :, None].to(st["conv"].dtype)], dim=-1)  # (B, conv_dim, K)
        st["conv"].copy_(window[:, :, 1:])
        conv = (window * self.conv1d.weight[:, 0]).sum(-1)
        if self.conv1d.bias is not None:
            conv = conv + self.conv1d.bias
        x, b, c = self._split(F.silu(conv))
        dts = self._step_sizes(dt)  # (B, H)
        A = -torch.exp(self.A_log.float())
        h = st["ssm"] * torch.exp(dts * A)[..., None, None] + (dts[..., None] * x)[..., None] * b[:, :, None, :]
        st["ssm"].copy_(h)
        return torch.einsum("bhpn,bhn->bhp", h, c) + x * self.D.float()[:, None]
