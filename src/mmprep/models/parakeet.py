"""The Parakeet (FastConformer) sound encoder of Nemotron 3 Nano Omni and its sound projector.

    log-mel features (B, frames, mels), valid frames per clip
      --> conv subsampling (log2(subsampling_factor) stride-2 Conv2d stages over time x mel,
          padded frames zeroed after every conv) --> Linear          one row per 8 frames
      --> (x sqrt(hidden) when scale_input; the Omni checkpoint: no)
      --> packed clips, blocks [ x + 1/2 FF(LN x)
                                 x + relative-position self-attention(LN x)
                                 x + conv module(LN x): pointwise -> GLU -> depthwise -> BatchNorm -> act -> pointwise
                                 x + 1/2 FF(LN x); LN ]
      --> sound projector: RMSNorm -> Linear -> ReLU^2 -> Linear     one LLM embedding per row

Attention is Transformer-XL style: ``softmax(((q + u) . k + (q + v) . R(i - j)) / sqrt(d))`` with
``R(d) = relative_k_proj(sinusoid(d))``; the second term is an additive bias that enters through
:func:`~mmprep.models.attention.varlen_attention` (``bias=``), one block per clip. Clips are packed:
no padded row is attended or convolved, so a clip gives the same rows alone or in a padded batch.

Rows per clip: ``subsampled(valid frames)`` (``mmprep.families.nemotron.audio.subsampled_length``),
which equals the prompt's ``<so_embedding>`` count from ``family.count_audio_tokens(num_samples)``.

The hook the Nemotron Omni model calls: :meth:`SoundTower.encode_audio` ``(features,
feature_lengths) -> ((Σ tokens, llm hidden), tokens per clip)``. Weights: the checkpoint names
``sound_encoder.encoder.*`` and ``sound_projection.{norm,linear1,linear2}.*`` (:func:`weight_table`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInputError, UnknownModelError
from .attention import varlen_attention
from .inputs import as_tensor
from .layers import ACTIVATIONS, activation
from .weights import SKIP

# -- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParakeetConfig:
    """The Omni config's ``sound_config`` (Hub) / ``audio_config`` (transformers) and the projector sizes.

    Defaults are the Omni checkpoint's values; ``attention_bias`` and ``scale_input`` default to
    False as the Omni config injects them (transformers' bare ``ParakeetEncoderConfig`` says True).
    """

    hidden_size: int = 1024
    num_layers: int = 24
    num_heads: int = 8
    intermediate_size: int = 4096
    hidden_act: str = "silu"
    attention_bias: bool = False
    convolution_bias: bool = True
    conv_kernel_size: int = 9
    subsampling_factor: int = 8
    subsampling_conv_channels: int = 256
    subsampling_conv_kernel_size: int = 3
    subsampling_conv_stride: int = 2
    num_mel_bins: int = 128
    scale_input: bool = False
    projection_hidden_size: int = 4096
    projection_bias: bool = False
    llm_hidden_size: int = 2688
    norm_eps: float = 1e-5  # LayerNorms, BatchNorm and the projector's RMSNorm

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def subsampling_layers(self) -> int:
        return int(math.log2(self.subsampling_factor))

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> ParakeetConfig:
        """Read an Omni ``config.json``: ``audio_config`` (transformers) or ``sound_config`` (Hub),
        the LLM width from ``text_config`` / ``llm_config``."""
        key = "audio_config" if config.get("audio_config") is not None else "sound_config"
        a = config.get(key)
        if not a:
            raise UnknownModelError("the config has no sound_config / audio_config: this model takes no audio")
        llm = config.get("text_config") or config.get("llm_config") or {}
        same = {f: a[f] for f in _SAME_NAMES if f in a}
        cfg = cls(**same, num_heads=a.get("num_attention_heads", cls.num_heads),
                  num_layers=a.get("num_hidden_layers", cls.num_layers),
                  llm_hidden_size=llm.get("hidden_size", cls.llm_hidden_size))
        check_config(cfg, key, a)
        return cfg


# config keys read under the same name as the field
_SAME_NAMES = ("hidden_size", "intermediate_size", "hidden_act", "attention_bias", "convolution_bias", "conv_kernel_size",
               "subsampling_factor", "subsampling_conv_channels", "subsampling_conv_kernel_size",
               "subsampling_conv_stride", "num_mel_bins", "scale_input", "projection_hidden_size", "projection_bias")


def check_config(cfg: ParakeetConfig, key: str, raw: dict[str, Any]) -> None:
    """Raise :class:`UnknownModelError` naming the field this encoder does not implement."""
    kind = raw.get("model_type", "parakeet")
    if kind not in ("parakeet", "parakeet_encoder"):
        raise UnknownModelError(f"{key}.model_type = {kind!r}: not a Parakeet encoder")
    if 2 ** cfg.subsampling_layers != cfg.subsampling_factor:
        raise UnknownModelError(f"{key}.subsampling_factor = {cfg.subsampling_factor} is not a power of two")
    if cfg.hidden_size % cfg.num_heads:
        raise UnknownModelError(f"{key}.hidden_size = {cfg.hidden_size} is not a multiple of "
                                f"num_attention_heads = {cfg.num_heads}")
    if cfg.hidden_act not in ACTIVATIONS:
        raise UnknownModelError(f"{key}.hidden_act = {cfg.hidden_act!r} is not supported")
    if raw.get("num_key_value_heads", cfg.num_heads) != cfg.num_heads:
        raise UnknownModelError(f"{key}.num_key_value_heads must equal num_attention_heads (Parakeet is MHA)")


def subsampled_lengths(frames: torch.Tensor, cfg: ParakeetConfig) -> torch.Tensor:
    """Rows after the conv subsampling: ``floor((L + 2p - k) / s) + 1`` per stage (int64, exact)."""
    k, s = cfg.subsampling_conv_kernel_size, cfg.subsampling_conv_stride
    out = frames.long()
    for _ in range(cfg.subsampling_layers):
        out = torch.div(out + 2 * ((k - 1) // 2) - k, s, rounding_mode="floor") + 1
    return out


# -- encoder -----------------------------------------------------------------------------------------


class Subsampling(nn.Module):
    """Conv2d stages over (time, mel); ``layers`` indices follow the checkpoint (ReLUs hold no weights)."""

    def __init__(self, cfg: ParakeetConfig):
        super().__init__()
        k, s, c = cfg.subsampling_conv_kernel_size, cfg.subsampling_conv_stride, cfg.subsampling_conv_channels
        p = (k - 1) // 2
        layers: list[nn.Module] = [nn.Conv2d(1, c, k, stride=s, padding=p), nn.ReLU()]
        for _ in range(cfg.subsampling_layers - 1):
            layers += [nn.Conv2d(c, c, k, stride=s, padding=p, groups=c), nn.Conv2d(c, c, 1), nn.ReLU()]
        self.layers = nn.ModuleList(layers)
        self.linear = nn.Linear(c * (cfg.num_mel_bins // s**cfg.subsampling_layers), cfg.hidden_size)
        self.cfg = cfg

    def forward(self, features: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features (B, T, mels)``, valid ``frames (B,)`` -> padded rows ``(B, T', hidden)`` and valid rows ``(B,)``."""
        x = features[:, None]
        lengths = frames.to(x.device).long()
        x = x * (torch.arange(x.shape[2], device=x.device) < lengths[:, None])[:, None, :, None]
        for layer in self.layers:
            x = layer(x)
            if isinstance(layer, nn.Conv2d):  # zero the rows past each clip's length, as the reference does
                if layer.stride[0] != 1:
                    k, p, s = layer.kernel_size[0], layer.padding[0], layer.stride[0]
                    lengths = torch.div(lengths + 2 * p - k, s, rounding_mode="floor") + 1
                x = x * (torch.arange(x.shape[2], device=x.device) < lengths[:, None])[:, None, :, None]
        x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)  # (B, T', channels * mel')
        return self.linear(x), lengths


