"""The torch model layer (imports torch; never imported by ``import mmprep``).

>>> import mmprep, mmprep.models
>>> model = mmprep.models.load("/ckpt/GLM-4.1V-9B-Thinking", device="cuda", dtype="bfloat16")
>>> batch = mmprep.load("/ckpt/GLM-4.1V-9B-Thinking").process(text, images=[img], tokenizer=tok)
>>> new_ids = model.generate(batch, max_new_tokens=64)
"""

from __future__ import annotations

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


def load(path: str | Path, device: torch.device | str | None = None,
         dtype: torch.dtype | str | None = None) -> torch.nn.Module:
    """Build the model of a local Hugging Face checkpoint directory and load its weights.

    ``device`` defaults to CUDA when available; ``dtype`` to bf16 on CUDA and fp32 elsewhere.
    Missing, unexpected or mis-shaped weights raise :class:`~mmprep.errors.WeightsError`.
    """
    d = Path(path)
    config = _read_json(d / "config.json")
    if not config:
        raise UnknownModelError(f"{d} has no config.json")
    dev = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    dt = resolve_dtype(dtype, dev)
    archs = " ".join(config.get("architectures") or []) + " " + str(config.get("model_type", ""))
    text_type = str((config.get("text_config") or {}).get("model_type", "glm4v_text"))
    if config.get("model_type") in ("glm4v", "glm46v") and text_type != "glm4v_text":
        raise UnknownModelError(f"{d}: the {text_type} (MoE) decoder of GLM-4.5V / 4.6V is not supported yet")
    if config.get("model_type") in ("glm4v", "glm46v"):  # GLM-4.1V, GLM-4.6V-Flash (dense decoder)
        from . import glm4v

        cfg = glm4v.Glm4vConfig.from_hf(config, _read_json(d / "generation_config.json"))
        with torch.device("meta"):
            model = glm4v.Glm4vForConditionalGeneration(cfg)
        load_weights(model, d, glm4v.weight_table(cfg), dtype=dt, device=dev)
        return model.eval()
    raise UnknownModelError(f"{d}: no mmprep model for architectures/model_type {archs.strip()!r}")


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


__all__ = ["activate_hopper_flash", "compile_blocks", "attention_backend", "generate", "load", "load_weights", "resolve_dtype",
           "sample_next", "set_attention_backend", "varlen_attention"]
