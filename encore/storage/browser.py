"""Web pages to look at a store: the store browser.

:class:`StoreBrowser` is a WSGI application that shows a store to a web
browser: the keys (paged, filtered by a glob and by metadata values), each
key's metadata, size and dates, a download link and, for a writable store
and an authenticated user, forms to upload and delete keys.

It is plain HTML: no JavaScript at all, no framework, no dependency beyond
the standard library.  Every key, metadata name and value is escaped with
:func:`html.escape` (a key such as ``<script>`` shows as text), and the
pages forbid scripts and foreign resources with a Content-Security-Policy.

The store server (:mod:`encore.storage.server`) hands browser requests to
it; it also works on its own under any WSGI server::

    from wsgiref.simple_server import make_server
    from encore.storage.browser import StoreBrowser

    make_server("127.0.0.1", 8000, StoreBrowser(store, read_only=True)).serve_forever()

URLs (below the application's root, ``SCRIPT_NAME``):

``GET /``
    Redirects (303) to ``/_browse``.
``GET /_browse?glob=G&page=N&where=W&NAME=JSON...``
    The key list.  ``glob`` is matched against whole keys with
    :func:`fnmatch.fnmatchcase` (``*`` also matches ``/``); ``where`` holds
    metadata conditions written as on the command line (``name=text``,
    ``name:=json``, separated by spaces, shell-quoted when needed); any
    other parameter is a metadata condition whose value is JSON (or text
    when it is not JSON).
``GET /_browse/key?key=K``
    One key.
``GET /_browse/download?key=K``
    The key's data as an attachment, streamed.
``POST /_browse/upload`` and ``POST /_browse/delete``
    ``multipart/form-data`` (``key``, ``file``, optional ``metadata`` as a
    JSON object) and a form (``key``), each with the ``csrf`` token of the
    pages.  Allowed only when the store is writable, the application is not
    read-only (nor ``environ["encore.read_only"]``) and the request carries
    an authenticated user (``REMOTE_USER``).

The WSGI environment may carry ``environ["encore.store"]``, the store to
act on for this request (for instance one acting as the authenticated
user); it replaces the application's own store.
"""
from __future__ import annotations

import datetime
import fnmatch
import hashlib
import hmac
import html
import json
import logging
import math
import secrets
import shlex
import tempfile
import urllib.parse
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from ._metadata_codec import decode_metadata, to_json

logger = logging.getLogger(__name__)

__all__ = ["StoreBrowser"]