def relative_table(length: int, dim: int, device, dtype) -> torch.Tensor:
    """Sinusoids of the relative distances ``length-1 .. -(length-1)`` (row ``m`` = distance
    ``length-1-m``), ``sin`` and ``cos`` interleaved per frequency ``10000**(-2i/dim)``: ``(2L-1, dim)``."""
    d = torch.arange(length - 1, -length, -1, device=device).float()
    freqs = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, device=device).float() / dim))
    angles = d[:, None] * freqs
    return torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(d.numel(), dim).to(dtype)


def relative_scores(qv: torch.Tensor, rel: torch.Tensor, length: int) -> torch.Tensor:
    """``(S, Lmax, H, D)`` queries (with the positional bias ``v``) and the projected table
    ``(2*Lmax-1, H, D)`` -> ``(S, H, Lmax, Lmax)`` scores ``q_i . R(i - j)``."""
    raw = torch.einsum("slhd,mhd->shlm", qv, rel)  # m = (Lmax-1) - distance
    i = torch.arange(length, device=qv.device)
    index = (length - 1 - i[:, None] + i[None, :]).expand(*raw.shape[:2], length, length)
    return raw.gather(-1, index)


def relative_scores_reference(qv: torch.Tensor, rel: torch.Tensor, length: int) -> torch.Tensor:
    """Pair-by-pair twin of :func:`relative_scores` (tests only)."""
    S, _, H, _ = qv.shape
    out = torch.zeros(S, H, length, length, dtype=torch.float64)
    for s in range(S):
        for i in range(length):
            for j in range(length):
                r = rel[length - 1 - (i - j)]  # the table row of distance i - j
                out[s, :, i, j] = (qv[s, i].double() * r.double()).sum(-1)
    return out.to(qv.dtype)


