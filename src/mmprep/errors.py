"""The one error hierarchy of mmprep.

Every failure the library can foresee raises a subclass of :class:`MmprepError`, with a message
that names the item (index, file) and the numbers involved. ``MmprepError`` derives from
``ValueError`` so code that already catches ``ValueError`` around a processor keeps working.
"""

from __future__ import annotations


class MmprepError(ValueError):
    """Base class of every error mmprep raises on purpose."""


class InvalidInputError(MmprepError):
    """A size, count, rate or argument the reference would reject (or silently mangle)."""


class MediaError(InvalidInputError):
    """Media that cannot be read: corrupt, truncated, empty, unsupported or too large."""


class UnsupportedModalityError(InvalidInputError):
    """A modality the model does not take (Isaac video, GLM audio, the 12B Nemotron's audio)."""


class BudgetError(MmprepError):
    """A token or patch budget that cannot be met (context too short, too many rounds)."""


class UnknownModelError(MmprepError):
    """A model name, checkpoint directory or spec field that mmprep does not know."""


class WeightsError(MmprepError):
    """Checkpoint weights that are missing, unexpected or mis-shaped."""


def item_prefix(index: int | None = None, name: str | None = None) -> str:
    """``"item 3 (cat.jpg): "``-style prefix for error messages; empty when nothing is known."""
    parts = []
    if index is not None:
        parts.append(f"item {index}")
    if name:
        parts.append(f"({name})" if parts else str(name))
    return (" ".join(parts) + ": ") if parts else ""
