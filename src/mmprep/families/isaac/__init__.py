"""Isaac (Perceptron): every Isaac rule lives in this package.

``spec`` (defaults, ``from_hf``), ``sizing`` (the patch-budget bisection), ``pixels`` (SigLIP2
patches), ``prompt`` (placeholders, prompt/process), ``positions`` (MRoPE) and ``family`` (the
:class:`Isaac` object ``mmprep.load`` returns).
"""

from .family import Isaac
from .spec import IsaacSpec

__all__ = ["Isaac", "IsaacSpec"]
