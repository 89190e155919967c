"""Serve any store over HTTP, with the protocol of the dynamic URL store.

:func:`make_app` turns a store into a WSGI application which
:class:`~encore.storage.dynamic_url_store.DynamicURLStore` can talk to, and
:func:`serve` runs it in a background thread with the standard library's
:mod:`wsgiref` server::

    from encore.storage.dict_memory_store import DictMemoryStore
    from encore.storage.dynamic_url_store import DynamicURLStore
    from encore.storage.server import serve

    server = serve(DictMemoryStore())
    remote = DynamicURLStore(server.base_url, server.query_url)
    remote.connect()
    ...
    server.shutdown()

The URLs, relative to where the application is mounted (``{base}``):

=========================  ==========================  =================================
URL                        method                      meaning
=========================  ==========================  =================================
``{base}/{key}/data``      ``GET``, ``HEAD``           the data (``Range`` honoured)
``{base}/{key}/data``      ``PUT``                     replace the data (``201`` if new)
``{base}/{key}/metadata``  ``GET``                     the metadata, as JSON
``{base}/{key}/metadata``  ``PUT``, ``POST``           replace / merge the metadata
``{base}/{key}/auth``      ``GET``, ``PUT``, ``POST``  permissions (authorizing stores)
``{base}/{key}``           ``DELETE``                  delete the key
``{base}/query``           ``GET``                     matching keys, one per line
=========================  ==========================  =================================

Keys are percent-encoded in the URL (a ``/`` in a key may be sent as
``%2F`` or as itself); for the part URLs the last path segment is the part
and everything before it the key.  The query URL takes one parameter per
metadata name, whose value is the JSON encoding of the value to match; it
answers with one key per line (``text/plain``), or -- when the client
accepts ``application/x-ndjson`` -- one JSON string per line, which keeps
keys holding line breaks intact.

Errors map to statuses: a missing key is ``404``, an
:class:`~encore.storage.abstract_store.AuthorizationError` ``403``, bad
input (malformed JSON, metadata the store refuses) ``400``, a request body
that ends early ``400`` (and nothing is written).
"""
from __future__ import annotations

import email.utils
import json
import logging
import re
import socketserver
import threading
import urllib.parse
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .abstract_store import AuthorizationError

logger = logging.getLogger(__name__)

__all__ = ["make_app", "serve", "StoreServer", "DEFAULT_PARTS", "QUERY_PATH"]

#: The URL segment naming each part of a key.
DEFAULT_PARTS = {"data": "data", "metadata": "metadata", "permissions": "auth"}

#: The path of the query URL, relative to the application's root.
QUERY_PATH = "query"

#: The size of the chunks in which bodies are streamed.
CHUNK_SIZE = 1 << 16

NDJSON = "application/x-ndjson"

_STATUS = {
    200: "200 OK",
    201: "201 Created",
    204: "204 No Content",
    206: "206 Partial Content",
    400: "400 Bad Request",
    403: "403 Forbidden",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    411: "411 Length Required",
    416: "416 Range Not Satisfiable",
    500: "500 Internal Server Error",
}

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


class _HTTPError(Exception):
    def __init__(self, status: int, message: str = "", headers: Optional[List[Tuple[str, str]]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class _RequestBody(object):
    """A read-only stream over a request body that raises if it ends early.

    Handles both ``Content-Length`` and chunked transfer encoding, so a
    client that aborts an upload makes the store's read fail, and the store
    (which writes all or nothing) keeps the old value.
    """

    def __init__(self, environ: Dict[str, Any]) -> None:
        self._input = environ["wsgi.input"]
        self._chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        if self._chunked:
            self._remaining = 0  # in the current chunk
            self._done = False
        else:
            length = environ.get("CONTENT_LENGTH") or ""
            try:
                self._remaining = int(length) if length.strip() else 0
            except ValueError:
                raise _HTTPError(400, "bad Content-Length {!r}".format(length))
            if self._remaining < 0:
                raise _HTTPError(400, "bad Content-Length {!r}".format(length))
            self._done = self._remaining == 0
        self.closed = False

    def _next_chunk_size(self) -> int:
        line = self._input.readline(1024)
        if not line.endswith(b"\n"):
            raise OSError("request body ended inside a chunk header")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise OSError("malformed chunk header {!r}".format(line[:40]))
        if size == 0:
            while True:  # trailers, up to the blank line
                trailer = self._input.readline(65536)
                if not trailer.endswith(b"\n"):
                    raise OSError("request body ended inside its trailers")
                if trailer in (b"\r\n", b"\n"):
                    break
        return size

    def read(self, size: int = -1) -> bytes:
        if self._done:
            return b""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(CHUNK_SIZE), b""))
        if self._chunked and self._remaining == 0:
            self._remaining = self._next_chunk_size()
            if self._remaining == 0:
                self._done = True
                return b""
        data = self._input.read(min(size, self._remaining))
        if not data:
            raise OSError("request body ended early")
        self._remaining -= len(data)
        if self._remaining == 0:
            if self._chunked:
                if self._input.readline(3) not in (b"\r\n", b"\n"):
                    raise OSError("malformed chunk terminator")
            else:
                self._done = True
        return data

    def close(self) -> None:
        self.closed = True


