"""The MoE decoder of GLM-4.5V / GLM-4.6V (``Glm4vMoeForConditionalGeneration``, ``glm4v_moe_text``).

It sits behind the same GLM vision tower as the dense model (:mod:`mmprep.models.glm4v` builds
the whole model and picks this decoder from the text config):

    embeds --> layers [RMSNorm -> attention (q/k/v bias, GQA, head_dim from the config,
                       MRoPE in the half/NeoX layout on partial_rotary_factor of each head) -> +
                       RMSNorm -> MLP -> +]  (no sandwich norms)
           --> RMSNorm
    MLP: the first ``first_k_dense_replace`` layers a dense SwiGLU, then MoE layers:
         router   sigmoid(x W^T) in fp32; the choice adds ``e_score_correction_bias`` (grouped
                  top-k: keep the ``topk_group`` of ``n_group`` groups with the best top-2 sums);
                  the weights are the *unbiased* scores of the chosen experts, normalized when
                  ``norm_topk_prob``, times ``routed_scaling_factor``
         experts  SwiGLU per expert, fused ``gate_up_proj (E, 2I, D)`` / ``down_proj (E, D, I)``,
                  run as grouped matmuls over tokens sorted by expert
         + a shared SwiGLU expert of width ``moe_intermediate_size * n_shared_experts``

Checkpoints store experts one by one (``mlp.experts.{e}.{gate,up,down}_proj.weight``);
:func:`text_weight_table` stacks them into the fused tensors and skips the multi-token-prediction
layer (``layers.{num_hidden_layers}.*``) by name. Router weight and bias stay fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnknownModelError
from .decoder import DecoderAttention, Step
from .layers import RMSNorm, SwiGLU
from .rope import mrope_cos_sin
from .weights import SKIP, Stack

# parameter name suffixes the model table keeps in fp32
KEEP_FP32 = ("mlp.gate.weight", "mlp.gate.e_score_correction_bias")


# -- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoeTextConfig:
    """``text_config`` of a GLM-4.5V / 4.6V checkpoint (defaults: transformers' ``Glm4vMoeTextConfig``)."""

    vocab_size: int = 151424
    hidden_size: int = 4096
    intermediate_size: int = 10944  # dense layers' SwiGLU width
    num_layers: int = 46
    num_heads: int = 96
    num_kv_heads: int = 8
    head_dim: int = 128
    max_position_embeddings: int = 65536  # tokens (4.6V: 131072)
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    partial_rotary_factor: float = 0.5
    mrope_section: tuple[int, ...] = (8, 12, 12)
    attention_bias: bool = True
    moe_intermediate_size: int = 1408
    n_routed_experts: int = 128
    num_experts_per_tok: int = 8
    n_shared_experts: int = 1
    n_group: int = 1
    topk_group: int = 1
    first_k_dense_replace: int = 1
    norm_topk_prob: bool = True
    routed_scaling_factor: float = 1.0

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)

    @classmethod
    def from_hf(cls, t: dict[str, Any]) -> MoeTextConfig:
        """Read a ``glm4v_moe_text`` dict (transformers 4.5x or 5.x layout); unknown MoE variants raise."""
        check_known(t)
        d = cls()
        rope = t.get("rope_parameters") or t.get("rope_scaling") or {}
        heads = t.get("num_attention_heads", d.num_heads)
        hidden = t.get("hidden_size", d.hidden_size)
        kv = t.get("num_key_value_heads", d.num_kv_heads)
        return cls(
            vocab_size=t.get("vocab_size", d.vocab_size), hidden_size=hidden,
            intermediate_size=t.get("intermediate_size", d.intermediate_size),
            num_layers=t.get("num_hidden_layers", d.num_layers), num_heads=heads,
            num_kv_heads=kv or heads,  # null: one KV head per query head (transformers' rule)
            head_dim=t.get("head_dim") or hidden // heads,
            max_position_embeddings=t.get("max_position_embeddings", d.max_position_embeddings),
            rms_norm_eps=t.get("rms_norm_eps", d.rms_norm_eps),
            rope_theta=rope.get("rope_theta", t.get("rope_theta", d.rope_theta)),
            partial_rotary_factor=rope.get("partial_rotary_factor", t.get("partial_rotary_factor", 0.5)),
            mrope_section=tuple(rope.get("mrope_section", d.mrope_section)),
            attention_bias=bool(t.get("attention_bias", d.attention_bias)),
            moe_intermediate_size=t.get("moe_intermediate_size", d.moe_intermediate_size),
            n_routed_experts=t.get("n_routed_experts", t.get("num_local_experts", d.n_routed_experts)),
            num_experts_per_tok=t.get("num_experts_per_tok", d.num_experts_per_tok),
            n_shared_experts=t.get("n_shared_experts", d.n_shared_experts),
            n_group=t.get("n_group", d.n_group) or 1, topk_group=t.get("topk_group", d.topk_group) or 1,
            first_k_dense_replace=t.get("first_k_dense_replace", d.first_k_dense_replace),
            norm_topk_prob=bool(t.get("norm_topk_prob", d.norm_topk_prob)),
            routed_scaling_factor=float(t.get("routed_scaling_factor", d.routed_scaling_factor)),
        )


