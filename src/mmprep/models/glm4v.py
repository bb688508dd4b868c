"""GLM-4.1V / GLM-4.6V-Flash (``Glm4vForConditionalGeneration``), readable top to bottom; with the
MoE decoder of :mod:`mmprep.models.glm4v_moe` also GLM-4.5V / GLM-4.6V (``Glm4vMoe...``).

    pixels (Σ patches, 3*2*14*14) --patch embed--> RMSNorm --+ interpolated abs. positions
      --> blocks [RMSNorm -> attention with 2D rope (one segment per temporal group, T31)
                  RMSNorm -> SwiGLU of width out_hidden_size (T30)]
      --> RMSNorm --> 2x2 downsample conv --> merger (Linear, LayerNorm, GELU, SwiGLU)
      --> one embedding per LLM placeholder token
    token embeddings with image/video features in their slots (T29)
      --> GLM-4 decoder layers (four RMSNorms, MRoPE on half of each head, GQA) --> lm_head
          (or, for a ``glm4v_moe_text`` config, the MoE decoder of glm4v_moe.py)

Weight names are the Hugging Face checkpoint names (``model.visual.*``, ``model.language_model.*``,
``lm_head.weight``); :func:`weight_table` lists every one of them. Configuration comes from the
checkpoint's ``config.json`` (:meth:`Glm4vConfig.from_hf`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInputError, UnknownModelError
from .attention import varlen_attention
from .cache import StaticKVCache
from .decoder import DecoderAttention, ModelOutput, Prompt, Step, run_decode, run_forward, run_prefill
from .glm4v_moe import MoeTextConfig, MoeTextModel, text_weight_table
from .inputs import PackedTokens, as_tensor
from .layers import FusedSwiGLU, RMSNorm, SwiGLU
from .prepare import MediaInput, prepare_prompt
from .rope import apply_rope_half, mrope_cos_sin, vision_position_ids, vision_rope_cos_sin

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# -- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VisionConfig:
    depth: int = 24
    hidden_size: int = 1536
    num_heads: int = 12
    in_channels: int = 3
    patch_size: int = 14  # px
    temporal_patch_size: int = 2  # frames
    spatial_merge_size: int = 2  # patches per side of one LLM token
    image_size: int = 336  # px: the position table covers (image_size/patch_size)^2 patches
    out_hidden_size: int = 4096  # block MLP width and merger width (T30)
    intermediate_size: int = 13696  # merger SwiGLU width (T30)
    rms_norm_eps: float = 1e-5  # post-conv / post-layernorm
    block_norm_eps: float = 1e-5  # block norms: top-level config's rms_norm_eps (T30)
    rope_theta: float = 10000.0
    attention_bias: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def patch_dim(self) -> int:
        return self.in_channels * self.temporal_patch_size * self.patch_size**2


@dataclass(frozen=True)
class TextConfig:
    vocab_size: int = 151552
    hidden_size: int = 4096
    intermediate_size: int = 13696
    num_layers: int = 40
    num_heads: int = 32
    num_kv_heads: int = 2
    max_position_embeddings: int = 65536  # tokens (4.6V-Flash: 131072)
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0  # 4.6V-Flash: 500000
    partial_rotary_factor: float = 0.5
    mrope_section: tuple[int, ...] = (8, 12, 12)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)


@dataclass(frozen=True)
class Glm4vConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig | MoeTextConfig = field(default_factory=TextConfig)  # MoE: GLM-4.5V / 4.6V
    image_token_id: int = 151343
    video_token_id: int = 151344
    video_start_token_id: int = 151341
    video_end_token_id: int = 151342
    tie_word_embeddings: bool = False
    eos_token_ids: tuple[int, ...] = ()

    @classmethod
    def from_hf(cls, config: dict[str, Any], generation_config: dict[str, Any] | None = None) -> Glm4vConfig:
        """Read ``config.json`` (transformers 4.5x or 5.x layout) and ``generation_config.json``."""
        v, t = config.get("vision_config") or {}, config.get("text_config") or {}
        vrope = v.get("rope_parameters") or {}
        vision = VisionConfig(
            depth=v.get("depth", 24), hidden_size=v.get("hidden_size", 1536), num_heads=v.get("num_heads", 12),
            in_channels=v.get("in_channels", 3), patch_size=v.get("patch_size", 14),
            temporal_patch_size=v.get("temporal_patch_size", 2), spatial_merge_size=v.get("spatial_merge_size", 2),
            image_size=v.get("image_size", 336), out_hidden_size=v.get("out_hidden_size", 4096),
            intermediate_size=v.get("intermediate_size", 13696), rms_norm_eps=v.get("rms_norm_eps", 1e-5),
            block_norm_eps=config.get("rms_norm_eps", 1e-5), rope_theta=vrope.get("rope_theta", 10000.0),
            attention_bias=v.get("attention_bias", False),
        )
        rope = t.get("rope_parameters") or t.get("rope_scaling") or {}
        moe = text_model_type(config) == "glm4v_moe_text"
        text = MoeTextConfig.from_hf(t) if moe else TextConfig(
            vocab_size=t.get("vocab_size", 151552), hidden_size=t.get("hidden_size", 4096),
            intermediate_size=t.get("intermediate_size", 13696), num_layers=t.get("num_hidden_layers", 40),
            num_heads=t.get("num_attention_heads", 32),
            num_kv_heads=_kv_heads(t),
            max_position_embeddings=t.get("max_position_embeddings", 65536),
            rms_norm_eps=t.get("rms_norm_eps", 1e-5),
            rope_theta=rope.get("rope_theta", t.get("rope_theta", 10000.0)),
            partial_rotary_factor=rope.get("partial_rotary_factor", t.get("partial_rotary_factor", 0.5)),
            mrope_section=tuple(rope.get("mrope_section", (8, 12, 12))),
        )
        eos = (generation_config or {}).get("eos_token_id", t.get("eos_token_id", config.get("eos_token_id")))
        eos_ids = tuple(eos) if isinstance(eos, (list, tuple)) else (() if eos is None else (int(eos),))
        ids = (151363, 151364) if config.get("model_type") == "glm4v_moe" else (151343, 151344)  # class defaults
        return cls(
            vision=vision, text=text,
            image_token_id=config.get("image_token_id", ids[0]), video_token_id=config.get("video_token_id", ids[1]),
            video_start_token_id=config.get("video_start_token_id", 151341),
            video_end_token_id=config.get("video_end_token_id", 151342),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", t.get("tie_word_embeddings", False))),
            eos_token_ids=eos_ids,
        )


def text_model_type(config: dict[str, Any]) -> str:
    """``text_config.model_type``; absent: the top-level type's default (``glm4v_moe`` -> MoE)."""
    default = "glm4v_moe_text" if config.get("model_type") == "glm4v_moe" else "glm4v_text"
    return str((config.get("text_config") or {}).get("model_type", default))