@dataclass
class Clips:
    """Packed clips: boundaries and each row's place in a ``(clips, longest)`` padded layout."""

    cu_seqlens: torch.Tensor  # (S+1,) int32
    longest: int
    clip: torch.Tensor  # (T,) clip of each packed row
    pos: torch.Tensor  # (T,) row inside its clip

    @classmethod
    def of(cls, lengths: list[int], device) -> Clips:
        n = torch.tensor(lengths, dtype=torch.int64)
        cu = F.pad(torch.cumsum(n, 0), (1, 0))
        clip = torch.repeat_interleave(torch.arange(len(lengths)), n)
        pos = torch.arange(int(n.sum())) - cu[:-1][clip]
        return cls(cu.to(device, torch.int32), max(lengths, default=0), clip.to(device), pos.to(device))

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(self.cu_seqlens.numel() - 1, self.longest, *x.shape[1:])
        out[self.clip, self.pos] = x
        return out

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        return x[self.clip, self.pos]


class RelativeAttention(nn.Module):
    def __init__(self, cfg: ParakeetConfig):
        super().__init__()
        h, bias = cfg.hidden_size, cfg.attention_bias
        self.heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.q_proj, self.k_proj = nn.Linear(h, h, bias=bias), nn.Linear(h, h, bias=bias)
        self.v_proj, self.o_proj = nn.Linear(h, h, bias=bias), nn.Linear(h, h, bias=bias)
        self.relative_k_proj = nn.Linear(h, h, bias=False)
        self.bias_u = nn.Parameter(torch.zeros(cfg.num_heads, cfg.head_dim))  # content bias
        self.bias_v = nn.Parameter(torch.zeros(cfg.num_heads, cfg.head_dim))  # position bias

    def forward(self, x: torch.Tensor, table: torch.Tensor, clips: Clips) -> torch.Tensor:
        T, H, D = x.shape[0], self.heads, self.head_dim
        q = self.q_proj(x).view(T, H, D)
        k, v = self.k_proj(x).view(T, H, D), self.v_proj(x).view(T, H, D)
        rel = self.relative_k_proj(table).view(-1, H, D)
        scale = D**-0.5
        bias = relative_scores(clips.pad(q + self.bias_v), rel, clips.longest) * scale
        out = varlen_attention(q + self.bias_u, k, v, clips.cu_seqlens, clips.longest, scale=scale, bias=bias)
        return self.o_proj(out.reshape(T, H * D))


class BatchNorm(nn.Module):
    """Inference BatchNorm over channels with the checkpoint's buffers (running stats, counter)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., channels)``."""
        return (x - self.running_mean) * torch.rsqrt(self.running_var + self.eps) * self.weight + self.bias


class ConvModule(nn.Module):
    def __init__(self, cfg: ParakeetConfig):
        super().__init__()
        c, k, bias = cfg.hidden_size, cfg.conv_kernel_size, cfg.convolution_bias
        self.pointwise_conv1 = nn.Conv1d(c, 2 * c, 1, bias=bias)
        self.depthwise_conv = nn.Conv1d(c, c, k, padding=(k - 1) // 2, groups=c, bias=bias)
        self.norm = BatchNorm(c, cfg.norm_eps)
        self.pointwise_conv2 = nn.Conv1d(c, c, 1, bias=bias)
        self.act = activation(cfg.hidden_act)

    def forward(self, x: torch.Tensor, clips: Clips) -> torch.Tensor:
        w1 = self.pointwise_conv1
        x = F.glu(F.linear(x, w1.weight[..., 0], w1.bias), dim=-1)
        x = clips.unpad(self.depthwise_conv(clips.pad(x).transpose(1, 2)).transpose(1, 2))  # zeros between clips
        x = self.act(self.norm(x))
        return F.linear(x, self.pointwise_conv2.weight[..., 0], self.pointwise_conv2.bias)


class FeedForward(nn.Module):
    def __init__(self, cfg: ParakeetConfig):
        super().__init__()
        self.linear1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.attention_bias)
        self.linear2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=cfg.attention_bias)
        self.act = activation(cfg.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.act(self.linear1(x)))


