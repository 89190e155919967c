"""The key-value storage API and its stores.

:func:`open_store` opens a store from a URL, which is what the ``encore``
command uses.
"""
from __future__ import annotations

import os
import urllib.parse
import urllib.request
from typing import Any

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
          served by ``encore serve`` (needs the ``encore[http]`` extra);
        * ``static+http://host/root`` (or ``static+https``,
          ``static+file``) -- a read-only
          :class:`~encore.storage.static_url_store.StaticURLStore` over
          ``root/index.json`` and ``root/data/<key>`` (``data_path`` and
          ``query_path`` options change these).
    **options
        Passed to the store's constructor (``event_manager``, ``table``,
        ``index`` ...), except ``create``.

    Returns
    -------
    AbstractStore
        The connected store.

    Raises
    ------
    ValueError
        If the URL's scheme is not supported.
    """
    if not isinstance(url, str):
        raise TypeError("store URLs are str, not {}".format(type(url).__name__))
    parsed = urllib.parse.urlparse(url)
    scheme = parsed.scheme.lower()
    create = options.pop("create", False)
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
    else:
        raise ValueError(
            "unsupported store URL {!r}: use sqlite:///path.db, file:///directory, "
            "memory://, http(s)://server or static+http(s)://server/root".format(url)
        )
    store.connect()
    return store
