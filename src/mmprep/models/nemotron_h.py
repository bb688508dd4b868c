"""The NemotronH hybrid decoder (Nemotron Nano VL's language model), readable top to bottom.

    embeddings --> layers, each ``x + mixer(RMSNorm(x))`` with the mixer its pattern letter names:
        ``M`` Mamba2 (models/mamba.py)   ``*`` attention (GQA, **no rope**, causal)
        ``-`` MLP: down(relu²(up(x)))    ``E`` MoE: sigmoid router with a score-correction bias,
                                              top-k of the groups' best, non-gated relu² experts,
                                              plus a shared expert
    --> norm_f --> lm_head

Attention layers keep KV in the core :class:`~mmprep.models.cache.StaticKVCache`; Mamba layers
keep their conv and SSM state in ``cache.states`` (:func:`new_hybrid_cache`). Positions are never
used: NemotronH has no rotary embedding (SPEC §4.3).

Weight names are the released checkpoint's (``backbone.layers.{i}.mixer.*``, one tensor per
expert: ``experts.{e}.up_proj.weight``); :func:`weight_table` lists them under a prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInputError, UnknownModelError
from .cache import StaticKVCache
from .decoder import ModelOutput, Prompt, Step, attend, run_decode, run_forward, run_prefill
from .generate import generate
from .inputs import pack_tokens
from .layers import RMSNorm, activation
from .mamba import Mamba2Mixer

LAYER_KINDS = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}
_LIST_NAMES = {"linear_attention": "M", "mamba": "M", "full_attention": "*", "attention": "*", "mlp": "-",
               "moe": "E"}


@dataclass(frozen=True)
class NemotronHConfig:
    pattern: str = "M-M*-"  # one letter per layer (hybrid_override_pattern)
    vocab_size: int = 131072
    hidden_size: int = 4096
    num_heads: int = 32
    num_kv_heads: int = 8
    head_dim: int = 128
    attention_bias: bool = False
    intermediate_size: int = 21504
    mlp_act: str = "relu2"
    mlp_bias: bool = False
    mamba_heads: int = 128
    mamba_head_dim: int = 64
    ssm_state_size: int = 128
    n_groups: int = 8
    conv_kernel: int = 4
    use_conv_bias: bool = True
    mamba_proj_bias: bool = False  # in_proj / out_proj bias (config ``use_bias``)
    chunk_size: int = 128
    time_step_limit: tuple[float, float] = (0.0, float("inf"))
    time_step_min: float = 0.001
    # which lower clamp dt gets: "time_step_min" (transformers 5, the reference the model layer is
    # checked against) or "time_step_limit" (the released remote code and vLLM: 0 by default)
    dt_floor_rule: str = "time_step_min"
    eps: float = 1e-5  # layer_norm_epsilon
    n_routed_experts: int = 8
    experts_per_token: int = 2
    moe_intermediate_size: int = 7688
    shared_intermediate_size: int = 7688
    moe_latent_size: int | None = None
    n_group: int = 1
    topk_group: int = 1
    norm_topk_prob: bool = True
    routed_scaling_factor: float = 1.0
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    eos_token_ids: tuple[int, ...] = ()
    mtp_layers: int = 0  # num_nextn_predict_layers: multi-token-prediction layers (weights skipped)

    @property
    def num_layers(self) -> int:
        return len(self.pattern)

    @property
    def dt_limit(self) -> tuple[float, float]:
        """The clamp of ``softplus(dt + dt_bias)`` (see ``dt_floor_rule``)."""
        lo, hi = self.time_step_limit
        return (max(lo, self.time_step_min), hi) if self.dt_floor_rule == "time_step_min" else (lo, hi)

    def layers_of(self, kind: str) -> list[int]:
        return [i for i, c in enumerate(self.pattern) if LAYER_KINDS[c] == kind]

    @classmethod
    def from_hf(cls, t: dict[str, Any], generation_config: dict[str, Any] | None = None) -> NemotronHConfig:
        """Read a NemotronH text config: the released ``llm_config`` (``hybrid_override_pattern``,
        ``mamba_*`` names) or transformers 5's ``text_config`` (``layers_block_type``)."""

        def get(*names, default=None):
            return next((t[n] for n in names if t.get(n) is not None), default)

        pattern = _pattern(t)
        limit = get("time_step_limit", "mamba_dt_limit", default=(0.0, float("inf")))
        limit = tuple(_float(v) for v in limit)
        heads = get("num_attention_heads", default=32)
        eos = (generation_config or {}).get("eos_token_id", t.get("eos_token_id"))
        eos_ids = tuple(eos) if isinstance(eos, (list, tuple)) else (() if eos is None else (int(eos),))
        hidden = get("hidden_size", default=4096)
        return cls(
            pattern=pattern, vocab_size=get("vocab_size", default=131072), hidden_size=hidden,
            num_heads=heads, num_kv_heads=get("num_key_value_heads", default=heads),
            head_dim=get("head_dim", "attention_head_dim", default=hidden // heads),
            attention_bias=bool(get("attention_bias", default=False)),
            intermediate_size=get("intermediate_size", default=21504), mlp_act=get("mlp_hidden_act", default="relu2"),
            mlp_bias=bool(get("mlp_bias", default=False)),
            mamba_heads=get("mamba_num_heads", default=128), mamba_head_dim=get("mamba_head_dim", default=64),
            ssm_state_size=get("ssm_state_size", default=128), n_groups=get("n_groups", "mamba_n_groups", default=8),
            conv_kernel=get("conv_kernel", "mamba_d_conv", default=4),
            use_conv_bias=bool(get("use_conv_bias", "mamba_conv_bias", default=True)),
            mamba_proj_bias=bool(get("use_bias", default=False)),
            chunk_size=get("chunk_size", "mamba_chunk_size", default=128), time_step_limit=limit,
            time_step_min=_float(get("time_step_min", "mamba_dt_min", default=0.001)),
            eps=get("layer_norm_epsilon", "rms_norm_eps", default=1e-5),
            n_routed_experts=get("n_routed_experts", default=8), experts_per_token=get("num_experts_per_tok", default=2),
            moe_intermediate_size=get("moe_intermediate_size", default=7688),
            shared_intermediate_size=get("moe_shared_expert_intermediate_size", default=7688),
            moe_latent_size=get("moe_latent_size"), n_group=get("n_group", default=1),
            topk_group=get("topk_group", default=1), norm_topk_prob=bool(get("norm_topk_prob", default=True)),
            routed_scaling_factor=float(get("routed_scaling_factor", default=1.0)),
            max_position_embeddings=get("max_position_embeddings", default=4096),
            tie_word_embeddings=bool(get("tie_word_embeddings", default=False)), eos_token_ids=eos_ids,
            mtp_layers=int(get("num_nextn_predict_layers", default=0)),
        )


def _float(v: Any) -> float:
    """JSON floats, including transformers' ``{"__float__": "Infinity"}``."""
    if isinstance(v, dict):
        v = v.get("__float__")
    return float(v)


def _pattern(t: dict[str, Any]) -> str:
    """The layer pattern as letters, from ``hybrid_override_pattern`` or ``layers_block_type``."""
    if t.get("hybrid_override_pattern"):
        pattern = str(t["hybrid_override_pattern"])
    elif t.get("layers_block_type") or t.get("layer_types"):
        names = t.get("layers_block_type") or t.get("layer_types")
        bad = [n for n in names if n not in _LIST_NAMES]
        if bad:
            raise UnknownModelError(f"NemotronH layer types {bad} are not supported (known: {sorted(_LIST_NAMES)})")
        pattern = "".join(_LIST_NAMES[n] for n in names)
    else:
        raise UnknownModelError("the NemotronH config has neither hybrid_override_pattern nor layers_block_type")
    bad = sorted({c for c in pattern if c not in LAYER_KINDS})
    if bad:
        raise UnknownModelError(
            f"NemotronH layer pattern {pattern!r} has unsupported layer type(s) {bad} (known: M * - E)")
    return pattern


# -- layers ---------------------------------------------------------------------------------------


class Attention(nn.Module):
    """GQA causal attention without rope (weights ``q_proj`` ``k_proj`` ``v_proj`` ``o_proj``)."""

    def __init__(self, cfg: NemotronHConfig, layer: int):
        super().__init__()
        self.layer, self.heads, self.kv_heads, self.head_dim = layer, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        h, b = cfg.hidden_size, cfg.attention_bias
        self.q_proj = nn.Linear(h, cfg.num_heads * cfg.head_dim, bias=b)
        self.k_proj = nn.Linear(h, cfg.num_kv_heads * cfg.head_dim, bias=b)
        self.v_proj = nn.Linear(h, cfg.num_kv_heads * cfg.head_dim, bias=b)
        self.o_proj = nn.Linear(cfg.num_heads * cfg.head_dim, h, bias=b)

    def forward(self, x: torch.Tensor, step: Step) -> torch.Tensor:
        T = x.shape[0]
        q = self.q_proj(x).view(T, self.heads, self.head_dim)
        k = self.k_proj(x).view(T, self.kv_heads, self.head_dim)
        v = self.v_proj(x).view(T, self.kv_heads, self.head_dim)
        return self.o_proj(attend(q, k, v, self.layer, step).reshape(T, -1))


class MLP(nn.Module):
    """``down(act(up(x)))``, no gate (act: relu² in every released checkpoint)."""

    def __init__(self, dim: int, hidden: int, act: str, bias: bool = False):
        super().__init__()
        self.up_proj = nn.Linear(dim, hidden, bias=bias)
        self.down_proj = nn.Linear(hidden, dim, bias=bias)
        self.act = activation(act)

    def forward(self, x: torch.Tensor, step: Step | None = None) -> torch.Tensor:
        return self.down_proj(self.act(self.up_proj(x)))


class Router(nn.Module):
    """Sigmoid scores; experts chosen on ``score + e_score_correction_bias`` within the ``topk_group``
    best groups (a group's value: the sum of its two best); weights are the plain scores of the
    chosen experts, normalised to sum 1 (``norm_topk_prob``) and times ``routed_scaling_factor``.
    Runs in fp32 (the weight is kept in fp32 when loading)."""

    def __init__(self, cfg: NemotronHConfig):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cfg.n_routed_experts, cfg.hidden_size))
        self.e_score_correction_bias = nn.Parameter(torch.zeros(cfg.n_routed_experts))
        self.cfg = cfg

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.cfg
        scores = F.linear(x.float(), self.weight.float()).sigmoid()  # (T, E)
        choice = scores + self.e_score_correction_bias.float()
        if c.n_group > 1:
            grouped = choice.view(x.shape[0], c.n_group, -1)
            best = grouped.topk(min(2, grouped.shape[-1]), dim=-1).values.sum(-1)  # (T, n_group)
            keep = torch.zeros_like(best, dtype=torch.bool).scatter(1, best.topk(c.topk_group, dim=-1).indices, True)
            choice = grouped.masked_fill(~keep[..., None], float("-inf")).view(x.shape[0], -1)
        index = choice.topk(c.experts_per_token, dim=-1).indices
        weights = scores.gather(1, index)
        if c.norm_topk_prob:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        return index, weights * c.routed_scaling_factor


