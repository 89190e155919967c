"""A store kept by a web server, reached with HTTP requests.

:class:`DynamicURLStore` reads and writes each key through a few URLs of a
server -- by default ``{base}/{key}/data``, ``{base}/{key}/metadata`` and
``{base}/{key}/auth`` -- with ``GET``, ``HEAD``, ``PUT``, ``POST`` and
``DELETE`` requests, and finds keys through a query URL.  The protocol is
described in the class documentation; :mod:`encore.storage.server` serves
any store with it.

The HTTP requests are made with the third-party `requests
<https://requests.readthedocs.io>`_ library, an optional dependency of
encore: install it with ``pip install ".[http]"`` from the checkout.  This module can be
imported without it; creating a store then raises :class:`ImportError`.
"""
from __future__ import annotations

import email.utils
import io
import json
import logging
import time
import urllib.parse
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple

from .abstract_store import (
    AbstractAuthorizingStore,
    AuthorizationError,
    StoreError,
    Value,
    select_metadata,
    value_parts,
)
from ._metadata_codec import decode_metadata, encode_metadata, permissions_to_json, to_json
from .events import StoreDeleteEvent, StoreSetEvent, StoreUpdateEvent
from .url_value import DEFAULT_TIMEOUT, HTTPStatusError, IncompleteBodyError, ResponseStream, translate_network_error
from .utils import DEFAULT_BUFFER_SIZE, UserTag, is_listened, range_stream, slice_offsets, store_progress

logger = logging.getLogger(__name__)

__all__ = ["DynamicURLStore", "RequestsURLValue", "DEFAULT_PARTS"]

#: The URL segment of each part of a key.
DEFAULT_PARTS = {"data": "data", "metadata": "metadata", "permissions": "auth"}

# Characters left as they are in keys put in URLs: the sub-delimiters of
# RFC 3986 and ':' / '@'.  '/' is escaped, so a key holding one stays a
# single path segment.
_SAFE = "~!$&'()*+,;=:@"

_NDJSON = "application/x-ndjson"

# The statuses of a busy or restarting server, worth retrying.
_RETRY_STATUSES = (502, 503, 504)


def _requests() -> Any:
    """Import and return :mod:`requests`, with a helpful error if missing."""
    try:
        import requests
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "DynamicURLStore needs the 'requests' package, an optional dependency "
            "of encore: install it with  pip install \".[http]\"  in the encore checkout") from error
    return requests



def _quote_key(key: str) -> str:
    quoted = urllib.parse.quote(key, safe=_SAFE)
    if quoted in (".", ".."):
        # A dot segment would be resolved away by URL normalisation.
        quoted = quoted.replace(".", "%2E")
    return quoted


def _parse_http_date(text: Optional[str]) -> Optional[float]:
    if not text:
        return None
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        logger.info("Ignoring bad Last-Modified %r", text)
        return None


def _permissions_body(permissions: Dict[str, Any]) -> bytes:
    """The JSON body of a permissions write (plain JSON, tags as lists)."""
    return json.dumps(permissions_to_json(permissions)).encode("utf-8")


def _metadata_body(metadata: Dict[str, Any]) -> bytes:
    """The JSON body of a metadata write: checked metadata in the tagged
    form of :mod:`encore.storage._metadata_codec` (plain JSON stays plain)."""
    return encode_metadata(metadata).encode("utf-8")


