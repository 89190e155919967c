"""A :class:`~encore.storage.abstract_store.Value` fetched from a URL, and
what the URL stores share: their error vocabulary and checked streams.

Network failures reach callers of the URL stores as built-in exceptions or
encore's, never as the internals of :mod:`http.client`, :mod:`urllib3`,
:mod:`requests` or :mod:`json`:

* a server that does not answer in time: :class:`TimeoutError`;
* a connection refused, reset or broken: :class:`ConnectionError`;
* a body shorter than its ``Content-Length``, or a broken chunked body:
  :class:`IncompleteBodyError` (a :class:`ConnectionError`), on every read
  path -- a truncated body never reads as complete;
* an unexpected status: :class:`HTTPStatusError` (a
  :class:`~encore.storage.abstract_store.StoreError` naming the status);
  ``404`` is :class:`KeyError` and ``401``/``403``
  :class:`~encore.storage.abstract_store.AuthorizationError`, raised by the
  stores.
"""
from __future__ import annotations

import email.utils
import http.client
import io
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional

from .abstract_store import StoreError, Value, check_metadata, copy_metadata
from .utils import range_stream, slice_offsets

logger = logging.getLogger(__name__)

__all__ = ["URLValue", "IncompleteBodyError", "HTTPStatusError", "ResponseStream",
           "translate_network_error", "checked_response", "open_url", "DEFAULT_TIMEOUT"]

#: The default timeout of the URL stores, in seconds, for connecting and for
#: each read.
DEFAULT_TIMEOUT = 30.0


class IncompleteBodyError(ConnectionError):
    """A response body ended before its announced end.

    Parameters
    ----------
    message : str
        What ended early, and after how many bytes.
    """


class HTTPStatusError(StoreError):
    """A server answered with an unexpected HTTP status.

    Parameters
    ----------
    status : int
        The HTTP status code.
    url : str
        The URL requested (without credentials).
    reason : str, optional
        The reason phrase.

    Attributes
    ----------
    status : int
        The HTTP status code.
    url : str
        The URL requested.
    """

    def __init__(self, status: int, url: str, reason: str = "") -> None:
        super().__init__("the server answered {} {} for {}".format(status, reason, url).replace("  ", " "))
        self.status = status
        self.url = url


def _urllib3_errors() -> tuple:
    try:
        import urllib3.exceptions as errors
    except ImportError:  # pragma: no cover - urllib3 comes with requests
        return (), (), ()
    return (errors.ReadTimeoutError, errors.ConnectTimeoutError), \
        (errors.ProtocolError, errors.IncompleteRead, errors.DecodeError), (errors.HTTPError,)


def _root_reason(error: BaseException) -> str:
    """Say in words why a connection failed, from the innermost OS error."""
    seen = set()
    current: Any = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        number = getattr(current, "errno", None)
        if isinstance(current, OSError) and isinstance(number, int):
            return "{} (is the server running? is the URL right?)".format(os.strerror(number).lower())
        current = getattr(current, "reason", None) or current.__cause__ or current.__context__
    return "the connection failed (is the server running? is the URL right?)"


