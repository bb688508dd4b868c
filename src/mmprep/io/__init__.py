"""Decoding and header probes: images (:mod:`.image`), video containers (:mod:`.video`), audio files (:mod:`.audio`)."""

import os
import stat
from typing import Any

from ..errors import MediaError

# PIL raises DecompressionBombError above 2 * Image.MAX_IMAGE_PIXELS; vLLM inherits that limit.
DEFAULT_MAX_PIXELS = 2 * 89_478_485

def check_path(source: Any, what: str = "media", where: str | None = None) -> None:
    """A path source must name an existing regular file: a directory, a FIFO (opening it would
    block forever), a socket or a device raises :class:`MediaError` saying which it is."""
    if not isinstance(source, (str, os.PathLike)):
        return
    prefix = where if where is not None else f"{os.fspath(source)}: "
    try:
        mode = os.stat(source).st_mode
    except (OSError, ValueError) as e:
        raise MediaError(f"{prefix}no such {what} file ({type(e).__name__})") from None
    if stat.S_ISREG(mode):
        return
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")
    raise MediaError(f"{prefix}is {kind}, not {'an' if what[0] in 'aeiou' else 'a'} {what} file")
