"""RADIO (C-RADIO ViT), the vision encoder of Nemotron Nano VL, on packed images.

    patches (c, y, x) per row --embedder (Linear, no bias)--> + position table resampled to the
      image's grid --> [class + register tokens, patches] per image
      --> blocks [LayerNorm -> attention (qkv, proj; within each image) -> +,
                  LayerNorm -> MLP fc1/GELU/fc2 -> +]
      --> drop the class + register tokens: one feature per patch

Every image (a 512x512 tile of 12B-v2-VL, a dynamic-size Omni image, a video frame) is its own
``cu_seqlens`` segment of one packed sequence, so packing changes nothing numerically.

Position table (``pos_embed``, ``(1, R*R, hidden)`` for ``R = max_img_size / patch``): resized in
fp32 (bilinear, ``align_corners=False``) to a square of side ``max(h, w)`` patches, cropped to
``h x w`` (top-left), and resized again only if the crop is not ``h x w``.

Weight names are the released checkpoint's (``radio_model.model.patch_generator.*``,
``radio_model.model.blocks.{i}.*``). Pixels arrive normalised by the processor, so the
checkpoint's ``input_conditioner`` is not applied (as vLLM and transformers do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInputError, UnknownModelError
from .attention import varlen_attention
from .layers import FeedForward

# timm ViT names the released configs give (vision_config.args.model): hidden, depth, heads
_TIMM_VIT = {
    "vit_huge_patch16_224": (1280, 32, 16), "vit_large_patch16_224": (1024, 24, 16),
    "vit_base_patch16_224": (768, 12, 12), "vit_so400m_patch14_siglip_384": (1152, 27, 16),
}


@dataclass(frozen=True)
class RadioConfig:
    hidden_size: int = 1280
    depth: int = 32
    num_heads: int = 16
    mlp_hidden: int = 5120
    hidden_act: str = "gelu"
    patch_size: int = 16  # px
    max_img_size: int = 2048  # px: the position table covers (max_img_size / patch)^2 patches
    num_prefix_tokens: int = 10  # class tokens + registers, dropped from the features
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    video_temporal_patch_size: int | None = None  # the checkpoint's video embedder (frames per patch)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def patch_dim(self) -> int:
        return 3 * self.patch_size**2

    @classmethod
    def from_hf(cls, v: dict[str, Any]) -> RadioConfig:
        """transformers' ``RadioConfig`` keys, or the released ``vision_config`` with ``args``."""
        args = v.get("args") or {}
        if "hidden_size" in v:
            hidden, depth, heads = v["hidden_size"], v.get("num_hidden_layers", 32), v.get("num_attention_heads", 16)
            prefix = v.get("num_cls_tokens", 3) + v.get("num_registers", 7)
            ratio = v.get("mlp_ratio", 4.0)
            max_img = v.get("max_img_size", 2048)
        else:
            name = str(args.get("model", ""))
            if name not in _TIMM_VIT:
                raise UnknownModelError(f"RADIO model {name!r} is not supported (known: {sorted(_TIMM_VIT)})")
            hidden, depth, heads = _TIMM_VIT[name]
            prefix = _released_prefix(args)
            ratio = 4.0
            max_img = args.get("cpe_max_size") or v.get("max_resolution") or 2048
        if v.get("use_swiglu_ffn"):
            raise UnknownModelError("RADIO with a SwiGLU MLP is not supported")
        temporal = v.get("video_temporal_patch_size")
        if temporal is None and v.get("separate_video_embedder"):
            temporal = 2
        return cls(hidden_size=hidden, depth=depth, num_heads=heads, mlp_hidden=int(hidden * ratio),
                   hidden_act=v.get("hidden_act", "gelu"), patch_size=v.get("patch_size", 16),
                   max_img_size=int(max_img), num_prefix_tokens=int(prefix),
                   layer_norm_eps=v.get("layer_norm_eps", 1e-6), qkv_bias=bool(v.get("qkv_bias", True)),
                   video_temporal_patch_size=temporal)


def _released_prefix(args: dict[str, Any]) -> int:
    """Class + register tokens of a released RADIO: one class token per teacher (or one), then
    ``register_multiple - cls % register_multiple`` registers (or ``num_registers``)."""
    cls_tokens = args.get("num_cls_tokens")
    if cls_tokens is None:
        teachers = args.get("teachers") or []
        cls_tokens = len(teachers) if args.get("cls_token_per_teacher") and teachers else 1
    registers = args.get("num_registers")
    if not registers:
        multiple = args.get("register_multiple") or 0
        registers = multiple - cls_tokens % multiple if multiple else 0
    return int(cls_tokens) + int(registers)


class ClassTokens(nn.Module):
    def __init__(self, cfg: RadioConfig):
        super().__init__()
        self.token = nn.Parameter(torch.zeros(cfg.num_prefix_tokens, cfg.hidden_size))