def _json_body(environ: Dict[str, Any]) -> Any:
    body = _RequestBody(environ)
    try:
        raw = body.read()
    except OSError as error:
        raise _HTTPError(400, str(error))
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise _HTTPError(400, "the body is not JSON: {}".format(error))


def _stream(stream: Any, limit: Optional[int] = None) -> Iterator[bytes]:
    """Yield a stream's content in chunks (at most ``limit`` bytes), closing it."""
    try:
        while limit is None or limit > 0:
            size = CHUNK_SIZE if limit is None else min(CHUNK_SIZE, limit)
            chunk = stream.read(size)
            if not chunk:
                break
            if limit is not None:
                limit -= len(chunk)
            yield bytes(chunk)
    finally:
        stream.close()


def _parse_range(header: str, size: int) -> Optional[Tuple[int, int]]:
    """Return the (first, end-exclusive) offsets of a single byte range.

    ``None`` means the header is ignored (malformed or multiple ranges);
    an unsatisfiable range raises a 416.
    """
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        count = int(last)
        if count == 0:
            raise _HTTPError(416, "empty suffix range",
                             [("Content-Range", "bytes */{}".format(size))])
        return max(0, size - count), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if start >= size or (last and int(last) < start):
        raise _HTTPError(416, "range not satisfiable",
                         [("Content-Range", "bytes */{}".format(size))])
    return start, end


def _permissions_json(permissions: Dict[str, Any]) -> Dict[str, Any]:
    result = {}
    for name, tags in permissions.items():
        if isinstance(tags, (set, frozenset, list, tuple)):
            result[name] = sorted(tags, key=str)
        else:
            result[name] = tags
    return result


def _permissions_from_json(document: Any) -> Dict[str, Any]:
    if not isinstance(document, dict):
        raise _HTTPError(400, "permissions must be a JSON object")
    result = {}
    for name, tags in document.items():
        if not isinstance(tags, list):
            raise _HTTPError(400, "the tags of permission {!r} must be a list".format(name))
        result[name] = set(tags)
    return result