class ConformerBlock(nn.Module):
    def __init__(self, cfg: ParakeetConfig):
        super().__init__()
        h, eps = cfg.hidden_size, cfg.norm_eps
        self.feed_forward1, self.feed_forward2 = FeedForward(cfg), FeedForward(cfg)
        self.self_attn = RelativeAttention(cfg)
        self.conv = ConvModule(cfg)
        self.norm_feed_forward1, self.norm_self_att = nn.LayerNorm(h, eps=eps), nn.LayerNorm(h, eps=eps)
        self.norm_conv, self.norm_feed_forward2 = nn.LayerNorm(h, eps=eps), nn.LayerNorm(h, eps=eps)
        self.norm_out = nn.LayerNorm(h, eps=eps)

    def forward(self, x: torch.Tensor, table: torch.Tensor, clips: Clips) -> torch.Tensor:
        x = x + 0.5 * self.feed_forward1(self.norm_feed_forward1(x))
        x = x + self.self_attn(self.norm_self_att(x), table, clips)
        x = x + self.conv(self.norm_conv(x), clips)
        x = x + 0.5 * self.feed_forward2(self.norm_feed_forward2(x))
        return self.norm_out(x)


class ParakeetEncoder(nn.Module):
    def __init__(self, cfg: ParakeetConfig):
        super().__init__()
        self.cfg = cfg
        self.subsampling = Subsampling(cfg)
        self.layers = nn.ModuleList(ConformerBlock(cfg) for _ in range(cfg.num_layers))

    def forward(self, features: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """``features (B, T, mels)`` with ``frames (B,)`` valid frames -> packed ``(Σ rows, hidden)``, rows per clip."""
        x, rows = self.subsampling(features, frames)
        per_clip = rows.tolist()
        clips = Clips.of(per_clip, x.device)
        x = x[clips.clip, clips.pos]  # pack: padded rows are dropped here
        if self.cfg.scale_input:
            x = x * math.sqrt(self.cfg.hidden_size)
        table = relative_table(clips.longest, self.cfg.hidden_size, x.device, x.dtype)
        for layer in self.layers:
            x = layer(x, table, clips)
        return x, per_clip


class _Weight(nn.Module):
    """Holds the projector norm's ``weight`` (the norm itself runs in :meth:`SoundProjection.forward`)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))


class SoundProjection(nn.Module):
    """RMSNorm (weight applied in fp32) -> Linear -> ReLU² -> Linear into the LLM width."""

    def __init__(self, cfg: ParakeetConfig):
        super().__init__()
        self.norm = _Weight(cfg.hidden_size)
        self.linear1 = nn.Linear(cfg.hidden_size, cfg.projection_hidden_size, bias=cfg.projection_bias)
        self.linear2 = nn.Linear(cfg.projection_hidden_size, cfg.llm_hidden_size, bias=cfg.projection_bias)
        self.eps = cfg.norm_eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        x = (self.norm.weight.float() * xf).to(x.dtype)
        return self.linear2(F.relu(self.linear1(x)).square())


class SoundTower(nn.Module):
    """Encoder + projector: log-mel features of padded clips -> one LLM embedding per audio token."""

    def __init__(self, cfg: ParakeetConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ParakeetEncoder(cfg)
        self.projection = SoundProjection(cfg)

    def encode_audio(self, features: Any, feature_lengths: Any,
                     expected_tokens: Any = None) -> tuple[torch.Tensor, list[int]]:
        """``features (B, T, mels)`` (``input_audio_features``) and valid frames ``(B,)``
        (``audio_feature_lengths``) -> ``((Σ tokens, llm hidden), tokens per clip)``.

        ``expected_tokens`` (per clip, e.g. the prompt's placeholder counts): a clip whose encoder
        gives another count raises :class:`InvalidInputError` naming it.
        """
        w = self.projection.linear1.weight
        x = as_tensor(features, w.device)
        lengths = as_tensor(feature_lengths, w.device).reshape(-1).long()
        check_features(x, lengths, self.cfg)
        hidden, per_clip = self.encoder(x.to(w.dtype), lengths)
        if expected_tokens is not None:
            check_audio_tokens(per_clip, [int(n) for n in as_tensor(expected_tokens, "cpu").reshape(-1).tolist()])
        return self.projection(hidden), per_clip


def check_features(x: torch.Tensor, lengths: torch.Tensor, cfg: ParakeetConfig) -> None:
    if x.ndim != 3 or x.shape[-1] != cfg.num_mel_bins:
        raise InvalidInputError(f"audio features have shape {tuple(x.shape)}; expected (clips, frames, {cfg.num_mel_bins})")
    if lengths.numel() != x.shape[0]:
        raise InvalidInputError(f"{lengths.numel()} feature lengths for {x.shape[0]} audio clips")
    for i, n in enumerate(lengths.tolist()):
        if not 1 <= n <= x.shape[1]:
            raise InvalidInputError(f"audio clip {i}: {n} valid feature frames, outside 1..{x.shape[1]}")


def check_audio_tokens(per_clip: list[int], expected: list[int]) -> None:
    """Each clip's encoder rows must equal its placeholder count."""
    if len(per_clip) != len(expected):
        raise InvalidInputError(f"{len(per_clip)} audio clips encoded, but {len(expected)} token counts given")
    for i, (got, want) in enumerate(zip(per_clip, expected)):
        if got != want:
            raise InvalidInputError(
                f"audio clip {i}: the encoder gives {got} audio tokens, but the prompt has {want} placeholders")


def read_config(config: dict[str, Any]) -> ParakeetConfig:
    return ParakeetConfig.from_hf(config)


def weight_table(cfg: ParakeetConfig, target: str = "") -> dict[str, Any]:
    """Checkpoint names (``sound_encoder.encoder.*``, ``sound_projection.*``) -> parameters of a
    :class:`SoundTower` at ``target`` (e.g. ``"sound."`` inside the Omni model)."""
    enc = [f"subsampling.{n}" for n in ("linear.weight", "linear.bias")]
    convs = [0] + [i for s in range(cfg.subsampling_layers - 1) for i in (2 + 3 * s, 3 + 3 * s)]
    enc += [f"subsampling.layers.{i}.{w}" for i in convs for w in ("weight", "bias")]
    b = cfg.attention_bias
    for i in range(cfg.num_layers):
        names = [f"feed_forward{f}.linear{j}.{w}" for f in (1, 2) for j in (1, 2) for w in ("weight", "bias")
                 if w == "weight" or b]
        names += [f"self_attn.{p}_proj.{w}" for p in "qkvo" for w in ("weight", "bias") if w == "weight" or b]
        names += ["self_attn.relative_k_proj.weight", "self_attn.bias_u", "self_attn.bias_v"]
        names += [f"conv.{c}.{w}" for c in ("pointwise_conv1", "depthwise_conv", "pointwise_conv2")
                  for w in ("weight", "bias") if w == "weight" or cfg.convolution_bias]
        names += [f"conv.norm.{w}" for w in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
        names += [f"{n}.{w}" for n in ("norm_feed_forward1", "norm_self_att", "norm_conv", "norm_feed_forward2",
                                       "norm_out") for w in ("weight", "bias")]
        enc += [f"layers.{i}.{n}" for n in names]
    table: dict[str, Any] = {f"sound_encoder.encoder.{n}": f"{target}encoder.{n}" for n in enc}
    proj = ["norm.weight", "linear1.weight", "linear2.weight"]
    proj += ["linear1.bias", "linear2.bias"] if cfg.projection_bias else []
    table.update({f"sound_projection.{n}": f"{target}projection.{n}" for n in proj})
    table["sound_encoder.encoder.feature_extractor.*"] = SKIP  # mel featurizer buffers: features come from mmprep
    return table


# the other parts of an Omni checkpoint, skipped by name when only the sound tower is loaded
OMNI_OTHER_PARTS = ("language_model.*", "vision_model.*", "mlp1.*", "vision_projector.*")


def load_sound_tower(path: Any, device: Any = None, dtype: Any = None) -> SoundTower:
    """The sound tower of an Omni checkpoint directory alone (its LLM and vision weights are skipped)."""
    from pathlib import Path

    from ..loading import read_json
    from . import resolve_dtype
    from .weights import load_weights

    d = Path(path)
    cfg = ParakeetConfig.from_hf(read_json(d / "config.json") or {})
    dev = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    with torch.device("meta"):
        tower = SoundTower(cfg)
    table = weight_table(cfg) | {p: SKIP for p in OMNI_OTHER_PARTS}
    load_weights(tower, d, table, dtype=resolve_dtype(dtype, dev), device=dev)
    return tower.eval()