_PAGE_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:70em}
h1{font-size:1.4em}h1 a{color:inherit;text-decoration:none}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #ddd;vertical-align:top}
td.size,th.size{text-align:right;white-space:nowrap}
code,pre{font-family:ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
form.inline{display:inline}
fieldset{margin:1em 0;border:1px solid #ccc}
.error{color:#a00}.muted{color:#777}
nav.pages{margin:1em 0}
"""

_SECURITY_HEADERS = [
    ("Content-Security-Policy",
     "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
     "frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]

#: Query parameters of the key list that are not metadata conditions.
_LIST_PARAMETERS = ("glob", "page", "where")

_CHUNK = 64 * 1024


class _HTTPError(Exception):
    """An error answered with a status and a short page."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _size_text(size: Optional[int]) -> str:
    if size is None:
        return "unknown"
    from encore.terminal.progress_display import format_size

    text = format_size(size)
    return text if size < 1024 else "{} ({} bytes)".format(text, size)


def _date_text(timestamp: Optional[float]) -> str:
    if timestamp is None:
        return "unknown"
    moment = datetime.datetime.fromtimestamp(float(timestamp), tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _parse_where(text: str) -> Dict[str, Any]:
    """Read ``name=text name:=json ...`` (the command line's rule)."""
    conditions: Dict[str, Any] = {}
    try:
        items = shlex.split(text)
    except ValueError as error:
        raise _HTTPError("400 Bad Request", "cannot read the conditions: {}".format(error)) from None
    for item in items:
        name, separator, raw = item.partition("=")
        if not separator or not name.rstrip(":"):
            raise _HTTPError("400 Bad Request",
                             "a condition is name=text or name:=json, not {!r}".format(item))
        if name.endswith(":"):
            try:
                conditions[name[:-1]] = decode_metadata(raw)
            except ValueError:
                raise _HTTPError("400 Bad Request", "{}:= needs JSON, got {!r}".format(name[:-1], raw)) from None
        else:
            conditions[name] = raw
    return conditions


class _Stream(object):
    """A WSGI response body that reads a stream in chunks and closes it."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self._stream.read(_CHUNK)
            if not chunk:
                break
            yield chunk

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _Body(object):
    """Reads at most ``length`` bytes of a request body."""

    def __init__(self, stream: Any, length: int) -> None:
        self._stream = stream
        self.left = length

    def read(self, size: int) -> bytes:
        if self.left <= 0:
            return b""
        chunk = self._stream.read(min(size, self.left))
        self.left -= len(chunk)
        return chunk


def _parse_multipart(body: _Body, boundary: bytes, max_field: int,
                     max_file: int) -> Tuple[Dict[str, str], Optional[Tuple[str, Any]]]:
    """Parse ``multipart/form-data`` as it arrives.

    Returns the text fields and, if there was a file field named ``file``,
    its file name and a temporary file holding its content (spooled to disk
    above 1 MiB; memory stays bounded).
    """
    delimiter = b"--" + boundary
    separator = b"\r\n" + delimiter
    buffer = b""
    fields: Dict[str, str] = {}
    upload: Optional[Tuple[str, Any]] = None

    def fill(limit: int) -> bool:
        nonlocal buffer
        chunk = body.read(_CHUNK)
        if not chunk:
            return False
        buffer += chunk
        if len(buffer) > limit:
            raise _HTTPError("400 Bad Request", "malformed form data")
        return True

    while delimiter not in buffer:
        if not fill(65536):
            raise _HTTPError("400 Bad Request", "malformed form data: no boundary")
    buffer = buffer[buffer.index(delimiter) + len(delimiter):]
    while True:
        while len(buffer) < 2 and fill(65536):
            pass
        if buffer.startswith(b"--"):
            break
        while b"\r\n\r\n" not in buffer:
            if not fill(65536):
                raise _HTTPError("400 Bad Request", "malformed form data: truncated headers")
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        disposition = ""
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value
        parameters = _disposition_parameters(disposition)
        field = parameters.get("name", "")
        is_file = "filename" in parameters
        if is_file:
            sink: Any = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)
            limit = max_file
        else:
            sink = bytearray()
            limit = max_field
        written = 0
        while True:
            index = buffer.find(separator)
            if index >= 0:
                piece, buffer = buffer[:index], buffer[index + len(separator):]
            else:
                keep = len(separator) - 1
                piece, buffer = buffer[:-keep] if len(buffer) > keep else b"", buffer[-keep:]
            written += len(piece)
            if written > limit:
                raise _HTTPError("413 Payload Too Large", "the {} is too large".format(
                    "file" if is_file else "field " + repr(field)))
            if is_file:
                sink.write(piece)
            else:
                sink += piece
            if index >= 0:
                break
            if not fill(len(separator) + _CHUNK + 16):
                raise _HTTPError("400 Bad Request", "malformed form data: truncated")
        if is_file:
            if field == "file":
                sink.seek(0)
                upload = (parameters.get("filename", ""), sink)
            else:
                sink.close()
        else:
            fields[field] = bytes(sink).decode("utf-8", "replace")
    return fields, upload


def _disposition_parameters(value: str) -> Dict[str, str]:
    parameters = {}
    for part in value.split(";")[1:]:
        name, _, raw = part.strip().partition("=")
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        parameters[name.strip().lower()] = raw
    return parameters


class StoreBrowser(object):
    """A WSGI application showing a store to a web browser.

    Parameters
    ----------
    store : AbstractReadOnlyStore
        The store shown (unless the WSGI environment carries
        ``environ["encore.store"]``).
    read_only : bool, optional
        Keyword only.  Offer no upload or delete, even for a writable store.
    page_size : int, optional
        Keyword only.  Keys per page of the key list (default 50).
    secret : bytes, optional
        Keyword only.  The key of the CSRF tokens (an HMAC of the user
        name); by default a random one per application, so tokens stop
        working when the application restarts.
    max_upload : int, optional
        Keyword only.  The largest file accepted by the upload form, in
        bytes (default 1 GiB).

    Examples
    --------
    >>> from encore.storage.dict_memory_store import DictMemoryStore
    >>> app = StoreBrowser(DictMemoryStore(), page_size=20)
    """

    def __init__(self, store: Any, *, read_only: bool = False, page_size: int = 50,
                 secret: Optional[bytes] = None, max_upload: int = 1024 ** 3) -> None:
        if not isinstance(page_size, int) or page_size < 1:
            raise ValueError("page_size must be a positive int, got {!r}".format(page_size))
        if secret is not None and not isinstance(secret, bytes):
            raise TypeError("secret must be bytes")
        self.store = store
        self.read_only = read_only
        self.page_size = page_size
        self.max_upload = max_upload
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    # -- WSGI ---------------------------------------------------------------

    def __call__(self, environ: Dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """Answer one request (WSGI).

        Parameters
        ----------
        environ : dict
            The WSGI environment.
        start_response : callable
            The WSGI ``start_response``.

        Returns
        -------
        iterable of bytes
            The response body.
        """
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        routes = {
            "/_browse": (("GET", "HEAD"), self._list_page),
            "/_browse/": (("GET", "HEAD"), self._list_page),
            "/_browse/key": (("GET", "HEAD"), self._key_page),
            "/_browse/download": (("GET", "HEAD"), self._download),
            "/_browse/upload": (("POST",), self._upload),
            "/_browse/delete": (("POST",), self._delete),
        }
        try:
            if path == "/":
                if method not in ("GET", "HEAD"):
                    raise _HTTPError("405 Method Not Allowed", "use GET")
                return self._redirect(environ, start_response, "/_browse")
            if path not in routes:
                raise _HTTPError("404 Not Found", "no such page")
            methods, handler = routes[path]
            if method not in methods:
                raise _HTTPError("405 Method Not Allowed", "use {}".format(" or ".join(methods)))
            return handler(environ, start_response)
        except _HTTPError as error:
            return self._page(environ, start_response, "Error", "<p class=\"error\">{}</p>".format(
                _escape(error.message)), status=error.status)
        except KeyError as error:
            key = error.args[0] if error.args else ""
            return self._page(environ, start_response, "Not found",
                              "<p class=\"error\">No key <code>{}</code> in this store.</p>".format(_escape(key)),
                              status="404 Not Found")
        except Exception as error:  # a store failure: say so, keep serving
            logger.exception("store browser: %s %s failed", method, path)
            name = type(error).__name__
            status = "403 Forbidden" if name == "AuthorizationError" else "500 Internal Server Error"
            return self._page(environ, start_response, "Error", "<p class=\"error\">{}: {}</p>".format(
                _escape(name), _escape(error)), status=status)

    # -- helpers ------------------------------------------------------------

    def _store(self, environ: Dict[str, Any]) -> Any:
        return environ.get("encore.store", self.store)

    def _root(self, environ: Dict[str, Any]) -> str:
        return environ.get("SCRIPT_NAME", "").rstrip("/")

    def _link(self, environ: Dict[str, Any], path: str, **query: Any) -> str:
        url = self._root(environ) + path
        items = [(name, value) for name, value in query.items() if value not in (None, "")]
        if items:
            url += "?" + urllib.parse.urlencode(items)
        return url

    def _query(self, environ: Dict[str, Any]) -> List[Tuple[str, str]]:
        return urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)

    def _user(self, environ: Dict[str, Any]) -> Optional[str]:
        user = environ.get("REMOTE_USER")
        return str(user) if user else None

    def _writable(self, environ: Dict[str, Any]) -> bool:
        store = self._store(environ)
        return (not self.read_only and not environ.get("encore.read_only")
                and self._user(environ) is not None
                and callable(getattr(store, "set", None)) and callable(getattr(store, "delete", None)))

    def csrf_token(self, user: str) -> str:
        """Return the CSRF token of the forms shown to ``user``.

        Parameters
        ----------
        user : str
            The authenticated user name.

        Returns
        -------
        str
            A hex HMAC-SHA256 of the user name under the application's secret.
        """
        return hmac.new(self._secret, user.encode("utf-8"), hashlib.sha256).hexdigest()

    def _check_write(self, environ: Dict[str, Any], fields: Dict[str, str]) -> None:
        if not self._writable(environ):
            raise _HTTPError("403 Forbidden", "this store cannot be changed from here "
                             "(read-only, or no authenticated user)")
        user = self._user(environ) or ""
        if not hmac.compare_digest(fields.get("csrf", ""), self.csrf_token(user)):
            raise _HTTPError("403 Forbidden", "the form is stale or forged (bad CSRF token): reload the page")

    def _redirect(self, environ: Dict[str, Any], start_response: Callable, path: str,
                  **query: Any) -> Iterable[bytes]:
        start_response("303 See Other", [("Location", self._link(environ, path, **query)),
                                         ("Content-Length", "0")] + _SECURITY_HEADERS)
        return [b""]

    def _page(self, environ: Dict[str, Any], start_response: Callable, title: str, body: str,
              status: str = "200 OK") -> Iterable[bytes]:
        user = self._user(environ)
        who = " &middot; <span class=\"muted\">signed in as {}</span>".format(_escape(user)) if user else ""
        document = (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>{title} &middot; encore store</title><style>{style}</style></head>"
            "<body><header><h1><a href=\"{home}\">encore store</a></h1>"
            "<p class=\"muted\">{store}{who}</p></header><main>{body}</main></body></html>\n"
        ).format(title=_escape(title), style=_PAGE_STYLE, home=_escape(self._link(environ, "/_browse")),
                 store=_escape(type(self._store(environ)).__name__), who=who, body=body)
        payload = document.encode("utf-8")
        start_response(status, [("Content-Type", "text/html; charset=utf-8"),
                                ("Content-Length", str(len(payload)))] + _SECURITY_HEADERS)
        if environ.get("REQUEST_METHOD", "GET").upper() == "HEAD":
            return [b""]
        return [payload]

    # -- pages --------------------------------------------------------------

    def _list_page(self, environ: Dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        store = self._store(environ)
        query = self._query(environ)
        parameters = dict(query)
        pattern = parameters.get("glob", "")
        where = parameters.get("where", "")
        conditions = _parse_where(where)
        for name, raw in query:
            if name in _LIST_PARAMETERS:
                continue
            try:
                conditions[name] = decode_metadata(raw)
            except ValueError:
                conditions[name] = raw
        try:
            page = max(1, int(parameters.get("page", "1") or "1"))
        except ValueError:
            raise _HTTPError("400 Bad Request", "page must be a number") from None
        keys = store.query_keys(**conditions)
        if pattern:
            keys = (key for key in keys if fnmatch.fnmatchcase(key, pattern))
        keys = sorted(keys)
        pages = max(1, math.ceil(len(keys) / self.page_size))
        page = min(page, pages)
        shown = keys[(page - 1) * self.page_size: page * self.page_size]

        extra = {name: raw for name, raw in query if name not in _LIST_PARAMETERS}
        rows = []
        for key in shown:
            try:
                value = store.get(key)
                size, modified = value.size, value.modified
            except KeyError:  # deleted meanwhile
                continue
            rows.append(
                "<tr><td><a href=\"{href}\"><code>{key}</code></a></td>"
                "<td class=\"size\">{size}</td><td>{modified}</td></tr>".format(
                    href=_escape(self._link(environ, "/_browse/key", key=key)), key=_escape(key),
                    size=_escape(_size_text(size)), modified=_escape(_date_text(modified))))
        if rows:
            table = ("<table id=\"keys\"><thead><tr><th>Key</th><th class=\"size\">Size</th>"
                     "<th>Modified</th></tr></thead><tbody>{}</tbody></table>").format("".join(rows))
        else:
            table = "<p id=\"no-keys\">No keys match.</p>"

        navigation = ["<nav class=\"pages\">{} key{} &middot; page {} of {}".format(
            len(keys), "" if len(keys) == 1 else "s", page, pages)]
        for label, target, rel in (("Previous", page - 1, "prev"), ("Next", page + 1, "next")):
            if 1 <= target <= pages:
                navigation.append(" &middot; <a rel=\"{}\" href=\"{}\">{}</a>".format(
                    rel, _escape(self._link(environ, "/_browse", glob=pattern, where=where, page=target,
                                            **extra)), label))
        navigation.append("</nav>")

        hidden = "".join("<input type=\"hidden\" name=\"{}\" value=\"{}\">".format(_escape(name), _escape(raw))
                         for name, raw in extra.items())
        search = (
            "<form method=\"get\" action=\"{action}\" id=\"filter\"><fieldset><legend>Filter</legend>"
            "<label>Glob <input name=\"glob\" value=\"{glob}\" placeholder=\"docs/*\"></label> "
            "<label>Metadata <input name=\"where\" value=\"{where}\" size=\"40\" "
            "placeholder=\"author=ann n:=3\"></label>{hidden} <button>Show</button>"
            "<p class=\"muted\">A glob matches whole keys; <code>*</code> also matches <code>/</code>. "
            "Metadata: <code>name=text</code> or <code>name:=json</code>.</p></fieldset></form>"
        ).format(action=_escape(self._link(environ, "/_browse")), glob=_escape(pattern),
                 where=_escape(where), hidden=hidden)
        body = search + "".join(navigation) + table
        if self._writable(environ):
            body += self._upload_form(environ, "")
        return self._page(environ, start_response, "Keys", body)

    def _upload_form(self, environ: Dict[str, Any], key: str, metadata: Optional[Dict[str, Any]] = None) -> str:
        token = self.csrf_token(self._user(environ) or "")
        legend = "Replace this key" if key else "Upload a key"
        return (
            "<form method=\"post\" enctype=\"multipart/form-data\" action=\"{action}\" id=\"upload\">"
            "<fieldset><legend>{legend}</legend>"
            "<input type=\"hidden\" name=\"csrf\" value=\"{token}\">"
            "<p><label>Key <input name=\"key\" value=\"{key}\" required size=\"50\"></label></p>"
            "<p><label>File <input type=\"file\" name=\"file\" required></label></p>"
            "<p><label>Metadata (a JSON object)<br><textarea name=\"metadata\" rows=\"3\" cols=\"60\">"
            "{metadata}</textarea></label></p><button>Upload</button></fieldset></form>"
        ).format(action=_escape(self._link(environ, "/_browse/upload")), legend=legend,
                 token=_escape(token), key=_escape(key),
                 metadata=_escape(json.dumps(to_json(metadata or {}), ensure_ascii=False, sort_keys=True)))

    def _key_from_query(self, environ: Dict[str, Any]) -> str:
        key = dict(self._query(environ)).get("key")
        if key is None:
            raise _HTTPError("400 Bad Request", "which key? (?key=...)")
        return key

    def _key_page(self, environ: Dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        store = self._store(environ)
        key = self._key_from_query(environ)
        value = store.get(key)
        metadata = value.metadata
        rows = "".join(
            "<tr><th scope=\"row\"><code>{}</code></th><td><code>{}</code></td></tr>".format(
                _escape(name), _escape(json.dumps(to_json(metadata[name]), ensure_ascii=False)))
            for name in sorted(metadata))
        if not rows:
            rows = "<tr><td colspan=\"2\" class=\"muted\">no metadata</td></tr>"
        body = (
            "<h2 id=\"key\"><code>{key}</code></h2>"
            "<table id=\"facts\"><tr><th scope=\"row\">Size</th><td>{size}</td></tr>"
            "<tr><th scope=\"row\">Created</th><td>{created}</td></tr>"
            "<tr><th scope=\"row\">Modified</th><td>{modified}</td></tr></table>"
            "<p><a id=\"download\" href=\"{download}\" download>Download</a></p>"
            "<h3>Metadata</h3><table id=\"metadata\">{rows}</table>"
        ).format(key=_escape(key), size=_escape(_size_text(value.size)),
                 created=_escape(_date_text(value.created)), modified=_escape(_date_text(value.modified)),
                 download=_escape(self._link(environ, "/_browse/download", key=key)), rows=rows)
        if self._writable(environ):
            token = self.csrf_token(self._user(environ) or "")
            body += (
                "<form method=\"post\" action=\"{action}\" id=\"delete\"><fieldset><legend>Delete</legend>"
                "<input type=\"hidden\" name=\"csrf\" value=\"{token}\">"
                "<input type=\"hidden\" name=\"key\" value=\"{key}\">"
                "<button>Delete this key</button></fieldset></form>"
            ).format(action=_escape(self._link(environ, "/_browse/delete")), token=_escape(token),
                     key=_escape(key))
            body += self._upload_form(environ, key, metadata)
        return self._page(environ, start_response, key, body)

    def _download(self, environ: Dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        store = self._store(environ)
        key = self._key_from_query(environ)
        value = store.get(key)
        name = key.rsplit("/", 1)[-1] or "data"
        fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name)
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Disposition", "attachment; filename=\"{}\"; filename*=UTF-8''{}".format(
                fallback, urllib.parse.quote(name, safe=""))),
        ] + _SECURITY_HEADERS
        if value.size is not None:
            headers.append(("Content-Length", str(value.size)))
        if environ.get("REQUEST_METHOD", "GET").upper() == "HEAD":
            start_response("200 OK", headers)
            return [b""]
        stream = value.data
        start_response("200 OK", headers)
        return _Stream(stream)

    def _read_form(self, environ: Dict[str, Any]) -> Tuple[Dict[str, str], Optional[Tuple[str, Any]]]:
        content_type = environ.get("CONTENT_TYPE", "")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise _HTTPError("400 Bad Request", "bad Content-Length") from None
        body = _Body(environ["wsgi.input"], length)
        kind, _, rest = content_type.partition(";")
        kind = kind.strip().lower()
        if kind == "application/x-www-form-urlencoded":
            if length > 65536:
                raise _HTTPError("413 Payload Too Large", "the form is too large")
            text = body.read(length).decode("utf-8", "replace")
            return dict(urllib.parse.parse_qsl(text, keep_blank_values=True)), None
        if kind == "multipart/form-data":
            boundary = _disposition_parameters(";" + rest).get("boundary", "")
            if not boundary or len(boundary) > 200:
                raise _HTTPError("400 Bad Request", "multipart form without a boundary")
            if length > self.max_upload + 1024 * 1024:
                raise _HTTPError("413 Payload Too Large", "the upload is larger than {} bytes".format(
                    self.max_upload))
            return _parse_multipart(body, boundary.encode("latin-1"), 65536, self.max_upload)
        raise _HTTPError("415 Unsupported Media Type", "send a form")

    def _upload(self, environ: Dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if not self._writable(environ):
            # Refuse before reading a possibly large body.
            self._check_write(environ, {})
        fields, upload = self._read_form(environ)
        try:
            self._check_write(environ, fields)
            key = fields.get("key", "")
            if not key:
                raise _HTTPError("400 Bad Request", "the key is empty")
            if upload is None:
                raise _HTTPError("400 Bad Request", "no file in the form")
            text = fields.get("metadata", "").strip() or "{}"
            try:
                metadata = decode_metadata(text)
            except ValueError as error:
                raise _HTTPError("400 Bad Request", "the metadata is not JSON: {}".format(error)) from None
            if not isinstance(metadata, dict):
                raise _HTTPError("400 Bad Request", "the metadata must be a JSON object")
            self._store(environ).set(key, (upload[1], metadata))
        finally:
            if upload is not None:
                upload[1].close()
        return self._redirect(environ, start_response, "/_browse/key", key=key)

    def _delete(self, environ: Dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if not self._writable(environ):
            self._check_write(environ, {})
        fields, upload = self._read_form(environ)
        if upload is not None:
            upload[1].close()
        self._check_write(environ, fields)
        key = fields.get("key", "")
        self._store(environ).delete(key)
        return self._redirect(environ, start_response, "/_browse")
