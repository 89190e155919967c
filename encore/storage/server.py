"""Serve any store over HTTP, with the protocol of the dynamic URL store.

:func:`make_app` turns a store into a WSGI application which
:class:`~encore.storage.dynamic_url_store.DynamicURLStore` can talk to, and
:func:`serve` runs it in a background thread with the standard library's
HTTP server (keep-alive, idle timeout, bounded worker pool; see
:mod:`encore.storage._server_http`)::

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
``{base}/``                ``OPTIONS``                 the protocol level (header)
=========================  ==========================  =================================

Keys are percent-encoded in the URL (a ``/`` in a key may be sent as
``%2F`` or as itself); for the part URLs the last path segment is the part
and everything before it the key.  The query URL takes one parameter per
metadata name, whose value is the JSON encoding of the value to match; it
answers with one key per line (``text/plain``), or -- when the client
accepts ``application/x-ndjson`` -- one JSON string per line, which keeps
keys holding line breaks intact.

Metadata on the wire
--------------------
Metadata bodies (``GET``/``PUT``/``POST {base}/{key}/metadata`` and the
metadata prefix of a combined ``PUT``) and the values of query parameters
are JSON in the tagged form of :mod:`encore.storage._metadata_codec`: the
value types beyond JSON that stores keep (``datetime``, ``date``,
``time``, ``Decimal``, ``bytes``, ``set``, ``frozenset``, ``UUID``) are
JSON objects with one member named after the type, such as
``{"$encore:date": "2024-05-01"}``, and a metadata dictionary that would
look like one (exactly one item, named ``$encore:...``) is sent as
``{"$encore:dict": [<name>, <value>]}``.  So ``query_keys(when=datetime(...))``
is the URL parameter ``when={"$encore:datetime": "..."}``.  Plain JSON is
the tagged form of plain values, so Encore 0.8 clients, which send and read
plain JSON, work unchanged (they read a tagged value as that small
dictionary).  An unknown or malformed tagged value is a ``400``.
Permission bodies are plain JSON (lists of tags).

Setting data and metadata in one request
----------------------------------------
Every answer carries ``Encore-Protocol: 2``.  A client that has seen it may
``PUT {base}/{key}/data`` with an ``Encore-Metadata-Length: N`` header: the
body then starts with ``N`` bytes of (tagged) JSON metadata, followed by the data,
and the server sets both with one ``store.set`` -- so concurrent writers of
one key never leave one's data with another's metadata.  The two-request
protocol of Encore 0.8 keeps working.

Who may come in
---------------
* **Authentication.**  With ``users`` (a users file, see
  :class:`~encore.storage._server_auth.PasswordFile`) or ``tokens``, every
  request needs HTTP Basic or Bearer credentials, else ``401`` with
  ``WWW-Authenticate``.  When the served store is a
  :class:`~encore.storage.simple_auth_store.SimpleAuthStore`, each request
  acts as its user through a view of the store connected as that user, so
  the store's per-key permissions apply to remote users (without ``users``,
  the store's own user records check the Basic credentials).
* **Read-only.**  ``read_only=True`` answers every write with ``405``.
* **Browsers.**  A ``Host`` the server does not answer for is refused with
  ``421`` (DNS rebinding); a write whose ``Origin`` is another site is
  refused with ``403``; a write to a metadata or permissions URL with a
  ``Content-Type`` a web form can send (``text/plain``, form encodings) is
  refused with ``415`` (cross-site request forgery).
* **Bounded resources.**  Metadata and permission bodies are limited in
  size (``413``) and JSON nesting (``400``); a write body without a length
  (or chunked coding) is ``411``.  Error bodies never carry internal
  exception text.

Errors map to statuses: a missing key is ``404``, an
:class:`~encore.storage.abstract_store.AuthorizationError` ``403``, bad
input (malformed JSON, metadata the store refuses) ``400``, a request body
that ends early ``400`` (and nothing is written).

A request for ``/`` preferring HTML, or for a URL under ``/_browse``, is
handed to :class:`encore.storage.browser.StoreBrowser` when that module is
installed (after the checks above).
"""
from __future__ import annotations

import base64
import binascii
import copy
import email.utils
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.parse
import warnings
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, cast

