"""Small helpers for writing to a text terminal (Encore's
``encore.terminal.utils``).

:func:`write_static` is also exported by :mod:`encore.terminal.api`.
"""
from __future__ import annotations

import sys
from typing import Optional, TextIO

__all__ = ["write_static"]


def write_static(s: str, stream: Optional[TextIO] = None) -> None:
    """Write text and move the cursor back over it.

    Writes a backspace, then ``s``, then one backspace per character of
    ``s``, and flushes, so that the next output overwrites ``s`` in place.

    Parameters
    ----------
    s : str
        The text to show.
    stream : file-like, optional
        Where to write; defaults to :data:`sys.stdout` (looked up at each
        call).
    """
    if stream is None:
        stream = sys.stdout
    stream.write("\b" + s + "\b" * len(s))
    stream.flush()
