"""The key-value storage API and its stores.

:func:`open_store` opens a store from a URL, which is what the ``encore``
command uses.
"""
from __future__ import annotations

import os
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict

__all__ = ["open_store"]


def _local_path(parsed: urllib.parse.ParseResult) -> str:
    path = urllib.request.url2pathname(parsed.netloc + parsed.path)
    if path.startswith(("/./", "/../")):
        path = path[1:]  # sqlite:///./encore.db names a relative path
    return path or "."


def sqlite_location(parsed: urllib.parse.ParseResult) -> str:
    """Return the database location named by a parsed ``sqlite:`` URL.

    Parameters
    ----------
    parsed : urllib.parse.ParseResult
        The parsed URL.

    Returns
    -------
    str
        A file path, or ``':memory:'``.
    """
    location = _local_path(parsed)
    if location in (".", "/:memory:", ":memory:"):
        return ":memory:"
    return location


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false, got {!r}".format(text))


def _index_mode(text: str) -> Any:
    return None if text.lower() in ("", "none", "off", "false", "0") else text


def _name_list(text: str) -> list:
    return [name for name in text.split(",") if name]


#: The URL parameters each scheme understands, and how to read each value.
_URL_PARAMETERS: Dict[str, Dict[str, Callable[[str], Any]]] = {
    "sqlite": {"table": str, "index": _index_mode, "index_columns": _name_list},
    "file": {"magic_fname": str},
    "memory": {},
    "http": {},
    "https": {},
    "static+http": {"data_path": str, "query_path": str, "poll": float},
    "static+https": {"data_path": str, "query_path": str, "poll": float},
    "static+file": {"data_path": str, "query_path": str, "poll": float},
    "s3": {"endpoint_url": str, "region": str, "create_bucket": _boolean},
}


def _url_options(url: str, parsed: urllib.parse.ParseResult, scheme: str) -> dict:
    """Read a store URL's ``?name=value`` parameters; refuse unknown ones."""
    known = _URL_PARAMETERS.get(scheme, {})
    options = {}
    if parsed.fragment:
        raise ValueError("store URLs take no #fragment: {!r}".format(url))
    for name, text in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True):
        if name not in known:
            accepted = ", ".join(sorted(known)) or "none"
            raise ValueError("unknown parameter {!r} in {!r} (parameters of {}: URLs: {})".format(
                name, url, scheme, accepted))
        if name in options:
            raise ValueError("parameter {!r} given twice in {!r}".format(name, url))
        try:
            options[name] = known[name](text)
        except ValueError as error:
            raise ValueError("bad value for {!r} in {!r}: {}".format(name, url, error)) from None
    return options


def open_store(url: str, **options: Any) -> Any:
    """Open (and connect) a store given by a URL.

    Parameters
    ----------
    url : str
        One of:

        * ``sqlite:///path/to/file.db`` -- a
          :class:`~encore.storage.sqlite_store.SqliteStore` (``sqlite://``
          with nothing after it, or ``sqlite:///:memory:``, is an in-memory
          database; ``sqlite:///./relative.db`` and ``sqlite://relative.db``
          are relative to the current directory);
        * ``file:///path/to/directory`` -- a
          :class:`~encore.storage.filesystem_store.FileSystemStore`; pass
          ``create=True`` to initialise a new directory;
        * ``memory://`` -- a
          :class:`~encore.storage.dict_memory_store.DictMemoryStore`;
        * ``http://host:port/base`` (or ``https``) -- a
          :class:`~encore.storage.dynamic_url_store.DynamicURLStore` with
          ``base`` as its base URL and ``base/query`` as its query URL, as
          served by ``encore serve`` (needs the ``http`` extra: ``pip install ".[http]"`` from the checkout);
        * ``static+http://host/root`` (or ``static+https``,
          ``static+file``) -- a read-only
          :class:`~encore.storage.static_url_store.StaticURLStore` over
          ``root/index.json`` and ``root/data/<key>`` (``data_path`` and
          ``query_path`` options change these);
        * ``s3://bucket/prefix?endpoint_url=http://host:port`` -- an
          :class:`~encore.storage.s3_store.S3Store` (needs the ``s3``
          extra: ``pip install ".[s3]"`` from the checkout); credentials come from the environment
          (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``); the query may
          also give ``region`` and ``create_bucket=true``.

        Parameters in the URL's query string are passed to the store's
        constructor: ``table``, ``index`` and ``index_columns`` (comma
        separated) for ``sqlite:``, ``magic_fname`` for ``file:``,
        ``data_path``, ``query_path`` and ``poll`` for ``static+...:``,
        ``endpoint_url``, ``region`` and ``create_bucket`` for ``s3:``.
        Any other parameter is refused, as is a ``#fragment``.
    **options
        Passed to the store's constructor (``event_manager``, ``table``,
        ``index`` ...), except ``create``.  An option also given as a URL
        parameter is refused.

    Returns
    -------
    AbstractStore
        The connected store.

    Raises
    ------
    ValueError
        If the URL's scheme is not supported, or it has a parameter the
        store does not take.
    """
    if not isinstance(url, str):
        raise TypeError("store URLs are str, not {}".format(type(url).__name__))
    parsed = urllib.parse.urlparse(url)
    scheme = parsed.scheme.lower()
    create = options.pop("create", False)
    if scheme in _URL_PARAMETERS:
        from_url = _url_options(url, parsed, scheme)
        both = sorted(set(from_url) & set(options))
        if both:
            raise ValueError("{} given both in the URL and as an option".format(", ".join(both)))
        options.update(from_url)
        if parsed.query or parsed.fragment:
            url = url.split("#", 1)[0].split("?", 1)[0]
            parsed = urllib.parse.urlparse(url)
    store: Any
    if scheme == "sqlite":
        from .sqlite_store import SqliteStore

        store = SqliteStore(sqlite_location(parsed), **options)
    elif scheme == "file":
        from .filesystem_store import FileSystemStore, init_shared_store

        path = _local_path(parsed)
        magic = options.get("magic_fname", ".FSStore")
        if create and not os.path.isfile(os.path.join(path, magic)):
            init_shared_store(path, magic)
        store = FileSystemStore(path, **options)
    elif scheme == "memory":
        from .dict_memory_store import DictMemoryStore

        store = DictMemoryStore(**options)
    elif scheme in ("http", "https"):
        from .dynamic_url_store import DynamicURLStore

        base = url.rstrip("/")
        store = DynamicURLStore(base, base + "/query", **options)
    elif scheme in ("static+http", "static+https", "static+file"):
        from .static_url_store import StaticURLStore

        root = url[len("static+"):]
        if not root.endswith("/"):
            root += "/"
        data_path = options.pop("data_path", "data/")
        query_path = options.pop("query_path", "index.json")
        store = StaticURLStore(root, data_path, query_path, **options)
    elif scheme == "s3":
        from .s3_store import S3Store

        if create:
            options.setdefault("create_bucket", True)
        prefix = urllib.parse.unquote(parsed.path).strip("/")
        store = S3Store(parsed.netloc, prefix, **options)
    else:
        raise ValueError(
            "unsupported store URL {!r}: use sqlite:///path.db, file:///directory, "
            "memory://, http(s)://server, static+http(s)://server/root or "
            "s3://bucket/prefix".format(url)
        )
    store.connect()
    return store
