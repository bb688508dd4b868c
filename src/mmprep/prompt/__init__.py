"""Prompt building on token ids: placeholder expansion (:mod:`.tokens`) and the family-neutral
process/prompt driver (:mod:`.driver`)."""