def read_config(config: dict[str, Any], generation_config: dict[str, Any] | None = None,
                added_tokens: dict[str, int] | None = None) -> Glm4vConfig:
    """The model table's reader: the dense GLM-4 decoder or the GLM-4.5V / 4.6V MoE decoder, by
    ``text_config.model_type``; another text model (or an unknown MoE variant) raises."""
    text_type = text_model_type(config)
    if text_type not in ("glm4v_text", "glm4v_moe_text"):
        raise UnknownModelError(
            f"text_config.model_type = {text_type!r}: no GLM decoder for it (known: 'glm4v_text', 'glm4v_moe_text')")
    return Glm4vConfig.from_hf(config, generation_config)


def _kv_heads(text: dict[str, Any]) -> int:
    """Absent: the class default 2; ``null``: one KV head per query head (transformers' rule)."""
    if "num_key_value_heads" not in text:
        return 2
    return text["num_key_value_heads"] or text.get("num_attention_heads", 32)


# -- vision tower --------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    """The Conv3d with kernel == stride, applied as one matmul on the flattened ``(c, t, y, x)`` patch."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.proj = nn.Conv3d(cfg.in_channels, cfg.hidden_size,
                              kernel_size=(cfg.temporal_patch_size, cfg.patch_size, cfg.patch_size),
                              stride=(cfg.temporal_patch_size, cfg.patch_size, cfg.patch_size))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        w = self.proj.weight
        return F.linear(pixels.to(w.dtype), w.reshape(w.shape[0], -1), self.proj.bias)


