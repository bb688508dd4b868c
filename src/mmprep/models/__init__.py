"""The torch model layer (imports torch; never imported by ``import mmprep``).

>>> import mmprep, mmprep.models
>>> model = mmprep.models.load("/ckpt/GLM-4.1V-9B-Thinking", device="cuda", dtype="bfloat16")
>>> batch = mmprep.load("/ckpt/GLM-4.1V-9B-Thinking").process(text, images=[img], tokenizer=tok)
>>> new_ids = model.generate(batch, max_new_tokens=64)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UnknownModelError
from ..loading import read_json as _read_json
from .attention import activate_hopper_flash, attention_backend, set_attention_backend, varlen_attention
from .generate import generate, sample_next
from .weights import load_weights

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """``None`` -> bf16 on CUDA, fp32 elsewhere; strings like ``"bf16"`` -> torch dtypes."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise UnknownModelError(f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}")
    return _DTYPES[key]


@dataclass(frozen=True)
class ModelEntry:
    """How to build one checkpoint type: read its config, build the module, name its weights."""

    # (config.json, generation_config.json, the tokenizer's added tokens {text: id}) -> cfg
    read_config: Callable[[dict[str, Any], dict[str, Any], dict[str, int]], Any]
    model_class: Callable[[Any], torch.nn.Module]
    weight_table: Callable[[Any], Any]  # cfg -> {checkpoint key: parameter | weights.Stack | SKIP}, or a tuple of layouts
    keep_fp32: tuple[str, ...] = ()  # parameter name suffixes kept in fp32 (router weights, ...)


def added_tokens(directory: Path) -> dict[str, int]:
    """``{text: id}`` of the tokenizer's added (special) tokens, read from ``tokenizer.json`` and
    ``tokenizer_config.json`` as plain JSON (no tokenizer code runs); ``{}`` when neither exists."""
    out: dict[str, int] = {}
    for entry in (_read_json(directory / "tokenizer.json") or {}).get("added_tokens") or []:
        if isinstance(entry, dict) and isinstance(entry.get("content"), str) and isinstance(entry.get("id"), int):
            out[entry["content"]] = entry["id"]
    decoder = (_read_json(directory / "tokenizer_config.json") or {}).get("added_tokens_decoder") or {}
    for key, entry in decoder.items() if isinstance(decoder, dict) else ():
        if isinstance(entry, dict) and isinstance(entry.get("content"), str) and str(key).isdigit():
            out.setdefault(entry["content"], int(key))
    return out


def model_table() -> dict[str, ModelEntry]:
    """The one table: ``config.json``'s ``model_type`` -> :class:`ModelEntry`."""
    from . import glm4v, glm4v_moe, isaac

    # the text config picks the decoder: dense GLM-4 (4.1V, 4.6V-Flash) or MoE (4.5V, 4.6V)
    glm = ModelEntry(glm4v.read_config, glm4v.Glm4vForConditionalGeneration, glm4v.weight_table, glm4v_moe.KEEP_FP32)
    return {
        "glm4v": glm,
        "glm46v": glm,
        "glm4v_moe": glm,
        "isaac": ModelEntry(isaac.read_config, isaac.IsaacForConditionalGeneration, isaac.weight_table),
    }


def load(path: str | Path, device: torch.device | str | None = None,
         dtype: torch.dtype | str | None = None) -> torch.nn.Module:
    """Build the model of a local Hugging Face checkpoint directory and load its weights.

    ``device`` defaults to CUDA when available; ``dtype`` to bf16 on CUDA and fp32 elsewhere.
    The checkpoint's ``model_type`` picks the model (:func:`model_table`); missing, unexpected or
    mis-shaped weights raise :class:`~mmprep.errors.WeightsError`.
    """
    d = Path(path)
    config = _read_json(d / "config.json")
    if not config:
        raise UnknownModelError(f"{d} has no config.json")
    dev = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    dt = resolve_dtype(dtype, dev)
    table = model_table()
    model_type = str(config.get("model_type", ""))
    if model_type not in table:
        archs = " ".join(config.get("architectures") or [])
        raise UnknownModelError(
            f"{d}: no mmprep model for model_type {model_type!r} (architectures {archs!r}); "
            f"supported: {', '.join(sorted(table))}")
    entry = table[model_type]
    cfg = entry.read_config(config, _read_json(d / "generation_config.json") or {}, added_tokens(d))
    with torch.device("meta"):
        model = entry.model_class(cfg)
    load_weights(model, d, entry.weight_table(cfg), dtype=dt, device=dev, keep_fp32=entry.keep_fp32)
    return model.eval()


def compile_blocks(model: torch.nn.Module, *, dynamic: bool = True) -> torch.nn.Module:
    """Opt-in ``torch.compile`` of the repeated blocks (vision blocks, decoder MLPs), in place.

    Fuses the elementwise work around the matmuls (norms, rope, SwiGLU). ``dynamic=True`` keeps
    one graph for all packed lengths. The first call compiles (about a minute); results equal the
    eager ones up to float rounding. Returns ``model``.
    """
    visual = getattr(model, "visual", None)
    for block in getattr(visual, "blocks", []):
        block.forward = torch.compile(block.forward, dynamic=dynamic)
    for layer in getattr(getattr(model, "language_model", None), "layers", []):
        layer.mlp.forward = torch.compile(layer.mlp.forward, dynamic=dynamic)
    return model


__all__ = ["ModelEntry", "model_table", "activate_hopper_flash", "compile_blocks", "attention_backend", "generate", "load", "load_weights", "resolve_dtype",
           "sample_next", "set_attention_backend", "varlen_attention"]