def translate_network_error(error: BaseException, what: str = "") -> BaseException:
    """Return the exception of the shared vocabulary for a network error.

    Parameters
    ----------
    error : BaseException
        An exception from :mod:`http.client`, :mod:`urllib`, :mod:`urllib3`
        or :mod:`requests`.
    what : str, optional
        What was being done, for the message (such as the URL).

    Returns
    -------
    BaseException
        A :class:`TimeoutError`, :class:`IncompleteBodyError`,
        :class:`ConnectionError` or other :class:`OSError`; an error already
        of the vocabulary (or not a network error) is returned unchanged.
    """
    suffix = " ({})".format(what) if what else ""
    timeouts, broken, other = _urllib3_errors()
    rerrors: Optional[ModuleType]
    try:
        import requests.exceptions as rerrors
    except ImportError:  # pragma: no cover
        rerrors = None
    if isinstance(error, (IncompleteBodyError, KeyError, StoreError)):
        return error
    if isinstance(error, urllib.error.HTTPError):
        return HTTPStatusError(error.code, what or error.url, str(error.reason or ""))
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        if isinstance(reason, BaseException):
            return translate_network_error(reason, what)
        return ConnectionError("cannot reach the server: {}{}".format(reason, suffix))
    if rerrors is not None:
        if isinstance(error, rerrors.Timeout):
            return TimeoutError("the server did not answer in time{}".format(suffix))
        if isinstance(error, rerrors.ChunkedEncodingError):
            return IncompleteBodyError("the response body is broken{}".format(suffix))
        if isinstance(error, rerrors.ConnectionError):
            inner = error.args[0] if error.args else None
            if isinstance(inner, BaseException) and timeouts and isinstance(inner, timeouts):
                return TimeoutError("the server did not answer in time{}".format(suffix))
            return ConnectionError("cannot connect to the server{}: {}".format(suffix, _root_reason(inner or error)))
        if isinstance(error, (rerrors.InvalidURL, rerrors.MissingSchema, rerrors.InvalidSchema)):
            return ValueError("invalid URL{}".format(suffix))
        if isinstance(error, rerrors.RequestException):
            return ConnectionError("the request failed{}: {}".format(suffix, type(error).__name__))
    if timeouts and isinstance(error, timeouts):
        return TimeoutError("the server did not answer in time{}".format(suffix))
    if isinstance(error, (TimeoutError, socket.timeout)):
        return TimeoutError("the server did not answer in time{}".format(suffix))
    if isinstance(error, http.client.IncompleteRead) or (broken and isinstance(error, broken)):
        return IncompleteBodyError("the response body ended early{}".format(suffix))
    if isinstance(error, http.client.HTTPException) or (other and isinstance(error, other)):
        return ConnectionError("the server's answer is malformed{}: {}".format(suffix, type(error).__name__))
    return error


