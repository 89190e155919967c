"""A store keeping each key in two files of a directory tree.

Layout
------
The store lives in a directory marked by a *magic file* (``.FSStore`` by
default, created by :func:`init_shared_store`).  Each key is two files:

* ``<name>.data`` -- the raw bytes of the value;
* ``<name>.metadata`` -- the metadata as a JSON object in UTF-8.

A key exists exactly when its ``.metadata`` file exists.  ``<name>`` is the
key itself, as Encore 0.8 named its files (non-ASCII characters included),
so a store written by encore can be read by Encore 0.8 and the other way
round.  Only what cannot be part of a file name is written as ``%XX``
escapes of its UTF-8 bytes: NUL, lone surrogates and, on Windows, control
characters and ``\\ : * ? " < > |``.  A ``%`` is escaped (``%25``) only
where it would read as an escape, before two upper-case hexadecimal digits;
a name holding ``%XX`` otherwise always means the escaped character.  (So
a key Encore 0.8 wrote with ``%`` before two such digits, ``'50%41'``, is
ambiguous: its file name reads as an escape (``'50A'``), which is not how
either key is named, so it is not listed; renaming its files with ``%25``
for that ``%``, ``50%2541.data`` and ``.metadata``, brings it back.)
Metadata files hold the values JSON lacks (datetimes, decimals, bytes,
sets, UUIDs) in the tagged form of :mod:`encore.storage._metadata_codec`.

A ``/`` between two non-empty parts of a key is a directory separator, so
``'a/b'`` is ``a/b.data``; ``'a'`` (``a.data``) and ``'a/b'`` coexist.
Other slashes (leading, trailing, doubled) are escaped, and so are
directory parts that could reach outside the tree or collide with the
store's own files: ``.`` and ``..`` (``%2E``), names ending in ``.data``,
``.metadata`` or ``.lock`` (their last dot escaped), and, at the top level,
the magic file name and ``__log__.txt*`` (their first character escaped).
No key can therefore name a path outside the root.

A key whose encoding would need a name longer than 200 bytes (in UTF-8), or
a path longer than 1024, is stored as ``%%long/<xx>/<sha256>.data`` and
``.metadata`` (``<sha256>`` being the hexadecimal SHA-256 digest of the
key's UTF-8 bytes, ``<xx>`` its first two digits), with the key itself in
``<sha256>.key``, so keys of any length work within the usual limits of
255 bytes per name and 4096 per path.  (A key's own top-level directory
``%%long`` is written ``%25%long``.)

On a file system that ignores case (detected when the store is opened),
letters that are not lower-case are escaped too (and so are the rare
lower-case letters whose upper case folds to another letter), so that keys
differing only in case stay distinct.  A file whose name is not the exact encoding of a key (a
temporary file, a lock, a stray file) is never reported as a key.

Writes
------
Every file is written to a temporary file in the same directory, flushed,
``fsync``-ed and renamed over the old one with :func:`os.replace`, and the
directory is ``fsync``-ed where the platform allows, so a crash or an
exception in the middle of a write leaves the old value intact.  ``set``
writes the data first and the metadata last: a new key becomes visible
only once both files are complete, and a reader of an existing key can
only briefly see the new data with the old metadata, never new metadata
describing data that is not there yet.  ``delete`` removes the metadata
first for the same reason.
"""
from __future__ import annotations

import errno
import itertools
import logging
import os
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from ._filesystem_keys import (  # noqa: F401  (re-exported: names of this module before the split)
    _escape,
    _escape_unsafe,
    _folds_case,
    _hashed_parts,
    _LOG_PREFIX,
    _RESERVED_DIRECTORY_SUFFIXES,
    _safe_directory_name,
    _SAFE_CHARACTERS,
    _SEPARATOR,
    _UNSAFE,
    _UNSAFE_FOLDED,
    BACKUP_SUFFIX,
    DATA_SUFFIX,
    decode_key,
    encode_key,
    KEY_SUFFIX,
    LOCK_SUFFIX,
    LONG_KEY_DIRECTORY,
    MAX_PART_LENGTH,
    MAX_STEM_LENGTH,
    METADATA_SUFFIX,
    TEMP_PREFIX,
    TEMP_SUFFIX,
)
from ._metadata_codec import decode_metadata, make_encoder
from .abstract_store import AbstractStore, StoreError, Value, check_metadata, copy_metadata, value_parts
from .events import StoreDeleteEvent, StoreSetEvent, StoreUpdateEvent
from .file_value import FileValue
from .utils import (
    DEFAULT_BUFFER_SIZE,
    copy_stream,
    is_listened,
    range_stream,
    store_progress,
    transaction_lock,
)

