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

The index is read with :func:`encore.storage._metadata_codec.decode_metadata`:
metadata values beyond JSON (``datetime``, ``Decimal``, ``bytes``, sets,
``UUID``...) written in their tagged form, as
:func:`encore.storage.publish.publish` writes them, come back as
themselves; a plain JSON index (as Encore 0.8 tools wrote) reads unchanged.

Queries, ``exists`` and metadata reads are answered from the cached index
without any request; only data is fetched, with :mod:`urllib.request`.
"""
from __future__ import annotations

import email.message
import email.utils
import errno
import functools
import http.client
import logging
import mimetypes
import os
import socket
import stat
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import urllib.response
import weakref
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple, cast

from .abstract_store import (
    AbstractReadOnlyStore,
    AuthorizationError,
    StoreError,
    copy_metadata,
    select_metadata,
)
from ._metadata_codec import decode_metadata
from .events import StoreDeleteEvent, StoreSetEvent, StoreUpdateEvent
from .url_value import DEFAULT_TIMEOUT, HTTPStatusError, URLValue, open_url, translate_network_error

logger = logging.getLogger(__name__)

__all__ = ["StaticURLStore", "basic_auth_factory", "KeepAliveHTTPHandler"]


class _AnyRealmPasswordManager(urllib.request.HTTPPasswordMgrWithPriorAuth):
    """Credentials for a URI, offered whatever realm the server names and
    sent without waiting for a challenge."""

    def add_password(self, realm: Optional[str], uri: Any, user: str, passwd: str,
                     is_authenticated: bool = True) -> None:
        super().add_password(realm, uri, user, passwd, is_authenticated)
        if realm is not None:
            super().add_password(None, uri, user, passwd, is_authenticated)


def basic_auth_factory(**kwargs: Any) -> urllib.request.HTTPBasicAuthHandler:
    """Return a new handler for HTTP basic authentication.

    The default ``auth_handler_factory`` of :meth:`StaticURLStore.connect`.
    Its ``add_password(realm, uri, user, passwd)`` registers credentials
    that are sent with every request below ``uri`` (without waiting for a
    ``401`` challenge) and answer a challenge for any realm.

    Parameters
    ----------
    **kwargs
        As in Encore, credentials to register at once: the arguments of
        ``add_password`` (``realm``, ``uri``, ``user``, ``passwd``); none by
        default.

    Returns
    -------
    urllib.request.HTTPBasicAuthHandler
        The handler (Encore 0.8 returned ``None``).

    Raises
    ------
    TypeError
        If ``kwargs`` are not arguments of ``add_password``.
    """
    handler: Any = urllib.request.HTTPBasicAuthHandler(_AnyRealmPasswordManager())
    if kwargs:
        # cast: the stubs type add_password as a positional-only callable.
        cast(Any, handler).add_password(**kwargs)
    return handler


class KeepAliveHTTPHandler(urllib.request.HTTPHandler):
    """An ``http:`` handler for :mod:`urllib.request` that reuses connections.

    :mod:`urllib.request` opens a connection per request and asks the
    server to close it.  This handler keeps up to ``size`` idle connections
    per host and reuses them: a connection goes back to the pool when its
    response body has been read to the end (through a
    :class:`~encore.storage.url_value.ResponseStream`), and is closed when
    a body is abandoned half-read or the server ends the connection.  A
    pooled connection the server has closed meanwhile is replaced once,
    transparently.

    Parameters
    ----------
    size : int, optional
        The idle connections kept per host (default 4).
    """

    def __init__(self, size: int = 4) -> None:
        super().__init__()
        self._size = size
        self._idle: Dict[Tuple[str, Any], list] = {}
        self._lock = threading.Lock()

    def _take(self, key: Tuple[str, Any]) -> Optional[http.client.HTTPConnection]:
        with self._lock:
            connections = self._idle.get(key)
            return connections.pop() if connections else None

    def _give_back(self, key: Tuple[str, Any], connection: http.client.HTTPConnection) -> None:
        with self._lock:
            connections = self._idle.setdefault(key, [])
            if len(connections) < self._size:
                connections.append(connection)
                return
        connection.close()

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def http_open(self, request: urllib.request.Request) -> http.client.HTTPResponse:
        """Send a request over a pooled (or new) connection.

        Parameters
        ----------
        request : urllib.request.Request
            The request, prepared by the opener's other handlers.

        Returns
        -------
        http.client.HTTPResponse
            With ``url`` and ``msg`` set as :mod:`urllib` expects.
        """
        host = request.host
        if not host:
            raise urllib.error.URLError("no host given")
        key = (host, request.timeout)
        headers = dict(request.unredirected_hdrs)
        headers.update({name: value for name, value in request.headers.items() if name not in headers})
        headers = {name.title(): value for name, value in headers.items()}
        headers["Connection"] = "keep-alive"
        connection = self._take(key)
        while True:
            reused = connection is not None
            if connection is None:
                connection = http.client.HTTPConnection(host, timeout=request.timeout)
            try:
                connection.request(request.get_method(), request.selector, request.data, headers)
                response = connection.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                connection.close()
                if reused:  # the server closed it while it waited in the pool
                    connection = None
                    continue
                raise urllib.error.URLError(error) from None
            except OSError as error:
                connection.close()
                raise urllib.error.URLError(error) from None
            break
        # What urllib's own handler sets, and two attributes of ours that
        # checked_response() looks for (none of them is in the stubs).
        response.url = request.get_full_url()
        # urllib's responses carry these; http.client's are typed without.
        setattr(response, "msg", response.reason)
        if response.will_close:
            connection.close()  # the response keeps its own reference to the socket
        else:
            setattr(response, "encore_release", functools.partial(self._give_back, key, connection))
            setattr(response, "encore_discard", connection.close)
        return response


class _MissingFile(KeyError):
    """A ``file:`` data URL with no regular file behind it (or refused):
    the store turns it into ``KeyError(key)``."""


#: Times a data file replaced between its check and its opening is checked
#: and opened again before giving up.
_OPEN_ATTEMPTS = 5

_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))


def _descriptor_path(descriptor: int) -> Optional[str]:
    """The path the kernel knows an open file by, or ``None`` where the
    platform cannot say (Linux: ``/proc/self/fd``; macOS: ``F_GETPATH``)."""
    if sys.platform.startswith("linux"):
        try:
            return os.readlink("/proc/self/fd/{}".format(descriptor))
        except OSError:
            return None
    if sys.platform == "darwin":
        try:
            import fcntl
            raw = fcntl.fcntl(descriptor, getattr(fcntl, "F_GETPATH"), bytes(1024))
        except (ImportError, AttributeError, OSError):
            return None
        return os.fsdecode(raw.split(b"\0", 1)[0])
    return None


def _data_directory(data_url: str) -> str:
    """The local directory of a ``file:`` data URL prefix: the prefix itself
    when it ends with ``/``, else the directory it names files in."""
    if not data_url.endswith("/"):
        data_url = urllib.parse.urljoin(data_url, ".")
    return urllib.request.url2pathname(urllib.parse.urlsplit(data_url).path)


def _inside(path: str, root: str) -> bool:
    """Whether a resolved path is strictly below a resolved directory."""
    try:
        return os.path.commonpath([root, path]) == root and path != root
    except ValueError:  # different drives, or relative against absolute
        return False


class _FileHandler(urllib.request.FileHandler):
    """The stores' ``file:`` handler: open first, then describe.

    :mod:`urllib`'s own handler stats a path and opens it in a second step,
    so a file replaced in between is announced with the old size (a false
    truncation) and a file removed in between escapes as a raw
    :class:`FileNotFoundError`.  This one opens the file and takes its
    length and date from the open descriptor (:func:`os.fstat`).

    A URL below ``data_url`` (the store's data directory) is confined to
    that directory: the path is resolved and checked, the checked file is
    opened, and the opened descriptor must be that very file (same device
    and inode; and, where the platform tells an open file's path, a path
    inside the directory), so no symbolic link swapped in between the check
    and the opening can lead outside.  A missing, refused or non-regular
    data file raises :class:`_MissingFile`.  Other ``file:`` URLs (the
    index) are opened plainly and fail as :mod:`urllib` fails
    (:class:`urllib.error.URLError`).

    Parameters
    ----------
    data_url : str
        The URL prefix of the data files (``root_url + data_path``).
    """

    def __init__(self, data_url: str) -> None:
        super().__init__()
        self.data_url = data_url
        self.data_root = _data_directory(data_url)

    def open_local_file(self, req: urllib.request.Request) -> Any:
        """Open a local ``file:`` URL (called by ``file_open``).

        Parameters
        ----------
        req : urllib.request.Request
            The request.

        Returns
        -------
        urllib.response.addinfourl
            The open file with ``Content-type``, ``Content-length`` and
            ``Last-modified`` headers describing the opened file.

        Raises
        ------
        _MissingFile
            For a data URL without a regular file inside the data
            directory.
        urllib.error.URLError
            For a remote host, or when another file cannot be opened.
        """
        host = req.host
        if host and not self._is_local(host):
            raise urllib.error.URLError("file not on local host")
        selector = req.selector
        path = urllib.request.url2pathname(selector)
        if req.full_url.startswith(self.data_url):
            stream = self._open_confined(path, req.full_url)
        else:
            try:
                stream = open(path, "rb")
            except OSError as error:
                raise urllib.error.URLError(error) from None
        try:
            status = os.fstat(stream.fileno())
            kind = mimetypes.guess_type(selector)[0] or "text/plain"
            headers = email.message.Message()
            headers["Content-type"] = kind
            headers["Content-length"] = str(status.st_size)
            headers["Last-modified"] = email.utils.formatdate(status.st_mtime, usegmt=True)
        except BaseException:
            stream.close()
            raise
        origin = "file://" + (host or "") + selector
        return urllib.response.addinfourl(stream, headers, origin)

    def _is_local(self, host: str) -> bool:
        name, _, port = host.partition(":")
        if name.lower() == "localhost" and not port:
            return True
        if port:
            return False
        try:
            return socket.gethostbyname(name) in self.get_names()
        except OSError:
            return False

    def _open_confined(self, path: str, url: str) -> Any:
        """Open a data file, checked to be a regular file inside the data
        directory, as a binary stream."""
        for _ in range(_OPEN_ATTEMPTS):
            root = os.path.realpath(self.data_root)
            real = os.path.realpath(path)
            if not _inside(real, root):
                logger.warning("Refusing %s: its file is outside the store's directory", url)
                raise _MissingFile(url)
            try:
                checked = os.stat(real)
            except (FileNotFoundError, NotADirectoryError):
                raise _MissingFile(url) from None
            if not stat.S_ISREG(checked.st_mode):
                raise _MissingFile(url)
            try:
                descriptor = os.open(real, _OPEN_FLAGS)
            except OSError as error:
                if error.errno in (errno.ENOENT, errno.ENOTDIR):
                    raise _MissingFile(url) from None
                if error.errno == errno.ELOOP:
                    continue  # a symbolic link took the file's place: check again
                raise urllib.error.URLError(error) from None
            keep = False
            try:
                opened = os.fstat(descriptor)
                if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino) \
                        or not stat.S_ISREG(opened.st_mode):
                    continue  # replaced between the check and the opening: check again
                where = _descriptor_path(descriptor)
                if where is not None:
                    if where.endswith(" (deleted)"):  # Linux: removed since it was opened
                        where = where[:-len(" (deleted)")]
                    if not _inside(where, root):
                        logger.warning("Refusing %s: the file opened is outside the store's directory",
                                       url)
                        raise _MissingFile(url)
                stream = os.fdopen(descriptor, "rb")
                keep = True
                return stream
            finally:
                if not keep:
                    os.close(descriptor)
        raise ConnectionError("{} kept changing while it was opened ({} times)".format(url, _OPEN_ATTEMPTS))


def _map_http_errors(key: str, opening: Callable[[], Any]) -> Any:
    """Open a URL, turning failures into the stores' error vocabulary."""
    try:
        return opening()
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 404:
            raise KeyError(key) from None
        if error.code in (401, 403):
            raise AuthorizationError(key) from None
        raise HTTPStatusError(error.code, error.url or str(key), str(error.reason or "")) from None
    except HTTPStatusError as error:
        if error.status == 404:
            raise KeyError(key) from None
        if error.status in (401, 403):
            raise AuthorizationError(key) from None
        raise
    except _MissingFile:
        raise KeyError(key) from None
    except (KeyError, AuthorizationError):
        raise
    except Exception as error:
        translated = translate_network_error(error, str(key))
        if translated is error:
            raise
        raise translated from None


class _StaticValue(URLValue):
    """A URLValue whose HTTP errors become KeyError / AuthorizationError."""

    def __init__(self, key: str, url: str, metadata: Dict[str, Any], opener: Any,
                 timeout: Optional[float], retries: int) -> None:
        super().__init__(url, metadata, opener, timeout, retries)
        self._key = key

    def open(self) -> Any:
        return _map_http_errors(self._key, super().open)

    def range(self, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        return _map_http_errors(self._key, lambda: URLValue.range(self, start, end))


class _PollState(object):
    """Shared by a polling thread and ``disconnect``: whether a download is
    under way, decided under one lock with the stop request."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.fetching = False


def _poll(store_ref: "weakref.ref[StaticURLStore]", state: _PollState, interval: float) -> None:
    """Body of the polling thread; holds the store only weakly."""
    while not state.stop.wait(interval):
        store = store_ref()
        if store is None:
            return
        with state.lock:
            if state.stop.is_set():
                return
            state.fetching = True
        try:
            store.update_index()
        except Exception:
            logger.warning("Polling the index of %r failed", store, exc_info=True)
        finally:
            with state.lock:
                state.fetching = False
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
    timeout : float or None, optional
        Seconds to wait for a connection and for each read (default 30).
        A silent server raises :class:`TimeoutError`; a body shorter than
        its ``Content-Length`` raises
        :class:`~encore.storage.url_value.IncompleteBodyError` on every read
        path.
    retries : int, optional
        Times a download failing on a connection error or a ``502``,
        ``503`` or ``504`` answer is retried, with exponential backoff
        (default 3; ``0``: never).

    Notes
    -----
    Over ``file:`` URLs, a key whose data path would leave the directory
    of ``root_url + data_path`` (``..`` segments, symbolic links) is
    reported missing (:class:`KeyError`), whatever the index says.  A data
    file is opened first and then described (its size and date come from
    the open file), so a file that ``publish`` replaces meanwhile reads
    whole, old or new, and one it removes is a :class:`KeyError`.  The
    file opened must be the file checked to be inside the directory (and,
    on Linux and macOS, the open file's own path must be inside): a
    symbolic link swapped in between cannot lead outside.  Data paths that
    are not regular files (directories, named pipes) are missing keys.

    The manual's example ``StaticURLStore(event_manager, root_url,
    data_path, query_path)`` is accepted too: an event manager passed
    first is recognised and the other arguments shift.

    Events
    ------
    StoreSetEvent, StoreUpdateEvent, StoreDeleteEvent
        When a new index adds, changes or removes keys.
    """

    def __init__(self, root_url: Any, data_path: Any, query_path: Any, poll: Any = 300,
                 event_manager: Any = None, timeout: Optional[float] = DEFAULT_TIMEOUT,
                 retries: int = 3) -> None:
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
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds or None")
        self.timeout = timeout
        if not isinstance(retries, int) or retries < 0:
            raise ValueError("retries must be an int >= 0")
        self.retries = retries
        self._opener: Any = None
        self._keep_alive: Optional[KeepAliveHTTPHandler] = None
        self._index: Dict[str, Dict[str, Any]] = {}
        self._index_lock = threading.Lock()
        self._poll_state = _PollState()
        self._stop = self._poll_state.stop
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
        ConnectionError, TimeoutError, HTTPStatusError
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
        self._keep_alive = KeepAliveHTTPHandler()
        handlers.append(self._keep_alive)
        handlers.append(_FileHandler(self.root_url + urllib.parse.quote(self.data_path)))
        opener = urllib.request.build_opener(*handlers)
        index = self._fetch_index(opener)
        with self._index_lock:
            self._index = index
        self._opener = opener
        self._connected = True
        self._poll_state = _PollState()
        self._stop = self._poll_state.stop
        if self.poll and self.poll > 0:
            thread = threading.Thread(
                target=_poll, args=(weakref.ref(self), self._poll_state, float(self.poll)),
                name="StaticURLStore poll {}".format(self.root_url), daemon=True)
            self._poll_thread = thread
            thread.start()

    def disconnect(self) -> None:
        """Stop polling and drop the opener.

        Never waits for an index download in progress (even one hung on a
        silent server): the polling thread ends after it and its result is
        dropped.  A polling thread that is only waiting for its next poll
        is woken and joined.
        """
        state = self._poll_state
        with state.lock:
            state.stop.set()
            downloading = state.fetching
        thread, self._poll_thread = self._poll_thread, None
        if thread is not None and not downloading and thread is not threading.current_thread():
            thread.join()  # it is between polls: it sees the stop at once
        self._opener = None
        keep_alive, self._keep_alive = self._keep_alive, None
        if keep_alive is not None:
            keep_alive.close()
        self._connected = False

    def is_connected(self) -> bool:
        return self._opener is not None

    # -- the index -----------------------------------------------------------

    def _fetch_index(self, opener: Any) -> Dict[str, Dict[str, Any]]:
        url = self.root_url + self.query_path
        response = _map_http_errors(self.query_path, lambda: self._open(opener, url))
        with response:
            raw = response.read()
        try:
            index = decode_metadata(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
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
        stop = self._stop
        index = self._fetch_index(opener)
        if stop.is_set():
            return  # disconnected meanwhile: nobody expects news
        with self._index_lock:
            old, self._index = self._index, index
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

    def _open(self, opener: Any, url: str) -> Any:
        return open_url(opener, url, self.timeout, self.retries)

    def _url(self, key: str) -> str:
        url = self.root_url + urllib.parse.quote(self.data_path + key)
        if url[:5].lower() == "file:":
            self._check_inside_root(key, url)
        return url

    def _check_inside_root(self, key: str, url: str) -> None:
        """Refuse a file: data URL resolving outside the data directory."""
        root_path = os.path.realpath(_data_directory(self.root_url + urllib.parse.quote(self.data_path)))
        path = os.path.realpath(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        if not _inside(path, root_path):
            logger.warning("Refusing key %r of %s: its file is outside the store's directory",
                           key, self.root_url)
            raise KeyError(key)

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
        """
        metadata = self._metadata(key)
        return _StaticValue(key, self._url(key), metadata, self._require_opener(), self.timeout,
                            self.retries)

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
        url = self._url(key)
        return _map_http_errors(key, lambda: self._open(opener, url))

    def get_metadata(self, key: str, select: Optional[Iterable[str]] = None) -> Dict[str, Any]:
        """Return the metadata of a key, from the cached index.

        Parameters
        ----------
        select : iterable of str, optional
            The names wanted; ``None`` for all.
        """
        return select_metadata(self._metadata(key), select)

    def exists(self, key: str) -> bool:
        """Whether the cached index has a key."""
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
        """Find the keys whose metadata match, from a snapshot of the index."""
        items = self._snapshot()
        criteria = list(kwargs.items())
        return (key for key, metadata in items
                if all(metadata.get(name) == value for name, value in criteria))
