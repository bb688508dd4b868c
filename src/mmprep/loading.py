"""``mmprep.load``: a family object from a model name, an HF repo id or a checkpoint directory.

Names map to embedded defaults (no network). A directory is read from its ``config.json`` plus
``preprocessor_config.json`` / ``video_preprocessor_config.json`` or the single
``processor_config.json`` that transformers 5 writes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .engines import check_engine, engine_overrides
from .errors import MmprepError, UnknownModelError
from .families.glm4v import Glm4v, GlmSpec
from .families.glm4v.spec import VERSIONS as GLM_VERSIONS
from .families.isaac import Isaac, IsaacSpec
from .families.nemotron import NemotronSpec, NemotronVL
from .families.nemotron.spec import OMNI
from .family import Family
from .validate import HfConfig

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


def load(name_or_path: str | Path, *, engine: str | None = None, **overrides: Any) -> Family:
    """A family object for a model name, HF repo id or local checkpoint directory.

    A registered name or HF repo id (a ``str``) always means the embedded preset, even where a
    folder of that name exists; any other argument naming a directory loads it. To load a folder
    that shares a registered name, spell it as a path: ``"./isaac"`` or ``Path("isaac")``.
    An empty name is an error, never the current directory.

    ``engine``: whose rules to follow where engines disagree: ``"vllm-seed"`` (default, the
    seeds), ``"transformers"`` or ``"vllm"`` (docs/engines.md lists every rule).
    ``overrides`` are spec field names (e.g. ``max_num_tiles=6``); they win over the engine's
    settings. An unknown field raises :class:`UnknownModelError`, as does an unknown name.
    """
    engine = check_engine(engine)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise UnknownModelError(f"load() takes a model name or a directory, got {type(name_or_path).__name__}")
    key = str(name_or_path).strip().lower()
    key = _ALIASES.get(key, key)
    if isinstance(name_or_path, str) and key in _PRESETS:
        pass  # a registered name or alias wins over a folder of that name: force one with "./isaac"
    elif not isinstance(name_or_path, str) or name_or_path.strip():
        path = Path(name_or_path)
        if path.is_dir():
            return with_engine(load_checkpoint(path, **overrides), engine, overrides)
    if key not in _PRESETS:
        raise UnknownModelError(
            f"unknown model {str(name_or_path)!r}; known: {', '.join(MODEL_NAMES)} "
            f"(or their HF repo ids, or a local checkpoint directory)"
        )
    ctor, preset = _PRESETS[key]
    return with_engine(ctor(**{**preset, **overrides}), engine, overrides)


def with_engine(family: Any, engine: str, overrides: dict[str, Any] | None = None) -> Any:
    """The same checkpoint under another engine's profile (explicit ``overrides`` still win)."""
    engine = check_engine(engine)
    settings = engine_overrides(family.engine_rules, engine, family.spec)
    settings = {k: v for k, v in settings.items() if k not in (overrides or {})}
    out = type(family)(family.spec, **settings) if settings else family
    out.engine = engine
    return out


MAX_JSON_BYTES = 64 << 20  # a checkpoint's JSON files are kilobytes


def read_json(path: Path) -> dict[str, Any]:
    """One checkpoint JSON object ({} when the file is absent); anything else is an error."""
    if not path.exists():
        return {}
    if not path.is_file():
        raise UnknownModelError(f"{path} is not a regular file")
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UnknownModelError(f"{path} is {path.stat().st_size} bytes, above the limit of {MAX_JSON_BYTES}")
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: absurdly deep nesting
        raise UnknownModelError(f"cannot read {path}: {type(e).__name__}: {str(e)[:200]}") from None
    if not isinstance(data, dict):
        raise UnknownModelError(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


def load_checkpoint(directory: str | Path, **overrides: Any) -> Family:
    """Recognise the family from config.json / processor files and read their values.

    transformers 5 writes one ``processor_config.json`` whose ``image_processor`` /
    ``video_processor`` / ``feature_extractor`` sections hold what older checkpoints keep in
    ``preprocessor_config.json`` / ``video_preprocessor_config.json``; both layouts are read (the
    separate files win). Bad values raise :class:`~mmprep.MmprepError` subclasses naming the file
    and key.
    """
    d = Path(directory)
    try:
        return _load_checkpoint(d, overrides)
    except MmprepError as e:
        if str(d) in str(e):
            raise
        raise type(e)(f"{d}: {e}") from None
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError) as e:  # no reader checked it
        raise UnknownModelError(f"{d}: cannot read the checkpoint's values: {type(e).__name__}: {e}") from None


def _load_checkpoint(d: Path, overrides: dict[str, Any]) -> Family:
    config = HfConfig(read_json(d / "config.json"), "config.json")
    pre_file = read_json(d / "preprocessor_config.json")
    video_file = read_json(d / "video_preprocessor_config.json")
    proc = HfConfig(read_json(d / "processor_config.json"), "processor_config.json")
    if not (config or pre_file or proc):
        raise UnknownModelError(f"{d} holds no config.json, preprocessor_config.json or processor_config.json")
    image_sec, video_sec = proc.section("image_processor"), proc.section("video_processor")
    # one mapping per processor, each key remembering the file it came from (for error messages)
    top = {k: v for k, v in proc.items() if k not in ("image_processor", "video_processor")}
    pre = HfConfig({**top, **image_sec, **pre_file}, "preprocessor_config.json", {
        **{k: proc.where for k in proc}, **{k: image_sec.where for k in image_sec},
        **{k: "preprocessor_config.json" for k in pre_file},
    })
    video = HfConfig({**video_sec, **video_file}, "video_preprocessor_config.json", {
        **{k: video_sec.where for k in video_sec}, **{k: "video_preprocessor_config.json" for k in video_file},
    })
    model_type = str(config.get("model_type", "")).lower()
    archs = config.get("architectures") or []
    arch = " ".join(str(a) for a in (archs if isinstance(archs, list) else [archs])).lower()
    kind = " ".join(str(x) for x in (pre.get("processor_class"), pre.get("image_processor_type"),
                                       proc.get("processor_class"))).lower()
    blob = f"{model_type} {arch} {kind}"
    if "glm4v" in blob or "glm46v" in blob or "glm4v_moe" in blob:
        ctor: Any = Glm4v
        spec: Any = GlmSpec.from_hf(pre, config, video)
    elif "isaac" in blob:
        ctor, spec = Isaac, IsaacSpec.from_hf(pre, config)
    elif "nemotron" in blob and ("vl" in blob or "omni" in blob):
        ctor, spec = NemotronVL, NemotronSpec.from_hf(pre, config, video)
    else:
        raise UnknownModelError(
            f"{d}: cannot tell the family from model_type={model_type!r}, architectures={arch!r}, "
            f"processor={kind!r}"
        )
    return ctor(spec, **overrides)
