"""Nemotron Nano VL (NVIDIA): every Nemotron rule lives in this package.

``spec`` (defaults, ``from_hf``, the Omni preset), ``tiles`` (InternVL-style tiles, 12B-v2-VL),
``dynamic`` (the dynamic-resolution tiler, Omni), ``sampling`` + ``video`` (vLLM's loaders, frame
timestamps, EVS token counts), ``audio`` (Parakeet features and counts), ``pixels``, ``prompt`` +
``media`` (placeholders, prompt/process) and ``family`` (the :class:`NemotronVL` object).
"""

from .family import NemotronVL
from .spec import NemotronSpec

__all__ = ["NemotronSpec", "NemotronVL"]
