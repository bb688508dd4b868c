"""Isaac (Perceptron, ``IsaacForConditionalGeneration``), readable top to bottom.

    packed patches (Σ h*w, 3*P*P), each row (py, px, c) with the channel fastest
      --> patch embedding (Linear) + the learned S x S position table resized to each image's
          h x w grid (bilinear, align_corners=False, antialias, in fp32)
      --> SigLIP2 encoder layers [LayerNorm -> attention within each image -> LayerNorm -> MLP]
      --> post LayerNorm --> 2x2 pixel shuffle over each image's grid (space to depth)
      --> projector Linear -> SiLU -> Linear
      --> one embedding per ``<|image_pad|>`` token
    token embeddings with the image features in their slots
      --> Qwen3 decoder layers (q/k RMSNorm per head, GQA, MRoPE in the half layout with
          sections [hd/4, hd/8, hd/8] in blocks) --> tied or untied head

Weight names are the released checkpoint's (``model.vision_embedding.{0,1,3}.*``,
``model.layers.*``, ``model.embed_tokens.weight``, ``lm_head.weight`` when untied);
:func:`weight_table` lists every one. Configuration: :meth:`IsaacConfig.from_hf` reads the
released ``config.json`` (flat Qwen3 keys or a ``text_config``, plus ``vision_config``).

Positions come from the batch (``mmprep.load(dir).process(...)``): the model does not choose
between the two position rules (``IsaacSpec.mrope_rule``), it applies what it is given.
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
from .inputs import PackedTokens, as_tensor
from .layers import FeedForward, RMSNorm, SwiGLU, activation, layer_norm, space_to_depth
from .prepare import MediaInput, prepare_prompt
from .rope import mrope_cos_sin

IMAGE_PAD_TOKEN = "<|image_pad|>"  # the released tokenizer's image placeholder (one per feature)


# -- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VisionConfig:
    hidden_size: int = 1152
    intermediate_size: int = 4304
    num_layers: int = 27
    num_heads: int = 16
    num_channels: int = 3
    patch_size: int = 16  # px
    num_patches: int = 256  # position table rows: a sqrt(num_patches)-square grid
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu_pytorch_tanh"
    pixel_shuffle_scale: int = 2  # patches per side merged into one decoder token

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def patch_dim(self) -> int:
        return self.num_channels * self.patch_size**2

    @property
    def table_side(self) -> int:
        return int(round(self.num_patches**0.5))


@dataclass(frozen=True)
class TextConfig:
    vocab_size: int = 151936
    hidden_size: int = 2048
    intermediate_size: int = 6144
    num_layers: int = 28
    num_heads: int = 16
    num_kv_heads: int = 8
    head_dim: int = 128  # explicit: heads * head_dim may differ from hidden_size
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    max_position_embeddings: int = 40960  # tokens
    attention_bias: bool = False

    @property
    def mrope_section(self) -> tuple[int, int, int]:
        """Frequencies per axis (t, h, w): ``[hd/4, hd/8, hd/8]`` of the ``hd/2`` (the seed's rule)."""
        hd = self.head_dim
        return (hd // 4, hd // 8, hd // 8)


@dataclass(frozen=True)
class IsaacConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    image_token_id: int = 151655  # <|image_pad|> in the released tokenizer
    tie_word_embeddings: bool = False
    eos_token_ids: tuple[int, ...] = ()

    @classmethod
    def from_hf(cls, config: dict[str, Any], generation_config: dict[str, Any] | None = None,
                added_tokens: dict[str, int] | None = None) -> IsaacConfig:
        """Read ``config.json`` (flat Qwen3 keys or ``text_config``), ``generation_config.json`` and
        the tokenizer's added tokens (for the ``<|image_pad|>`` id, which the config does not carry)."""
        v = config.get("vision_config") or {}
        t = config.get("text_config") or config
        scale = v.get("pixel_shuffle_scale_factor", config.get("pixel_shuffle_scale", 2))
        vision = VisionConfig(
            hidden_size=v.get("hidden_size", 1152), intermediate_size=v.get("intermediate_size", 4304),
            num_layers=v.get("num_hidden_layers", 27), num_heads=v.get("num_attention_heads", 16),
            num_channels=v.get("num_channels", 3), patch_size=v.get("patch_size", config.get("vision_patch_size", 16)),
            num_patches=v.get("num_patches", 256), layer_norm_eps=v.get("layer_norm_eps", 1e-6),
            hidden_act=v.get("hidden_act", "gelu_pytorch_tanh"), pixel_shuffle_scale=scale,
        )
        rope = t.get("rope_parameters") or {}
        heads = t.get("num_attention_heads", 16)
        text = TextConfig(
            vocab_size=t.get("vocab_size", 151936), hidden_size=t.get("hidden_size", 2048),
            intermediate_size=t.get("intermediate_size", 6144), num_layers=t.get("num_hidden_layers", 28),
            num_heads=heads, num_kv_heads=t.get("num_key_value_heads") or heads,
            head_dim=t.get("head_dim") or t.get("hidden_size", 2048) // heads,
            rms_norm_eps=t.get("rms_norm_eps", 1e-6),
            rope_theta=rope.get("rope_theta", t.get("rope_theta", 1_000_000.0)),
            max_position_embeddings=t.get("max_position_embeddings", 40960),
            attention_bias=bool(t.get("attention_bias", False)),
        )
        image_id = config.get("image_token_id", (added_tokens or {}).get(IMAGE_PAD_TOKEN))
        if image_id is None:
            raise UnknownModelError(
                f"the checkpoint names no image token id: config.json has no image_token_id and the "
                f"tokenizer has no {IMAGE_PAD_TOKEN!r}")
        gen = generation_config or {}
        eos = gen.get("eos_token_id", config.get("eos_token_id"))
        eos_ids = tuple(eos) if isinstance(eos, (list, tuple)) else (() if eos is None else (int(eos),))
        tied = config.get("tie_word_embeddings", t.get("tie_word_embeddings", False))
        return cls(vision=vision, text=text, image_token_id=int(image_id), tie_word_embeddings=bool(tied),
                   eos_token_ids=eos_ids)


def read_config(config: dict[str, Any], generation_config: dict[str, Any] | None = None,
                added_tokens: dict[str, int] | None = None) -> IsaacConfig:
    """The model table's reader."""
    return IsaacConfig.from_hf(config, generation_config, added_tokens)


# -- vision tower ------------------------------------------------------------------------------------


class VisionEmbeddings(nn.Module):
    """Patch rows -> embeddings, plus the learned position table resized to each image's grid."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.side = cfg.table_side
        if self.side * self.side != cfg.num_patches:
            raise UnknownModelError(f"vision_config.num_patches {cfg.num_patches} is not a square")
        self.patch_embedding = nn.Linear(cfg.patch_dim, cfg.hidden_size)
        self.position_embedding = nn.Embedding(cfg.num_patches, cfg.hidden_size)

    def positions(self, h: int, w: int) -> torch.Tensor:
        """The table resized to ``h x w`` patches, ``(h*w, hidden)`` row-major, in the table's dtype.

        Bilinear with ``align_corners=False`` and antialias (it matters when shrinking), in fp32.
        """
        table = self.position_embedding.weight
        grid = table.float().view(self.side, self.side, -1).permute(2, 0, 1)[None]
        resized = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        return resized[0].flatten(1).T.to(table.dtype)

    def forward(self, patches: torch.Tensor, grids_hw: list[tuple[int, int]]) -> torch.Tensor:
        x = self.patch_embedding(patches.to(self.patch_embedding.weight.dtype))
        cached: dict[tuple[int, int], torch.Tensor] = {}
        pos = []
        for hw in grids_hw:
            if hw not in cached:
                cached[hw] = self.positions(*hw)
            pos.append(cached[hw])
        return x + torch.cat(pos).to(x.dtype)


class VisionAttention(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.heads, self.head_dim = cfg.num_heads, cfg.head_dim
        d = cfg.hidden_size
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int) -> torch.Tensor:
        n = x.shape[0]
        q, k, v = (p(x).view(n, self.heads, self.head_dim) for p in (self.q_proj, self.k_proj, self.v_proj))
        out = varlen_attention(q, k, v, cu_seqlens, max_seqlen, causal=False)  # within each image
        return self.out_proj(out.reshape(n, -1))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.layer_norm1 = layer_norm(cfg.hidden_size, cfg.layer_norm_eps)
        self.self_attn = VisionAttention(cfg)
        self.layer_norm2 = layer_norm(cfg.hidden_size, cfg.layer_norm_eps)
        self.mlp = FeedForward(cfg.hidden_size, cfg.intermediate_size, cfg.hidden_act)

    def forward(self, x: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), cu_seqlens, max_seqlen)
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))


class VisionTower(nn.Module):
    """SigLIP2 over packed variable-size images, then the pixel shuffle (``model.vision_embedding.0``)."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = VisionEmbeddings(cfg)
        self.encoder = Encoder(cfg)
        self.post_layernorm = layer_norm(cfg.hidden_size, cfg.layer_norm_eps)

    def encode(self, patches: torch.Tensor, grids_hw: list[tuple[int, int]]) -> torch.Tensor:
        """``(Σ h*w, patch_dim)`` -> ``(Σ h*w, hidden)``: every patch after the post LayerNorm."""
        sizes = torch.tensor([h * w for h, w in grids_hw], dtype=torch.int64)
        cu = F.pad(torch.cumsum(sizes, 0), (1, 0)).to(patches.device, torch.int32)
        longest = int(sizes.max()) if sizes.numel() else 0
        x = self.embeddings(patches, grids_hw)
        for layer in self.encoder.layers:
            x = layer(x, cu, longest)
        return self.post_layernorm(x)

    def forward(self, patches: torch.Tensor, grids_hw: list[tuple[int, int]]) -> torch.Tensor:
        """``(Σ h*w, patch_dim)`` -> ``(Σ h*w / s², hidden * s²)`` (after the pixel shuffle)."""
        return space_to_depth(self.encode(patches, grids_hw), grids_hw, self.cfg.pixel_shuffle_scale)


class Projector(nn.Module):
    """``model.vision_embedding.{1,3}``: Linear (x4 width, no bias) -> SiLU -> Linear to the decoder width."""

    def __init__(self, dim: int, out: int):
        super().__init__()
        self.linear_fc1 = nn.Linear(dim, 4 * dim, bias=False)
        self.linear_fc2 = nn.Linear(4 * dim, out, bias=False)
        self.act = activation("silu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_fc2(self.act(self.linear_fc1(x)))


def image_grids(pixels: torch.Tensor, grid_thw: Any, cfg: VisionConfig) -> list[tuple[int, int]]:
    """Per-image ``(h, w)`` patch grids from ``image_grid_thw``, checked against the pixel rows."""
    grid = as_tensor(grid_thw, dtype=torch.int64).reshape(-1, 3).tolist()
    s = cfg.pixel_shuffle_scale
    for i, (t, h, w) in enumerate(grid):
        if t != 1 or h <= 0 or w <= 0 or h % s or w % s:
            raise InvalidInputError(
                f"image {i}: grid (t={t}, h={h}, w={w}) must have t = 1 and h, w positive multiples of the "
                f"pixel shuffle scale {s}")
    expected = sum(h * w for _, h, w in grid)
    if pixels.ndim != 2 or pixels.shape[0] != expected or pixels.shape[1] != cfg.patch_dim:
        raise InvalidInputError(
            f"pixel values have shape {tuple(pixels.shape)}; the grids {grid} need ({expected}, {cfg.patch_dim})")
    return [(h, w) for _, h, w in grid]


def normalize_patches(pixels: Any, batch: Any, channels: int, device, dtype) -> torch.Tensor:
    """Float rows are used as given; uint8 rows ``(N, P*P*c)`` (channel fastest) are rescaled and
    normalized here with the batch's ``image_mean``/``image_std``/``rescale_factor`` (default 0.5/0.5, 1/255)."""
    x = as_tensor(pixels, device)
    if x.is_floating_point():
        return x.to(dtype)
    get = batch.get if batch is not None else (lambda k, d=None: d)
    mean = torch.tensor(get("image_mean") or (0.5,) * channels, dtype=torch.float32, device=device)
    std = torch.tensor(get("image_std") or (0.5,) * channels, dtype=torch.float32, device=device)
    scale = float(get("rescale_factor") or 1 / 255)
    xf = x.float().view(x.shape[0], -1, channels) * scale
    return ((xf - mean) / std).reshape(x.shape[0], -1).to(dtype)


class VisionEmbedding(nn.Module):
    """``model.vision_embedding``: the tower (index 0), the projector (1 and 3; 2 is the SiLU)."""

    def __init__(self, cfg: IsaacConfig):
        super().__init__()
        v = cfg.vision
        self.tower = VisionTower(v)
        self.projector = Projector(v.hidden_size * v.pixel_shuffle_scale**2, cfg.text.hidden_size)

    def forward(self, patches: torch.Tensor, grids_hw: list[tuple[int, int]]) -> torch.Tensor:
        return self.projector(self.tower(patches, grids_hw))


# -- Qwen3 decoder -----------------------------------------------------------------------------------


class DecoderLayer(nn.Module):
    """Qwen3 layer: pre-norm attention (q/k norm) and pre-norm SwiGLU."""

    def __init__(self, cfg: TextConfig, layer: int):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = DecoderAttention(cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, layer,
                                          qkv_bias=cfg.attention_bias, o_bias=cfg.attention_bias,
                                          qk_norm_eps=cfg.rms_norm_eps, rope_layout="half")
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: torch.Tensor, step: Step) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), step)
        return x + self.mlp(self.post_attention_layernorm(x))


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
        step.cos, step.sin = mrope_cos_sin(positions, c.head_dim, c.rope_theta, c.mrope_section,
                                           layout="half", section_layout="blocks")
        x = embeds
        for layer in self.layers:
            x = layer(x, step)
        return self.norm(x)


