"""A read-only store served by a static web (or FTP, or file) server.

:class:`StaticURLStore` reads its data from URLs below a root URL and all
its metadata from one JSON file, the *index*, which it downloads when it
connects and then polls for changes.  A static server needs nothing but
files laid out like::

    base_directory/
        index.json      {"key1": {...metadata...}, "key2": {...}, ...}
        data/
            key1
            key2
            ...

served, for example, with ``python -m http.server``; the store is then
``StaticURLStore('http://host:port/', 'data/', 'index.json')``.

Queries, ``exists`` and metadata reads are answered from the cached index
without any request; only data is fetched, with :mod:`urllib.request`.
"""
from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
import weakref
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple

from .abstract_store import (
    AbstractReadOnlyStore,
    AuthorizationError,
    StoreError,
    copy_metadata,
    select_metadata,
)
from .events import StoreDeleteEvent, StoreSetEvent, StoreUpdateEvent
from .url_value import URLValue

logger = logging.getLogger(__name__)

__all__ = ["StaticURLStore", "basic_auth_factory"]


class _AnyRealmPasswordManager(urllib.request.HTTPPasswordMgrWithPriorAuth):
    """Credentials for a URI, offered whatever realm the server names and
    sent without waiting for a challenge."""

    def add_password(self, realm: Optional[str], uri: Any, user: str, passwd: str,
                     is_authenticated: bool = True) -> None:
        super().add_password(realm, uri, user, passwd, is_authenticated)
        if realm is not None:
            super().add_password(None, uri, user, passwd, is_authenticated)


def basic_auth_factory() -> urllib.request.HTTPBasicAuthHandler:
    """Return a new handler for HTTP basic authentication.

    The default ``auth_handler_factory`` of :meth:`StaticURLStore.connect`.
    Its ``add_password(realm, uri, user, passwd)`` registers credentials
    that are sent with every request below ``uri`` (without waiting for a
    ``401`` challenge) and answer a challenge for any realm.

    Returns
    -------
    urllib.request.HTTPBasicAuthHandler
        The handler, with an empty password manager.
    """
    return urllib.request.HTTPBasicAuthHandler(_AnyRealmPasswordManager())


def _map_http_errors(key: str, open_url: Callable[[], Any]) -> Any:
    try:
        return open_url()
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 404:
            raise KeyError(key) from None
        if error.code in (401, 403):
            raise AuthorizationError(key) from None
        raise