# fields other MoE decoders set; GLM-4.5V / 4.6V either lack them or have exactly these values
_KNOWN_VALUES = {"topk_method": ("noaux_tc",), "scoring_func": ("sigmoid",), "hidden_act": ("silu",),
                 "use_qk_norm": (False,), "moe_layer_freq": (1,)}


def check_known(t: dict[str, Any]) -> None:
    """Raise :class:`UnknownModelError` naming the field of a MoE config this decoder does not implement."""
    for key, allowed in _KNOWN_VALUES.items():
        if key in t and t[key] not in allowed:
            raise UnknownModelError(
                f"text_config.{key} = {t[key]!r} is not supported by the GLM-4.5V MoE decoder (known: {list(allowed)})")
    rope = t.get("rope_parameters") or t.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind not in ("default", "mrope"):
        raise UnknownModelError(f"text_config.rope_parameters.rope_type = {kind!r} is not supported (known: 'default')")
    experts = t.get("n_routed_experts", t.get("num_local_experts", 128))
    groups, keep, k = t.get("n_group") or 1, t.get("topk_group") or 1, t.get("num_experts_per_tok", 8)
    if experts % groups or (groups > 1 and experts // groups < 2):
        raise UnknownModelError(f"text_config.n_group = {groups} does not split {experts} experts into groups of >= 2")
    if not 1 <= keep <= groups or k > keep * experts // groups:
        raise UnknownModelError(
            f"text_config.topk_group = {keep} of n_group = {groups} cannot supply num_experts_per_tok = {k} experts")


# -- MoE MLP -----------------------------------------------------------------------------------------


class Router(nn.Module):
    """Sigmoid scores with a selection-only bias, grouped top-k; weight and bias are fp32."""

    def __init__(self, cfg: MoeTextConfig):
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.zeros(cfg.n_routed_experts, cfg.hidden_size, dtype=torch.float32))
        self.register_buffer("e_score_correction_bias", torch.zeros(cfg.n_routed_experts, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (T, D)`` -> ``(experts (T, k) int64, weights (T, k) fp32)``."""
        c = self.cfg
        scores = F.linear(x.float(), self.weight.float()).sigmoid()
        choice = scores + self.e_score_correction_bias.float()
        if c.topk_group < c.n_group:  # keep the groups whose two best biased scores sum highest
            grouped = choice.view(-1, c.n_group, c.n_routed_experts // c.n_group)
            best = grouped.topk(2, dim=-1).values.sum(-1)
            keep = torch.zeros_like(best, dtype=torch.bool)
            keep.scatter_(1, best.topk(c.topk_group, dim=-1).indices, True)
            choice = choice.masked_fill(~keep.repeat_interleave(grouped.shape[-1], dim=1), float("-inf"))
        experts = choice.topk(c.num_experts_per_tok, dim=-1).indices
        weights = scores.gather(1, experts)
        if c.norm_topk_prob:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        return experts, weights * c.routed_scaling_factor


def _grouped_mm_ok(x: torch.Tensor, w: torch.Tensor) -> bool:
    """``torch._grouped_mm`` exists and takes these operands (16-byte aligned rows; bf16 on Hopper CUDA)."""
    if not hasattr(torch, "_grouped_mm"):
        return False
    if any((s * x.element_size()) % 16 for s in (x.shape[-1], w.shape[-2])):
        return False
    if x.device.type == "cuda":
        return x.dtype == torch.bfloat16 and torch.cuda.get_device_capability(x.device) >= (9, 0)
    return x.device.type == "cpu" and x.dtype == torch.float32


def grouped_linear(x: torch.Tensor, weight: torch.Tensor, counts: torch.Tensor, *, grouped_mm: bool | None = None):
    """Rows of ``x (N, in)`` sorted by expert (``counts (E,)`` rows each) times their expert's
    ``weight[e] (out, in)``ᵀ -> ``(N, out)``: one ``torch._grouped_mm``, else one padded ``bmm``."""
    if grouped_mm is None:
        grouped_mm = _grouped_mm_ok(x, weight)
    if grouped_mm:
        offs = torch.cumsum(counts, 0).to(torch.int32)
        return torch._grouped_mm(x, weight.transpose(-2, -1), offs=offs)
    E = weight.shape[0]
    expert = torch.repeat_interleave(torch.arange(E, device=x.device), counts, output_size=x.shape[0])
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(x.shape[0], device=x.device) - start[expert]
    width = int(counts.max()) if counts.numel() else 0
    buf = x.new_zeros(E, width, x.shape[-1])
    buf[expert, slot] = x
    return torch.bmm(buf, weight.transpose(1, 2))[expert, slot]


class Experts(nn.Module):
    """``n_routed_experts`` SwiGLUs stored fused: ``gate_up_proj (E, 2I, D)`` (gate first), ``down_proj (E, D, I)``."""

    def __init__(self, cfg: MoeTextConfig):
        super().__init__()
        E, I, D = cfg.n_routed_experts, cfg.moe_intermediate_size, cfg.hidden_size
        self.gate_up_proj = nn.Parameter(torch.empty(E, 2 * I, D))
        self.down_proj = nn.Parameter(torch.empty(E, D, I))
        self.grouped_mm: bool | None = None  # None: torch._grouped_mm where it runs, else padded bmm

    def forward(self, x: torch.Tensor, experts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``x (T, D)``, chosen ``experts (T, k)`` and their ``weights (T, k)`` -> ``(T, D)``."""
        T, k = experts.shape
        flat = experts.reshape(-1)
        order = flat.argsort(stable=True)  # (token, choice) pairs sorted by expert
        counts = torch.bincount(flat, minlength=self.gate_up_proj.shape[0])
        h = grouped_linear(x[order // k], self.gate_up_proj, counts, grouped_mm=self.grouped_mm)
        gate, up = h.chunk(2, dim=-1)
        h = grouped_linear(F.silu(gate) * up, self.down_proj, counts, grouped_mm=self.grouped_mm)
        out = torch.empty_like(h)
        out[order] = h
        return (out.view(T, k, -1).float() * weights[..., None]).sum(1).to(x.dtype)


def experts_reference(experts: Experts, x: torch.Tensor, chosen: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Token-by-token twin of :meth:`Experts.forward` (tests only)."""
    out = torch.zeros(x.shape, dtype=torch.float32)
    I = experts.down_proj.shape[-1]
    for t in range(x.shape[0]):
        for j in range(chosen.shape[1]):
            e = int(chosen[t, j])
            gu = experts.gate_up_proj[e] @ x[t]
            h = experts.down_proj[e] @ (F.silu(gu[:I]) * gu[I:])
            out[t] += float(weights[t, j]) * h.float()
    return out.to(x.dtype)


class MoE(nn.Module):
    def __init__(self, cfg: MoeTextConfig):
        super().__init__()
        self.gate = Router(cfg)
        self.experts = Experts(cfg)
        self.shared_experts = SwiGLU(cfg.hidden_size, cfg.moe_intermediate_size * cfg.n_shared_experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chosen, weights = self.gate(x)
        return self.experts(x, chosen, weights) + self.shared_experts(x)


# -- decoder -----------------------------------------------------------------------------------------


class MoeDecoderLayer(nn.Module):
    """Pre-norm layer (no sandwich norms); the MLP is dense below ``first_k_dense_replace``, MoE above."""

    def __init__(self, cfg: MoeTextConfig, layer: int):
        super().__init__()
        self.self_attn = DecoderAttention(cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, layer,
                                          qkv_bias=cfg.attention_bias, rope_layout="half")
        dense = layer < cfg.first_k_dense_replace
        self.mlp = SwiGLU(cfg.hidden_size, cfg.intermediate_size) if dense else MoE(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, step: Step) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), step)
        return x + self.mlp(self.post_attention_layernorm(x))


class MoeTextModel(nn.Module):
    def __init__(self, cfg: MoeTextConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(MoeDecoderLayer(cfg, i) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, embeds: torch.Tensor, positions: torch.Tensor, step: Step) -> torch.Tensor:
        """Packed ``embeds (T, hidden)`` with MRoPE ``positions (3, T)`` -> final hidden states."""
        c = self.cfg
        step.cos, step.sin = mrope_cos_sin(positions, c.rotary_dim, c.rope_theta, c.mrope_section,
                                           layout="half", section_layout="blocks")
        x = embeds
        for layer in self.layers:
            x = layer(x, step)
        return self.norm(x)


def text_weight_table(cfg: MoeTextConfig, *, fused: bool = False, prefix: str = "model.language_model.",
                      target: str = "language_model.") -> dict[str, str | Stack]:
    """Checkpoint names of the MoE decoder -> parameters. Hub layout: per-expert tensors stack into the
    fused ones; ``fused=True``: the checkpoint already holds ``experts.gate_up_proj`` / ``experts.down_proj``
    (transformers' ``save_pretrained`` of the ``Glm46V`` class)."""
    table: dict[str, str | Stack] = {}
    names = ["embed_tokens.weight", "norm.weight"]
    for i in range(cfg.num_layers):
        layer = [f"self_attn.{p}_proj.weight" for p in "qkvo"]
        layer += [f"self_attn.{p}_proj.bias" for p in "qkv"] if cfg.attention_bias else []
        layer += ["input_layernorm.weight", "post_attention_layernorm.weight"]
        if i < cfg.first_k_dense_replace:
            layer += [f"mlp.{p}_proj.weight" for p in ("gate", "up", "down")]
        else:
            layer += ["mlp.gate.weight", "mlp.gate.e_score_correction_bias"]
            layer += [f"mlp.shared_experts.{p}_proj.weight" for p in ("gate", "up", "down")]
            layer += ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"] if fused else []
            table.update({} if fused else _expert_stacks(cfg, f"{prefix}layers.{i}.", f"{target}layers.{i}."))
        names += [f"layers.{i}.{n}" for n in layer]
    table.update({prefix + n: target + n for n in names})
    table[f"{prefix}layers.{cfg.num_layers}.*"] = SKIP  # the multi-token-prediction layer
    return table


def _expert_stacks(cfg: MoeTextConfig, key: str, dst: str) -> dict[str, Stack]:
    """``experts.{e}.{gate,up,down}_proj.weight`` of one layer -> rows of the fused expert tensors."""
    I, out = cfg.moe_intermediate_size, {}
    for e in range(cfg.n_routed_experts):
        k = f"{key}mlp.experts.{e}."
        out[k + "gate_proj.weight"] = Stack(dst + "mlp.experts.gate_up_proj", e, 0)
        out[k + "up_proj.weight"] = Stack(dst + "mlp.experts.gate_up_proj", e, I)
        out[k + "down_proj.weight"] = Stack(dst + "mlp.experts.down_proj", e, 0)
    return out
