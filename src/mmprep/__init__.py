"""mmprep: exact multimodal preprocessing and token accounting for vision-language models.

``import mmprep`` stays light: numpy only. Media decoding, torch and the model layer load on
first use.

>>> import mmprep
>>> glm = mmprep.load("glm-4.1v")
>>> glm.plan_image(1080, 1920).num_tokens
2691
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import (
    BudgetError,
    InvalidInputError,
    UnsupportedModalityError,
    MediaError,
    MmprepError,
    UnknownModelError,
    WeightsError,
)
from .family import Family
from .loading import MODEL_NAMES, load
from .types import (
    AudioBatch,
    AudioMetadata,
    AudioPlan,
    Batch,
    ImageMetadata,
    ImagePlan,
    PixelBatch,
    RequestPlan,
    TileLayout,
    VideoMetadata,
    VideoPlan,
)

__version__ = "0.1.0"

# name -> module, imported on first attribute access (keeps `import mmprep` light)
_LAZY = {
    "read_image": "io.image",
    "probe_image": "io.image",
    "read_frames": "io.video",
    "probe_video": "io.video",
    "read_audio": "io.audio",
    "probe_audio": "io.audio",
    "models": "models",
    "evs": "evs",
    "explain": "explain",
    "engines": "engines",
    "data": "data",
    "count_dataset": "data.manifest",
    "pack": "data.pack",
    "pack_stream": "data.pack",
    "DatasetCounts": "data.manifest",
    "PackResult": "data.pack",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mmprep' has no attribute {name!r}")
    mod = importlib.import_module(f".{module}", __name__)
    return mod if name == module else getattr(mod, name)


__all__ = [
    "MODEL_NAMES", "AudioBatch", "AudioMetadata", "AudioPlan", "Batch", "BudgetError", "Family",
    "ImageMetadata", "ImagePlan", "InvalidInputError", "MediaError", "MmprepError", "PixelBatch",
    "RequestPlan", "TileLayout", "UnknownModelError", "UnsupportedModalityError", "VideoMetadata",
    "VideoPlan", "WeightsError", "load", *_LAZY,
]
