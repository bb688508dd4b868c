"""One module per model family: a frozen Spec of the checkpoint's defaults and a small class
whose methods plan, count and (through the shared modules) produce pixels and prompts."""

from .glm4v import Glm4v, GlmSpec
from .isaac import Isaac, IsaacSpec
from .nemotron_vl import NemotronSpec, NemotronVL

__all__ = ["Glm4v", "GlmSpec", "Isaac", "IsaacSpec", "NemotronSpec", "NemotronVL"]