class MoE(nn.Module):
    """Routed relu² experts (optionally in a latent space) plus the shared expert."""

    def __init__(self, cfg: NemotronHConfig):
        super().__init__()
        width = cfg.moe_latent_size or cfg.hidden_size
        self.gate = Router(cfg)
        self.experts = nn.ModuleList(
            MLP(width, cfg.moe_intermediate_size, cfg.mlp_act) for _ in range(cfg.n_routed_experts))
        self.shared_experts = MLP(cfg.hidden_size, cfg.shared_intermediate_size, cfg.mlp_act, cfg.mlp_bias)
        if cfg.moe_latent_size is not None:
            self.fc1_latent_proj = nn.Linear(cfg.hidden_size, cfg.moe_latent_size, bias=cfg.mlp_bias)
            self.fc2_latent_proj = nn.Linear(cfg.moe_latent_size, cfg.hidden_size, bias=cfg.mlp_bias)
        self.latent = cfg.moe_latent_size is not None

    def forward(self, x: torch.Tensor, step: Step | None = None) -> torch.Tensor:
        index, weights = self.gate(x)
        h = self.fc1_latent_proj(x) if self.latent else x
        out = torch.zeros(h.shape, dtype=torch.float32, device=h.device)
        for e in torch.unique(index).tolist():
            token, slot = torch.where(index == e)
            y = self.experts[e](h[token]) * weights[token, slot, None]
            out.index_add_(0, token, y.float())
        out = out.to(x.dtype)
        if self.latent:
            out = self.fc2_latent_proj(out)
        return out + self.shared_experts(x)