class _StaticValue(URLValue):
    """A URLValue whose HTTP errors become KeyError / AuthorizationError."""

    def __init__(self, key: str, url: str, metadata: Dict[str, Any], opener: Any) -> None:
        super().__init__(url, metadata, opener)
        self._key = key

    def open(self) -> Any:
        return _map_http_errors(self._key, super().open)

    def range(self, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        return _map_http_errors(self._key, lambda: URLValue.range(self, start, end))


def _poll(store_ref: "weakref.ref[StaticURLStore]", stop: threading.Event, interval: float) -> None:
    """Body of the polling thread; holds the store only weakly."""
    while not stop.wait(interval):
        store = store_ref()
        if store is None:
            return
        try:
            store.update_index()
        except Exception:
            logger.warning("Polling the index of %r failed", store, exc_info=True)
        del store


class StaticURLStore(AbstractReadOnlyStore):
    """A read-only store whose data and index are static URLs.

    The data of a key is at ``root_url + data_path + key`` (the key
    percent-encoded, ``/`` kept); the metadata of every key is in the JSON
    object at ``root_url + query_path`` (the index), mapping each key to its
    metadata.  Any URL :mod:`urllib.request` opens works (``http``,
    ``https``, ``ftp``, ``file``).

    The index is downloaded by :meth:`connect` and then every ``poll``
    seconds by a background thread (see :meth:`update_index`), so the store
    is always consistent but may lag behind the server.

    Parameters
    ----------
    root_url : str
        The URL everything is served from, usually ending with ``/``.
    data_path : str
        The prefix (relative to ``root_url``) of the data URLs, such as
        ``'data/'``.
    query_path : str
        The path (relative to ``root_url``) of the index, such as
        ``'index.json'``.
    poll : float, optional
        Seconds between two downloads of the index (default 300); ``0`` or
        less: never poll (call :meth:`update_index` yourself).
    event_manager : BaseEventManager, optional
        Where the store emits its events (default: the package-wide
        manager).

    Notes
    -----
    The manual's example ``StaticURLStore(event_manager, root_url,
    data_path, query_path)`` is accepted too: an event manager passed
    first is recognised and the other arguments shift.

    Events
    ------
    StoreSetEvent, StoreUpdateEvent, StoreDeleteEvent
        When a new index adds, changes or removes keys.
    """

    def __init__(self, root_url: Any, data_path: Any, query_path: Any, poll: Any = 300,
                 event_manager: Any = None) -> None:
        if not isinstance(root_url, str) and hasattr(root_url, "emit"):
            # Encore's manual passed the event manager first: shift.
            manager = root_url
            root_url, data_path, query_path = data_path, query_path, poll
            if event_manager is None or hasattr(event_manager, "emit"):
                poll = 300
            else:
                poll = event_manager
            event_manager = manager
        super().__init__(event_manager=event_manager)
        self.root_url = root_url
        self.data_path = data_path
        self.query_path = query_path
        self.poll = poll
        self._opener: Any = None
        self._index: Dict[str, Dict[str, Any]] = {}
        self._index_lock = threading.Lock()
        self._stop = threading.Event()
        self._poll_thread: Optional[threading.Thread] = None

    # -- connection ----------------------------------------------------------

    def connect(self, credentials: Optional[Dict[str, Any]] = None, proxy_handler: Any = None,
                auth_handler_factory: Optional[Callable[[], Any]] = None) -> None:
        """Build the URL opener, download the index and start polling.

        Parameters
        ----------
        credentials : dict, optional
            For HTTP authentication: ``'username'`` and ``'password'`` (or
            ``'user'`` and ``'passwd'``), and optionally ``'uri'`` (default
            ``root_url``) and ``'realm'`` (default ``'encore.storage'``).
        proxy_handler : urllib.request.ProxyHandler, optional
            The proxy handler to use; by default proxies come from the
            environment.
        auth_handler_factory : callable, optional
            Called with no argument, returns an authentication handler
            whose ``add_password`` receives the credentials as keyword
            arguments (``realm``, ``uri``, ``user``, ``passwd``); default
            :func:`basic_auth_factory`.

        Raises
        ------
        urllib.error.URLError
            If the index cannot be downloaded.
        AuthorizationError
            If the server refuses the index (``401``/``403``).
        StoreError
            If the index is not a JSON object of metadata objects.
        """
        if self._opener is not None:
            self.disconnect()
        handlers = []
        if proxy_handler is not None:
            handlers.append(proxy_handler)
        if credentials:
            arguments = {"uri": self.root_url, "realm": "encore.storage"}
            for name, value in credentials.items():
                name = {"username": "user", "password": "passwd"}.get(name, name)
                arguments[name] = value
            factory: Callable[[], Any] = auth_handler_factory if auth_handler_factory is not None else basic_auth_factory
            handler = factory()
            handler.add_password(**arguments)
            handlers.append(handler)
        opener = urllib.request.build_opener(*handlers)
        index = self._fetch_index(opener)
        with self._index_lock:
            self._index = index
        self._opener = opener
        self._connected = True
        self._stop = threading.Event()
        if self.poll and self.poll > 0:
            thread = threading.Thread(
                target=_poll, args=(weakref.ref(self), self._stop, float(self.poll)),
                name="StaticURLStore poll {}".format(self.root_url), daemon=True)
            self._poll_thread = thread
            thread.start()

    def disconnect(self) -> None:
        """Stop polling and drop the opener; returns without waiting a poll
        interval."""
        self._stop.set()
        thread, self._poll_thread = self._poll_thread, None
        if thread is not None and thread is not threading.current_thread():
            # Only an index download in progress can delay the end.
            thread.join(5.0)
        self._opener = None
        self._connected = False

    def is_connected(self) -> bool:
        return self._opener is not None

    # -- the index -----------------------------------------------------------

    def _fetch_index(self, opener: Any) -> Dict[str, Dict[str, Any]]:
        url = self.root_url + self.query_path
        response = _map_http_errors(self.query_path, lambda: opener.open(url))
        with response:
            raw = response.read()
        try:
            index = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise StoreError("the index at {} is not JSON: {}".format(url, error)) from None
        if not isinstance(index, dict) or not all(isinstance(metadata, dict) for metadata in index.values()):
            raise StoreError("the index at {} is not a JSON object of metadata objects".format(url))
        return index

    def update_index(self) -> None:
        """Download the index and emit events for what changed.

        Normally called by the polling thread; may be called at any time.
        The cached index is replaced atomically; the events are emitted
        afterwards, with no lock held.

        Raises
        ------
        StoreError
            If the store is not connected, or the index is malformed.

        Events
        ------
        StoreSetEvent
            For each key added (with its metadata).
        StoreUpdateEvent
            For each key whose metadata changed (with the new metadata).
        StoreDeleteEvent
            For each key removed (with its last metadata).
        """
        opener = self._opener
        if opener is None:
            raise StoreError("the store is not connected")
        index = self._fetch_index(opener)
        with self._index_lock:
            old, self._index = self._index, index
        if self._stop.is_set() and self._opener is None:
            return  # disconnected meanwhile: nobody expects news
        for key, metadata in old.items():
            if key not in index:
                self._emit_modification(StoreDeleteEvent, key, copy_metadata(metadata))
        for key, metadata in index.items():
            previous = old.get(key)
            if previous is None:
                self._emit_modification(StoreSetEvent, key, copy_metadata(metadata))
            elif previous != metadata:
                self._emit_modification(StoreUpdateEvent, key, copy_metadata(metadata))

    def _metadata(self, key: str) -> Dict[str, Any]:
        with self._index_lock:
            return self._index[key]

    def _snapshot(self) -> list:
        with self._index_lock:
            return list(self._index.items())

    def _url(self, key: str) -> str:
        return self.root_url + urllib.parse.quote(self.data_path + key)

    def _require_opener(self) -> Any:
        opener = self._opener
        if opener is None:
            raise StoreError("the store is not connected")
        return opener

    # -- reading -------------------------------------------------------------

    def get(self, key: str) -> URLValue:
        """Return the value of a key; its data is fetched when read.

        Returns
        -------
        URLValue
            With the metadata of the cached index.

        Raises
        ------
        KeyError
            If the key is not in the index.
        """
        metadata = self._metadata(key)
        return _StaticValue(key, self._url(key), metadata, self._require_opener())

    def get_data(self, key: str) -> Any:
        """Return a stream of the data of a key (one request).

        Returns
        -------
        file-like
            The response, read as it arrives; the caller closes it.

        Raises
        ------
        KeyError
            If the key is not in the index or the server does not have it.
        AuthorizationError
            If the server refuses access.
        """
        self._metadata(key)
        opener = self._require_opener()
        return _map_http_errors(key, lambda: opener.open(self._url(key)))

    def get_metadata(self, key: str, select: Optional[Iterable[str]] = None) -> Dict[str, Any]:
        """Return the metadata of a key, from the cached index.

        Parameters
        ----------
        key : str
            The key.
        select : iterable of str, optional
            The names wanted; ``None`` for all.

        Raises
        ------
        KeyError
            If the key is not in the index.
        """
        return select_metadata(self._metadata(key), select)

    def exists(self, key: str) -> bool:
        """Whether the cached index has a key.

        Returns
        -------
        bool
            ``True`` if the key is in the index.
        """
        with self._index_lock:
            return key in self._index

    def query(self, select: Optional[Iterable[str]] = None, **kwargs: Any) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """Find the keys whose metadata match, from the cached index.

        The index is read when this is called; the iteration works on that
        snapshot and holds no lock, so the loop body may use the store.

        Parameters
        ----------
        select : iterable of str, optional
            The metadata names to return (``None``: all).
        **kwargs
            Metadata names and the values they must equal.

        Returns
        -------
        iterator of (str, dict)
            The matching keys with (copies of) their metadata.
        """
        items = self._snapshot()
        if select is not None:
            select = list(select)
        criteria = list(kwargs.items())

        def generate() -> Iterator[Tuple[str, Dict[str, Any]]]:
            for key, metadata in items:
                if all(metadata.get(name) == value for name, value in criteria):
                    yield key, select_metadata(metadata, select)
        return generate()

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Find the keys whose metadata match, from a snapshot of the index.

        Parameters
        ----------
        **kwargs
            Metadata names and the values they must equal.
        """
        items = self._snapshot()
        criteria = list(kwargs.items())
        return (key for key, metadata in items
                if all(metadata.get(name) == value for name, value in criteria))