class PositionEmbedding(nn.Module):
    """The learned ``S x S`` table, resampled bicubically to each image's patch grid."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        side = cfg.image_size // cfg.patch_size
        self.position_embedding = nn.Embedding(side * side, cfg.hidden_size)

    def forward(self, coords: torch.Tensor, grid_hw: torch.Tensor) -> torch.Tensor:
        """``coords (N, 2)`` patch (h, w), ``grid_hw (N, 2)`` its image's grid -> ``(N, hidden)``.

        Samples at patch centres ``(c + 0.5) / size`` in ``[-1, 1]`` (align_corners=False, border
        padding), in fp32, then casts to the table's dtype.
        """
        table = self.position_embedding.weight
        side = int(table.shape[0] ** 0.5)
        image = table.float().T.reshape(1, -1, side, side)
        norm = (coords.float() + 0.5) / grid_hw.float() * 2 - 1  # (N, 2) as (h, w)
        grid = norm.flip(-1).view(1, -1, 1, 2)  # grid_sample wants (x=w, y=h)
        out = F.grid_sample(image, grid, mode="bicubic", align_corners=False, padding_mode="border")
        return out[0, :, :, 0].T.to(table.dtype)


class VisionAttention(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=cfg.attention_bias)
        self.proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=False)

    def forward(self, x, cos, sin, cu_seqlens, max_seqlen):
        q, k, v = self.qkv(x).view(x.shape[0], 3, self.heads, self.head_dim).unbind(1)
        q, k = apply_rope_half(q, cos, sin), apply_rope_half(k, cos, sin)
        out = varlen_attention(q, k, v, cu_seqlens, max_seqlen, causal=False)
        return self.proj(out.reshape(x.shape[0], -1))


class VisionBlock(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.norm1 = RMSNorm(cfg.hidden_size, cfg.block_norm_eps)
        self.norm2 = RMSNorm(cfg.hidden_size, cfg.block_norm_eps)
        self.attn = VisionAttention(cfg)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.out_hidden_size)  # width out_hidden_size (T30)

    def forward(self, x, cos, sin, cu_seqlens, max_seqlen):
        x = x + self.attn(self.norm1(x), cos, sin, cu_seqlens, max_seqlen)
        return x + self.mlp(self.norm2(x))


class PatchMerger(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        dim = cfg.out_hidden_size
        self.proj = nn.Linear(dim, dim, bias=False)
        self.post_projection_norm = nn.LayerNorm(dim)
        self.gate_proj = nn.Linear(dim, cfg.intermediate_size, bias=False)  # width intermediate_size (T30)
        self.up_proj = nn.Linear(dim, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.post_projection_norm(self.proj(x)))
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class VisionTransformer(nn.Module):
    """Packed patches of any number of images/videos -> one feature per LLM placeholder token."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.post_conv_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.embeddings = PositionEmbedding(cfg)
        self.blocks = nn.ModuleList(VisionBlock(cfg) for _ in range(cfg.depth))
        self.post_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        m = cfg.spatial_merge_size
        self.downsample = nn.Conv2d(cfg.hidden_size, cfg.out_hidden_size, kernel_size=m, stride=m)
        self.merger = PatchMerger(cfg)

    def forward(self, pixels: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        """``pixels (Σ t*h*w, patch_dim)``, ``grid_thw (n, 3)`` patches -> ``(Σ t*h*w / m², out_hidden)``."""
        cfg, m = self.cfg, self.cfg.spatial_merge_size
        grid = as_tensor(grid_thw, dtype=torch.int64).reshape(-1, 3).cpu()
        check_pixels(pixels, grid, cfg)
        dev = pixels.device
        coords = vision_position_ids(grid, m).to(dev)
        per_patch_hw = torch.repeat_interleave(grid[:, 1:], grid.prod(-1), dim=0).to(dev)
        seg = torch.repeat_interleave(grid[:, 1] * grid[:, 2], grid[:, 0])  # one segment per temporal group (T31)
        cu = F.pad(torch.cumsum(seg, 0), (1, 0)).to(dev, torch.int32)
        max_seqlen = int(seg.max()) if seg.numel() else 0

        x = self.post_conv_layernorm(self.patch_embed(pixels))
        x = x + self.embeddings(coords, per_patch_hw).to(x.dtype)
        cos, sin = vision_rope_cos_sin(coords, cfg.head_dim, cfg.rope_theta)
        for block in self.blocks:
            x = block(x, cos, sin, cu, max_seqlen)
        x = self.post_layernorm(x)
        # each merge window holds m*m consecutive patches: a kernel == stride conv is a matmul
        x = x.view(-1, m, m, x.shape[-1]).permute(0, 3, 1, 2).reshape(-1, x.shape[-1] * m * m)
        w = self.downsample.weight
        x = F.linear(x, w.reshape(w.shape[0], -1), self.downsample.bias)
        return self.merger(x)


def check_pixels(pixels: torch.Tensor, grid: torch.Tensor, cfg: VisionConfig) -> None:
    """Pixel rows must equal Σ t*h*w and h, w must be multiples of the merge size."""
    m = cfg.spatial_merge_size
    for i, (t, h, w) in enumerate(grid.tolist()):
        if min(t, h, w) <= 0 or h % m or w % m:
            raise InvalidInputError(f"item {i}: grid (t={t}, h={h}, w={w}) must be positive with h, w multiples of {m}")
    expected = int(grid.prod(-1).sum())
    if pixels.ndim != 2 or pixels.shape[0] != expected or pixels.shape[1] != cfg.patch_dim:
        raise InvalidInputError(
            f"pixel values have shape {tuple(pixels.shape)}; the grids need ({expected}, {cfg.patch_dim})"
        )


# -- GLM-4 decoder -----------------------------------------------------------------------------------


class DecoderLayer(nn.Module):
    """GLM-4 layer: norms before *and after* attention and MLP (sandwich norm)."""

    def __init__(self, cfg: TextConfig, layer: int):
        super().__init__()
        self.self_attn = DecoderAttention(cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, layer,
                                          qkv_bias=True, rope_layout="interleaved")
        self.mlp = FusedSwiGLU(cfg.hidden_size, cfg.intermediate_size)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_self_attn_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_mlp_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, step: Step) -> torch.Tensor:
        x = x + self.post_self_attn_layernorm(self.self_attn(self.input_layernorm(x), step))
        return x + self.post_mlp_layernorm(self.mlp(self.post_attention_layernorm(x)))


