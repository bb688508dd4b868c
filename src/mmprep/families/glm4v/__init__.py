"""GLM-4.1V / GLM-4.6V (Zhipu): every GLM rule lives in this package.

``spec`` (defaults, ``from_hf``), ``sizing`` (smart-resize), ``sampling`` + ``frame_counts``
(video samplers, scalar and batched), ``video`` (video plans and pixels), ``pixels`` (image and
frame patches), ``prompt`` (placeholders, timestamps, prompt/process), ``positions`` (MRoPE) and
``family`` (the :class:`Glm4v` object ``mmprep.load`` returns).
"""

from .family import Glm4v
from .spec import GlmSpec

__all__ = ["Glm4v", "GlmSpec"]