from ._server_auth import Authenticator, PasswordFile, hash_password, read_users, verify_password
from ._metadata_codec import decode_metadata, encode_metadata, permissions_to_json
from ._server_http import PooledHTTPServer
from .abstract_store import AuthorizationError

logger = logging.getLogger(__name__)

__all__ = [
    "make_app",
    "serve",
    "StoreServer",
    "PasswordFile",
    "hash_password",
    "verify_password",
    "read_users",
    "DEFAULT_PARTS",
    "QUERY_PATH",
    "PROTOCOL_VERSION",
    "is_loopback",
]

#: The URL segment naming each part of a key.
DEFAULT_PARTS = {"data": "data", "metadata": "metadata", "permissions": "auth"}

#: The path of the query URL, relative to the application's root.
QUERY_PATH = "query"

#: The protocol level announced in the ``Encore-Protocol`` header.
PROTOCOL_VERSION = "2"

#: The size of the chunks in which bodies are streamed.
CHUNK_SIZE = 1 << 16

#: The default limit of a metadata or permissions body, in bytes.
MAX_METADATA_BYTES = 1 << 20

#: The default limit of the nesting of JSON documents received.
MAX_JSON_DEPTH = 32

NDJSON = "application/x-ndjson"

_STATUS = {
    200: "200 OK",
    201: "201 Created",
    204: "204 No Content",
    206: "206 Partial Content",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    403: "403 Forbidden",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    411: "411 Length Required",
    413: "413 Content Too Large",
    415: "415 Unsupported Media Type",
    416: "416 Range Not Satisfiable",
    421: "421 Misdirected Request",
    500: "500 Internal Server Error",
}

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")

# The content types an HTML form (or a "simple" cross-site request) can send.
_FORM_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")

_WRITE_METHODS = ("PUT", "POST", "DELETE", "PATCH")


class _HTTPError(Exception):
    def __init__(self, status: int, message: str = "", headers: Optional[List[Tuple[str, str]]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


def _is_chunked(environ: Dict[str, Any]) -> bool:
    return environ.get("HTTP_TRANSFER_ENCODING", "").strip().lower() == "chunked"


class _RequestBody(object):
    """A read-only stream over a request body that raises if it ends early.

    With a ``Content-Length`` exactly that many bytes are read (fewer raise
    :class:`OSError`); a chunked body has been decoded by the server (ours,
    or gunicorn's) and is read to its end.  A client that aborts an upload
    thus makes the store's read fail, and the store (which writes all or
    nothing) keeps the old value.
    """

    def __init__(self, environ: Dict[str, Any], limit: Optional[int] = None) -> None:
        self._input = environ["wsgi.input"]
        self._chunked = _is_chunked(environ)
        self._limit = limit
        self._read = 0
        length = (environ.get("CONTENT_LENGTH") or "").strip()
        if self._chunked:
            self._remaining = -1
        elif not length:
            raise _HTTPError(411, "a Content-Length (or chunked transfer coding) is required")
        else:
            if not length.isdigit():
                raise _HTTPError(400, "bad Content-Length")
            self._remaining = int(length)
            if limit is not None and self._remaining > limit:
                raise _HTTPError(413, "the body is larger than {} bytes".format(limit))
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        if self._remaining == 0:
            return b""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(CHUNK_SIZE), b""))
        if self._remaining > 0:
            size = min(size, self._remaining)
        try:
            data = self._input.read(size)
        except OSError:
            raise
        except Exception as error:  # a WSGI server's own "body broken" errors
            raise OSError("the request body is broken ({})".format(type(error).__name__)) from None
        if not data:
            if self._remaining > 0:
                raise OSError("the request body ended early")
            self._remaining = 0
            return b""
        if self._remaining > 0:
            self._remaining -= len(data)
        self._read += len(data)
        if self._limit is not None and self._read > self._limit:
            raise _HTTPError(413, "the body is larger than {} bytes".format(self._limit))
        return bytes(data)

    def close(self) -> None:
        self.closed = True


