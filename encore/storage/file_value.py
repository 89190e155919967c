"""A :class:`~encore.storage.abstract_store.Value` backed by a file."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

from .abstract_store import Value, check_metadata, copy_metadata
from .utils import range_stream


class FileValue(Value):
    """A value whose data is the content of a file.

    The file is examined (``os.stat``) when the value is made; its data is
    opened only when asked for, and every access to :attr:`data` opens a new
    stream from the start of the file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    metadata : dict, optional
        The metadata (default empty); kept as a private copy.

    Attributes
    ----------
    path : str
        The file.
    size : int
        The file's size in bytes at construction.
    modified : float
        The file's modification time at construction.
    created : float or None
        ``None``: files do not portably record their creation time.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    """

    def __init__(self, path: Any, metadata: Optional[Dict[str, Any]] = None) -> None:
        self.path = os.fspath(path)
        status = os.stat(self.path)
        self.size = status.st_size
        self.modified = status.st_mtime
        self.created = None
        self._metadata = {} if metadata is None else check_metadata(metadata)

    @property
    def data(self) -> Any:
        """file-like : A new binary stream over the file, at its start."""
        return open(self.path, "rb")

    @property
    def metadata(self) -> Dict[str, Any]:
        """dict : An independent copy of the metadata."""
        return copy_metadata(self._metadata)

    def range(self, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        """Return a stream over ``data[start:end]``.

        Parameters
        ----------
        start : int, optional
            The first offset (default 0).
        end : int, optional
            The offset just past the end (default: the end of the file).

        Returns
        -------
        file-like
            A stream of the range; the caller closes it.
        """
        return range_stream(open(self.path, "rb"), start, end, self.size)