class Block(nn.Module):
    """``x + mixer(norm(x))``; the mixer's kind is the pattern letter of the layer."""

    def __init__(self, cfg: NemotronHConfig, layer: int):
        super().__init__()
        self.kind = LAYER_KINDS[cfg.pattern[layer]]
        self.norm = RMSNorm(cfg.hidden_size, cfg.eps, weight_in_fp32=True)
        if self.kind == "mamba":
            self.mixer = Mamba2Mixer(
                cfg.hidden_size, cfg.mamba_heads, cfg.mamba_head_dim, cfg.n_groups, cfg.ssm_state_size,
                cfg.conv_kernel, layer, chunk=cfg.chunk_size, eps=cfg.eps, dt_limit=cfg.dt_limit,
                conv_bias=cfg.use_conv_bias, proj_bias=cfg.mamba_proj_bias)
        elif self.kind == "attention":
            self.mixer = Attention(cfg, layer)
        elif self.kind == "mlp":
            self.mixer = MLP(cfg.hidden_size, cfg.intermediate_size, cfg.mlp_act, cfg.mlp_bias)
        else:
            self.mixer = MoE(cfg)

    def forward(self, x: torch.Tensor, step: Step) -> torch.Tensor:
        return x + self.mixer(self.norm(x), step)


class NemotronHBackbone(nn.Module):
    """``backbone.*``: embeddings, the hybrid layers, ``norm_f``."""

    def __init__(self, cfg: NemotronHConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.norm_f = RMSNorm(cfg.hidden_size, cfg.eps, weight_in_fp32=True)

    def forward(self, embeds: torch.Tensor, step: Step) -> torch.Tensor:
        x = embeds
        for layer in self.layers:
            x = layer(x, step)
        return self.norm_f(x)


def new_hybrid_cache(backbone: NemotronHBackbone, batch: int, max_len: int, *, dtype: torch.dtype,
                     device) -> StaticKVCache:
    """KV slots for the attention layers only, and an empty conv/SSM state for every Mamba layer."""
    c = backbone.cfg
    cache = StaticKVCache.allocate(c.layers_of("attention"), batch, max_len, c.num_kv_heads, c.head_dim,
                                   dtype=dtype, device=device)
    for i in c.layers_of("mamba"):
        cache.states[i] = backbone.layers[i].mixer.new_state(batch, dtype, device)
    return cache


def weight_table(cfg: NemotronHConfig, prefix: str, target: str) -> dict[str, str | None]:
    """``{prefix}backbone.*`` and ``{prefix}lm_head.weight`` -> ``{target}backbone.*`` / ``{target}lm_head.weight``."""
    names = ["embeddings.weight", "norm_f.weight"]
    per_kind = {
        "mamba": ["in_proj.weight", "conv1d.weight", "dt_bias", "A_log", "D", "norm.weight", "out_proj.weight"]
        + (["conv1d.bias"] if cfg.use_conv_bias else [])
        + (["in_proj.bias", "out_proj.bias"] if cfg.mamba_proj_bias else []),
        "attention": [f"{p}_proj.{w}" for p in "qkvo" for w in (("weight", "bias") if cfg.attention_bias else ("weight",))],
        "mlp": [f"{p}.{w}" for p in ("up_proj", "down_proj") for w in (("weight", "bias") if cfg.mlp_bias else ("weight",))],
    }
    moe = ["gate.weight", "gate.e_score_correction_bias"]
    moe += [f"experts.{e}.{p}.weight" for e in range(cfg.n_routed_experts) for p in ("up_proj", "down_proj")]
    moe += [f"shared_experts.{n}" for n in per_kind["mlp"]]
    if cfg.moe_latent_size is not None:
        moe += [f"{p}.{w}" for p in ("fc1_latent_proj", "fc2_latent_proj")
                for w in (("weight", "bias") if cfg.mlp_bias else ("weight",))]
    per_kind["moe"] = moe
    for i, c in enumerate(cfg.pattern):
        names.append(f"layers.{i}.norm.weight")
        names += [f"layers.{i}.mixer.{n}" for n in per_kind[LAYER_KINDS[c]]]
    table: dict[str, str | None] = {f"{prefix}backbone.{n}": f"{target}backbone.{n}" for n in names}
    if not cfg.tie_word_embeddings:
        table[f"{prefix}lm_head.weight"] = f"{target}lm_head.weight"
    if cfg.mtp_layers:  # multi-token-prediction layers: not used for generation here
        table[f"{prefix}mtp.*"] = None
    return table


KEEP_FP32 = ("gate.weight", "gate.e_score_correction_bias", ".A_log", ".D", ".dt_bias")


def check_layers(cfg: NemotronHConfig) -> None:
    """Shape rules the mixers need, as an error with the numbers (instead of a view error later)."""
    if cfg.num_heads % cfg.num_kv_heads:
        raise UnknownModelError(f"{cfg.num_heads} attention heads are not a multiple of {cfg.num_kv_heads} KV heads")
    if "M" in cfg.pattern and cfg.mamba_heads % cfg.n_groups:
        raise UnknownModelError(f"{cfg.mamba_heads} mamba heads are not a multiple of n_groups {cfg.n_groups}")
    if "E" in cfg.pattern and cfg.n_routed_experts % cfg.n_group:
        raise UnknownModelError(f"{cfg.n_routed_experts} experts do not split into n_group {cfg.n_group} groups")
    if not math.isfinite(cfg.eps) or cfg.chunk_size <= 0:
        raise UnknownModelError(f"bad layer_norm_epsilon {cfg.eps} or chunk_size {cfg.chunk_size}")


# -- the text-only model (``NemotronHForCausalLM`` checkpoints; the VL model's language model) -----


class NemotronHForCausalLM(nn.Module):
    """``backbone`` + ``lm_head`` with the hooks :mod:`~mmprep.models.decoder`'s passes and
    :func:`~mmprep.models.generate.generate` call (positions are accepted and ignored)."""

    def __init__(self, cfg: NemotronHConfig):
        super().__init__()
        check_layers(cfg)
        self.cfg = cfg
        self.backbone = NemotronHBackbone(cfg)
        if not cfg.tie_word_embeddings:
            self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    @property
    def device(self) -> torch.device:
        return self.backbone.embeddings.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.embeddings.weight.dtype

    @property
    def max_context(self) -> int:
        return self.cfg.max_position_embeddings

    @property
    def stop_token_ids(self) -> tuple[int, ...]:
        return self.cfg.eos_token_ids

    @property
    def vocab_size(self) -> int:
        return self.cfg.vocab_size

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.backbone.embeddings(ids)

    def text_forward(self, embeds: torch.Tensor, positions: torch.Tensor, step: Step) -> torch.Tensor:
        return self.backbone(embeds, step)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        w = self.backbone.embeddings.weight if self.cfg.tie_word_embeddings else self.lm_head.weight
        return F.linear(hidden, w)

    def prepare(self, batch: Any) -> Prompt:
        """Text only: pack the tokens (padding dropped) and embed them."""
        tokens = pack_tokens(batch, self.device, max_context=self.max_context, has_media=False)
        bad = (tokens.ids < 0) | (tokens.ids >= self.vocab_size)
        if bool(bad.any()):
            raise InvalidInputError(f"token id {int(tokens.ids[bad][0])} is outside the vocabulary of {self.vocab_size}")
        return Prompt(tokens, self.embed(tokens.ids))

    def forward(self, batch: Any) -> ModelOutput:
        return run_forward(self, batch)

    def new_cache(self, batch_size: int, max_len: int) -> StaticKVCache:
        return new_hybrid_cache(self.backbone, batch_size, max_len, dtype=self.dtype, device=self.device)

    def prefill(self, prompt: Prompt, cache: StaticKVCache) -> torch.Tensor:
        return run_prefill(self, prompt, cache)

    def decode(self, token_ids: torch.Tensor, positions: torch.Tensor, cache: StaticKVCache) -> torch.Tensor:
        return run_decode(self, token_ids, positions, cache)

    def generate(self, batch: Any, max_new_tokens: int = 32, **kwargs: Any) -> torch.Tensor:
        return generate(self, batch, max_new_tokens=max_new_tokens, **kwargs)


def read_text_config(config: dict[str, Any], generation_config: dict[str, Any] | None = None,
                     added_tokens: dict[str, int] | None = None) -> NemotronHConfig:
    """The model table's reader for ``model_type: nemotron_h`` (text-only checkpoints)."""
    return NemotronHConfig.from_hf(config, generation_config)


def text_weight_table(cfg: NemotronHConfig) -> dict[str, str | None]:
    """``backbone.*`` + ``lm_head.weight`` of a ``NemotronHForCausalLM`` checkpoint."""
    return weight_table(cfg, "", "")
