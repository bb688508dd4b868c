"""One package per model family: everything a family decides (spec, sizing, samplers,
placeholders, positions, pixel layout, audio) and its family object. Shared modules outside
``families/`` never import these packages; :mod:`mmprep.loading` is the one table that names them."""

from .glm4v import Glm4v, GlmSpec
from .isaac import Isaac, IsaacSpec
from .nemotron import NemotronSpec, NemotronVL

__all__ = ["Glm4v", "GlmSpec", "Isaac", "IsaacSpec", "NemotronSpec", "NemotronVL"]
