"""A file system store safe for several processes and machines at once.

:class:`LockingFileSystemStore` keeps the layout of
:class:`~encore.storage.filesystem_store.FileSystemStore` (and can share a
directory with it) and adds, through :mod:`encore.storage.file_lock`:

* **per-key locks**: a write holds the key's exclusive lock
  (``<key>.lock``, a file), a read holds a shared one (a directory of
  readers), so readers always see a value's data and metadata from the
  same write, and writers of one key take turns;
* **a change log**, ``__log__.txt``, with one line per write::

      <id> <code> <YYYY-mm-dd HH:MM:SS.ffffff> <key>

  (``code`` ``w`` for set, set_data and set_metadata, ``u`` for
  update_metadata, ``d`` for delete; UTC time; ``%``, CR and LF in keys
  written as ``%25``, ``%0D``, ``%0A``), rotated every
  :attr:`LockingFileSystemStore.log_rotate_size` lines into
  ``__log__.txt.<first id>`` files, of which the newest 5 are kept;
* **remote events**: a background thread reads the log every
  ``remote_event_poll_interval`` seconds and emits the store events of the
  changes made by *other* store objects (in this process or others);
* :meth:`LockingFileSystemStore.get_modified_keys`, the keys written since
  a given time.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import weakref
import functools
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from encore.storage.events import (
    StoreDeleteEvent,
    StoreKeyEvent,
    StoreSetEvent,
    StoreUpdateEvent,
)

from .file_lock import FileLock, LockError, SharedFileLock
from .filesystem_store import (
    FileSystemStore,
    FileSystemStoreError,
    _fsync_directory,
    _make_directories,
    _write_temporary,
)
from .utils import is_listened

__all__ = ["LockingFileSystemStore", "LogEntry", "FileSystemStoreError", "locking", "write_log",
           "transact"]

logger = logging.getLogger(__name__)

LOG_NAME = "__log__.txt"
#: The exclusive lock of the log.  No key's lock can have this name: a lone
#: ``%`` never appears in an encoded key.
LOG_LOCK_NAME = "__log__.txt%"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
ROTATED_LOGS_KEPT = 5

_EVENT_CLASSES = {"w": StoreSetEvent, "u": StoreUpdateEvent, "d": StoreDeleteEvent}
_ROTATED = re.compile(r"^__log__\.txt\.(\d+)$")
_KEY_ESCAPES = {"%": "%25", "\n": "%0A", "\r": "%0D"}
_KEY_UNESCAPES = {value: key for key, value in _KEY_ESCAPES.items()}


def _escape_log_key(key: str) -> str:
    if "%" in key or "\n" in key or "\r" in key:
        return re.sub("[%\n\r]", lambda match: _KEY_ESCAPES[match.group()], key)
    return key


def _unescape_log_key(text: str) -> str:
    if "%" not in text:
        return text
    return re.sub("%25|%0A|%0D", lambda match: _KEY_UNESCAPES[match.group()], text)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class LogEntry(tuple):
    """One line of the change log: ``(id, code, timestamp, key)``, also
    readable as the attributes :attr:`id`, :attr:`code`, :attr:`timestamp`
    and :attr:`key`.

    Parameters
    ----------
    id : int
        The line's number, one more than the previous line's.
    code : str
        ``'w'`` (set, set_data, set_metadata), ``'u'`` (update_metadata)
        or ``'d'`` (delete).
    timestamp : datetime.datetime
        When the write completed (UTC, naive).
    key : str
        The key written.
    """

    __slots__ = ()

    def __new__(cls, id: int, code: str, timestamp: datetime, key: str) -> "LogEntry":
        return tuple.__new__(cls, (id, code, timestamp, key))

    id = property(lambda self: self[0], doc="int : The line's number.")
    code = property(lambda self: self[1],
                    doc="str : The kind of write: 'w' (set, set_data, set_metadata), "
                        "'u' (update_metadata) or 'd' (delete).")
    timestamp = property(lambda self: self[2],
                         doc="datetime.datetime : When the write completed (UTC, naive).")
    key = property(lambda self: self[3], doc="str : The key written.")

    def format(self) -> str:
        """Return the entry as a log line (with its newline).

        Returns
        -------
        str
            ``'<id> <code> <timestamp> <key>\\n'``.
        """
        return "{} {} {} {}\n".format(self[0], self[1], self[2].strftime(TIMESTAMP_FORMAT),
                                      _escape_log_key(self[3]))

    @classmethod
    def parse(cls, line: str) -> Optional["LogEntry"]:
        """Read a log line.

        Parameters
        ----------
        line : str
            A line, with or without its newline.

        Returns
        -------
        LogEntry or None
            ``None`` for a malformed line.
        """
        fields = line.rstrip("\r\n").split(" ", 4)
        if len(fields) != 5:
            return None
        try:
            timestamp = datetime.strptime(fields[2] + " " + fields[3], TIMESTAMP_FORMAT)
            return cls(int(fields[0]), fields[1], timestamp, _unescape_log_key(fields[4]))
        except ValueError:
            return None


def _parse_lines(content: bytes) -> List[LogEntry]:
    entries = []
    for line in content.decode("utf-8", "surrogatepass").split("\n"):
        if line:
            entry = LogEntry.parse(line)
            if entry is not None:
                entries.append(entry)
    return entries


class _KeyGuard(object):
    """The locks one store object holds on one key."""

    __slots__ = ("mutex", "users", "lock", "exclusive", "depth", "made_directory")

    def __init__(self) -> None:
        self.mutex = threading.RLock()  # orders the threads of this store
        self.users = 0  # threads using or waiting for this guard
        self.lock: Any = None  # the FileLock or SharedFileLock held
        self.exclusive = False
        self.depth = 0
        self.made_directory: Optional[str] = None  # created for the lock only


def _poll(store_ref: "weakref.ref[LockingFileSystemStore]", stop: threading.Event,
          interval: float) -> None:
    """The body of the poll thread: it holds only a weak reference to the
    store, so the store can be garbage collected (which stops the thread)."""
    while not stop.wait(interval):
        store = store_ref()
        if store is None:
            return
        try:
            store._poll_log()
        except Exception:
            logger.exception("Reading the change log of %s failed", store.path)
        interval = store.remote_event_poll_interval or interval
        del store


# ---------------------------------------------------------------------------
# Method decorators, kept at module level as in Encore 0.8 for subclasses
# ---------------------------------------------------------------------------

def locking(function: Optional[Callable] = None, recurse: bool = True,
            shared: bool = False) -> Callable:
    """Decorate a store method taking a key first so that it runs holding the
    key's lock.

    The store's own methods already lock; this is for methods a subclass adds.
    Use as ``@locking``, or with options as ``@locking(shared=True)`` or
    ``locking(method, shared=True)``.

    Parameters
    ----------
    function : callable, optional
        A method of a :class:`LockingFileSystemStore` (subclass) whose first
        argument after ``self`` is a key.  Without it, a decorator taking the
        method is returned.
    recurse : bool, optional
        Encore's flag for letting the method call other locking methods on
        the same key.  A store object's key locks are always re-entrant, so
        both values behave the same (the decorated method may call the
        store's reads and writes of the key).
    shared : bool, optional
        Hold the key's shared (read) lock instead of its exclusive one, so
        other readers are not kept out.

    Returns
    -------
    callable
        The wrapped method, or a decorator.
    """
    if function is None:
        return lambda method: locking(method, recurse, shared)
    if not callable(function):
        raise TypeError("locking decorates a method, not {!r}".format(function))

    @functools.wraps(function)
    def locked(self: "LockingFileSystemStore", key: str, *args: Any, **kwargs: Any) -> Any:
        with (self._reading(key) if shared else self._writing(key)):
            return function(self, key, *args, **kwargs)
    return locked


def _check_log_code(code: Any) -> None:
    if not isinstance(code, str) or not code or any(char.isspace() for char in code):
        raise ValueError("a log code is a non-empty str without spaces, not {!r}".format(code))


def write_log(func: Any, event: str = "w") -> Callable:
    """Decorate a store method taking a key first so that it runs holding the
    key's exclusive lock and is recorded in the change log when it succeeds.

    ``@write_log`` logs a write (``'w'``); ``write_log(method, 'u')`` (or
    ``write_log(method, event='u')``) an update of the metadata and
    ``write_log(method, 'd')`` a deletion, as in Encore.  ``@write_log('u')``
    (the code alone) returns a decorator too.  Other store objects see each
    logged line as a remote event.

    Parameters
    ----------
    func : callable or str
        The method to wrap; or a log code, to get a decorator using it.
    event : str, optional
        The log code: ``'w'`` (the default), ``'u'``, ``'d'`` or any other
        word without spaces (remote stores see those as
        :class:`~encore.storage.events.StoreKeyEvent`).

    Returns
    -------
    callable
        The wrapped method, or a decorator when ``func`` is a code.

    Raises
    ------
    ValueError
        If the code is empty or holds white space.
    TypeError
        If ``func`` is neither callable nor a code.
    """
    if isinstance(func, str):
        code = func
        _check_log_code(code)
        return lambda method: write_log(method, code)
    if not callable(func):
        raise TypeError("write_log decorates a method, not {!r}".format(func))
    _check_log_code(event)

    @functools.wraps(func)
    def logged(self: "LockingFileSystemStore", key: str, *args: Any, **kwargs: Any) -> Any:
        with self._writing(key):
            result = func(self, key, *args, **kwargs)
            self._written(key, event)
        return result
    return logged


def transact(function: Optional[Callable] = None, on_commit: bool = True) -> Callable:
    """Decorate a store method so that its writes belong to a transaction.

    With ``on_commit=True`` (the default) the method runs in
    ``self.transaction(<method name>)``: inside an open transaction it joins
    it, otherwise its writes commit together when it returns and are rolled
    back if it raises.  With ``on_commit=False`` it runs as it is (its writes
    still join a transaction that is open).  Use as ``@transact``,
    ``@transact(on_commit=False)`` or ``transact(method, False)``.

    Encore 0.8 queued the decorated calls made inside a transaction and ran
    them at commit; here writes take effect at once for the writing thread,
    keep their keys locked until the transaction ends, and are undone if it
    fails, and the method returns its own result.

    Parameters
    ----------
    function : callable, optional
        A method of a store.  Without it, a decorator is returned.
    on_commit : bool, optional
        Whether the method's writes commit (or roll back) as one
        transaction.

    Returns
    -------
    callable
        The wrapped method, or a decorator.
    """
    if function is None:
        return lambda method: transact(method, on_commit)
    if not callable(function):
        raise TypeError("transact decorates a method, not {!r}".format(function))
    if not on_commit:
        @functools.wraps(function)
        def direct(self: Any, *args: Any, **kwargs: Any) -> Any:
            return function(self, *args, **kwargs)
        return direct

    @functools.wraps(function)
    def transacted(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.transaction(function.__name__):
            return function(self, *args, **kwargs)
    return transacted


class LockingFileSystemStore(FileSystemStore):
    """A file system store with per-key locks, a change log and events for
    changes made by other processes.

    Parameters
    ----------
    path : str or os.PathLike
        The store's directory (made absolute); it must hold the magic file.
    force_lock_timeout : float, optional
        Seconds after which a lock that has not changed is considered
        abandoned (its holder died) and broken (default 10).  Writes must
        take less time than this.  A lock whose holder was a process of
        this host that no longer runs (killed, say) is broken at once (see
        :mod:`encore.storage.file_lock`); 0 never breaks locks.
    magic_fname : str, optional
        The name of the magic file (default ``'.FSStore'``).
    remote_event_poll_interval : float, optional
        Seconds between two reads of the change log by the poll thread
        (default 5); 0 or ``None`` disables remote events.
    max_time_delta : datetime.timedelta, optional
        The clock difference tolerated between machines:
        :meth:`get_modified_keys` looks this much further back (default one
        minute).
    event_manager : BaseEventManager, optional
        Where events are emitted; defaults to the package-wide manager.

    Raises
    ------
    FileSystemStoreError
        If the directory or its magic file does not exist.

    Events
    ------
    StoreSetEvent, StoreUpdateEvent, StoreDeleteEvent
        For this store's own writes, as for any store; and, from the poll
        thread, for writes by other store objects, with ``key``,
        ``timestamp`` (a UTC :class:`~datetime.datetime`), ``metadata``
        (the key's current metadata, ``None`` once deleted) and
        ``remote=True``.  Log lines with another code give a
        :class:`~encore.storage.events.StoreKeyEvent`.
    """

    #: The number of lines the log reaches before its older half is moved
    #: to a rotated file.
    log_rotate_size = 10000

    def __init__(
        self,
        path: Any,
        force_lock_timeout: float = 10.0,
        magic_fname: str = ".FSStore",
        remote_event_poll_interval: Optional[float] = 5.0,
        max_time_delta: timedelta = timedelta(minutes=1),
        event_manager: Any = None,
    ) -> None:
        super().__init__(path, magic_fname, event_manager)
        self.force_lock_timeout = force_lock_timeout
        self.remote_event_poll_interval = remote_event_poll_interval
        self.max_time_delta = max_time_delta
        self.lock_poll_interval = 0.005
        self._log_path = os.path.join(self.path, LOG_NAME)
        # Readers' lock entries are hard links to the magic file: much
        # cheaper than new files on some file systems.
        self._magic_path = os.path.join(self.path, self.magic_fname)
        self._log_lock = FileLock(os.path.join(self.path, LOG_LOCK_NAME), uid=id(self),
                                  poll_interval=0.002, force_timeout=force_lock_timeout)
        self._log_mutex = threading.Lock()
        if not os.path.exists(self._log_path):
            with open(self._log_path, "ab"):
                pass
        self._guards: Dict[str, _KeyGuard] = {}
        self._guards_mutex = threading.Lock()
        self._held: Optional[List[str]] = None  # keys locked until the transaction ends
        self._pending_log: Optional[List[Tuple[str, str, datetime]]] = None
        self._own_ids: set = set()
        self._own_mutex = threading.Lock()
        self._poll_state: Optional[Tuple[int, int, int]] = None  # (last id, inode, offset)
        self._poll_mutex = threading.Lock()
        self._stop: Optional[threading.Event] = None
        self._thread: Optional[threading.Thread] = None
        self._start_polling()

    # -- connection and the poll thread ----------------------------------------

    def connect(self, credentials: Any = None) -> None:
        """Connect to the store, starting the poll thread if it is stopped.

        Parameters
        ----------
        credentials : object, optional
            Ignored.
        """
        super().connect(credentials)
        self._start_polling()

    def disconnect(self) -> None:
        """Disconnect: stop the poll thread and wait for it to end."""
        self._stop_polling()
        super().disconnect()

    def _start_polling(self) -> None:
        interval = self.remote_event_poll_interval
        if not interval or interval <= 0:
            return
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        self._poll_state = None
        with self._own_mutex:
            self._own_ids.clear()
        self._poll_log(emit=False)  # start at the current end of the log
        stop = threading.Event()
        thread = threading.Thread(
            target=_poll, args=(weakref.ref(self), stop, interval),
            name="LockingFileSystemStore poller for {}".format(self.path), daemon=True)
        weakref.finalize(self, stop.set)
        self._stop, self._thread = stop, thread
        thread.start()

    def _stop_polling(self, timeout: float = 10.0) -> None:
        stop, thread = self._stop, self._thread
        self._stop = self._thread = None
        if stop is not None:
            stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("The poll thread of %s did not stop within %s s", self.path, timeout)

    @property
    def poll_thread(self) -> Optional[threading.Thread]:
        """threading.Thread or None : The thread reading the change log."""
        return self._thread

    # -- key locks ---------------------------------------------------------------

    @contextmanager
    def _hold(self, key: str, exclusive: bool) -> Iterator[None]:
        with self._guards_mutex:
            guard = self._guards.get(key)
            if guard is None:
                guard = self._guards[key] = _KeyGuard()
            guard.users += 1
        try:
            guard.mutex.acquire()
            try:
                self._lock_guard(key, guard, exclusive)
                try:
                    yield
                finally:
                    self._unlock_guard(guard)
            finally:
                guard.mutex.release()
        finally:
            with self._guards_mutex:
                guard.users -= 1
                if guard.users == 0 and guard.depth == 0:
                    del self._guards[key]

    def _lock_guard(self, key: str, guard: _KeyGuard, exclusive: bool) -> None:
        """Take the file lock a guard needs (its mutex is held)."""
        if guard.depth and (guard.exclusive or not exclusive):
            guard.depth += 1
            return
        if guard.depth:  # shared held, exclusive wanted: trade one for the other
            guard.lock.release()
            guard.lock = None
        stem = self._stem(key)
        directory = os.path.dirname(stem)
        if exclusive:
            lock: Any = FileLock(stem, uid=id(self), poll_interval=self.lock_poll_interval,
                                 force_timeout=self.force_lock_timeout)
        else:
            lock = SharedFileLock(stem, uid=id(self), poll_interval=self.lock_poll_interval,
                                  force_timeout=self.force_lock_timeout,
                                  link_source=self._magic_path)
        for attempt in range(10):
            if not exclusive and not os.path.isdir(directory):
                lock = None  # no directory, no key: nothing to protect
                break
            try:
                lock.acquire()
                break
            except LockError:
                if attempt == 9:
                    raise
                if exclusive:
                    # The directory is missing, or a delete just removed it.
                    _make_directories(directory)
                    guard.made_directory = directory
        guard.lock = lock
        guard.exclusive = exclusive
        guard.depth += 1
        if exclusive and self._held is not None and self._journaling():
            # Inside a transaction: keep the lock until it ends.
            guard.depth += 1
            guard.mutex.acquire()
            with self._guards_mutex:
                guard.users += 1
            self._held.append(key)

    def _unlock_guard(self, guard: _KeyGuard) -> None:
        guard.depth -= 1
        if guard.depth == 0:
            lock, guard.lock = guard.lock, None
            if lock is not None:
                lock.release()
            directory, guard.made_directory = guard.made_directory, None
            if directory is not None:
                # Made for a write that failed (a missing key): tidy up.
                self._remove_empty_directories(directory)

    def _release_held(self) -> None:
        held, self._held = self._held or [], None
        for key in reversed(held):
            guard = self._guards[key]
            try:
                self._unlock_guard(guard)
            finally:
                guard.mutex.release()
                with self._guards_mutex:
                    guard.users -= 1
                    if guard.users == 0 and guard.depth == 0:
                        del self._guards[key]

    def _reading(self, key: str) -> Any:
        return self._hold(key, False)

    def _writing(self, key: str) -> Any:
        return self._hold(key, True)

    # -- the change log ----------------------------------------------------------

    def _written(self, key: str, code: str) -> None:
        entry = (code, key, _utc_now())
        if self._pending_log is not None and self._journaling():
            self._pending_log.append(entry)
        else:
            self._append_log([entry])

    def _log_bounds(self) -> Tuple[int, int]:
        """The ids of the first and last lines of the log ((0, 0) when empty)."""
        with open(self._log_path, "rb") as stream:
            first_entry = LogEntry.parse(stream.readline().decode("utf-8", "surrogatepass"))
            first = first_entry.id if first_entry is not None else 0
            size = stream.seek(0, os.SEEK_END)
            span = 4096
            while size:
                start = max(0, size - span)
                stream.seek(start)
                lines = stream.read(size - start).rstrip(b"\n").split(b"\n")
                if len(lines) > 1 or start == 0:
                    for line in reversed(lines):
                        entry = LogEntry.parse(line.decode("utf-8", "surrogatepass"))
                        if entry is not None:
                            return first, entry.id
                    if start == 0:
                        break
                span *= 4
        return first, 0

    def _append_log(self, entries: List[Tuple[str, str, datetime]]) -> None:
        if not entries:
            return
        with self._log_mutex:
            with self._log_lock:
                first, last = self._log_bounds()
                lines = [LogEntry(last + 1 + index, code, timestamp, key)
                         for index, (code, key, timestamp) in enumerate(entries)]
                ids = [line.id for line in lines]
                polling = self._thread is not None
                if polling:
                    # Known before the lines can be read, so that the poll
                    # thread never mistakes them for another writer's.
                    with self._own_mutex:
                        self._own_ids.update(ids)
                try:
                    with open(self._log_path, "ab") as stream:
                        stream.write("".join(line.format() for line in lines).encode(
                            "utf-8", "surrogatepass"))
                except BaseException:
                    if polling:
                        with self._own_mutex:
                            self._own_ids.difference_update(ids)
                    raise
                if first and ids[-1] - first + 1 >= self.log_rotate_size:
                    self._rotate_log()

    def _rotate_log(self) -> None:
        """Move the older half of the log to ``__log__.txt.<first id>``."""
        with open(self._log_path, "rb") as stream:
            lines = stream.read().splitlines(keepends=True)
        if len(lines) < self.log_rotate_size:
            return
        half = len(lines) // 2
        first = LogEntry.parse(lines[0].decode("utf-8", "surrogatepass"))
        if first is None:
            return
        old, new = b"".join(lines[:half]), b"".join(lines[half:])
        rotated = os.path.join(self.path, "{}.{}".format(LOG_NAME, first.id))
        os.replace(_write_temporary(self.path, lambda stream: stream.write(old)), rotated)
        os.replace(_write_temporary(self.path, lambda stream: stream.write(new)), self._log_path)
        _fsync_directory(self.path)
        for name in self._rotated_logs()[:-ROTATED_LOGS_KEPT]:
            try:
                os.unlink(os.path.join(self.path, name))
            except OSError:
                pass

    def _rotated_logs(self) -> List[str]:
        names = []
        for name in os.listdir(self.path):
            match = _ROTATED.match(name)
            if match:
                names.append((int(match.group(1)), name))
        return [name for _, name in sorted(names)]

    def _log_entries(self, with_rotated: bool = True) -> List[LogEntry]:
        """Every entry of the log, oldest first."""
        entries: List[LogEntry] = []
        names = self._rotated_logs() if with_rotated else []
        for name in names + [LOG_NAME]:
            try:
                with open(os.path.join(self.path, name), "rb") as stream:
                    entries.extend(_parse_lines(stream.read()))
            except FileNotFoundError:
                continue
        if with_rotated:
            # A rotation between listing and reading can repeat lines.
            seen = set()
            unique = []
            for entry in entries:
                if entry.id not in seen:
                    seen.add(entry.id)
                    unique.append(entry)
            entries = sorted(unique, key=lambda entry: entry.id)
        return entries

    def get_log(self) -> List[LogEntry]:
        """Return the change log, rotated files included.

        Returns
        -------
        list of LogEntry
            The entries, oldest first.
        """
        return self._log_entries()

    def get_modified_keys(self, since: Union[datetime, str]) -> List[str]:
        """Return the keys written since a time, as the log records them.

        Parameters
        ----------
        since : datetime.datetime or str
            A UTC time (naive, or aware and then converted), or a string in
            the log's format ``'%Y-%m-%d %H:%M:%S.%f'``.  :attr:`max_time_delta`
            is subtracted to allow for clock differences between machines.

        Returns
        -------
        list of str
            The keys of every log line from the first one newer than that
            time on, in log order (a key written twice appears twice).
        """
        if isinstance(since, str):
            since = datetime.strptime(since, TIMESTAMP_FORMAT)
        if since.tzinfo is not None:
            since = since.astimezone(timezone.utc).replace(tzinfo=None)
        threshold = since - self.max_time_delta
        entries = self._log_entries(with_rotated=False)
        if not entries or entries[0].timestamp > threshold:
            entries = self._log_entries()
        for index, entry in enumerate(entries):
            if entry.timestamp > threshold:
                return [entry.key for entry in entries[index:]]
        return []

    def _new_log_entries(self) -> List[LogEntry]:
        """The entries written since the last call (for the poll thread)."""
        last_id, inode, offset = self._poll_state or (None, -1, 0)
        try:
            status = os.stat(self._log_path)
        except FileNotFoundError:
            return []
        if last_id is not None and status.st_ino == inode and status.st_size >= offset:
            with open(self._log_path, "rb") as stream:
                stream.seek(offset)
                content = stream.read()
            end = content.rfind(b"\n") + 1  # leave a line being written
            entries = _parse_lines(content[:end])
            offset += end
        else:
            with open(self._log_path, "rb") as stream:
                inode = os.fstat(stream.fileno()).st_ino
                content = stream.read()
            end = content.rfind(b"\n") + 1
            entries = _parse_lines(content[:end])
            offset = end
            if last_id is None:  # first read: start from here
                self._poll_state = (entries[-1].id if entries else 0, inode, offset)
                return []
            if entries and entries[0].id > last_id + 1:
                entries = self._log_entries()  # rotated meanwhile: look in the old files too
        new = [entry for entry in entries if entry.id > last_id]
        if new:
            last_id = new[-1].id
        self._poll_state = (last_id, inode, offset)
        return new

    def _poll_log(self, emit: bool = True) -> None:
        """Read the new log lines and emit events for other writers' changes."""
        with self._poll_mutex:
            entries = self._new_log_entries()
            remote = []
            with self._own_mutex:
                own = self._own_ids
                for entry in entries:
                    if entry.id in own:
                        own.discard(entry.id)
                    else:
                        remote.append(entry)
                if own and entries:
                    # Ids of ours the log skipped (rotated away) are forgotten.
                    newest = entries[-1].id
                    own.difference_update([id_ for id_ in own if id_ <= newest])
        if not emit:
            return
        manager = self.event_manager
        for entry in remote:
            event_class = _EVENT_CLASSES.get(entry.code, StoreKeyEvent)
            if not is_listened(manager, event_class):
                continue
            metadata = None
            if event_class is not StoreDeleteEvent:
                try:
                    metadata = self.get_metadata(entry.key)
                except KeyError:
                    pass
            manager.emit(event_class(source=self, key=entry.key, metadata=metadata,
                                     timestamp=entry.timestamp, remote=True))

    # -- transactions ------------------------------------------------------------

    def _begin_transaction(self) -> None:
        super()._begin_transaction()
        self._held = []
        self._pending_log = []

    def _commit_transaction(self) -> None:
        pending, self._pending_log = self._pending_log or [], None
        try:
            super()._commit_transaction()
            self._append_log(pending)
        finally:
            self._release_held()

    def _rollback_transaction(self) -> None:
        self._pending_log = None
        try:
            super()._rollback_transaction()
        finally:
            self._release_held()

    def transaction(self, notes: str) -> Any:
        """Return a context manager grouping writes into one transaction.

        Writes inside the transaction take effect at once for this thread
        and keep their keys locked until it ends, so other store objects
        (and other threads) cannot read or write those keys meanwhile; the
        log lines are written when it commits.  When the block raises, the
        keys are restored as they were, nothing is logged and the events
        are dropped.  A second call while a transaction is open joins it.

        Returns
        -------
        SimpleTransactionContext
            Nestable.

        Events
        ------
        StoreTransactionStartEvent, StoreTransactionEndEvent
            Around the outermost transaction; the modification events of
            its writes follow the end event when it commits.
        """
        return super().transaction(notes)

    # -- description -------------------------------------------------------------

    def info(self) -> Dict[str, Any]:
        """Describe the store.

        Returns
        -------
        dict
            As :meth:`FileSystemStore.info`, with ``'type'``
            ``'LockingFileSystemStore'``.
        """
        return super().info()