class RequestsURLValue(Value):
    """A value of a :class:`DynamicURLStore`, fetched with requests.

    Creating it costs one ``HEAD`` request (done by
    :meth:`DynamicURLStore.get`), which gives the size, modification time
    and MIME type.  The data, metadata and permissions are fetched when
    asked for, each time.

    Parameters
    ----------
    store : DynamicURLStore
        The store the value comes from.
    key : str
        Its key.
    size : int or None
        The size of the data in bytes, if known.
    modified : float or None
        The modification time, in seconds since the epoch, if known.
    mimetype : str, optional
        The MIME type of the data (default ``'application/octet-stream'``).

    Attributes
    ----------
    created : None
        The protocol does not give creation times.
    mimetype : str
        The MIME type of the data.
    """

    created = None

    def __init__(self, store: "DynamicURLStore", key: str, size: Optional[int] = None,
                 modified: Optional[float] = None, mimetype: str = "application/octet-stream") -> None:
        self._store = store
        self._key = key
        self.size = size
        self.modified = modified
        self.mimetype = mimetype

    @property
    def data(self) -> Any:
        """file-like : A stream of the data, read from the server as it goes."""
        return self._store.get_data(self._key)

    @property
    def metadata(self) -> Dict[str, Any]:
        """dict : The metadata, fetched from the server."""
        return self._store.get_metadata(self._key)

    @property
    def permissions(self) -> Dict[str, Any]:
        """dict : The permissions, fetched from the server.

        Raises
        ------
        AuthorizationError
            If the server refuses them (``401``/``403``).
        """
        return self._store.get_permissions(self._key)

    def range(self, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        """Return a stream over ``data[start:end]``, fetched with a ``Range`` request."""
        return self._store._get_range(self._key, start, end, self.size)


class _Upload(object):
    """The body of an upload: the metadata prefix (if any) and the stream's
    buffers, reporting progress and remembering a read error.

    :meth:`small_body` reads ahead: data that fits in one buffer is sent as
    one body with a ``Content-Length`` (one write, no chunked coding);
    larger data is streamed chunk by chunk.
    """

    def __init__(self, stream: Any, buffer_size: int, progress: Any, prefix: bytes = b"") -> None:
        self._stream = stream
        self._buffer_size = buffer_size
        self._progress = progress
        self._prefix = prefix
        self._ahead: list = []
        self.error: Optional[BaseException] = None
        self.sent = 0

    def _read(self) -> bytes:
        chunk = self._stream.read(self._buffer_size)
        if chunk and not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError("data streams must produce bytes, got {}".format(type(chunk).__name__))
        return bytes(chunk) if chunk else b""

    def small_body(self) -> Optional[bytes]:
        """The whole body if the data fits in one buffer, else ``None``."""
        try:
            first = self._read()
            second = self._read() if first else b""
        except BaseException as error:
            self.error = error
            raise
        if not second:
            self.sent = len(first)
            return self._prefix + first
        self._ahead = [first, second]
        return None

    def __iter__(self) -> Iterator[bytes]:
        try:
            if self._prefix:
                yield self._prefix
            while True:
                chunk = self._ahead.pop(0) if self._ahead else self._read()
                if not chunk:
                    break
                self.sent += len(chunk)
                yield chunk
                self._progress.step(step=self.sent)
        except BaseException as error:
            self.error = error
            raise


class DynamicURLStore(AbstractAuthorizingStore):
    """A store kept by a web server, reached through a URL per key and part.

    By default the URLs of a key are ``{base}/{key}/{part}``, where ``part``
    is ``data``, ``metadata`` or ``auth`` (see ``parts``), and
    ``{base}/{key}``.  The key is percent-encoded in the URL, ``/``
    included.  The server answers:

    * ``GET``/``HEAD {base}/{key}/data``: the data (``Content-Length``,
      ``Last-Modified``, ``Content-Type``; ``Range`` requests welcome);
    * ``PUT {base}/{key}/data``: replace the data with the (streamed) body;
    * ``GET {base}/{key}/metadata``: the metadata as JSON;
      ``PUT``: replace it; ``POST``: merge into it (as ``dict.update``);
    * ``GET {base}/{key}/auth``: the permissions as JSON (lists of tags);
      ``PUT``: replace them; ``POST``: add to them;
    * ``DELETE {base}/{key}``: delete the key;
    * ``GET {query_url}?name=<json value>...``: the keys whose metadata
      match, one per line.

    Metadata bodies and query values are JSON in the tagged form of
    :mod:`encore.storage._metadata_codec`, so ``datetime``, ``date``,
    ``time``, ``Decimal``, ``bytes``, ``set``, ``frozenset`` and ``UUID``
    values round-trip and can be queried (plain metadata is plain JSON, as
    Encore 0.8 sent it).  Every write encodes its metadata before its first
    request: metadata that cannot be sent raises with nothing sent.

    ``404`` means the key does not exist (:class:`KeyError`); ``401`` and
    ``403`` raise :class:`~encore.storage.abstract_store.AuthorizationError`;
    other statuses raise :class:`~encore.storage.url_value.HTTPStatusError`
    (a :class:`~encore.storage.abstract_store.StoreError` naming the
    status).  Network failures raise :class:`TimeoutError` or
    :class:`ConnectionError`, and a body shorter than its
    ``Content-Length`` :class:`~encore.storage.url_value.IncompleteBodyError`
    -- never an exception of :mod:`requests` or :mod:`urllib3`.  A ``201``
    answer to a ``PUT`` says the key was created (the store emits
    :class:`~encore.storage.events.StoreSetEvent` rather than
    :class:`~encore.storage.events.StoreUpdateEvent`).

    Connections are kept alive and reused (a pool of ``pool_size`` per
    host).  Idempotent requests (``GET``, ``HEAD``, ``PUT`` of metadata or
    permissions) are retried ``retries`` times, with exponential backoff,
    on connection errors and ``502``/``503``/``504``; streamed uploads,
    ``POST`` and ``DELETE`` are never retried.  No lock is held across
    requests: threads sharing the store do not wait for each other.

    A server announcing ``Encore-Protocol: 2`` (:mod:`encore.storage.server`)
    receives :meth:`set` as one request carrying the metadata and the data,
    so concurrent writers of one key never mix their data and metadata; an
    older server gets the two requests of Encore 0.8.

    Parameters
    ----------
    base_url : str
        The common prefix of the key URLs.
    query_url : str
        The URL of queries.
    url_format : str, optional
        The template of a part URL, with ``{base}``, ``{key}`` and
        ``{part}`` fields.
    url_format_no_part : str, optional
        The template of a key's URL (for ``DELETE``), with ``{base}`` and
        ``{key}``.
    parts : dict, optional
        The URL segment of the ``'data'``, ``'metadata'`` and
        ``'permissions'`` parts (default :data:`DEFAULT_PARTS`).
    event_manager : BaseEventManager, optional
        Where the store emits its events (default: the package-wide
        manager).
    timeout : float, tuple or None, optional
        Seconds to wait for a connection and for each read (default 30), or
        a ``(connect, read)`` pair; ``None`` waits forever.
    retries : int, optional
        How many times an idempotent request is retried (default 3; ``0``
        turns retries off).
    backoff : float, optional
        The first wait between retries, in seconds, doubled at each retry
        (default 0.1).
    pool_size : int, optional
        The connections kept alive per host (default 10).

    Raises
    ------
    ImportError
        If :mod:`requests` is not installed (``pip install ".[http]"`` from the checkout).
    ValueError
        If ``timeout``, ``retries``, ``backoff`` or ``pool_size`` is invalid.
    """

    def __init__(self, base_url: str, query_url: str, url_format: str = "{base}/{key}/{part}",
                 url_format_no_part: str = "{base}/{key}", parts: Dict[str, str] = DEFAULT_PARTS,
                 event_manager: Any = None, timeout: Any = DEFAULT_TIMEOUT, retries: int = 3,
                 backoff: float = 0.1, pool_size: int = 10) -> None:
        _requests()
        if timeout is not None:
            pair = timeout if isinstance(timeout, tuple) else (timeout,)
            if len(pair) not in (1, 2) or not all(isinstance(t, (int, float)) and t > 0 for t in pair):
                raise ValueError("timeout must be a positive number, a (connect, read) pair or None")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError("retries must be an int >= 0")
        if not isinstance(backoff, (int, float)) or backoff < 0:
            raise ValueError("backoff must be a number >= 0")
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError("pool_size must be a positive int")
        super().__init__(event_manager=event_manager)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.pool_size = pool_size
        self._protocol: Optional[int] = None
        self.base_url = base_url
        self.query_url = query_url
        self.url_format = url_format
        self.url_format_no_part = url_format_no_part
        self.parts = dict(DEFAULT_PARTS)
        self.parts.update(parts)
        self._session: Any = None
        self._user_tag: Optional[str] = None

    # -- connection ----------------------------------------------------------

    def connect(self, credentials: Any = None) -> None:
        """Connect to the server (no request is made).

        Parameters
        ----------
        credentials : tuple or dict, optional
            Either ``(user_tag, session)``: the user's permission tag and a
            :class:`requests.Session` set up with the authentication the
            server needs (as in Encore); or a dict with ``'username'`` and
            ``'password'`` (or ``'user'`` and ``'passwd'``) for HTTP basic
            authentication, the user name being the tag, or ``'token'``
            for a bearer token.  Without credentials a plain session is
            used.
        """
        requests = _requests()
        user_tag = None
        if credentials is None:
            session = self._new_session()
        elif isinstance(credentials, dict):
            user = credentials.get("username", credentials.get("user"))
            password = credentials.get("password", credentials.get("passwd"))
            token = credentials.get("token")
            session = self._new_session()
            if user is not None:
                session.auth = (user, "" if password is None else password)
            if token is not None:
                session.headers["Authorization"] = "Bearer {}".format(token)
            user_tag = credentials.get("user_tag", user)
        elif isinstance(credentials, requests.Session):
            session = credentials
        else:
            user_tag, session = credentials
        self._user_tag = user_tag
        self._session = session
        self._protocol = None
        self._connected = True

    def _new_session(self) -> Any:
        requests = _requests()
        session = requests.Session()
        # Retries are done here (only for idempotent requests), not by urllib3.
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=self.pool_size,
                                                max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def disconnect(self) -> None:
        """Disconnect, closing the session's connections."""
        session, self._session = self._session, None
        if session is not None:
            session.close()
        self._connected = False

    @property
    def user_tag(self) -> str:
        """str : The user's permission tag given to :meth:`connect`.

        Encore 0.8 made this a method; the string can be called too
        (``store.user_tag()`` returns the same tag).
        """
        return UserTag("" if self._user_tag is None else self._user_tag)

    # -- HTTP helpers --------------------------------------------------------

    def _url(self, key: str, part: str) -> str:
        return self.url_format.format(base=self.base_url, key=_quote_key(key), part=self.parts[part])

    def _key_url(self, key: str) -> str:
        return self.url_format_no_part.format(base=self.base_url, key=_quote_key(key))

    def _send(self, method: str, url: str, idempotent: bool, **kwargs: Any) -> Any:
        """Send a request, retrying an idempotent one; map network errors."""
        session = self._session
        if session is None:
            raise StoreError("the store is not connected")
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(attempts):
            last = attempt + 1 == attempts
            try:
                response = session.request(method, url, timeout=self.timeout, **kwargs)
            except Exception as error:
                translated = translate_network_error(error, "{} {}".format(method, url))
                if translated is error:
                    raise
                if not last and isinstance(translated, ConnectionError) \
                        and not isinstance(translated, IncompleteBodyError):
                    self._wait(attempt)
                    continue
                raise translated from None
            protocol = response.headers.get("Encore-Protocol")
            if protocol is not None and protocol.strip().isdigit():
                self._protocol = int(protocol)
            if response.status_code in _RETRY_STATUSES and not last:
                response.close()
                self._wait(attempt)
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, attempt: int) -> None:
        # A backoff between retries (not synchronisation): let the server recover.
        time.sleep(min(self.backoff * (2 ** attempt), 5.0))

    def _request(self, method: str, url: str, key: Optional[str], idempotent: bool = True,
                 **kwargs: Any) -> Any:
        response = self._send(method, url, idempotent, **kwargs)
        self._check(response, key, url)
        return response

    @staticmethod
    def _check(response: Any, key: Optional[str], url: str = "") -> None:
        status = response.status_code
        if status < 400:
            return
        response.close()
        if status == 404:
            raise KeyError(key)
        if status in (401, 403):
            raise AuthorizationError(key)
        raise HTTPStatusError(status, url or response.url, response.reason or "")

    @staticmethod
    def _content(response: Any, what: str) -> bytes:
        try:
            return response.content
        except Exception as error:
            translated = translate_network_error(error, what)
            if translated is error:
                raise
            raise translated from None

    def _json(self, key: str, part: str) -> Any:
        """GET a part as JSON (metadata: tagged values decoded)."""
        url = self._url(key, part)
        with self._request("GET", url, key, headers={"Accept": "application/json"}) as response:
            content = self._content(response, url)
        try:
            text = content.decode("utf-8")
            return decode_metadata(text) if part == "metadata" else json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise StoreError("the server sent invalid JSON for {}".format(url)) from None
        except ValueError as error:  # an unknown or malformed tagged value
            raise StoreError("the server sent a bad tagged value for {}: {}".format(url, error)) from None

    def _put_json(self, method: str, key: str, part: str, body: bytes) -> int:
        """Send a JSON body already encoded (see :func:`_metadata_body`)."""
        with self._request(method, self._url(key, part), key, idempotent=(method == "PUT"), data=body,
                           headers={"Content-Type": "application/json"}) as response:
            return response.status_code

    @staticmethod
    def _raw(response: Any, what: str = "") -> ResponseStream:
        """The body of a streamed response, checked against its length."""
        raw = response.raw
        raw.decode_content = True
        length = None
        text = response.headers.get("Content-Length")
        if text is not None and text.strip().isdigit() and not response.headers.get("Content-Encoding"):
            length = int(text)
        return ResponseStream(raw.read, response.close, length, what or response.url)

    # -- reading -------------------------------------------------------------

    def get(self, key: str) -> RequestsURLValue:
        """Return the value of a key (one ``HEAD`` request).

        Returns
        -------
        RequestsURLValue
            Fetches the data, metadata and permissions when asked.

        Raises
        ------
        AuthorizationError
            If the server refuses access.
        """
        with self._request("HEAD", self._url(key, "data"), key) as response:
            headers = response.headers
        length = headers.get("Content-Length")
        try:
            size = int(length) if length is not None else None
        except ValueError:
            size = None
        return RequestsURLValue(
            self, key, size, _parse_http_date(headers.get("Last-Modified")),
            headers.get("Content-Type") or "application/octet-stream")

    def exists(self, key: str) -> bool:
        """Whether a key is in the store (one ``HEAD`` request).

        Returns
        -------
        bool
            ``True`` if the server has the key.
        """
        try:
            with self._request("HEAD", self._url(key, "data"), key):
                return True
        except KeyError:
            return False

    def get_data(self, key: str) -> Any:
        """Return a stream of the data of a key, read from the server as it goes.

        Returns
        -------
        file-like
            The response body; the caller closes it.
        """
        response = self._request("GET", self._url(key, "data"), key, stream=True,
                                 headers={"Accept-Encoding": "identity"})
        return self._raw(response, repr(key))

    def get_data_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        """Return a stream of ``data[start:end]`` for a key.

        A ``Range`` request is sent; the whole body of a server that ignores
        it is skipped and truncated as it is read.

        Parameters
        ----------
        start : int, optional
            The first offset (default 0; negative counts from the end).
        end : int, optional
            The offset just past the end (default: the end of the data).
        """
        return self._get_range(key, start, end, None)

    def _get_range(self, key: str, start: Optional[int], end: Optional[int], size: Optional[int]) -> Any:
        if size is None and ((start is not None and start < 0) or (end is not None and end < 0)):
            size = self.get(key).size
        first, last = slice_offsets(start, end, size)
        if first == 0 and last is None:
            return self.get_data(key)
        if last is not None and last <= first:
            if size is None and not self.exists(key):
                raise KeyError(key)
            return io.BytesIO(b"")
        byte_range = "bytes={}-{}".format(first, "" if last is None else last - 1)
        response = self._session_get_range(key, byte_range)
        if response is None:  # 416: nothing there
            return io.BytesIO(b"")
        raw = self._raw(response, repr(key))
        if response.status_code == 206:
            content_range = response.headers.get("Content-Range", "")
            if content_range.startswith("bytes {}-".format(first)):
                return raw if last is None else range_stream(raw, 0, last - first)
            raw.close()
            response = self._request("GET", self._url(key, "data"), key, stream=True,
                                     headers={"Accept-Encoding": "identity"})
            raw = self._raw(response, repr(key))
        return range_stream(raw, first, last)

    def _session_get_range(self, key: str, byte_range: str) -> Any:
        url = self._url(key, "data")
        response = self._send("GET", url, True, stream=True,
                              headers={"Range": byte_range, "Accept-Encoding": "identity"})
        if response.status_code == 416:
            response.close()
            return None
        self._check(response, key, url)
        return response

    def get_metadata(self, key: str, select: Optional[Iterable[str]] = None) -> Dict[str, Any]:
        """Return the metadata of a key (one ``GET`` request).

        Parameters
        ----------
        select : iterable of str, optional
            The names wanted; ``None`` for all.

        Returns
        -------
        dict
            The (selected) metadata.
        """
        metadata = self._json(key, "metadata")
        if not isinstance(metadata, dict):
            raise StoreError("the server sent metadata that is not a JSON object")
        return metadata if select is None else select_metadata(metadata, select)

    def get_permissions(self, key: str) -> Dict[str, Any]:
        """Return the permissions of a key.

        Raises
        ------
        AuthorizationError
            If the server refuses (``401``/``403``).
        """
        document = self._json(key, "permissions")
        return {name: set(tags) if isinstance(tags, list) else tags
                for name, tags in document.items()}

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Find the keys whose metadata match the given values (one request).

        Parameters
        ----------
        **kwargs
            Metadata names and the values they must equal (sent as JSON).

        Returns
        -------
        iterator of str
            The matching keys, read as the server sends them.
        """
        # Encoded before any request: a value that cannot be sent raises here.
        params = {name: json.dumps(to_json(value)) for name, value in kwargs.items()}
        response = self._request("GET", self.query_url, None, params=params, stream=True,
                                 headers={"Accept": "{}, text/plain;q=0.5".format(_NDJSON)})
        return self._keys(response)

    @classmethod
    def _keys(cls, response: Any) -> Iterator[str]:
        as_json = response.headers.get("Content-Type", "").startswith(_NDJSON)
        pending = b""
        try:
            for chunk in cls._chunks(response):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.endswith(b"\r"):
                        line = line[:-1]
                    if as_json:
                        yield cls._json_key(line)
                    elif line:
                        yield line.decode("utf-8", "replace")
            if pending.strip():
                yield cls._json_key(pending) if as_json else pending.decode("utf-8", "replace")
        finally:
            response.close()

    @staticmethod
    def _chunks(response: Any) -> Iterator[bytes]:
        iterator = response.iter_content(65536)
        while True:
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            except Exception as error:
                translated = translate_network_error(error, "the query answer")
                if translated is error:
                    raise
                raise translated from None
            yield chunk

    @staticmethod
    def _json_key(line: bytes) -> str:
        try:
            key = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise StoreError("the server sent a malformed query answer") from None
        if not isinstance(key, str):
            raise StoreError("the server sent a query answer that is not a key")
        return key

    def query(self, select: Optional[Iterable[str]] = None, **kwargs: Any) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """Find the keys whose metadata match, with their metadata.

        One query request, then one metadata request per key.

        Parameters
        ----------
        select : iterable of str, optional
            The metadata names to return (``None``: all).
        """
        keys = list(self.query_keys(**kwargs))
        if select is not None:
            select = list(select)

        def generate() -> Iterator[Tuple[str, Dict[str, Any]]]:
            for key in keys:
                try:
                    yield key, self.get_metadata(key, select)
                except KeyError:
                    continue  # deleted since the query
        return generate()

    # -- writing -------------------------------------------------------------

    def _upload(self, key: str, data: Any, buffer_size: int, metadata: Optional[Dict[str, Any]],
                metadata_body: Optional[bytes] = None) -> bool:
        """PUT the data of a key (and, given ``metadata_body``, the encoded
        metadata in the same request); return whether the key was created."""
        progress = store_progress(self, key, metadata, "Uploading {}".format(key), stream=data)
        headers = {"Content-Type": "application/octet-stream"}
        prefix = b""
        if metadata_body is not None:
            prefix = metadata_body
            headers["Encore-Metadata-Length"] = str(len(prefix))
        url = self._url(key, "data")
        with progress:
            upload = _Upload(data, buffer_size, progress, prefix)
            body = upload.small_body()
            if body is not None:
                progress.step(step=upload.sent)
            try:
                response = self._send("PUT", url, False, headers=headers,
                                      data=iter(upload) if body is None else body)
            except BaseException:
                if upload.error is not None:
                    raise upload.error from None
                raise
            with response:
                self._check(response, key, url)
                return response.status_code == 201

    def _one_request_set(self) -> bool:
        """Whether the server takes data and metadata in one request."""
        if self._protocol is None:
            with self._send("OPTIONS", self.base_url.rstrip("/") + "/", True):
                pass
            if self._protocol is None:
                self._protocol = 1
        return self._protocol >= 2

    def _emit_write_event(self, key: str, created: bool, metadata: Optional[Dict[str, Any]]) -> None:
        event_class = StoreSetEvent if created else StoreUpdateEvent
        if not is_listened(self.event_manager, event_class):
            return
        if metadata is None:
            try:
                metadata = self.get_metadata(key)
            except KeyError:
                return  # deleted meanwhile
        self._emit_modification(event_class, key, metadata)

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data and the metadata of a key.

        With a server announcing ``Encore-Protocol: 2``, one ``PUT`` carries
        both (the server sets them together); otherwise the data is
        uploaded first and then the metadata, as in Encore 0.8.  Either
        way a data stream that fails leaves the key as it was.

        Parameters
        ----------
        key : str
            The key.
        buffer_size : int, optional
            The size of the uploaded chunks.

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            One, after both writes.
        """
        data, metadata, _, close = value_parts(value)
        try:
            # Encoded before anything is sent: metadata that cannot be
            # encoded leaves the key as it was on either protocol.
            body = _metadata_body(metadata)
            if self._one_request_set():
                created = self._upload(key, data, buffer_size, metadata, metadata_body=body)
            else:
                created = self._upload(key, data, buffer_size, metadata)
                self._put_json("PUT", key, "metadata", body)
            self._emit_write_event(key, created, metadata)
        finally:
            if close:
                data.close()  # type: ignore[attr-defined]

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of a key with a streamed upload (``PUT``).

        Parameters
        ----------
        data : file-like
            The new data, read in ``buffer_size`` chunks as it is sent.
        buffer_size : int, optional
            The size of the uploaded chunks (default 1 MiB).

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            After the write.
        """
        created = self._upload(key, data, buffer_size, None)
        self._emit_write_event(key, created, {} if created else None)

    def set_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Replace the metadata of a key (``PUT``).

        Parameters
        ----------
        metadata : dict
            The new metadata.
        """
        status = self._put_json("PUT", key, "metadata", _metadata_body(metadata))
        self._emit_write_event(key, status == 201, metadata)

    def update_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Merge values into the metadata of a key (``POST``).

        Parameters
        ----------
        metadata : dict
            The names and values to add or replace.
        """
        self._put_json("POST", key, "metadata", _metadata_body(metadata))
        self._emit_write_event(key, False, None)

    def delete(self, key: str) -> None:
        """Delete a key (``DELETE``)."""
        metadata = None
        if is_listened(self.event_manager, StoreDeleteEvent):
            metadata = self.get_metadata(key)
        with self._request("DELETE", self._key_url(key), key, idempotent=False):
            pass
        self._emit_modification(StoreDeleteEvent, key, metadata)

    def set_permissions(self, key: str, permissions: Dict[str, Any]) -> None:
        """Replace the permissions of a key (``PUT``).

        Raises
        ------
        AuthorizationError
            If the server refuses (``401``/``403``).
        """
        self._put_json("PUT", key, "permissions", _permissions_body(permissions))

    def update_permissions(self, key: str, permissions: Dict[str, Any]) -> None:
        """Add tags to the permissions of a key (``POST``).

        Raises
        ------
        AuthorizationError
            If the server refuses (``401``/``403``).
        """
        self._put_json("POST", key, "permissions", _permissions_body(permissions))


# -- Encore's stand-alone RequestsURLValue ----------------------------------
#
# Encore 0.8 made its values as RequestsURLValue(session, base_url, key,
# url_format, parts), and programs did the same to read one key without a
# store.  The class below accepts that form and the (store, key, ...) form
# that DynamicURLStore.get uses, and is the module's RequestsURLValue.

import inspect as _inspect  # noqa: E402

_StoreRequestsURLValue = RequestsURLValue


class RequestsURLValue(_StoreRequestsURLValue):  # type: ignore[no-redef]
    """A value at a dynamic URL, fetched with requests.

    ``RequestsURLValue(session, base_url, key, url_format, parts)`` is
    Encore's way to reach one key of a server speaking the
    :class:`DynamicURLStore` protocol without making a store: creating the
    value costs one ``HEAD`` request (which gives :attr:`size`,
    :attr:`modified` and :attr:`mimetype`); the data, metadata and
    permissions are fetched when asked for, through ``session``.
    :meth:`DynamicURLStore.get` makes values of this class too, passing
    itself instead of a session.

    Parameters
    ----------
    session : requests.Session
        The session that makes the requests (with whatever authentication
        the server needs).  The session stays the caller's: closing it is
        up to the caller.
    base_url : str
        The common prefix of the key URLs.
    key : str
        The key.
    url_format : str, optional
        The template of a part URL, with ``{base}``, ``{key}`` and ``{part}``
        fields.
    parts : dict, optional
        The URL segment of the ``'data'``, ``'metadata'`` and
        ``'permissions'`` parts (default :data:`DEFAULT_PARTS`).

    Raises
    ------
    KeyError
        If the server does not have the key (``404``).
    AuthorizationError
        If the server refuses access (``401``/``403``).
    TypeError
        If ``key`` is not a string.

    Attributes
    ----------
    size : int or None
        The size of the data, from ``Content-Length``.
    modified : float or None
        The modification time (seconds since the epoch), from
        ``Last-Modified``.
    mimetype : str
        The MIME type of the data.
    created : None
        The protocol does not give creation times.
    """

    def __init__(self, session: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(session, DynamicURLStore):
            # DynamicURLStore.get: (store, key, size, modified, mimetype).
            super().__init__(session, *args, **kwargs)
            return
        self._init_from_session(session, *args, **kwargs)

    def _init_from_session(self, session: Any, base_url: str, key: str,
                           url_format: str = "{base}/{key}/{part}",
                           parts: Dict[str, str] = DEFAULT_PARTS) -> None:
        if not isinstance(key, str):
            raise TypeError("keys are strings, got {!r}".format(key))
        if not isinstance(base_url, str):
            raise TypeError("base_url must be a string, got {!r}".format(base_url))
        from encore.events.event_manager import EventManager

        # A private, connected store reaches the key; its events (it emits
        # none when reading) go to a private manager.
        store = DynamicURLStore(base_url, base_url, url_format=url_format, parts=parts,
                                event_manager=EventManager())
        store.connect((None, session))
        head = store.get(key)
        super().__init__(store, key, head.size, head.modified, head.mimetype)
        self.session = session
        self.base_url = base_url
        self.key = key
        self.url_format = url_format
        self.parts = store.parts

    def open(self) -> Any:
        """Start reading the data (one streamed ``GET`` request).

        Returns
        -------
        file-like
            A stream of the data, read from the server as it goes; the
            caller closes it.

        Raises
        ------
        KeyError
            If the key has gone from the server.
        """
        return self._store.get_data(self._key)


def _encore_value_signature(self: Any, session: Any, base_url: str, key: str,
                            url_format: str = "{base}/{key}/{part}",
                            parts: Dict[str, str] = DEFAULT_PARTS) -> None:
    """The documented signature of ``RequestsURLValue`` (Encore's form)."""


RequestsURLValue.__init__.__signature__ = _inspect.signature(  # type: ignore[attr-defined]
    _encore_value_signature)
