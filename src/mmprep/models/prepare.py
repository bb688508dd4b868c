"""``prepare()``'s generic half: media -> features -> placeholder slots -> packed token embeddings.

Every mmprep model turns a processor batch into decoder inputs the same way:

1. encode each media kind present in the batch (``model.encode_media(kind, batch)`` -> features
   ``(Σ tokens, hidden)`` and the feature count of each item, in batch order);
2. pack the batch's tokens (:func:`~mmprep.models.inputs.pack_tokens`: padding dropped, lengths
   checked against the context, positions read);
3. embed the ids and find each kind's placeholder slots (``model.media_slots(tokens)`` -> one
   boolean mask per kind over the packed ids);
4. check that every row's slots take whole items (:func:`~mmprep.models.inputs.check_slot_counts`)
   and put the features into their slots.

A model supplies only the two hooks and the list of :class:`MediaInput` it reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from .decoder import Prompt
from .inputs import check_slot_counts, pack_tokens


@dataclass(frozen=True)
class MediaInput:
    """A media kind a model reads from a batch: its name and the batch key that holds its values."""

    kind: str  # "image", "video", "audio"
    values_key: str  # e.g. "pixel_values", "pixel_values_videos", "input_features"


def prepare_prompt(model: Any, batch: Any, media: Sequence[MediaInput]) -> Prompt:
    """Pack ``batch``'s tokens and put each media item's features into its placeholder slots.

    Raises :class:`~mmprep.errors.InvalidInputError` naming the row and the numbers when a row's
    placeholders do not take whole items, items are left over, or an id is outside the vocabulary.
    """
    features: dict[str, torch.Tensor] = {}
    per_item: dict[str, list[int]] = {}
    for m in media:
        if batch.get(m.values_key) is not None:
            features[m.kind], per_item[m.kind] = model.encode_media(m.kind, batch)
    tokens = pack_tokens(batch, model.device, max_context=model.max_context, has_media=bool(features))
    vocab = model.vocab_size
    bad = (tokens.ids < 0) | (tokens.ids >= vocab)
    if bool(bad.any()):
        raise InvalidInputError(f"token id {int(tokens.ids[bad][0])} is outside the vocabulary of {vocab}")
    embeds = model.embed(tokens.ids)
    slots = model.media_slots(tokens)
    cu = tokens.cu_seqlens.long()
    for m in media:
        mask = slots.get(m.kind)
        if mask is None:
            if m.kind in features:
                raise InvalidInputError(f"the batch has {m.values_key} but the prompt has no {m.kind} placeholders")
            continue
        upto = F.pad(torch.cumsum(mask.long(), 0), (1, 0))
        check_slot_counts(m.kind, (upto[cu[1:]] - upto[cu[:-1]]).tolist(), per_item.get(m.kind, []))
        if m.kind in features:
            embeds = embeds.masked_scatter(mask[:, None], features[m.kind].to(embeds.dtype))
    return Prompt(tokens, embeds)
