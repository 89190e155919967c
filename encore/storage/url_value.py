"""A :class:`~encore.storage.abstract_store.Value` fetched from a URL."""
from __future__ import annotations

import email.utils
import io
import logging
import urllib.request
from typing import Any, Dict, Optional

from .abstract_store import Value, check_metadata, copy_metadata
from .utils import range_stream, slice_offsets

logger = logging.getLogger(__name__)


class URLValue(Value):
    """A value whose data is the body of a URL.

    Nothing is fetched until the data, size or times are asked for.  The
    first request made for :attr:`size` or :attr:`modified` is kept and its
    body handed out by the next access to :attr:`data`, so asking for the
    size and then reading costs one request.

    Parameters
    ----------
    url : str
        Any URL ``urllib`` can open (``http``, ``https``, ``file``, ...).
    metadata : dict, optional
        The metadata (default empty); kept as a private copy.
    opener : urllib.request.OpenerDirector, optional
        Opens the URL (``opener.open(url)``); default
        :func:`urllib.request.build_opener`.  Pass one carrying
        authentication or proxy handlers as needed.

    Attributes
    ----------
    url : str
        The URL.
    created : None
        URLs do not tell when their resource was created.
    """

    created = None

    def __init__(self, url: str, metadata: Optional[Dict[str, Any]] = None, opener: Any = None) -> None:
        self.url = url
        self._metadata = {} if metadata is None else check_metadata(metadata)
        self._opener = opener if opener is not None else urllib.request.build_opener()
        self._pending: Any = None
        self._have_headers = False
        self._size: Optional[int] = None
        self._modified: Optional[float] = None

    def open(self) -> Any:
        """Fetch the URL and record its size and modification time.

        Returns
        -------
        file-like
            The response, a readable binary stream.
        """
        response = self._opener.open(self.url)
        self._read_headers(response)
        return response

    def _read_headers(self, response: Any) -> None:
        headers = getattr(response, "headers", None)
        if headers is None:
            headers = response.info()
        length = headers.get("Content-Length")
        if length is not None:
            try:
                self._size = int(length)
            except ValueError:
                logger.info("Ignoring bad Content-Length %r from %s", length, self.url)
        last_modified = headers.get("Last-Modified")
        if last_modified:
            try:
                self._modified = email.utils.parsedate_to_datetime(last_modified).timestamp()
            except (TypeError, ValueError):
                logger.info("Ignoring bad Last-Modified %r from %s", last_modified, self.url)
        self._have_headers = True

    def _ensure_headers(self) -> None:
        if not self._have_headers:
            self._pending = self.open()

    @property
    def size(self) -> Optional[int]:  # type: ignore[override]
        """int or None : The Content-Length of the resource, if given."""
        self._ensure_headers()
        return self._size

    @property
    def modified(self) -> Optional[float]:  # type: ignore[override]
        """float or None : The Last-Modified time of the resource, if given."""
        self._ensure_headers()
        return self._modified

    @property
    def data(self) -> Any:
        """file-like : A stream of the resource's body."""
        pending, self._pending = self._pending, None
        if pending is not None:
            return pending
        return self.open()

    @property
    def metadata(self) -> Dict[str, Any]:
        """dict : An independent copy of the metadata."""
        return copy_metadata(self._metadata)

    def range(self, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        """Return a stream over ``data[start:end]``.

        A ``Range`` request is sent; a server that ignores it is handled by
        skipping and truncating the full body.

        Parameters
        ----------
        start : int, optional
            The first offset (default 0).
        end : int, optional
            The offset just past the end (default: the end of the data).

        Returns
        -------
        file-like
            A stream of the range; the caller closes it.
        """
        size = None
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = self.size
        first, last = slice_offsets(start, end, size)
        if last is not None and last <= first:
            return io.BytesIO(b"")
        if self.url.startswith(("http:", "https:")):
            byte_range = "bytes={}-{}".format(first, "" if last is None else last - 1)
            request = urllib.request.Request(self.url, headers={"Range": byte_range})
            response = self._opener.open(request)
            if getattr(response, "status", None) == 206:
                content_range = response.headers.get("Content-Range", "")
                if content_range.startswith("bytes {}-".format(first)):
                    return response
            return range_stream(response, first, last)
        return range_stream(self._opener.open(self.url), first, last)
