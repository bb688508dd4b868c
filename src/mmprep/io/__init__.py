"""Decoding and header probes: images (:mod:`.image`), video containers (:mod:`.video`), audio files (:mod:`.audio`)."""