__all__ = ["FileSystemStore", "FileSystemStoreError", "init_shared_store", "encode_key", "decode_key"]

logger = logging.getLogger(__name__)

#: The content written into the magic file by :func:`init_shared_store`.
MAGIC_CONTENT = b"__version__ = 0\n"

#: How many parsed metadata files (and key paths) a store keeps.
METADATA_CACHE_SIZE = 4096


_CAN_SYNC_DIRECTORIES = os.name != "nt"


class FileSystemStoreError(StoreError):
    """Raised when a directory is not a usable file system store.

    A subclass of :class:`~encore.storage.abstract_store.StoreError` (and so
    of :class:`RuntimeError` and :class:`Exception`, which Encore 0.8's
    version derived from directly).
    """


# ---------------------------------------------------------------------------
# File helpers
# ---------------------------------------------------------------------------

def _fsync_directory(path: str) -> None:
    if not _CAN_SYNC_DIRECTORIES:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _make_directories(path: str) -> None:
    """Create ``path`` and its missing parents, syncing each new entry."""
    missing = []
    current = path
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise
        else:
            _fsync_directory(os.path.dirname(directory))


_temporary_state: Dict[str, Any] = {"pid": None, "prefix": "", "counter": None}


def _temporary_name(suffix: str) -> str:
    """A name no other process or thread will pick: a random per-process
    prefix and a counter."""
    state = _temporary_state
    pid = os.getpid()
    if state["pid"] != pid:  # first use, or a forked child
        state["prefix"] = "{}{:x}-{}-".format(TEMP_PREFIX, pid, os.urandom(4).hex())
        state["counter"] = itertools.count()
        state["pid"] = pid
    return "{}{}{}".format(state["prefix"], next(state["counter"]), suffix)


_TEMPORARY_FLAGS = (os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0)
                    | getattr(os, "O_CLOEXEC", 0))


def _open_temporary(directory: str, suffix: str = TEMP_SUFFIX) -> Tuple[int, str]:
    """Create a temporary file in ``directory``, creating it if needed.

    The file gets the permissions of any new file (``0o666`` less the
    umask), not ``mkstemp``'s private ``0o600``: the store may be shared.
    """
    for attempt in range(100):
        path = os.path.join(directory, _temporary_name(suffix))
        try:
            return os.open(path, _TEMPORARY_FLAGS, 0o666), path
        except FileExistsError:
            continue  # left by a crashed process that had our pid
        except FileNotFoundError:
            # The directory is missing, or was just removed by a delete
            # cleaning up empty directories: (re)create it and retry.
            if attempt >= 10:
                raise
            _make_directories(directory)
    raise FileExistsError("could not create a temporary file in {!r}".format(directory))


def _write_temporary(directory: str, fill: Callable[[Any], Any]) -> str:
    """Write a complete, synced temporary file and return its path."""
    fd, temporary = _open_temporary(directory)
    try:
        with open(fd, "wb") as stream:
            fill(stream)
            stream.flush()
            now = time.time_ns()
            if os.utime in os.supports_fd:
                os.utime(stream.fileno(), ns=(now, now))
            os.fsync(stream.fileno())
        if os.utime not in os.supports_fd:
            os.utime(temporary, ns=(now, now))
    except BaseException:
        _unlink_quietly(temporary)
        raise
    return temporary


def _touch(path: str) -> None:
    """Set a file's modification time to now (metadata writes mark the
    data file, whose time is the key's ``modified``)."""
    now = time.time_ns()
    try:
        os.utime(path, ns=(now, now))
    except OSError:
        pass