class PatchGenerator(nn.Module):
    """``patch_generator``: ``embedder``, ``pos_embed``, ``cls_token`` (and the unused ``video_embedder``)."""

    def __init__(self, cfg: RadioConfig):
        super().__init__()
        self.side = cfg.max_img_size // cfg.patch_size
        self.embedder = nn.Linear(cfg.patch_dim, cfg.hidden_size, bias=False)
        if cfg.video_temporal_patch_size:  # loaded, not used: frames go through `embedder` one by one (the seed)
            self.video_embedder = nn.Linear(cfg.patch_dim * cfg.video_temporal_patch_size, cfg.hidden_size, bias=False)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.side * self.side, cfg.hidden_size))
        self.cls_token = ClassTokens(cfg)

    def positions(self, h: int, w: int) -> torch.Tensor:
        """The table resampled to an ``h x w`` patch grid -> ``(h*w, hidden)``."""
        table = self.pos_embed.reshape(1, self.side, self.side, -1).permute(0, 3, 1, 2).float()
        m = max(h, w)
        pos = F.interpolate(table, size=(m, m), mode="bilinear", align_corners=False)
        pos = pos.to(self.pos_embed.dtype)[..., :h, :w]
        if pos.shape[-2:] != (h, w):
            pos = F.interpolate(pos.float(), size=(h, w), mode="bilinear", align_corners=False).to(pos.dtype)
        return pos[0].flatten(1).T


class Block(nn.Module):
    def __init__(self, cfg: RadioConfig):
        super().__init__()
        self.heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=cfg.qkv_bias)
        self.attn.proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.mlp = FeedForward(cfg.hidden_size, cfg.mlp_hidden, cfg.hidden_act)

    def forward(self, x: torch.Tensor, cu: torch.Tensor, max_seqlen: int) -> torch.Tensor:
        T = x.shape[0]
        q, k, v = self.attn.qkv(self.norm1(x)).view(T, 3, self.heads, self.head_dim).unbind(1)
        x = x + self.attn.proj(varlen_attention(q, k, v, cu, max_seqlen, causal=False).reshape(T, -1))
        return x + self.mlp(self.norm2(x))


class RadioModel(nn.Module):
    """``radio_model.model``: packed patch rows of many images -> one feature per patch."""

    def __init__(self, cfg: RadioConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_generator = PatchGenerator(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))

    def forward(self, patches: torch.Tensor, grids_hw: list[tuple[int, int]]) -> torch.Tensor:
        """``patches (Σ h*w, 3*p*p)`` in ``(c, y, x)`` order, row-major per image; ``grids_hw`` in
        patches -> features ``(Σ h*w, hidden)``."""
        cfg, gen = self.cfg, self.patch_generator
        want = sum(h * w for h, w in grids_hw)
        if patches.ndim != 2 or patches.shape != (want, cfg.patch_dim):
            raise InvalidInputError(
                f"RADIO patches have shape {tuple(patches.shape)}; the grids {grids_hw} need ({want}, {cfg.patch_dim})")
        x = gen.embedder(patches.to(gen.embedder.weight.dtype))
        prefix = gen.cls_token.token.to(x.dtype)
        parts, start = [], 0
        for h, w in grids_hw:
            parts += [prefix, x[start:start + h * w] + gen.positions(h, w).to(x.dtype)]
            start += h * w
        seq = torch.cat(parts)
        lengths = torch.tensor([h * w + cfg.num_prefix_tokens for h, w in grids_hw])
        cu = F.pad(torch.cumsum(lengths, 0), (1, 0)).to(x.device, torch.int32)
        for block in self.blocks:
            seq = block(seq, cu, int(lengths.max()))
        keep = torch.ones(seq.shape[0], dtype=torch.bool, device=seq.device)
        for s in cu[:-1].tolist():
            keep[s:s + cfg.num_prefix_tokens] = False
        return seq[keep]


def tiles_to_patches(tiles: torch.Tensor, patch: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """``(N, 3, H, W)`` tiles / frames -> patch rows ``(N*h*w, 3*p*p)`` in ``(c, y, x)`` order and the grids."""
    N, C, H, W = tiles.shape
    if H % patch or W % patch:
        raise InvalidInputError(f"tiles of {H}x{W} px are not a multiple of the {patch} px patch")
    h, w = H // patch, W // patch
    rows = tiles.reshape(N, C, h, patch, w, patch).permute(0, 2, 4, 1, 3, 5).reshape(N * h * w, C * patch * patch)
    return rows, [(h, w)] * N


def radio_weight_table(cfg: RadioConfig, prefix: str, target: str) -> dict[str, str]:
    """``{prefix}radio_model.model.*`` -> ``{target}*`` (plus the tensors read and dropped: ``None``)."""
    names = ["patch_generator.embedder.weight", "patch_generator.pos_embed", "patch_generator.cls_token.token"]
    if cfg.video_temporal_patch_size:
        names.append("patch_generator.video_embedder.weight")
    for i in range(cfg.depth):
        names += [f"blocks.{i}.{n}" for n in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
                                              "attn.qkv.weight", "attn.proj.weight", "attn.proj.bias",
                                              "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias")]
        names += [f"blocks.{i}.attn.qkv.bias"] if cfg.qkv_bias else []
    table: dict[str, str | None] = {f"{prefix}radio_model.model.{n}": f"{target}{n}" for n in names}
    for extra in ("radio_model.summary_idxs", "radio_model.input_conditioner.norm_mean",
                  "radio_model.input_conditioner.norm_std"):
        table[f"{prefix}{extra}"] = None  # in released checkpoints; unused (pixels come normalised)
    return table