def _check_depth(text: str, limit: int) -> None:
    """Refuse JSON nested deeper than ``limit`` before parsing it."""
    depth = 0
    # Strings may hold brackets; remove them first (escapes included).
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|([\[{])|([\]}])', text):
        if match.group(1):
            depth += 1
            if depth > limit:
                raise _HTTPError(400, "the JSON document is nested deeper than {} levels".format(limit))
        elif match.group(2):
            depth -= 1


def _decode_json(text: str, tagged: bool, what: str) -> Any:
    """Parse JSON text; with ``tagged``, tagged metadata values are decoded."""
    try:
        return decode_metadata(text) if tagged else json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise _HTTPError(400, "{} is not valid JSON".format(what)) from None
    except ValueError as error:  # an unknown or malformed tagged value
        raise _HTTPError(400, "{} holds a bad tagged value: {}".format(what, error)) from None


def _parse_json(raw: bytes, limit: int, tagged: bool = False) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _HTTPError(400, "the body is not UTF-8") from None
    _check_depth(text, limit)
    return _decode_json(text, tagged, "the body")


def _json_body(environ: Dict[str, Any], max_bytes: int, max_depth: int, tagged: bool = False) -> Any:
    body = _RequestBody(environ, max_bytes)
    try:
        raw = body.read()
    except OSError as error:
        raise _HTTPError(400, str(error)) from None
    return _parse_json(raw, max_depth, tagged)


class _PrefixedBody(object):
    """The data after the metadata of a combined ``PUT``."""

    def __init__(self, body: _RequestBody) -> None:
        self._body = body
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        return self._body.read(size)

    def close(self) -> None:
        self.closed = True


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


def _permissions_from_json(document: Any) -> Dict[str, Any]:
    if not isinstance(document, dict):
        raise _HTTPError(400, "permissions must be a JSON object")
    result = {}
    for name, tags in document.items():
        if not isinstance(tags, list):
            raise _HTTPError(400, "the tags of permission {!r} must be a list".format(name))
        result[name] = set(tags)
    return result