def _read_bytes(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError:
        return None


# JSON as Encore 0.8 wrote it; values JSON lacks in their tagged form.
_encode_metadata = make_encoder(ensure_ascii=False, separators=(", ", ": "))


def _dump_metadata(metadata: Dict[str, Any]) -> bytes:
    return _encode_metadata(metadata).encode("utf-8")


class _FileSystemValue(FileValue):
    """A :class:`~encore.storage.file_value.FileValue` read from a store.

    The first access to :attr:`data` returns the stream opened by
    :meth:`FileSystemStore.get` (so data, size and metadata describe the
    same version); later accesses reopen the file.
    """

    def __init__(self, path: str, metadata: Dict[str, Any], stream: Any, status: os.stat_result) -> None:
        self.path = path
        self.size = status.st_size
        self.modified = status.st_mtime
        self.created = getattr(status, "st_birthtime", None)
        self._metadata = metadata
        self._stream = stream

    @property
    def data(self) -> Any:
        """file-like : A binary stream over the data, from its start."""
        stream, self._stream = self._stream, None
        if stream is not None:
            return stream
        return open(self.path, "rb")

    def range(self, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        """Return a stream over ``data[start:end]``.

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
        return range_stream(self.data, start, end, self.size)

    def __del__(self) -> None:
        stream = self.__dict__.get("_stream")
        if stream is not None:
            stream.close()


# ---------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------

def init_shared_store(path: Any, magic_fname: str = ".FSStore") -> None:
    """Create the magic file marking a directory as a file system store.

    Parameters
    ----------
    path : str or os.PathLike
        The store's directory; created (with its parents) if missing.
    magic_fname : str, optional
        The name of the magic file (default ``'.FSStore'``).
    """
    root = os.path.abspath(os.fspath(path))
    _make_directories(root)
    target = os.path.join(root, magic_fname)
    temporary = _write_temporary(root, lambda stream: stream.write(MAGIC_CONTENT))
    os.replace(temporary, target)
    _fsync_directory(root)


class _Pending(object):
    """A prepared change of one file: a synced temporary file to rename
    over ``path``, or (``temporary`` None) the removal of ``path``."""

    __slots__ = ("temporary", "path")

    def __init__(self, temporary: Optional[str], path: str) -> None:
        self.temporary = temporary
        self.path = path

    def discard(self) -> None:
        if self.temporary is not None:
            _unlink_quietly(self.temporary)
            self.temporary = None


@contextmanager
def _staging() -> Iterator[List[_Pending]]:
    """Collect prepared changes, discarding them all if preparing one fails."""
    changes: List[_Pending] = []
    try:
        yield changes
    except BaseException:
        for change in changes:
            change.discard()
        raise


class FileSystemStore(AbstractStore):
    """A store keeping data and metadata in files under a directory.

    See the module documentation for the layout and the key encoding.
    Values are written atomically and durably.  Several store objects, in
    one or several processes, may share a directory; the plain store does
    not lock keys across processes, so concurrent writers of one key race
    (each write stays whole, the last one wins, and data and metadata may
    come from different writers).  Use
    :class:`~encore.storage.locking_filesystem_store.LockingFileSystemStore`
    when that matters.

    Transactions are real: the files a transaction replaces or removes are
    kept (as hard links, or copies where links are not supported) until it
    ends, and put back if it fails, so a failed transaction leaves the keys
    it touched as they were and its events are dropped.  Writes inside a
    transaction are visible at once, to everybody; transactions do not
    isolate.  Another thread writing a key that an open transaction of the
    same store object has written waits until the transaction ends, so a
    rollback never undoes that thread's write.

    Parameters
    ----------
    path : str or os.PathLike
        The store's directory, made into an absolute path.
    magic_fname : str, optional
        The name of the magic file that must exist in the directory
        (default ``'.FSStore'``).
    event_manager : BaseEventManager, optional
        Where events are emitted; defaults to the package-wide manager.

    Raises
    ------
    FileSystemStoreError
        If the directory or its magic file does not exist.
    """

    def __init__(self, path: Any, magic_fname: str = ".FSStore", event_manager: Any = None) -> None:
        super().__init__(event_manager=event_manager)
        root = os.path.abspath(os.fspath(path))
        if not os.path.isdir(root):
            raise FileSystemStoreError("{!r} is not a directory".format(root))
        if not os.path.isfile(os.path.join(root, magic_fname)):
            raise FileSystemStoreError(
                "{!r} is not a file system store: it has no {!r} file "
                "(create one with init_shared_store)".format(root, magic_fname))
        self._root = root
        self._magic_fname = magic_fname
        self._fold_case = _folds_case(root, magic_fname)
        self._stripes = [threading.RLock() for _ in range(32)]
        self._metadata_cache: Dict[str, Tuple[tuple, Dict[str, Any]]] = {}
        self._path_cache: Dict[str, Tuple[str, str]] = {}
        self._journal: Optional[Dict[str, Optional[str]]] = None
        self._journal_thread: Optional[int] = None

    # -- description -------------------------------------------------------

    @property
    def path(self) -> str:
        """str : The absolute path of the store's directory."""
        return self._root

    @property
    def magic_fname(self) -> str:
        """str : The name of the magic file."""
        return self._magic_fname

    @property
    def folds_case(self) -> bool:
        """bool : Whether the file system ignores case, so that upper-case
        letters in keys are escaped."""
        return self._fold_case

    def info(self) -> Dict[str, Any]:
        """Describe the store.

        Returns
        -------
        dict
            ``'readonly'`` (False), ``'authorizing'`` (False), ``'type'``
            (the class name), ``'version'`` (0, the layout version) and
            ``'path'`` (the absolute directory).
        """
        return {
            "readonly": False,
            "authorizing": False,
            "type": type(self).__name__,
            "version": 0,
            "path": self._root,
        }

    def connect(self, credentials: Any = None) -> None:
        """Connect to the store.

        Parameters
        ----------
        credentials : object, optional
            Ignored: the store uses the file system's own permissions.

        Raises
        ------
        FileSystemStoreError
            If the magic file has disappeared.
        """
        if not os.path.isfile(os.path.join(self._root, self._magic_fname)):
            raise FileSystemStoreError("{!r} no longer holds a {!r} file".format(
                self._root, self._magic_fname))
        super().connect(credentials)

    # -- paths -------------------------------------------------------------

    def _stem(self, key: str) -> str:
        """The absolute path of a key's files, without suffix."""
        return os.path.join(self._root, *encode_key(key, self._fold_case, self._magic_fname))

    def _paths(self, key: str) -> Tuple[str, str]:
        """The data and metadata paths of a key (cached: the mapping is fixed)."""
        paths = self._path_cache.get(key)
        if paths is None:
            stem = self._stem(key)
            paths = (stem + DATA_SUFFIX, stem + METADATA_SUFFIX)
            cache = self._path_cache
            if len(cache) >= METADATA_CACHE_SIZE:
                cache.clear()
            cache[key] = paths
        return paths

    def _key_of(self, relative_parts: List[str], directory: str) -> Optional[str]:
        """The key whose encoding is exactly ``relative_parts``, if any."""
        if relative_parts[0] == LONG_KEY_DIRECTORY:
            if len(relative_parts) != 3:
                return None
            try:
                with open(os.path.join(directory, relative_parts[2] + KEY_SUFFIX), "rb") as stream:
                    key = stream.read().decode("utf-8", "surrogatepass")
            except (OSError, ValueError):
                return None
        else:
            try:
                key = decode_key(relative_parts)
            except ValueError:
                return None
        if encode_key(key, self._fold_case, self._magic_fname) != relative_parts:
            return None
        return key

    def _is_hashed(self, data_path: str) -> bool:
        return data_path.startswith(os.path.join(self._root, LONG_KEY_DIRECTORY, ""))

    def _creation_changes(self, key: str, data_path: str) -> List["_Pending"]:
        """The changes a new key needs besides its data and metadata: the
        ``.key`` file of a hashed key."""
        if not self._is_hashed(data_path):
            return []
        path = data_path[: -len(DATA_SUFFIX)] + KEY_SUFFIX
        if os.path.isfile(path):
            return []
        return [self._prepare_bytes(path, key.encode("utf-8", "surrogatepass"))]

    # -- locking hooks (overridden by the locking store) ---------------------

    def _reading(self, key: str) -> Any:
        """A context manager held while reading a key; none here."""
        return _NO_LOCK

    def _writing(self, key: str) -> Any:
        """A context manager held while writing a key.

        When a transaction another thread has open on this store already
        wrote the key, it waits for that transaction to end: a rollback
        restores the files as they were when the transaction first touched
        them, which would undo a write made meanwhile.
        """
        return _WriteGuard(self, self._stripes[hash(key) % len(self._stripes)], self._paths(key))

    def _written(self, key: str, code: str) -> None:
        """Called after a write of ``key`` (code 'w', 'u' or 'd'), with the
        key still locked."""

    # -- reading -------------------------------------------------------------

    def _read_metadata(self, key: str, metadata_path: str) -> Dict[str, Any]:
        """Read and parse a metadata file; return a new dictionary.

        Parsed files are cached by path, and reused while the file's inode,
        size and times are unchanged (every write replaces the file, so
        any write, by any process, invalidates the entry).
        """
        try:
            status = os.stat(metadata_path)
            cached = self._metadata_cache.get(metadata_path)
            if cached is not None and cached[0] == (status.st_ino, status.st_size,
                                                    status.st_mtime_ns, status.st_ctime_ns):
                return copy_metadata(cached[1])
            fd = os.open(metadata_path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(key) from None
        except OSError as error:
            if error.errno == errno.ENAMETOOLONG:
                raise KeyError(key) from None
            raise
        try:
            status = os.fstat(fd)
            with open(fd, "rb", closefd=False) as stream:
                content = stream.read()
        finally:
            os.close(fd)
        try:
            metadata = decode_metadata(content.decode("utf-8"))
        except ValueError as error:
            raise FileSystemStoreError("the metadata file {!r} is not valid JSON: {}".format(
                metadata_path, error)) from None
        if not isinstance(metadata, dict):
            raise FileSystemStoreError(
                "the metadata file {!r} does not hold a JSON object".format(metadata_path))
        cache = self._metadata_cache
        if len(cache) >= METADATA_CACHE_SIZE:
            cache.clear()
        cache[metadata_path] = (
            (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns), metadata)
        return copy_metadata(metadata)

    def get(self, key: str) -> Value:
        """Return the value of a key.

        Returns
        -------
        FileValue
            Its first :attr:`data` stream was opened by this call, so data,
            size, modification time and metadata describe the same version.
            ``modified`` is the time of the last write of data or metadata
            (metadata writes set the data file's modification time);
            ``created`` is the file's creation time where the platform
            records it, else ``None``.
        """
        data_path, metadata_path = self._paths(key)
        with self._reading(key):
            metadata = self._read_metadata(key, metadata_path)
            try:
                stream = open(data_path, "rb")
            except (FileNotFoundError, NotADirectoryError):
                raise KeyError(key) from None
        return _FileSystemValue(data_path, metadata, stream, os.fstat(stream.fileno()))

    def get_data(self, key: str) -> Any:
        """Return the data of a key as an open binary file.

        Returns
        -------
        file-like
            The open data file; the caller closes it.
        """
        data_path, metadata_path = self._paths(key)
        with self._reading(key):
            if not os.path.isfile(metadata_path):
                raise KeyError(key)
            try:
                return open(data_path, "rb")
            except (FileNotFoundError, NotADirectoryError):
                raise KeyError(key) from None

    def get_data_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        """Return part of the data of a key.

        Parameters
        ----------
        key : str
            The key.
        start : int, optional
            The offset of the first byte (default 0).
        end : int, optional
            The offset just past the last byte (default: the end); the
            stream holds ``data[start:end]``.
        """
        stream = self.get_data(key)
        try:
            size = os.fstat(stream.fileno()).st_size
            return range_stream(stream, start, end, size)
        except BaseException:
            stream.close()
            raise

    def get_metadata(self, key: str, select: Optional[Iterable[str]] = None) -> Dict[str, Any]:
        """Return the metadata of a key, reading only its metadata file.

        Parameters
        ----------
        key : str
            The key.
        select : iterable of str, optional
            The names wanted; names the key lacks are left out.

        Returns
        -------
        dict
            A new dictionary.
        """
        with self._reading(key):
            metadata = self._read_metadata(key, self._paths(key)[1])
        if select is None:
            return metadata
        return {name: metadata[name] for name in select if name in metadata}

    def exists(self, key: str) -> bool:
        """Whether a key is in the store (its metadata file exists)."""
        return os.path.isfile(self._paths(key)[1])

    def _walk(self, directory: str, prefix: List[str]) -> Iterator[Tuple[str, str]]:
        """Yield ``(key, metadata path)`` for every key under a directory."""
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            name = entry.name
            if name.endswith(METADATA_SUFFIX):
                try:
                    is_file = entry.is_file()
                except OSError:
                    continue
                if is_file:
                    parts = prefix + [name[: -len(METADATA_SUFFIX)]]
                    key = self._key_of(parts, directory)
                    if key is not None:
                        yield key, entry.path
                    continue
            if name.endswith(LOCK_SUFFIX) or name.startswith(TEMP_PREFIX):
                continue
            try:
                is_directory = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_directory:
                yield from self._walk(entry.path, prefix + [name])

    def query(self, select: Optional[Iterable[str]] = None, **kwargs: Any) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """Find the keys whose metadata match the given values.

        The whole tree is walked; keys starting with ``.`` are included.

        Parameters
        ----------
        select : iterable of str, optional
            The metadata names to return (``None``: all of them).
        **kwargs
            Names and the values they must equal (``metadata.get(name) ==
            value``).

        Returns
        -------
        iterator of (str, dict)
            The matching keys, in sorted path order, with their metadata.
        """
        if select is not None:
            select = list(select)
        return self._query(select, kwargs)

    def _query(self, select: Optional[List[str]], criteria: Dict[str, Any]) -> Iterator[Tuple[str, Dict[str, Any]]]:
        if select is not None and not select and not criteria:
            for key, _ in self._walk(self._root, []):
                yield key, {}
            return
        for key, metadata_path in self._walk(self._root, []):
            try:
                with self._reading(key):
                    metadata = self._read_metadata(key, metadata_path)
            except KeyError:
                continue  # deleted while we walked
            if criteria and not all(metadata.get(name) == value for name, value in criteria.items()):
                continue
            if select is not None:
                metadata = {name: metadata[name] for name in select if name in metadata}
            yield key, metadata

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Find the keys whose metadata match the given values.

        Parameters
        ----------
        **kwargs
            Names and the values they must equal; with none, every key is
            returned without reading any metadata file.
        """
        if not kwargs:
            return (key for key, _ in self._walk(self._root, []))
        return (key for key, _ in self._query([], kwargs))

    # -- writing -------------------------------------------------------------

    def _prepare_data(self, key: str, path: str, data: Any, buffer_size: int,
                      metadata: Optional[Dict[str, Any]], steps: int) -> _Pending:
        progress = store_progress(self, key, metadata, "Setting data of {}".format(key), steps)
        with progress:
            temporary = _write_temporary(
                os.path.dirname(path),
                lambda stream: copy_stream(data, stream.write, buffer_size, progress.step))
        return _Pending(temporary, path)

    def _prepare_bytes(self, path: str, content: bytes) -> _Pending:
        return _Pending(_write_temporary(os.path.dirname(path), lambda stream: stream.write(content)), path)

    def _journaling(self) -> bool:
        return self._journal is not None and self._journal_thread == threading.get_ident()

    def _back_up(self, path: str) -> None:
        """Remember how ``path`` was before the current transaction touched it."""
        journal = self._journal
        if path in journal:  # type: ignore[operator]  # (only while journaling)
            return
        backup = None
        if os.path.lexists(path):
            directory = os.path.dirname(path)
            while True:
                backup = os.path.join(directory, _temporary_name(BACKUP_SUFFIX))
                try:
                    os.link(path, backup)
                    break
                except FileExistsError:
                    continue
                except OSError:  # no hard links here: copy instead
                    import shutil

                    shutil.copy2(path, backup)
                    break
        journal[path] = backup  # type: ignore[index]

    def _apply(self, changes: List[_Pending]) -> None:
        """Install prepared changes in order, then sync their directories."""
        journaling = self._journaling()
        directories = []
        try:
            for change in changes:
                if journaling:
                    self._back_up(change.path)
                if change.temporary is None:
                    _unlink_quietly(change.path)
                else:
                    os.replace(change.temporary, change.path)
                    change.temporary = None
                directory = os.path.dirname(change.path)
                if directory not in directories:
                    directories.append(directory)
        finally:
            for change in changes:
                change.discard()
        for directory in directories:
            _fsync_directory(directory)

    def _listened(self) -> bool:
        return is_listened(self.event_manager, StoreSetEvent, StoreUpdateEvent)

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data and metadata of a key.

        The data is written first, then the metadata, each atomically.

        Parameters
        ----------
        key : str
            The key; replaced if it exists.
        value : Value or (file-like, dict) tuple
            The new data and metadata.  A stream given in a tuple is read
            to its end but not closed; a Value's stream is closed.
        buffer_size : int, optional
            The number of bytes copied at a time (default 1 MiB).

        Raises
        ------
        TypeError, ValueError
            If the value's parts have the wrong types; nothing is written.

        Events
        ------
        StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent
            While the data is copied, when anyone listens.
        StoreSetEvent or StoreUpdateEvent
            After the write.
        """
        data, metadata, size, opened = value_parts(value)
        steps = -1 if size is None else size
        try:
            content = _dump_metadata(metadata)
            data_path, metadata_path = self._paths(key)
            with self._writing(key):
                existed = os.path.isfile(metadata_path)
                with _staging() as changes:
                    if not existed:
                        changes.extend(self._creation_changes(key, data_path))
                    changes.append(self._prepare_data(key, data_path, data, buffer_size, metadata, steps))
                    # Metadata equal to what is stored is not written again.
                    if not existed or _read_bytes(metadata_path) != content:
                        changes.append(self._prepare_bytes(metadata_path, content))
                self._apply(changes)
                self._written(key, "w")
        finally:
            if opened:
                data.close()  # type: ignore[attr-defined]
        self._emit_write(key, existed, metadata)

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of a key, keeping its metadata.

        Parameters
        ----------
        key : str
            The key; created with empty metadata if it does not exist.
        data : file-like
            A readable binary stream, read to its end (not closed).
        buffer_size : int, optional
            The number of bytes copied at a time (default 1 MiB).

        Events
        ------
        StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent
            While the data is copied, when anyone listens.
        StoreSetEvent or StoreUpdateEvent
            After the write, with the key's metadata.
        """
        data_path, metadata_path = self._paths(key)
        with self._writing(key):
            existed = os.path.isfile(metadata_path)
            metadata = None
            if existed and self._listened():
                try:
                    metadata = self._read_metadata(key, metadata_path)
                except KeyError:
                    existed = False
            with _staging() as changes:
                if not existed:
                    changes.extend(self._creation_changes(key, data_path))
                changes.append(self._prepare_data(key, data_path, data, buffer_size, metadata, -1))
                if not existed:
                    metadata = {}
                    changes.append(self._prepare_bytes(metadata_path, b"{}"))
            self._apply(changes)
            self._written(key, "w")
        self._emit_write(key, existed, metadata)

    def set_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Replace the metadata of a key, keeping its data.

        Parameters
        ----------
        key : str
            The key; created with empty data if it does not exist.
        metadata : dict
            The new metadata.
        """
        content = _dump_metadata(metadata)
        data_path, metadata_path = self._paths(key)
        with self._writing(key):
            existed = os.path.isfile(metadata_path)
            with _staging() as changes:
                if not existed:
                    changes.extend(self._creation_changes(key, data_path))
                fresh_data = not existed or not os.path.isfile(data_path)
                if fresh_data:
                    changes.append(self._prepare_bytes(data_path, b""))
                changes.append(self._prepare_bytes(metadata_path, content))
            self._apply(changes)
            if not fresh_data:
                _touch(data_path)
            self._written(key, "w")
        self._emit_write(key, existed, metadata)

    def update_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Merge new values into the metadata of a key.

        Parameters
        ----------
        key : str
            The key.
        metadata : dict
            Names and values to add or replace.
        """
        data_path, metadata_path = self._paths(key)
        with self._writing(key):
            merged = self._read_metadata(key, metadata_path)
            merged.update(metadata)
            self._apply([self._prepare_bytes(metadata_path, _dump_metadata(merged))])
            _touch(data_path)
            self._written(key, "u")
        self._emit_write(key, True, merged)

    def delete(self, key: str) -> None:
        """Delete a key: its metadata file first, then its data file."""
        data_path, metadata_path = self._paths(key)
        with self._writing(key):
            metadata = None
            if is_listened(self.event_manager, StoreDeleteEvent):
                metadata = self._read_metadata(key, metadata_path)
            elif not os.path.isfile(metadata_path):
                raise KeyError(key)
            changes = [_Pending(None, metadata_path), _Pending(None, data_path)]
            if self._is_hashed(data_path):
                changes.append(_Pending(None, data_path[: -len(DATA_SUFFIX)] + KEY_SUFFIX))
            self._apply(changes)
            self._written(key, "d")
        if not self._journaling():
            self._remove_empty_directories(os.path.dirname(data_path))
        self._emit_delete(key, metadata)

    def _remove_empty_directories(self, directory: str) -> None:
        root = self._root
        while len(directory) > len(root) and directory.startswith(root):
            try:
                os.rmdir(directory)
            except OSError:
                return
            directory = os.path.dirname(directory)

    # -- transactions --------------------------------------------------------

    def _begin_transaction(self) -> None:
        self._journal = {}
        self._journal_thread = threading.get_ident()

    def _end_journal(self) -> Dict[str, Optional[str]]:
        journal = self._journal or {}
        self._journal = None
        self._journal_thread = None
        return journal

    def _commit_transaction(self) -> None:
        for backup in self._end_journal().values():
            if backup is not None:
                _unlink_quietly(backup)

    def _rollback_transaction(self) -> None:
        journal = self._end_journal()

        def order(path: str) -> int:
            # Remove the metadata of keys the transaction created first and
            # restore the metadata of older keys last, so that a key is
            # visible only while its data is in place.
            if not path.endswith(METADATA_SUFFIX):
                return 1
            return 0 if journal[path] is None else 2

        directories = set()
        for path in sorted(journal, key=order):
            backup = journal[path]
            try:
                if backup is None:
                    _unlink_quietly(path)
                else:
                    os.replace(backup, path)
            except OSError:
                logger.exception("Could not restore %s during a rollback", path)
            directories.add(os.path.dirname(path))
        for directory in directories:
            _fsync_directory(directory)
        for directory in sorted(directories, key=len, reverse=True):
            self._remove_empty_directories(directory)

    # -- copying out ---------------------------------------------------------

    def to_bytes(self, key: str, buffer_size: int = DEFAULT_BUFFER_SIZE) -> bytes:
        """Return the data of a key as bytes.

        Parameters
        ----------
        key : str
            The key.
        buffer_size : int, optional
            Ignored: the file is read in one call.
        """
        with self.get_data(key) as stream:
            return stream.read()


class _WriteGuard(object):
    """Holds a key's stripe lock, after the end of another thread's
    transaction that wrote the key."""

    __slots__ = ("store", "stripe", "paths", "transaction")

    def __init__(self, store: FileSystemStore, stripe: Any, paths: Tuple[str, str]) -> None:
        self.store = store
        self.stripe = stripe
        self.paths = paths
        self.transaction: Any = None

    def __enter__(self) -> None:
        store = self.store
        self.stripe.acquire()
        # Checked under the stripe: a transaction writes (and journals) the
        # key under the same stripe, so it cannot touch the key between this
        # check and our write; if it touches it later, its backup holds our
        # write.
        journal = store._journal
        if journal is None or store._journal_thread == threading.get_ident():
            return
        data_path, metadata_path = self.paths
        if data_path not in journal and metadata_path not in journal:
            return
        self.stripe.release()
        lock = transaction_lock(store)  # held by the transaction until it ends
        lock.acquire()
        self.transaction = lock
        self.stripe.acquire()

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.stripe.release()
        lock, self.transaction = self.transaction, None
        if lock is not None:
            lock.release()


class _NoLock(object):
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        return None


_NO_LOCK = _NoLock()