# -- the whole model -----------------------------------------------------------------------------------


class IsaacForConditionalGeneration(nn.Module):
    def __init__(self, cfg: IsaacConfig):
        super().__init__()
        self.cfg = cfg
        self.vision_embedding = VisionEmbedding(cfg)
        self.language_model = TextModel(cfg.text)
        if not cfg.tie_word_embeddings:
            self.lm_head = nn.Linear(cfg.text.hidden_size, cfg.text.vocab_size, bias=False)

    # -- what the generic passes and generate() read
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

    # -- images
    def image_features(self, pixels: Any, grid_thw: Any, batch: Any = None) -> torch.Tensor:
        """Projected features ``(Σ h*w / s², hidden)`` of packed images (in batch order)."""
        v = self.cfg.vision
        patches = normalize_patches(pixels, batch, v.num_channels, self.device, self.dtype)
        return self.vision_embedding(patches, image_grids(patches, grid_thw, v))

    def encode_media(self, kind: str, batch: Any) -> tuple[torch.Tensor, list[int]]:
        """The prepare hook: features of the batch's images and the feature count of each."""
        if batch.get("image_grid_thw") is None:
            raise InvalidInputError("batch has pixel_values but no image_grid_thw")
        grid = as_tensor(batch["image_grid_thw"], dtype=torch.int64).reshape(-1, 3)
        s2 = self.cfg.vision.pixel_shuffle_scale**2
        return self.image_features(batch["pixel_values"], grid, batch), (grid.prod(-1) // s2).tolist()

    def media_slots(self, tokens: PackedTokens) -> dict[str, torch.Tensor]:
        return {"image": tokens.ids == self.cfg.image_token_id}

    def prepare(self, batch: Any) -> Prompt:
        """Pack the batch's tokens and put the image features into the ``<|image_pad|>`` slots."""
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
        return run_prefill(self, prompt, cache)

    def decode(self, token_ids: torch.Tensor, positions: torch.Tensor, cache: StaticKVCache) -> torch.Tensor:
        return run_decode(self, token_ids, positions, cache)

    def generate(self, batch: Any, max_new_tokens: int = 32, **kwargs: Any) -> torch.Tensor:
        """New token ids ``(B, n)``; see :func:`mmprep.models.generate.generate` for the options."""
        from .generate import generate

        return generate(self, batch, max_new_tokens=max_new_tokens, **kwargs)


_MEDIA = (MediaInput("image", "pixel_values"),)


def weight_table(cfg: IsaacConfig) -> tuple[dict[str, str], dict[str, str]]:
    """Every checkpoint tensor and the parameter it fills, in the two layouts Isaac checkpoints come in:
    the released one (``model.embed_tokens``, ``model.layers.*``; first) and transformers' own
    ``save_pretrained`` of ``IsaacForConditionalGeneration`` (the decoder under ``model.text_model.*``).
    The loader takes the first layout the checkpoint matches."""
    released = released_weight_table(cfg)
    renamed = {(f"model.text_model.{k[len('model.'):]}" if k.startswith("model.") and
                not k.startswith("model.vision_embedding.") else k): v for k, v in released.items()}
    return released, renamed


def released_weight_table(cfg: IsaacConfig) -> dict[str, str]:
    """Every checkpoint tensor of the released layout and the parameter it fills."""
    v, t = cfg.vision, cfg.text
    tower = ["embeddings.patch_embedding.weight", "embeddings.patch_embedding.bias",
             "embeddings.position_embedding.weight", "post_layernorm.weight", "post_layernorm.bias"]
    for i in range(v.num_layers):
        names = [f"{n}.{w}" for n in ("layer_norm1", "layer_norm2", "self_attn.q_proj", "self_attn.k_proj",
                                      "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")
                 for w in ("weight", "bias")]
        tower += [f"encoder.layers.{i}.{n}" for n in names]
    table = {f"model.vision_embedding.0.{n}": f"vision_embedding.tower.{n}" for n in tower}
    table["model.vision_embedding.1.weight"] = "vision_embedding.projector.linear_fc1.weight"
    table["model.vision_embedding.3.weight"] = "vision_embedding.projector.linear_fc2.weight"
    txt = ["embed_tokens.weight", "norm.weight"]
    for i in range(t.num_layers):
        names = [f"self_attn.{p}_proj.weight" for p in "qkvo"]
        names += [f"self_attn.{p}_proj.bias" for p in "qkvo"] if t.attention_bias else []
        names += ["self_attn.q_norm.weight", "self_attn.k_norm.weight", "input_layernorm.weight",
                  "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                  "mlp.down_proj.weight"]
        txt += [f"layers.{i}.{n}" for n in names]
    table.update({f"model.{n}": f"language_model.{n}" for n in txt})
    if not cfg.tie_word_embeddings:
        table["lm_head.weight"] = "lm_head.weight"
    return table