def _host_name(value: str) -> str:
    """The host part of a ``Host`` header or origin netloc, lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") > 1:  # a bare IPv6 address
        return value
    return value.partition(":")[0].rstrip(".")


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """Tell whether an address to listen on is reachable from this machine only.

    Parameters
    ----------
    host : str
        A host name or IP address.

    Returns
    -------
    bool
        ``True`` for ``localhost`` and loopback addresses.
    """
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _media_type(environ: Dict[str, Any]) -> str:
    return (environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()


def _prefers_html(accept: str) -> bool:
    """Whether an Accept header lists text/html at the highest quality."""
    if not accept:
        return False
    best = 0.0
    html = None
    for item in accept.split(","):
        media, _, parameters = item.strip().partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.strip().lower()
        best = max(best, quality)
        if media == "text/html":
            html = quality
    return html is not None and html > 0 and html >= best


def _load_browser() -> Optional[Callable[..., Any]]:
    try:
        from .browser import StoreBrowser
    except ImportError:
        return None
    return StoreBrowser


def _simple_auth_class() -> Any:
    from .simple_auth_store import SimpleAuthStore

    return SimpleAuthStore


def _fresh_view(store: Any) -> Any:
    view = copy.copy(store)
    # The view must never disconnect what the served store connected.
    view.__dict__["_owned_connections"] = []
    return view


class _SimpleAuthUsers(object):
    """Per-user views of a SimpleAuthStore, and Basic checks by its records."""

    def __init__(self, store: Any, remember: float = 300.0) -> None:
        self.store = store
        self.remember = remember
        self._secret = os.urandom(32)
        self._views: Dict[bytes, Tuple[Any, float]] = {}
        self._lock = threading.Lock()

    def authenticate(self, header: Optional[str]) -> Optional[Tuple[str, Any]]:
        """Check Basic credentials with the store; return (name, view)."""
        if not header or not header.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        name, colon, password = decoded.partition(":")
        if not colon:
            return None
        key = hmac.new(self._secret, decoded.encode("utf-8"), hashlib.sha256).digest()
        now = time.monotonic()
        with self._lock:
            found = self._views.get(key)
        if found is not None and found[1] > now and "connect" in found[0].check_permissions():
            return name, found[0]
        view = _fresh_view(self.store)
        try:
            view.connect({"username": name, "password": password})
        except AuthorizationError:
            return None
        with self._lock:
            if len(self._views) > 1024:
                self._views.clear()
            self._views[key] = (view, now + self.remember)
        return name, view

    def view_for(self, name: str) -> Any:
        """A view acting as ``name``, whose identity another check proved."""
        view = _fresh_view(self.store)
        record = self.store._read_record(name)
        view._username, view._token = name, record
        view._connected = record is not None
        if record is None:
            raise AuthorizationError("{!r} has no record in the served store".format(name))
        return view


class _StoreApp(object):
    """The WSGI application returned by :func:`make_app`."""

    def __init__(self, store: Any, parts: Dict[str, str], query_path: str, users: Any = None,
                 tokens: Optional[Mapping[str, str]] = None, read_only: bool = False,
                 allowed_hosts: Optional[Sequence[str]] = None, allowed_origins: Sequence[str] = (),
                 store_for_user: Optional[Callable[[str], Any]] = None,
                 max_metadata_bytes: int = MAX_METADATA_BYTES, max_json_depth: int = MAX_JSON_DEPTH,
                 browser: Any = True, realm: str = "encore") -> None:
        self.store = store
        self.parts = {segment: part for part, segment in parts.items()}
        self.query_path = query_path
        self.read_only = bool(read_only)
        self.max_metadata_bytes = max_metadata_bytes
        self.max_json_depth = max_json_depth
        self.authenticator = Authenticator(users, tokens, realm=realm)
        self.store_for_user = store_for_user
        self._simple_auth: Optional[_SimpleAuthUsers] = None
        if isinstance(store, _simple_auth_class()):
            self._simple_auth = _SimpleAuthUsers(store)
        elif store_for_user is None and callable(getattr(store, "as_user", None)):
            self.store_for_user = store.as_user
        self.allowed_hosts = None if allowed_hosts is None else {
            _host_name(host) if host != "*" else "*" for host in allowed_hosts}
        self.allowed_origins = {origin.rstrip("/").lower() for origin in allowed_origins}
        if browser is True:
            browser_class = _load_browser()
            browser = None if browser_class is None else browser_class(store, read_only=self.read_only)
        self.browser = browser or None

    @property
    def requires_authentication(self) -> bool:
        """bool : Whether every request must carry valid credentials."""
        return self.authenticator.enabled or self._simple_auth is not None

    # -- dispatch ------------------------------------------------------------

    def __call__(self, environ: Dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            status, headers, body = self._guarded(method, environ, start_response)
            if status is None:  # the browser answered
                return body
        except _HTTPError as error:
            status, headers, body = self._error(error.status, error.message, error.headers)
        except KeyError:
            status, headers, body = self._error(404, "no such key")
        except AuthorizationError:
            status, headers, body = self._error(403, "not authorized")
        except (TypeError, ValueError) as error:
            # The stores' own messages about bad input (they name the input).
            status, headers, body = self._error(400, "bad request: {}".format(error))
        except Exception:  # the server keeps serving; details stay in the log
            logger.exception("Error serving %s %s", method, environ.get("PATH_INFO"))
            status, headers, body = self._error(500, "internal server error")
        headers = list(headers) + [("Encore-Protocol", PROTOCOL_VERSION)]
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

    def _check_host(self, environ: Dict[str, Any]) -> None:
        host = environ.get("HTTP_HOST")
        if host is None:
            return  # not a browser (they always send Host)
        allowed = self.allowed_hosts
        name = _host_name(host)
        # DNS rebinding needs a name the attacker controls; a request naming
        # an address can only come from a page at that very address.
        if _is_ip_address(name):
            return
        if allowed is None:
            if name == "localhost":
                return
        elif "*" in allowed or name in allowed:
            return
        raise _HTTPError(421, "this server does not answer for that host name")

    def _check_origin(self, method: str, environ: Dict[str, Any]) -> None:
        if method in ("GET", "HEAD", "OPTIONS"):
            return
        if environ.get("HTTP_SEC_FETCH_SITE", "").lower() == "cross-site":
            raise _HTTPError(403, "cross-site requests are refused")
        origin = environ.get("HTTP_ORIGIN")
        if origin is None:
            return
        origin = origin.strip().rstrip("/").lower()
        if origin in self.allowed_origins:
            return
        parsed = urllib.parse.urlsplit(origin)
        host = environ.get("HTTP_HOST", "").strip().lower()
        if parsed.scheme in ("http", "https") and parsed.netloc and host and parsed.netloc == host:
            return
        raise _HTTPError(403, "requests from another origin are refused")

    def _authenticate(self, environ: Dict[str, Any]) -> Tuple[Optional[str], Any]:
        """Return (user, store to act on), or raise a 401."""
        if not self.requires_authentication:
            return None, self.store
        header = environ.get("HTTP_AUTHORIZATION")
        name = self.authenticator.authenticate(header) if self.authenticator.enabled else None
        if name is not None:
            if self._simple_auth is not None:
                return name, self._simple_auth.view_for(name)
            if self.store_for_user is not None:
                return name, self.store_for_user(name)
            return name, self.store
        if self._simple_auth is not None and not self.authenticator.enabled:
            found = self._simple_auth.authenticate(header)
            if found is not None:
                return found
        raise _HTTPError(401, "authentication required",
                         [("WWW-Authenticate", self.authenticator.challenge())])

    def _guarded(self, method: str, environ: Dict[str, Any], start_response: Callable) -> Tuple[Any, list, Iterable[bytes]]:
        self._check_host(environ)
        self._check_origin(method, environ)
        user, store = self._authenticate(environ)
        raw_path = environ.get("PATH_INFO", "")
        try:
            # PATH_INFO is the unquoted path, decoded as latin-1 (PEP 3333).
            path = raw_path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            raise _HTTPError(400, "the path is not UTF-8") from None
        if self.browser is not None and self._for_browser(method, path, environ):
            if method not in ("GET", "HEAD") and self.read_only:
                raise _HTTPError(405, "this store is read-only", [("Allow", "GET, HEAD")])
            environ["encore.store"] = store
            environ["encore.read_only"] = self.read_only
            if user is not None:
                environ["REMOTE_USER"] = user
            else:
                environ.pop("REMOTE_USER", None)

            def browser_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
                return start_response(status, list(headers) + [("Encore-Protocol", PROTOCOL_VERSION)], exc_info)
            return None, [], self.browser(environ, browser_start_response)
        return self._dispatch(method, path, environ, store)

    def _for_browser(self, method: str, path: str, environ: Dict[str, Any]) -> bool:
        if path in ("", "/"):
            return method in ("GET", "HEAD") and _prefers_html(environ.get("HTTP_ACCEPT", ""))
        if path == "/_browse" or path.startswith("/_browse/"):
            last = path.rstrip("/").rpartition("/")[2]
            return method in ("GET", "HEAD", "POST") and last not in self.parts
        return False

    def _dispatch(self, method: str, path: str, environ: Dict[str, Any], store: Any) -> Tuple[int, list, Iterable[bytes]]:
        if not path.startswith("/"):
            raise _HTTPError(404, "no such resource")
        path = path[1:]
        if method == "OPTIONS":
            return 204, [("Allow", "GET, HEAD, PUT, POST, DELETE, OPTIONS")], []
        if path == self.query_path:
            if method not in ("GET", "HEAD"):
                raise _HTTPError(405, "the query URL answers GET only", [("Allow", "GET, HEAD")])
            return self._query(environ, store)
        if method in _WRITE_METHODS and self._read_only(store):
            raise _HTTPError(405, "this store is read-only", [("Allow", "GET, HEAD")])
        if method == "DELETE":
            store.delete(path)
            return 204, [], []
        key, slash, segment = path.rpartition("/")
        part = self.parts.get(segment)
        if part is None or not slash:
            raise _HTTPError(404, "no such resource")
        if method in _WRITE_METHODS and part != "data" and _media_type(environ) in _FORM_TYPES:
            raise _HTTPError(415, "send JSON (application/json), not a form encoding")
        handler = getattr(self, "_{}_{}".format(method.lower(), part), None)
        if handler is None and method == "HEAD":
            handler = getattr(self, "_get_{}".format(part), None)
        if handler is None:
            raise _HTTPError(405, "{} is not allowed on the {} URL".format(method, part))
        return handler(key, environ, store)

    def _read_only(self, store: Any) -> bool:
        if self.read_only:
            return True
        info = getattr(store, "info", None)
        if info is not None and info().get("readonly"):
            return True
        return not callable(getattr(store, "set_data", None))

    def _json_body(self, environ: Dict[str, Any], tagged: bool = False) -> Any:
        return _json_body(environ, self.max_metadata_bytes, self.max_json_depth, tagged)

    # -- data ----------------------------------------------------------------

    def _head_data(self, key: str, environ: Dict[str, Any], store: Any) -> Tuple[int, list, Iterable[bytes]]:
        value = store.get(key)
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

    def _get_data(self, key: str, environ: Dict[str, Any], store: Any) -> Tuple[int, list, Iterable[bytes]]:
        value = store.get(key)
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

    def _put_data(self, key: str, environ: Dict[str, Any], store: Any) -> Tuple[int, list, Iterable[bytes]]:
        prefix = environ.get("HTTP_ENCORE_METADATA_LENGTH")
        body = _RequestBody(environ)
        existed = store.exists(key)
        try:
            if prefix is None:
                store.set_data(key, body)
            else:
                prefix = prefix.strip()
                if not prefix.isdigit():
                    raise _HTTPError(400, "bad Encore-Metadata-Length")
                length = int(prefix)
                if length > self.max_metadata_bytes:
                    raise _HTTPError(413, "the metadata is larger than {} bytes".format(self.max_metadata_bytes))
                raw = b""
                while len(raw) < length:
                    chunk = body.read(length - len(raw))
                    if not chunk:
                        raise OSError("the request body ended inside the metadata")
                    raw += chunk
                metadata = _parse_json(raw, self.max_json_depth, tagged=True)
                if not isinstance(metadata, dict):
                    raise _HTTPError(400, "the metadata must be a JSON object")
                store.set(key, (_PrefixedBody(body), metadata))
        except OSError as error:
            raise _HTTPError(400, "the upload failed: {}".format(error)) from None
        return (204 if existed else 201), [], []

    # -- metadata ------------------------------------------------------------

    @staticmethod
    def _json_reply(body: bytes) -> Tuple[int, list, Iterable[bytes]]:
        return 200, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], [body]

    def _get_metadata(self, key: str, environ: Dict[str, Any], store: Any) -> Tuple[int, list, Iterable[bytes]]:
        return self._json_reply(encode_metadata(store.get_metadata(key)).encode("utf-8"))

    def _metadata_body(self, environ: Dict[str, Any]) -> Dict[str, Any]:
        metadata = self._json_body(environ, tagged=True)
        if not isinstance(metadata, dict):
            raise _HTTPError(400, "the metadata must be a JSON object")
        return metadata

    def _put_metadata(self, key: str, environ: Dict[str, Any], store: Any) -> Tuple[int, list, Iterable[bytes]]:
        metadata = self._metadata_body(environ)
        existed = store.exists(key)
        store.set_metadata(key, metadata)
        return (204 if existed else 201), [], []

    def _post_metadata(self, key: str, environ: Dict[str, Any], store: Any) -> Tuple[int, list, Iterable[bytes]]:
        metadata = self._metadata_body(environ)
        store.update_metadata(key, metadata)
        return 204, [], []

    # -- permissions ---------------------------------------------------------

    @staticmethod
    def _authorizing(key: str, store: Any) -> None:
        info = getattr(store, "info", None)
        if info is not None and info().get("authorizing") and hasattr(store, "get_permissions"):
            return
        if not store.exists(key):
            raise KeyError(key)
        raise _HTTPError(403, "this store has no permissions")

    def _get_permissions(self, key: str, environ: Dict[str, Any], store: Any) -> Tuple[int, list, Iterable[bytes]]:
        self._authorizing(key, store)
        return self._json_reply(json.dumps(permissions_to_json(store.get_permissions(key))).encode("utf-8"))

    def _put_permissions(self, key: str, environ: Dict[str, Any], store: Any) -> Tuple[int, list, Iterable[bytes]]:
        self._authorizing(key, store)
        store.set_permissions(key, _permissions_from_json(self._json_body(environ)))
        return 204, [], []

    def _post_permissions(self, key: str, environ: Dict[str, Any], store: Any) -> Tuple[int, list, Iterable[bytes]]:
        self._authorizing(key, store)
        store.update_permissions(key, _permissions_from_json(self._json_body(environ)))
        return 204, [], []

    # -- query ---------------------------------------------------------------

    def _query(self, environ: Dict[str, Any], store: Any) -> Tuple[int, list, Iterable[bytes]]:
        criteria = {}
        query = environ.get("QUERY_STRING", "")
        if len(query) > self.max_metadata_bytes:
            raise _HTTPError(413, "the query is too long")
        try:
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="strict")
        except UnicodeError:
            raise _HTTPError(400, "the query is not UTF-8") from None
        for name, text in pairs:
            _check_depth(text, self.max_json_depth)
            criteria[name] = _decode_json(text, True, "the value of {!r}".format(name[:100]))
        keys = store.query_keys(**criteria)
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


def make_app(store: Any, parts: Optional[Dict[str, str]] = None, query_path: str = QUERY_PATH, *,
             users: Any = None, tokens: Optional[Mapping[str, str]] = None, read_only: bool = False,
             allowed_hosts: Optional[Sequence[str]] = None, allowed_origins: Sequence[str] = (),
             store_for_user: Optional[Callable[[str], Any]] = None,
             max_metadata_bytes: int = MAX_METADATA_BYTES, max_json_depth: int = MAX_JSON_DEPTH,
             browser: Any = True, realm: str = "encore") -> Callable:
    """Return a WSGI application serving a store over the dynamic URL protocol.

    The application runs unchanged under any WSGI server (gunicorn, uWSGI,
    mod_wsgi; see the deployment documentation) or under :func:`serve`.

    Parameters
    ----------
    store : AbstractReadOnlyStore
        The store served; it should be connected.
    parts : dict, optional
        The URL segment of each part (``'data'``, ``'metadata'``,
        ``'permissions'``), as the client's ``parts`` argument; default
        :data:`DEFAULT_PARTS`.
    query_path : str, optional
        The path of the query URL below the application's root (default
        ``'query'``).
    users : str, os.PathLike or mapping, optional
        A users file (written by ``encore users add``; re-read when it
        changes) or a mapping of name to record; turns on authentication.
    tokens : mapping, optional
        Bearer tokens (token to user name); turns on authentication.
    read_only : bool, optional
        Answer every write with ``405``.
    allowed_hosts : sequence of str, optional
        The host names the server answers for (``Host`` header), besides IP
        addresses, which are always accepted; default: ``localhost`` only.
        ``['*']`` accepts any name (only behind a proxy that checks it).
    allowed_origins : sequence of str, optional
        Browser origins (``'https://app.example.com'``) allowed to write,
        besides the server's own.
    store_for_user : callable, optional
        ``store_for_user(name)`` returns the store a request of an
        authenticated user acts on.  By default: a view of a served
        :class:`~encore.storage.simple_auth_store.SimpleAuthStore` connected
        as that user; the store's ``as_user(name)`` if it has one; else the
        store itself.
    max_metadata_bytes : int, optional
        The largest metadata or permissions body accepted (default 1 MiB).
    max_json_depth : int, optional
        The deepest JSON nesting accepted (default 32).
    browser : WSGI application, bool, optional
        What answers HTML requests (see the module documentation); default
        ``True``: :class:`encore.storage.browser.StoreBrowser` if available;
        ``False``: none.
    realm : str, optional
        The realm named in ``WWW-Authenticate``.

    Returns
    -------
    callable
        The WSGI application.  Mount it anywhere: the client's ``base_url``
        is the mount URL and its ``query_url`` the mount URL plus
        ``'/' + query_path``.

    Raises
    ------
    FileNotFoundError
        If ``users`` names a file that does not exist.
    ValueError
        If the users file or a token is malformed.
    """
    return _StoreApp(store, dict(DEFAULT_PARTS if parts is None else parts), query_path, users=users,
                     tokens=tokens, read_only=read_only, allowed_hosts=allowed_hosts,
                     allowed_origins=allowed_origins, store_for_user=store_for_user,
                     max_metadata_bytes=max_metadata_bytes, max_json_depth=max_json_depth,
                     browser=browser, realm=realm)


class StoreServer(object):
    """A WSGI application served over HTTP by a background thread (see
    :func:`serve`).

    Parameters
    ----------
    app : callable
        The WSGI application.
    host : str
        The address to listen on.
    port : int
        The port (``0``: any free one).
    workers : int, optional
        Connections served at once (default 16).
    queue : int, optional
        Connections waiting for a worker beyond those (default 64); more
        are answered ``503``.
    idle_timeout : float, optional
        Seconds after which a silent connection is closed (default 15).

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

    def __init__(self, app: Callable, host: str, port: int, workers: int = 16, queue: int = 64,
                 idle_timeout: float = 15.0) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise ValueError("workers must be a positive int")
        if not idle_timeout or idle_timeout <= 0:
            raise ValueError("idle_timeout must be a positive number of seconds")
        self._server = PooledHTTPServer((host, port), app, workers=workers, queue=queue,
                                        idle_timeout=idle_timeout)
        self.host, self.port = cast(Tuple[str, int], self._server.server_address[:2])
        display_host = "[{}]".format(self.host) if ":" in self.host else self.host
        self.url = "http://{}:{}".format(display_host, self.port)
        self.base_url = self.url
        self.query_url = "{}/{}".format(self.url, getattr(app, "query_path", QUERY_PATH))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="encore-store-server-{}".format(self.port), daemon=True)
        self._thread.start()

    def shutdown(self, timeout: Optional[float] = 10.0) -> None:
        """Stop serving, close the open connections and the listening socket.

        Parameters
        ----------
        timeout : float or None, optional
            How long to wait for the serving thread to end (default 10 s).
        """
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout)
        self._server.close_connections()
        self._server.server_close()

    def __enter__(self) -> "StoreServer":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.shutdown()