class TextModel(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, embeds: torch.Tensor, positions: torch.Tensor, step: Step) -> torch.Tensor:
        """Packed ``embeds (T, hidden)`` with MRoPE ``positions (3, T)`` -> final hidden states."""
        c = self.cfg
        step.cos, step.sin = mrope_cos_sin(positions, c.rotary_dim, c.rope_theta, c.mrope_section)
        x = embeds
        for layer in self.layers:
            x = layer(x, step)
        return self.norm(x)


# -- the whole model -----------------------------------------------------------------------------------


class Glm4vForConditionalGeneration(nn.Module):
    def __init__(self, cfg: Glm4vConfig):
        super().__init__()
        self.cfg = cfg
        self.visual = VisionTransformer(cfg.vision)
        moe = isinstance(cfg.text, MoeTextConfig)
        self.language_model = MoeTextModel(cfg.text) if moe else TextModel(cfg.text)
        if not cfg.tie_word_embeddings:
            self.lm_head = nn.Linear(cfg.text.hidden_size, cfg.text.vocab_size, bias=False)

    # -- properties the generic generate() reads
    @property
    def device(self) -> torch.device:
        return self.language_model.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.language_model.embed_tokens.weight.dtype

    @property
    def max_context(self) -> int:
        return self.cfg.text.max_position_embeddings

    @property
    def stop_token_ids(self) -> tuple[int, ...]:
        return self.cfg.eos_token_ids

    @property
    def vocab_size(self) -> int:
        return self.cfg.text.vocab_size

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.language_model.embed_tokens(ids)

    def text_forward(self, embeds: torch.Tensor, positions: torch.Tensor, step: Step) -> torch.Tensor:
        return self.language_model(embeds, positions, step)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        w = self.language_model.embed_tokens.weight if self.cfg.tie_word_embeddings else self.lm_head.weight
        return F.linear(hidden, w)

    # -- media
    def media_features(self, pixels: Any, grid_thw: Any, batch: Any = None) -> torch.Tensor:
        """Vision features ``(Σ tokens, hidden)`` of packed images or videos (in batch order)."""
        pixels = normalize_pixels(pixels, batch, self.cfg.vision.in_channels, self.device, self.dtype)
        return self.visual(pixels, as_tensor(grid_thw, dtype=torch.int64))

    def encode_media(self, kind: str, batch: Any) -> tuple[torch.Tensor, list[int]]:
        """Features of the batch's images or videos and the feature count of each (the prepare hook)."""
        pix_key, grid_key = _MEDIA_KEYS[kind]
        if batch.get(grid_key) is None:
            raise InvalidInputError(f"batch has {pix_key} but no {grid_key}")
        grid = as_tensor(batch[grid_key], dtype=torch.int64).reshape(-1, 3)
        merge2 = self.cfg.vision.spatial_merge_size**2
        return self.media_features(batch[pix_key], grid, batch), (grid.prod(-1) // merge2).tolist()

    def media_slots(self, tokens: PackedTokens) -> dict[str, torch.Tensor]:
        image, video = placeholder_slots(tokens.ids, tokens.cu_seqlens, self.cfg)
        return {"image": image, "video": video}

    def prepare(self, batch: Any) -> Prompt:
        """Pack the batch's tokens and put image/video features into their placeholder slots."""
        return prepare_prompt(self, batch, _MEDIA)

    # -- forward passes
    def forward(self, batch: Any) -> ModelOutput:
        """Full logits ``(B, L, vocab)`` of a processor batch (no cache)."""
        return run_forward(self, batch)

    def new_cache(self, batch_size: int, max_len: int) -> StaticKVCache:
        c = self.cfg.text
        return StaticKVCache.allocate(c.num_layers, batch_size, max_len, c.num_kv_heads, c.head_dim,
                                      dtype=self.dtype, device=self.device)

    def prefill(self, prompt: Prompt, cache: StaticKVCache) -> torch.Tensor:
        """Run the prompt, fill the cache; returns each row's last-token logits ``(B, vocab)``."""
        return run_prefill(self, prompt, cache)

    def decode(self, token_ids: torch.Tensor, positions: torch.Tensor, cache: StaticKVCache) -> torch.Tensor:
        """One new token per row at 1-D rope ``positions (B,)`` (all three MRoPE axes) -> ``(B, vocab)``."""
        return run_decode(self, token_ids, positions, cache)

    def generate(self, batch: Any, max_new_tokens: int = 32, **kwargs: Any) -> torch.Tensor:
        """New token ids ``(B, n)``; see :func:`mmprep.models.generate.generate` for the options."""
        from .generate import generate

        return generate(self, batch, max_new_tokens=max_new_tokens, **kwargs)


_MEDIA_KEYS = {"image": ("pixel_values", "image_grid_thw"), "video": ("pixel_values_videos", "video_grid_thw")}
_MEDIA = (MediaInput("image", "pixel_values"), MediaInput("video", "pixel_values_videos"))


def placeholder_slots(ids: torch.Tensor, cu_seqlens: torch.Tensor, cfg: Glm4vConfig):
    """Boolean masks of image and video feature slots over packed ``ids``.

    Video slots are ``video_token_id`` tokens (mmprep / vLLM prompts) and image-token ids between
    ``<|begin_of_video|>`` and ``<|end_of_video|>`` (transformers prompts write video frames with
    the image token, T29); every other image token is an image slot.
    """
    starts = torch.cumsum((ids == cfg.video_start_token_id).long(), 0)
    ends = torch.cumsum((ids == cfg.video_end_token_id).long(), 0)
    row = torch.repeat_interleave(torch.arange(cu_seqlens.numel() - 1, device=ids.device),
                                  (cu_seqlens[1:] - cu_seqlens[:-1]).long())
    first = cu_seqlens[:-1].long()
    base_s = F.pad(starts, (1, 0))[first][row]  # counts before each row's first token
    base_e = F.pad(ends, (1, 0))[first][row]
    in_video = (starts - base_s) > (ends - base_e)
    is_image = ids == cfg.image_token_id
    return is_image & ~in_video, (ids == cfg.video_token_id) | (is_image & in_video)


def normalize_pixels(pixels: Any, batch: Any, channels: int, device, dtype) -> torch.Tensor:
    """Pixel rows on the model's device and dtype.

    Float rows are used as given (already rescaled and normalized by the processor). uint8 rows
    (``(N, c*t*p*p)`` with the channel slowest) are normalized here, on the device, in fp32:
    ``(x * rescale - mean[c]) / std[c]`` with mean/std/rescale from a ``PixelBatch``, from the batch
    keys ``image_mean``/``image_std``/``rescale_factor``, or the CLIP defaults and 1/255.
    """
    mean = std = None
    if hasattr(pixels, "pixel_values"):  # a PixelBatch carries its own mean/std (tensors have .mean())
        mean, std, pixels = pixels.mean, pixels.std, pixels.pixel_values
    x = as_tensor(pixels, device)
    if x.is_floating_point():
        return x.to(dtype)
    get = (batch.get if batch is not None else (lambda k, d=None: d))
    mean = torch.tensor(mean or get("image_mean") or CLIP_MEAN, dtype=torch.float32, device=device)
    std = torch.tensor(std or get("image_std") or CLIP_STD, dtype=torch.float32, device=device)
    scale = float(get("rescale_factor") or 1 / 255)
    xf = x.float().view(x.shape[0], channels, -1) * scale
    return ((xf - mean[:, None]) / std[:, None]).reshape(x.shape[0], -1).to(dtype)


def weight_table(cfg: Glm4vConfig) -> dict[str, Any] | tuple[dict[str, Any], ...]:
    """Every checkpoint tensor of a ``Glm4v[Moe]ForConditionalGeneration`` and the parameter it fills
    (MoE: one table per checkpoint layout, see :func:`~mmprep.models.weights.load_weights`)."""
    v, t = cfg.vision, cfg.text
    vis = ["patch_embed.proj.weight", "patch_embed.proj.bias", "post_conv_layernorm.weight",
           "embeddings.position_embedding.weight", "post_layernorm.weight", "downsample.weight",
           "downsample.bias", "merger.proj.weight", "merger.post_projection_norm.weight",
           "merger.post_projection_norm.bias", "merger.gate_proj.weight", "merger.up_proj.weight",
           "merger.down_proj.weight"]
    for i in range(v.depth):
        names = ["norm1.weight", "norm2.weight", "attn.qkv.weight", "attn.proj.weight",
                 "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"]
        names += ["attn.qkv.bias"] if v.attention_bias else []
        vis += [f"blocks.{i}.{n}" for n in names]
    table: dict[str, Any] = {f"model.visual.{n}": f"visual.{n}" for n in vis}
    if not cfg.tie_word_embeddings:
        table["lm_head.weight"] = "lm_head.weight"
    if isinstance(t, MoeTextConfig):  # two layouts: per-expert (Hub, Glm4vMoe) or fused (Glm46V save_pretrained)
        return tuple({**table, **text_weight_table(t, fused=fused)} for fused in (False, True))
    return {**table, **_dense_text_table(t)}


def _dense_text_table(t: TextConfig) -> dict[str, str]:
    txt = ["embed_tokens.weight", "norm.weight"]
    for i in range(t.num_layers):
        names = [f"self_attn.{p}_proj.{w}" for p in "qkv" for w in ("weight", "bias")]
        names += ["self_attn.o_proj.weight", "mlp.gate_up_proj.weight", "mlp.down_proj.weight",
                  "input_layernorm.weight", "post_self_attn_layernorm.weight",
                  "post_attention_layernorm.weight", "post_mlp_layernorm.weight"]
        txt += [f"layers.{i}.{n}" for n in names]
    return {f"model.language_model.{n}": f"language_model.{n}" for n in txt}
