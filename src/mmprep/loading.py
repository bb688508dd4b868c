"""``mmprep.load``: a family object from a model name, an HF repo id or a checkpoint directory.

Names map to embedded defaults (no network). A directory is read from its ``config.json`` plus
``preprocessor_config.json`` / ``video_preprocessor_config.json`` or the single
``processor_config.json`` that transformers 5 writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import UnknownModelError
from .families.glm4v import Glm4v, GlmSpec
from .families.glm4v.spec import VERSIONS as GLM_VERSIONS
from .families.isaac import Isaac, IsaacSpec
from .families.nemotron import NemotronSpec, NemotronVL
from .families.nemotron.spec import OMNI
from .family import Family

# name -> (constructor, preset overrides); HF repo ids are aliases (matched case-insensitively)
_PRESETS: dict[str, tuple[Any, dict[str, Any]]] = {
    "isaac": (Isaac, {}),
    "nemotron-nano-vl": (NemotronVL, {}),
    "nemotron-3-nano-omni": (NemotronVL, OMNI),
    "glm-4.1v": (Glm4v, {}),
    "glm-4.6v": (Glm4v, dict(version="4.6v", **GLM_VERSIONS["4.6v"])),
}
_ALIASES = {
    "perceptronai/isaac-0.1": "isaac",
    "perceptronai/isaac-0.1-base": "isaac",
    "nvidia/nvidia-nemotron-nano-12b-v2-vl": "nemotron-nano-vl",
    "nvidia/nvidia-nemotron-nano-12b-v2-vl-bf16": "nemotron-nano-vl",
    "nvidia/nvidia-nemotron-nano-12b-v2-vl-fp8": "nemotron-nano-vl",
    "nvidia/nvidia-nemotron-nano-12b-v2-vl-nvfp4-qad": "nemotron-nano-vl",
    "nvidia/nemotron-3-nano-omni-30b-a3b-reasoning-bf16": "nemotron-3-nano-omni",
    "nvidia/nemotron-3-nano-omni-30b-a3b-reasoning": "nemotron-3-nano-omni",
    "zai-org/glm-4.1v-9b-thinking": "glm-4.1v",
    "thudm/glm-4.1v-9b-thinking": "glm-4.1v",
    "zai-org/glm-4.1v-9b-base": "glm-4.1v",
    "zai-org/glm-4.6v": "glm-4.6v",
    "zai-org/glm-4.6v-flash": "glm-4.6v",
    "zai-org/glm-4.5v": "glm-4.6v",
}

MODEL_NAMES = tuple(_PRESETS)


def load(name_or_path: str | Path, **overrides: Any) -> Family:
    """A family object for a model name, HF repo id or local checkpoint directory.

    ``overrides`` are spec field names (e.g. ``max_num_tiles=6``); an unknown field raises
    :class:`UnknownModelError`, as does an unknown name.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return load_checkpoint(path, **overrides)
    key = str(name_or_path).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _PRESETS:
        raise UnknownModelError(
            f"unknown model {str(name_or_path)!r}; known: {', '.join(MODEL_NAMES)} "
            f"(or their HF repo ids, or a local checkpoint directory)"
        )
    ctor, preset = _PRESETS[key]
    return ctor(**{**preset, **overrides})


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UnknownModelError(f"cannot read {path}: {e}") from None


def load_checkpoint(directory: str | Path, **overrides: Any) -> Family:
    """Recognise the family from config.json / processor files and read their values."""
    d = Path(directory)
    config = read_json(d / "config.json")
    pre = read_json(d / "preprocessor_config.json")
    video = read_json(d / "video_preprocessor_config.json")
    proc = read_json(d / "processor_config.json")
    if proc:  # transformers 5: one file with image_processor / video_processor sections
        pre = {**proc, **(proc.get("image_processor") or {}), **pre}
        video = {**(proc.get("video_processor") or {}), **video}
    if not (config or pre or proc):
        raise UnknownModelError(f"{d} holds no config.json, preprocessor_config.json or processor_config.json")
    model_type = str(config.get("model_type", "")).lower()
    arch = " ".join(config.get("architectures") or []).lower()
    kind = " ".join(str(x) for x in (pre.get("processor_class"), pre.get("image_processor_type"),
                                       proc.get("processor_class"))).lower()
    blob = f"{model_type} {arch} {kind}"
    if "glm4v" in blob or "glm46v" in blob or "glm4v_moe" in blob:
        ctor: Any = Glm4v
        spec: Any = GlmSpec.from_hf(pre, config, video)
    elif "isaac" in blob:
        ctor, spec = Isaac, IsaacSpec.from_hf(pre, config)
    elif "nemotron" in blob and ("vl" in blob or "omni" in blob):
        ctor, spec = NemotronVL, NemotronSpec.from_hf(pre, config)
    else:
        raise UnknownModelError(
            f"{d}: cannot tell the family from model_type={model_type!r}, architectures={arch!r}, "
            f"processor={kind!r}"
        )
    return ctor(spec, **overrides)