class _StoreApp(object):
    """The WSGI application returned by :func:`make_app`."""

    def __init__(self, store: Any, parts: Dict[str, str], query_path: str) -> None:
        self.store = store
        self.parts = {segment: part for part, segment in parts.items()}
        self.query_path = query_path

    # -- dispatch ------------------------------------------------------------

    def __call__(self, environ: Dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            status, headers, body = self._dispatch(method, environ)
        except _HTTPError as error:
            status, headers, body = self._error(error.status, error.message, error.headers)
        except KeyError as error:
            status, headers, body = self._error(404, "no such key: {}".format(error))
        except AuthorizationError as error:
            status, headers, body = self._error(403, str(error) or "not authorized")
        except (TypeError, ValueError) as error:
            status, headers, body = self._error(400, str(error))
        except Exception as error:  # the server keeps serving
            logger.exception("Error serving %s %s", method, environ.get("PATH_INFO"))
            status, headers, body = self._error(500, "{}: {}".format(type(error).__name__, error))
        start_response(_STATUS.get(status, str(status)), headers)
        if method == "HEAD":
            close = getattr(body, "close", None)
            if close is not None:
                close()
            return []
        return body

    @staticmethod
    def _error(status: int, message: str, headers: Optional[List[Tuple[str, str]]] = None) -> Tuple[int, list, list]:
        body = (message + "\n").encode("utf-8")
        headers = list(headers or []) + [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ]
        return status, headers, [body]

    def _dispatch(self, method: str, environ: Dict[str, Any]) -> Tuple[int, list, Iterable[bytes]]:
        raw_path = environ.get("PATH_INFO", "")
        try:
            # PATH_INFO is the unquoted path, decoded as latin-1 (PEP 3333).
            path = raw_path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raise _HTTPError(400, "the path is not UTF-8")
        if not path.startswith("/"):
            raise _HTTPError(404, "no such resource")
        path = path[1:]
        if path == self.query_path:
            if method not in ("GET", "HEAD"):
                raise _HTTPError(405, "the query URL answers GET only", [("Allow", "GET, HEAD")])
            return self._query(environ)
        if method in ("PUT", "POST", "DELETE") and self._read_only():
            raise _HTTPError(405, "this store is read-only", [("Allow", "GET, HEAD")])
        if method == "DELETE":
            self.store.delete(path)
            return 204, [], []
        key, _, segment = path.rpartition("/")
        part = self.parts.get(segment)
        if part is None or not _:
            raise _HTTPError(404, "no such resource: {!r}".format(path))
        handler = getattr(self, "_{}_{}".format(method.lower(), part), None)
        if handler is None and method == "HEAD":
            handler = getattr(self, "_get_{}".format(part), None)
        if handler is None:
            raise _HTTPError(405, "{} is not allowed on the {} URL".format(method, part))
        return handler(key, environ)

    def _read_only(self) -> bool:
        info = getattr(self.store, "info", None)
        if info is not None and info().get("readonly"):
            return True
        return not callable(getattr(self.store, "set_data", None))

    # -- data ----------------------------------------------------------------

    def _head_data(self, key: str, environ: Dict[str, Any]) -> Tuple[int, list, Iterable[bytes]]:
        value = self.store.get(key)
        return 200, self._data_headers(value, value.size), []

    def _data_headers(self, value: Any, length: Optional[int]) -> List[Tuple[str, str]]:
        headers = [
            ("Content-Type", getattr(value, "mimetype", None) or "application/octet-stream"),
            ("Accept-Ranges", "bytes"),
        ]
        if length is not None:
            headers.append(("Content-Length", str(length)))
        modified = value.modified
        if modified is not None:
            headers.append(("Last-Modified", email.utils.formatdate(modified, usegmt=True)))
        return headers

    def _get_data(self, key: str, environ: Dict[str, Any]) -> Tuple[int, list, Iterable[bytes]]:
        value = self.store.get(key)
        size = value.size
        header = environ.get("HTTP_RANGE")
        if header and size is not None:
            offsets = _parse_range(header, size)
            if offsets is not None:
                first, end = offsets
                headers = self._data_headers(value, end - first)
                headers.append(("Content-Range", "bytes {}-{}/{}".format(first, end - 1, size)))
                return 206, headers, _stream(value.range(first, end), end - first)
        return 200, self._data_headers(value, size), _stream(value.data)

    def _put_data(self, key: str, environ: Dict[str, Any]) -> Tuple[int, list, Iterable[bytes]]:
        existed = self.store.exists(key)
        body = _RequestBody(environ)
        try:
            self.store.set_data(key, body)
        except OSError as error:
            raise _HTTPError(400, "the upload failed: {}".format(error))
        return (204 if existed else 201), [], []

    # -- metadata ------------------------------------------------------------

    @staticmethod
    def _json_reply(document: Any) -> Tuple[int, list, Iterable[bytes]]:
        body = json.dumps(document).encode("utf-8")
        return 200, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], [body]

    def _get_metadata(self, key: str, environ: Dict[str, Any]) -> Tuple[int, list, Iterable[bytes]]:
        return self._json_reply(self.store.get_metadata(key))

    def _put_metadata(self, key: str, environ: Dict[str, Any]) -> Tuple[int, list, Iterable[bytes]]:
        metadata = _json_body(environ)
        existed = self.store.exists(key)
        self.store.set_metadata(key, metadata)
        return (204 if existed else 201), [], []

    def _post_metadata(self, key: str, environ: Dict[str, Any]) -> Tuple[int, list, Iterable[bytes]]:
        metadata = _json_body(environ)
        self.store.update_metadata(key, metadata)
        return 204, [], []

    # -- permissions ---------------------------------------------------------

    def _authorizing(self, key: str) -> None:
        info = getattr(self.store, "info", None)
        if info is not None and info().get("authorizing") and hasattr(self.store, "get_permissions"):
            return
        if not self.store.exists(key):
            raise KeyError(key)
        raise _HTTPError(403, "this store has no permissions")

    def _get_permissions(self, key: str, environ: Dict[str, Any]) -> Tuple[int, list, Iterable[bytes]]:
        self._authorizing(key)
        return self._json_reply(_permissions_json(self.store.get_permissions(key)))

    def _put_permissions(self, key: str, environ: Dict[str, Any]) -> Tuple[int, list, Iterable[bytes]]:
        self._authorizing(key)
        self.store.set_permissions(key, _permissions_from_json(_json_body(environ)))
        return 204, [], []

    def _post_permissions(self, key: str, environ: Dict[str, Any]) -> Tuple[int, list, Iterable[bytes]]:
        self._authorizing(key)
        self.store.update_permissions(key, _permissions_from_json(_json_body(environ)))
        return 204, [], []

    # -- query ---------------------------------------------------------------

    def _query(self, environ: Dict[str, Any]) -> Tuple[int, list, Iterable[bytes]]:
        criteria = {}
        query = environ.get("QUERY_STRING", "")
        for name, text in urllib.parse.parse_qsl(query, keep_blank_values=True, encoding="utf-8",
                                                 errors="strict"):
            try:
                criteria[name] = json.loads(text)
            except ValueError:
                raise _HTTPError(400, "the value of {!r} is not JSON: {!r}".format(name, text))
        keys = self.store.query_keys(**criteria)
        if NDJSON in environ.get("HTTP_ACCEPT", ""):
            lines = (json.dumps(key).encode("utf-8") + b"\n" for key in keys)
            content_type = NDJSON
        else:
            lines = (key.encode("utf-8") + b"\n" for key in keys)
            content_type = "text/plain; charset=utf-8"
        return 200, [("Content-Type", content_type)], _batched(lines)