def serve(store: Any, host: str = "127.0.0.1", port: int = 0, *, expose_without_auth: bool = False,
          workers: int = 16, queue: int = 64, idle_timeout: float = 15.0, **options: Any) -> StoreServer:
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
    expose_without_auth : bool, optional
        Allow listening beyond loopback without authentication (a warning
        is still given).  Without it that is refused.
    workers, queue, idle_timeout
        As :class:`StoreServer`.
    **options
        Passed to :func:`make_app` (``users``, ``tokens``, ``read_only``,
        ``allowed_hosts``, ...).  When ``allowed_hosts`` is not given, the
        names allowed are ``localhost``, ``host`` (if a name) and, when
        listening beyond loopback, the machine's host name.

    Returns
    -------
    StoreServer
        The running server; call its :meth:`~StoreServer.shutdown` (or use
        it as a context manager) to stop it.

    Raises
    ------
    PermissionError
        If ``host`` is not a loopback address, nobody has to authenticate
        and ``expose_without_auth`` is false.

    Warns
    -----
    UserWarning
        When the store is exposed beyond loopback without authentication.

    Notes
    -----
    The server speaks plain HTTP: Basic passwords and tokens cross the
    network in clear.  Beyond a trusted network, put it behind a proxy that
    terminates TLS (see the deployment documentation).
    """
    if options.get("allowed_hosts") is None:
        allowed = ["localhost"]
        bare = host.strip("[]")
        if bare and not _is_ip_address(bare):
            allowed.append(bare)
        if not is_loopback(host):
            allowed.append(socket.gethostname())
        options["allowed_hosts"] = allowed
    app = cast(_StoreApp, make_app(store, **options))  # make_app returns a _StoreApp
    if not is_loopback(host) and not app.requires_authentication:
        if not expose_without_auth:
            raise PermissionError(
                "refusing to serve {!r} without authentication: anyone who can reach it could read "
                "and write the store.  Give users (encore serve --users FILE) or, knowing the risk, "
                "expose_without_auth=True (--expose-without-auth)".format(host))
        message = ("serving on {!r} without authentication: anyone who can reach it can read "
                   "and write the store".format(host))
        logger.warning(message)
        warnings.warn(message, stacklevel=2)
    return StoreServer(app, host, port, workers=workers, queue=queue, idle_timeout=idle_timeout)
