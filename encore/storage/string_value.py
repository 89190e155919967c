"""A :class:`~encore.storage.abstract_store.Value` held in memory."""
from __future__ import annotations

import io
import time
from typing import Any, Dict, Optional

from .abstract_store import Value, check_metadata, copy_metadata

_BytesIO = io.BytesIO  # looked up once: ``data`` is read on every get


class StringValue(Value):
    """A value whose data is a bytes object in memory.

    Parameters
    ----------
    data : bytes, optional
        The data (default empty).
    metadata : dict, optional
        The metadata (default empty); kept as a private copy.
    created : float, optional
        Creation time in seconds since the epoch (default: now).
    modified : float, optional
        Modification time (default: now).

    Attributes
    ----------
    size : int
        ``len(data)``.
    created, modified : float
        The times given or the time of construction.
    """

    def __init__(
        self,
        data: bytes = b"",
        metadata: Optional[Dict[str, Any]] = None,
        created: Optional[float] = None,
        modified: Optional[float] = None,
    ) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("StringValue data must be bytes, not {}".format(type(data).__name__))
        now = None
        if created is None or modified is None:
            now = time.time()
        self._bytes = bytes(data)
        self._metadata = {} if metadata is None else check_metadata(metadata)
        self.size = len(self._bytes)
        self.created = now if created is None else created
        self.modified = now if modified is None else modified

    @property
    def data(self) -> io.BytesIO:
        """io.BytesIO : A new stream over the data, at its start."""
        return _BytesIO(self._bytes)

    @property
    def metadata(self) -> Dict[str, Any]:
        """dict : An independent copy of the metadata."""
        return copy_metadata(self._metadata)

    def range(self, start: Optional[int] = None, end: Optional[int] = None) -> io.BytesIO:
        """Return a stream over ``data[start:end]``.

        Parameters
        ----------
        start : int, optional
            The first offset (default 0).
        end : int, optional
            The offset just past the end (default: the end of the data).

        Returns
        -------
        io.BytesIO
            The slice of the data.
        """
        return io.BytesIO(self._bytes[start:end])