class ResponseStream(io.RawIOBase):
    """A readable stream over a response body that never hides a truncation.

    Parameters
    ----------
    read : callable
        ``read(size) -> bytes`` of the underlying body.
    close : callable
        Closes the underlying response.
    length : int or None
        The announced length (``Content-Length``); a body ending before it
        raises :class:`IncompleteBodyError`.
    what : str
        What is read (a key or URL), for messages.
    on_complete : callable, optional
        Called once when the body was read to its end (to give the
        connection back to a pool, for instance).
    """

    #: The response's headers (set by :func:`checked_response`).
    headers: Any
    #: The response's HTTP status, if it has one (set by :func:`checked_response`).
    status: Optional[int]
    #: The URL answered, if known (set by :func:`checked_response`).
    url: Optional[str]

    def __init__(self, read: Callable[[int], bytes], close: Callable[[], None], length: Optional[int],
                 what: str, on_complete: Optional[Callable[[], None]] = None) -> None:
        super().__init__()
        self._read = read
        self._close = close
        self.length = length
        self.what = what
        self.received = 0
        self._eof = False
        self._on_complete = on_complete

    def readable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left if ``size`` is
        negative or None); ``b''`` at the end of the body.

        Raises
        ------
        IncompleteBodyError
            If the body ends before its announced length.
        """
        if self._eof:
            return b""
        if size is None or size < 0:
            parts: List[bytes] = []
            while True:
                part = self.read(1 << 20)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        if size == 0:
            return b""
        if self.length is not None:
            size = min(size, self.length - self.received)
            if size <= 0:
                self._finish()
                return b""
        try:
            data = self._read(size)
        except Exception as error:
            raise translate_network_error(error, self.what) from None
        if not data:
            if self.length is not None and self.received < self.length:
                raise IncompleteBodyError("the body of {} ended after {} of {} bytes".format(
                    self.what, self.received, self.length))
            self._finish()
            return b""
        self.received += len(data)
        return bytes(data)

    @property
    def completed(self) -> bool:
        """bool : Whether the body was read to its end."""
        return self._eof

    def _finish(self) -> None:
        self._eof = True
        callback, self._on_complete = self._on_complete, None
        if callback is not None:
            callback()

    def readinto(self, buffer: Any) -> int:
        """Read into a writable buffer; return the number of bytes read."""
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        if not self.closed:
            try:
                self._close()
            except Exception:
                logger.debug("Closing the response of %s failed", self.what, exc_info=True)
        super().close()


def checked_response(response: Any, what: str) -> ResponseStream:
    """Wrap a :mod:`urllib` / :mod:`http.client` response in a
    :class:`ResponseStream` checking its ``Content-Length``.

    Parameters
    ----------
    response : file-like
        The response (with ``headers`` or ``info()``).
    what : str
        What is read, for messages.

    Returns
    -------
    ResponseStream
        The checked stream; closing it closes the response.
    """
    if isinstance(response, ResponseStream):
        return response
    headers = getattr(response, "headers", None)
    if headers is None:
        headers = response.info()
    length = None
    text = headers.get("Content-Length") if headers is not None else None
    if text is not None and text.strip().isdigit():
        length = int(text)
    # A pooling handler (see static_url_store) gives the connection back
    # once the body was read to its end, and drops it otherwise.
    release = getattr(response, "encore_release", None)
    discard = getattr(response, "encore_discard", None)
    if discard is None:
        close = response.close
    else:
        def close() -> None:
            response.close()
            if not stream.completed:
                discard()
    stream = ResponseStream(response.read, close, length, what, on_complete=release)
    stream.headers = headers
    stream.status = getattr(response, "status", None)
    stream.url = getattr(response, "url", None)
    return stream


_RETRY_STATUSES = (502, 503, 504)


def open_url(opener: Any, request: Any, timeout: Optional[float] = DEFAULT_TIMEOUT, retries: int = 0,
             backoff: float = 0.1) -> ResponseStream:
    """Open a URL with a :mod:`urllib` opener, in the shared error vocabulary.

    Parameters
    ----------
    opener : urllib.request.OpenerDirector or object with ``open(request)``
        Opens the request; an ``OpenerDirector`` is given the timeout.
    request : str or urllib.request.Request
        What to open.
    timeout : float or None, optional
        Seconds for connecting and for each read.
    retries : int, optional
        Times a connection error or a ``502``/``503``/``504`` answer is
        retried (the request is a ``GET``: idempotent), waiting
        ``backoff`` seconds, doubled each time.
    backoff : float, optional
        The first wait between retries.

    Returns
    -------
    ResponseStream
        The body, checked against its ``Content-Length``.

    Raises
    ------
    urllib.error.HTTPError
        For ``4xx`` answers, which the stores map to ``KeyError`` and
        ``AuthorizationError``.
    HTTPStatusError
        For other error statuses.
    TimeoutError, ConnectionError
        When the server cannot be reached or does not answer in time.
    """
    url = request if isinstance(request, str) else request.full_url
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            if isinstance(opener, urllib.request.OpenerDirector):
                response = opener.open(request, timeout=timeout)
            else:
                response = opener.open(request)
        except urllib.error.HTTPError as error:
            if error.code < 500:
                raise
            error.close()
            if error.code in _RETRY_STATUSES and not last:
                time.sleep(min(backoff * 2 ** attempt, 5.0))  # backoff, not synchronisation
                continue
            raise HTTPStatusError(error.code, url, str(error.reason or "")) from None
        except Exception as error:
            translated = translate_network_error(error, url)
            if translated is error:
                raise
            if isinstance(translated, ConnectionError) and not isinstance(translated, IncompleteBodyError) \
                    and not last:
                time.sleep(min(backoff * 2 ** attempt, 5.0))
                continue
            raise translated from None
        return checked_response(response, url)
    raise AssertionError("unreachable")  # pragma: no cover


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
    timeout : float or None, optional
        Seconds to wait for the connection and for each read (default
        :data:`DEFAULT_TIMEOUT`); given to an
        :class:`~urllib.request.OpenerDirector`'s ``open``.
    retries : int, optional
        Times a request failing on a connection error or a ``502``,
        ``503`` or ``504`` answer is retried (default 0).

    Raises
    ------
    TimeoutError, ConnectionError, IncompleteBodyError, HTTPStatusError
        When reading (see the module documentation); a body shorter than
        its ``Content-Length`` always raises.

    Attributes
    ----------
    url : str
        The URL.
    created : None
        URLs do not tell when their resource was created.
    """

    created = None

    def __init__(self, url: str, metadata: Optional[Dict[str, Any]] = None, opener: Any = None,
                 timeout: Optional[float] = DEFAULT_TIMEOUT, retries: int = 0) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
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
        response = self._open(self.url)
        self._read_headers(response)
        return response

    def _open(self, request: Any) -> ResponseStream:
        try:
            return open_url(self._opener, request, self.timeout, self.retries)
        except urllib.error.HTTPError as error:
            error.close()
            raise HTTPStatusError(error.code, self.url, str(error.reason or "")) from None

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
            response = self._open(request)
            if getattr(response, "status", None) == 206:
                content_range = response.headers.get("Content-Range", "")
                if content_range.startswith("bytes {}-".format(first)):
                    return response
            return range_stream(response, first, last)
        return range_stream(self._open(self.url), first, last)
