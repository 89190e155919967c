"""Writing a destination file all or nothing (``to_file`` of every store).

:func:`replacing` gives a stream on a new temporary file beside the
destination; when the block ends normally the file is flushed, synced and
renamed over the destination in one step, and when it raises the temporary
file is removed, so an existing destination stays byte for byte as it was.
"""
from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from typing import Any, Iterator, Optional

__all__ = ["replacing"]

_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def _temporary_beside(path: str, bits: int) -> Any:
    directory, name = os.path.split(path)
    for _ in range(100):
        temporary = os.path.join(directory or ".", ".{}.{}.part".format(name, os.urandom(4).hex()))
        try:
            return os.open(temporary, _FLAGS, bits), temporary
        except FileExistsError:
            continue
    raise FileExistsError("could not create a temporary file beside {!r}".format(path))


@contextmanager
def replacing(path: Any, mode: Optional[int] = None) -> Iterator[Any]:
    """Write a file that replaces ``path`` only once it is complete.

    Parameters
    ----------
    path : str or os.PathLike
        The destination.  When it exists and is not a regular file (a
        device, a pipe), it is opened and written directly instead.
    mode : int, optional
        The permission bits of the new file (``0o644`` for a file that a
        web server publishes).  By default the bits of the file it
        replaces, or ``0o666`` less the umask for a new destination.

    Yields
    ------
    file-like
        A binary stream to write the new content to.

    Notes
    -----
    Without ``mode`` the new file keeps the permission bits of the file it
    replaces; a new destination gets the usual ``0o666`` less the umask.
    """
    path = os.fspath(path)
    try:
        status = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        status = None
    if status is not None and not stat.S_ISREG(status.st_mode):
        with open(path, "wb") as stream:
            yield stream
        return
    # With an explicit mode the file is private until it gets its bits, so
    # content meant for its owner only is never readable by others.
    fd, temporary = _temporary_beside(path, 0o666 if mode is None else 0o600)
    try:
        with open(fd, "wb") as stream:
            yield stream
            stream.flush()
            bits = mode if mode is not None else (
                stat.S_IMODE(status.st_mode) if status is not None else None)
            if bits is not None:
                try:
                    os.chmod(stream.fileno() if os.chmod in os.supports_fd else temporary, bits)
                except OSError:
                    if mode is not None:
                        raise
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