def _batched(lines: Iterator[bytes]) -> Iterator[bytes]:
    """Group small lines into chunks of about :data:`CHUNK_SIZE` bytes."""
    batch: List[bytes] = []
    size = 0
    try:
        for line in lines:
            batch.append(line)
            size += len(line)
            if size >= CHUNK_SIZE:
                yield b"".join(batch)
                batch, size = [], 0
        if batch:
            yield b"".join(batch)
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()


def make_app(store: Any, parts: Optional[Dict[str, str]] = None, query_path: str = QUERY_PATH) -> Callable:
    """Return a WSGI application serving a store over the dynamic URL protocol.

    Parameters
    ----------
    store : AbstractReadOnlyStore
        The store served; it should be connected.  Writes to a read-only
        store answer ``405``/``500`` as the store raises.
    parts : dict, optional
        The URL segment of each part (``'data'``, ``'metadata'``,
        ``'permissions'``), as the client's ``parts`` argument; default
        :data:`DEFAULT_PARTS`.
    query_path : str, optional
        The path of the query URL below the application's root (default
        ``'query'``).

    Returns
    -------
    callable
        The WSGI application.  Mount it anywhere: the client's ``base_url``
        is the mount URL and its ``query_url`` the mount URL plus
        ``'/' + query_path``.
    """
    return _StoreApp(store, dict(DEFAULT_PARTS if parts is None else parts), query_path)


class _Handler(WSGIRequestHandler):
    """Logs through :mod:`logging` rather than to ``stderr``."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class StoreServer(object):
    """A store served over HTTP by a background thread (see :func:`serve`).

    Attributes
    ----------
    url : str
        The root URL, ``http://host:port``: the client's ``base_url``.
    base_url : str
        The same as :attr:`url`.
    query_url : str
        The query URL, :attr:`url` plus ``/query``.
    host : str
        The address listened on.
    port : int
        The port listened on.
    """

    host: str
    port: int

    def __init__(self, app: Callable, host: str, port: int) -> None:
        self._server = make_server(host, port, app, server_class=_Server, handler_class=_Handler)
        self.host, self.port = self._server.server_address[:2]  # type: ignore[assignment]
        display_host = "[{}]".format(self.host) if ":" in self.host else self.host
        self.url = "http://{}:{}".format(display_host, self.port)
        self.base_url = self.url
        self.query_url = "{}/{}".format(self.url, getattr(app, "query_path", QUERY_PATH))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="encore-store-server-{}".format(self.port), daemon=True)
        self._thread.start()

    def shutdown(self, timeout: Optional[float] = 10.0) -> None:
        """Stop serving and close the listening socket.

        Parameters
        ----------
        timeout : float or None, optional
            How long to wait for the serving thread to end (default 10 s).
        """
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout)
        self._server.server_close()

    def __enter__(self) -> "StoreServer":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.shutdown()


def serve(store: Any, host: str = "127.0.0.1", port: int = 0, **options: Any) -> StoreServer:
    """Serve a store over HTTP from a background thread.

    Parameters
    ----------
    store : AbstractReadOnlyStore
        The store served.
    host : str, optional
        The address to listen on (default ``'127.0.0.1'``, this machine
        only).
    port : int, optional
        The port; ``0`` (the default) picks a free one.
    **options
        Passed to :func:`make_app` (``parts``, ``query_path``).

    Returns
    -------
    StoreServer
        The running server; call its :meth:`~StoreServer.shutdown` (or use
        it as a context manager) to stop it.

    Notes
    -----
    The server does no authentication and speaks plain HTTP: whoever can
    reach the address can read and write the store.  Keep the default
    ``host`` unless the network is trusted, or mount :func:`make_app`
    behind a server that authenticates.
    """
    return StoreServer(make_app(store, **options), host, port)
