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
exception in the middle of a write leaves the old file intact.  Incoming
data is staged in its temporary file *before* the key is locked: a slow
source holds no lock, and a write locks its key only to put the staged
files in place.

A value is its data and its metadata together, also after a crash:

* a new key is written data first and metadata last (a key exists exactly
  when its ``.metadata`` file does), and a deletion removes the metadata
  first, so a crash in between leaves at most an orphan ``.data`` file,
  which is no key and is replaced by the next write;
* replacing both files of an existing key (``set`` with new metadata, or
  the rollback of a transaction) first writes a small *intent record*,
  ``.~<owner>-<n>.intent`` in the store's root: a JSON object
  ``{"version": 1, "renames": [[temporary, target, identity], ...]}`` with
  paths relative to the root and ``identity`` the ``[inode, size]`` of
  the target when the record was written
  (``null``: no target).  The record is synced before the first rename and
  removed after the last.  Opening a store rolls forward the records of
  writers that no longer run: each temporary file still present is renamed
  over its target if the target is still the one recorded (else the
  temporary file is dropped, a later write having won), so every key ends
  up wholly as before the write or wholly as after it.

A transaction is all or nothing too.  Before it first changes a file it
keeps the old one (a hard link, or a copy, ``.~<owner>-<n>.bak``) and
appends a line to its *transaction record* ``.~<owner>-<n>.txn`` in the
root, synced before the change: ``["b", path, backup, identity]`` for each
file it touches (``backup`` null for a file it creates) and ``["a", path,
identity]`` for each version it writes.  Removing the record is the commit;
a rollback restores the backups (through an intent record) and then removes
it.  Opening a store rolls back the transactions of writers that no longer
run: every file still as the transaction wrote it gets its old version
back; a file written since by someone else is left alone.

Temporary files are named ``.~<pid>-<host><random>-<n><suffix>`` (``<pid>``
in hexadecimal, ``<host>`` four hexadecimal digits of the host name's
hash).  :meth:`FileSystemStore.connect` deletes those left by a writer that
no longer runs: same host, and no process with that ``<pid>``.  Files of
other hosts, of live processes and of any name it cannot parse are kept.

So that connecting does not walk the whole tree, a process puts a *writer
marker* ``.~<pid>-<host><random>-<n>.writer`` (an empty file, named like
its temporary files) in the root before it makes its first temporary file
below the root.  Connecting reads the root only; it walks the tree when a
marker's writer no longer runs (and then removes the marker), so each
ended writer costs one walk, and a store nobody writes to costs none.
Temporary files in the root (records, files of :func:`init_shared_store`)
need no marker: the root is always read.
"""
from __future__ import annotations

import errno
import hashlib
import itertools
import json
import logging
import os
import re
import socket
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, cast

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
from .abstract_store import AbstractStore, StoreError, Value, copy_metadata, value_parts
from .events import StoreDeleteEvent, StoreSetEvent, StoreUpdateEvent
from .file_lock import _process_is_dead
from .file_value import FileValue
from .utils import (
    DEFAULT_BUFFER_SIZE,
    copy_stream,
    is_listened,
    progress_is_listened,
    range_stream,
    store_progress,
    transaction_lock,
)

if TYPE_CHECKING:
    from encore.events.abstract_event_manager import BaseEventManager

__all__ = ["FileSystemStore", "FileSystemStoreError", "init_shared_store", "encode_key", "decode_key",
           "recover", "sweep"]

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

#: The suffix of intent records (see the module documentation).
INTENT_SUFFIX = ".intent"
#: The suffix of transaction records (see the module documentation).
TRANSACTION_SUFFIX = ".txn"
#: The suffix of writer markers (see the module documentation).
WRITER_SUFFIX = ".writer"
#: The suffixes of the temporary files a writer leaves when it dies.
_SWEPT_SUFFIXES = (TEMP_SUFFIX, BACKUP_SUFFIX, INTENT_SUFFIX, TRANSACTION_SUFFIX)
_OWNER = re.compile(r"\.~([0-9a-f]{1,16})-([0-9a-f]{4})[0-9a-f]{4}-[0-9]+\.")


def _host_token() -> str:
    try:
        host = socket.gethostname()
    except OSError:  # pragma: no cover - no host name
        host = ""
    return hashlib.sha256(host.encode("utf-8", "surrogatepass")).hexdigest()[:4]


_HOST_TOKEN = _host_token()


def _temporary_name(suffix: str) -> str:
    """A name no other process or thread will pick: a per-process prefix
    (pid, host token and random digits) and a counter."""
    state = _temporary_state
    pid = os.getpid()
    if state["pid"] != pid:  # first use, or a forked child
        state["prefix"] = "{}{:x}-{}{}-".format(TEMP_PREFIX, pid, _HOST_TOKEN, os.urandom(2).hex())
        state["counter"] = itertools.count()
        state["pid"] = pid
    return "{}{}{}".format(state["prefix"], next(state["counter"]), suffix)


def _owner_is_gone(name: str) -> bool:
    """Whether the process that made the temporary file ``name`` has ended.

    Only a file made on this host by a process that no longer exists
    counts; a name that cannot be parsed, another host's file or a file of
    a live process (or of a new process that got the same pid) does not.
    """
    match = _OWNER.match(name)
    if match is None or match.group(2) != _HOST_TOKEN or os.name == "nt":
        return False
    return _process_is_dead(int(match.group(1), 16))


_TEMPORARY_FLAGS = (os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0)
                    | getattr(os, "O_CLOEXEC", 0))


#: The writer markers this process has put: root -> (pid, marker path).
_writer_marks: Dict[str, Tuple[int, str]] = {}
_writer_marks_lock = threading.Lock()


def _marked(root: str) -> bool:
    mark = _writer_marks.get(root)
    # The marker is looked at too: the store may have been made anew.
    return mark is not None and mark[0] == os.getpid() and os.path.exists(mark[1])


def _mark_writer(root: str) -> None:
    """Put this process's writer marker in ``root`` unless already there
    (see the module documentation); called before a temporary file is made
    below the root."""
    if _marked(root):
        return
    with _writer_marks_lock:
        if _marked(root):
            return
        try:
            fd, path = _open_temporary(root, WRITER_SUFFIX)
            os.close(fd)
            _fsync_directory(root)
        except OSError as error:
            # The write itself will fail or succeed on its own; only the
            # sweeping of its leftovers after a crash is at stake.
            logger.warning("Could not mark %s as written by this process: %s", root, error)
            return
        _writer_marks[root] = (os.getpid(), path)


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


def _identity(path: str) -> Optional[List[int]]:
    """What tells one version of a file from another: ``[inode, size]``, or
    None if there is no file.  Every write replaces a file with a new one
    (a new inode); only its time is ever changed in place."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_ino, status.st_size]


def _write_intent(root: str, renames: List[Tuple[str, str]]) -> str:
    """Write and sync an intent record for ``renames`` (temporary, target)
    in ``root``; return its path."""
    record = {
        "version": 1,
        "renames": [[os.path.relpath(temporary, root), os.path.relpath(target, root), _identity(target)]
                    for temporary, target in renames],
    }
    content = json.dumps(record, separators=(",", ":")).encode("utf-8", "surrogatepass")
    fd, path = _open_temporary(root, INTENT_SUFFIX)
    try:
        with open(fd, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        _unlink_quietly(path)
        raise
    _fsync_directory(root)
    return path


def _inside(root: str, relative: Any) -> Optional[str]:
    """The absolute path of ``relative`` if it is a path inside ``root``."""
    if not isinstance(relative, str) or not relative or os.path.isabs(relative):
        return None
    path = os.path.normpath(os.path.join(root, relative))
    if not path.startswith(os.path.join(root, "")):
        return None
    return path


def _roll_forward(root: str, intent: str) -> None:
    """Finish the renames of the intent record ``intent`` of a dead writer.

    A temporary file still present is renamed over its target when the
    target is still the one the record names; otherwise a later write won
    and the temporary file is dropped.  A record that cannot be read was
    being written when its writer died, before any rename: it is dropped.
    """
    try:
        with open(intent, "rb") as stream:
            record = json.loads(stream.read().decode("utf-8", "surrogatepass"))
        renames = record["renames"]
        if not isinstance(renames, list):
            raise ValueError("renames is not a list")
    except (OSError, ValueError, KeyError, TypeError):
        _unlink_quietly(intent)
        return
    directories = []
    for item in renames:
        if not isinstance(item, list) or len(item) != 3:
            continue
        temporary, target = _inside(root, item[0]), _inside(root, item[1])
        if temporary is None or target is None:
            continue
        if not os.path.basename(temporary).startswith(TEMP_PREFIX):
            continue  # only ever a temporary file is renamed
        if not os.path.lexists(temporary):
            continue  # renamed before the writer died
        try:
            if _identity(target) == item[2]:
                os.replace(temporary, target)
                logger.info("Completed an interrupted write of %s", target)
            else:
                os.unlink(temporary)
        except FileNotFoundError:
            continue  # another process finishing the same record
        except OSError:
            logger.exception("Could not complete the interrupted write of %s", target)
            continue
        directory = os.path.dirname(target)
        if directory not in directories:
            directories.append(directory)
    for directory in directories:
        _fsync_directory(directory)
    _unlink_quietly(intent)


def _restore(root: str, items: List[Tuple[str, Optional[str], Optional[list]]]) -> List[str]:
    """Put back the files a transaction changed; return their directories.

    ``items`` are ``(path, backup, written)``: ``backup`` None for a file
    the transaction created, ``written`` None to restore unconditionally,
    else the identities the transaction gave the file -- it is restored
    only while it still has one of them (no later write is undone).
    """
    def order(item: Tuple[str, Optional[str], Optional[list]]) -> int:
        # Remove the metadata of keys the transaction created first and
        # restore the metadata of older keys last, so that a key is
        # visible only while its data is in place.
        if not item[0].endswith(METADATA_SUFFIX):
            return 1
        return 0 if item[1] is None else 2

    todo = []
    for path, backup, written in sorted(items, key=order):
        if written is not None:
            current = _identity(path)
            if current not in written or (backup is not None and not os.path.lexists(backup)):
                if backup is not None:
                    _unlink_quietly(backup)
                continue
        todo.append((path, backup))
    restores = [(backup, path) for path, backup in todo if backup is not None]
    intent = None
    if len(restores) > 1:
        # A crash while restoring must not leave a key half restored.
        try:
            intent = _write_intent(root, restores)
        except OSError:
            logger.exception("Could not write the intent record of a rollback")
    directories: List[str] = []
    for path, backup in todo:
        try:
            if backup is None:
                _unlink_quietly(path)
            else:
                os.replace(backup, path)
        except OSError:
            logger.exception("Could not restore %s during a rollback", path)
        directory = os.path.dirname(path)
        if directory not in directories:
            directories.append(directory)
    for directory in directories:
        _fsync_directory(directory)
    if intent is not None:
        _unlink_quietly(intent)
    return directories


def _roll_back(root: str, record: str) -> None:
    """Undo the writes of a transaction whose writer died before it ended."""
    backups: Dict[str, Tuple[Optional[str], Optional[list]]] = {}
    written: Dict[str, list] = {}
    try:
        with open(record, "rb") as stream:
            lines = stream.read().decode("utf-8", "surrogatepass").split("\n")
    except OSError:
        return
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue  # the last line, cut short
        if not isinstance(item, list) or not item:
            continue
        if item[0] == "b" and len(item) == 4:
            path = _inside(root, item[1])
            backup = None if item[2] is None else _inside(root, item[2])
            if path is not None and path not in backups:
                backups[path] = (backup, item[3])
        elif item[0] == "a" and len(item) == 3:
            path = _inside(root, item[1])
            if path is not None:
                written.setdefault(path, []).append(item[2])
    items: List[Tuple[str, Optional[str], Optional[list]]] = []
    for path, (backup, before) in backups.items():
        if backup is None:
            # Created by the transaction: removed if still as it wrote it.
            items.append((path, None, [identity for identity in written.get(path, [])
                                       if identity is not None]))
        else:
            items.append((path, backup, written.get(path, []) + [None]))
    _restore(root, items)
    _unlink_quietly(record)
    logger.info("Rolled back a transaction interrupted by the end of its writer (%s)", record)


def recover(path: Any) -> int:
    """Finish what writers that died left half done in a store.

    Intent records of writers that no longer run are rolled forward, then
    their unfinished transactions are rolled back (see the module
    documentation).  Every :class:`FileSystemStore` does this when it is
    created and when it connects; it is safe to call at any time, from any
    process.

    Parameters
    ----------
    path : str or os.PathLike
        The store's directory.

    Returns
    -------
    int
        The number of intent and transaction records handled.
    """
    root = os.path.abspath(os.fspath(path))
    try:
        with os.scandir(root) as scan:
            names = [entry.name for entry in scan if entry.name.startswith(TEMP_PREFIX)]
    except OSError:
        return 0
    return _recover(root, names)


def _recover(root: str, names: List[str]) -> int:
    """:func:`recover`, given the names in ``root`` starting with
    ``TEMP_PREFIX``."""
    names = sorted(names)
    done = 0
    for name in names:
        if name.endswith(INTENT_SUFFIX) and _owner_is_gone(name):
            _roll_forward(root, os.path.join(root, name))
            done += 1
    # Transactions after intents: an intent may finish a write the
    # transaction made, or the restoring of its rollback.
    for name in names:
        if name.endswith(TRANSACTION_SUFFIX) and _owner_is_gone(name):
            _roll_back(root, os.path.join(root, name))
            done += 1
    return done


def sweep(path: Any, full: bool = False) -> int:
    """Delete the temporary files that writers no longer running left.

    Interrupted writes are first rolled forward (:func:`recover`).  Only
    files whose name shows they were made on this host by a process that
    has ended are deleted (see the module documentation).  The root is
    always read; the tree below it only when the writer marker of an ended
    writer is there (or when ``full``).

    Parameters
    ----------
    path : str or os.PathLike
        The store's directory.
    full : bool, optional
        Walk the whole tree even when no marker asks for it (for temporary
        files of writers that left no marker, such as earlier versions).

    Returns
    -------
    int
        The number of files deleted (markers not counted).
    """
    root = os.path.abspath(os.fspath(path))
    try:
        with os.scandir(root) as scan:
            names = [entry.name for entry in scan if entry.name.startswith(TEMP_PREFIX)]
    except OSError:
        return 0
    if _recover(root, names):
        # Records handled: some temporary files were renamed or removed.
        try:
            with os.scandir(root) as scan:
                names = [entry.name for entry in scan if entry.name.startswith(TEMP_PREFIX)]
        except OSError:
            return 0
    removed = 0
    ended_writers = []
    for name in names:
        if name.endswith(_SWEPT_SUFFIXES) and _owner_is_gone(name):
            try:
                os.unlink(os.path.join(root, name))
                removed += 1
            except OSError:  # a directory, or removed meanwhile
                pass
        elif name.endswith(WRITER_SUFFIX) and _owner_is_gone(name):
            ended_writers.append(name)
    if ended_writers or full:
        removed += _sweep_below(root)
        # Only now: a sweep interrupted before this point is done again.
        for name in ended_writers:
            _unlink_quietly(os.path.join(root, name))
    if removed:
        logger.info("Removed %d temporary files of ended writers from %s", removed, root)
    return removed


def _sweep_below(root: str) -> int:
    """Delete the temporary files of ended writers in the directories below
    ``root``; return how many."""
    removed = 0
    pending = []
    try:
        with os.scandir(root) as scan:
            for entry in scan:
                name = entry.name
                if name.startswith(TEMP_PREFIX) or name.endswith((LOCK_SUFFIX, METADATA_SUFFIX, DATA_SUFFIX)):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                except OSError:
                    continue
    except OSError:
        return 0
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as scan:
                entries = list(scan)
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name.startswith(TEMP_PREFIX):
                if name.endswith(_SWEPT_SUFFIXES) and _owner_is_gone(name):
                    try:
                        if not entry.is_dir(follow_symlinks=False):
                            os.unlink(entry.path)
                            removed += 1
                    except OSError:
                        pass
                continue
            if name.endswith(LOCK_SUFFIX) or name.endswith(METADATA_SUFFIX) or name.endswith(DATA_SUFFIX):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
            except OSError:
                continue
    return removed


class _FileSystemValue(FileValue):
    """A :class:`~encore.storage.file_value.FileValue` read from a store.

    The first access to :attr:`data` returns the stream opened by
    :meth:`FileSystemStore.get`; later accesses reopen the file.  Size and
    times are read from that stream (``fstat``) when first asked for, so
    they describe the same version as the data and metadata -- unless that
    stream was already closed, in which case they are read from the file.
    """

    def __init__(self, path: str, metadata: Dict[str, Any], stream: Any) -> None:
        self.path = path
        self._metadata = metadata
        self._stream = stream
        self._handed: Any = None
        self._status: Optional[os.stat_result] = None

    def _stat(self) -> os.stat_result:
        status = self._status
        if status is None:
            stream = self._stream if self._stream is not None else self._handed
            if stream is not None and not stream.closed:
                status = os.fstat(stream.fileno())
            else:
                status = os.stat(self.path)
            self._status = status
        return status

    # Value declares size, modified and created as attributes; here they are
    # read from the file when first asked for.
    @property
    def size(self) -> int:  # type: ignore[override]
        """int : The size of the data in bytes."""
        return self._stat().st_size

    @property
    def modified(self) -> float:  # type: ignore[override]
        """float : The time of the last write of data or metadata."""
        return self._stat().st_mtime

    @property
    def created(self) -> Optional[float]:  # type: ignore[override]
        """float or None : The file's creation time where the platform
        records it."""
        return getattr(self._stat(), "st_birthtime", None)

    @property
    def data(self) -> Any:
        """file-like : A binary stream over the data, from its start."""
        stream, self._stream = self._stream, None
        if stream is not None:
            self._handed = stream
            return stream
        return open(self.path, "rb")

    def range(self, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        """Return a stream over ``data[start:end]`` of the data file, seeking to ``start``."""
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

    def __init__(self, path: Any, magic_fname: str = ".FSStore",
                 event_manager: Optional["BaseEventManager"] = None) -> None:
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
        self._journal_file: Optional[Tuple[int, str]] = None
        # Reads take no lock unless a subclass adds one.
        self._unlocked_reads = type(self)._reading is FileSystemStore._reading
        recover(root)

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

        Interrupted writes of writers that no longer run are completed and
        their temporary files deleted (see :func:`sweep`).

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
        sweep(self._root)
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
        return copy_metadata(self._load_metadata(key, metadata_path))

    def _load_metadata(self, key: str, metadata_path: str) -> Dict[str, Any]:
        """Like :meth:`_read_metadata`, but return the cached dictionary
        itself: the caller must not change it or hand it out."""
        cached = self._metadata_cache.get(metadata_path)
        try:
            if cached is not None:
                status = os.stat(metadata_path)
                if cached[0] == (status.st_ino, status.st_size,
                                 status.st_mtime_ns, status.st_ctime_ns):
                    return cached[1]
            # Not cached (a scan larger than the cache, say): no stat first.
            stream = open(metadata_path, "rb", buffering=0)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(key) from None
        except OSError as error:
            if error.errno == errno.ENAMETOOLONG:
                raise KeyError(key) from None
            raise
        with stream:
            status = os.fstat(stream.fileno())
            content = stream.readall()
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
        return metadata

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
        paths = self._path_cache.get(key)
        data_path, metadata_path = paths if paths is not None else self._paths(key)
        # The value copies the metadata when it is asked for: it can share
        # the cached dictionary, which is replaced, never changed.
        if self._unlocked_reads:
            metadata = self._load_metadata(key, metadata_path)
            try:
                stream = open(data_path, "rb")
            except (FileNotFoundError, NotADirectoryError):
                raise KeyError(key) from None
        else:
            with self._reading(key):
                metadata = self._load_metadata(key, metadata_path)
                try:
                    stream = open(data_path, "rb")
                except (FileNotFoundError, NotADirectoryError):
                    raise KeyError(key) from None
        return _FileSystemValue(data_path, metadata, stream)

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
        """Return part of the data of a key."""
        stream = self.get_data(key)
        try:
            size = os.fstat(stream.fileno()).st_size
            return range_stream(stream, start, end, size)
        except BaseException:
            stream.close()
            raise

    def get_metadata(self, key: str, select: Optional[Iterable[str]] = None) -> Dict[str, Any]:
        """Return the metadata of a key, reading only its metadata file.

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
        for key, metadata in self._matching(criteria):
            if select is not None:
                metadata = {name: metadata[name] for name in select if name in metadata}
            yield key, copy_metadata(metadata)

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
        return self._query_keys(kwargs)

    def _query_keys(self, criteria: Dict[str, Any]) -> Iterator[str]:
        for key, _ in self._matching(criteria):
            yield key

    def _matching(self, criteria: Dict[str, Any]) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """The keys whose metadata match, with that metadata as cached (not
        a copy: callers copy what they hand out)."""
        items = list(criteria.items())
        for key, metadata_path in self._walk(self._root, []):
            try:
                with self._reading(key):
                    metadata = self._load_metadata(key, metadata_path)
            except KeyError:
                continue  # deleted while we walked
            get = metadata.get
            if all(get(name) == value for name, value in items):
                yield key, metadata

    # -- writing -------------------------------------------------------------

    def _prepare_data(self, key: str, path: str, data: Any, buffer_size: int,
                      metadata: Optional[Dict[str, Any]], steps: int) -> _Pending:
        """Stage incoming data in a synced temporary file beside ``path``.

        Called without the key's lock: reading a slow source blocks no
        other writer.  If reading fails, a directory made for the staged
        file alone is removed again.
        """
        directory = os.path.dirname(path)
        if directory != self._root:
            _mark_writer(self._root)
        fresh_directory = not os.path.isdir(directory)
        progress = store_progress(self, key, metadata, "Setting data of {}".format(key), steps, data)
        try:
            with progress:
                temporary = _write_temporary(
                    directory,
                    lambda stream: copy_stream(data, stream.write, buffer_size, progress.step))
        except BaseException:
            if fresh_directory:
                self._remove_empty_directories(directory)
            raise
        return _Pending(temporary, path)

    def _prepare_bytes(self, path: str, content: bytes) -> _Pending:
        directory = os.path.dirname(path)
        if directory != self._root:
            _mark_writer(self._root)
        return _Pending(_write_temporary(directory, lambda stream: stream.write(content)), path)

    def _journaling(self) -> bool:
        return self._journal is not None and self._journal_thread == threading.get_ident()

    def _back_up(self, path: str) -> Optional[list]:
        """Remember how ``path`` was before the current transaction touched
        it; return the transaction record line for it (None if known)."""
        journal = cast(Dict[str, Optional[str]], self._journal)  # only called while journaling
        if path in journal:
            return None
        backup = None
        if os.path.lexists(path):
            directory = os.path.dirname(path)
            if directory != self._root:
                _mark_writer(self._root)
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
        journal[path] = backup
        root = self._root
        return ["b", os.path.relpath(path, root),
                None if backup is None else os.path.relpath(backup, root),
                None if backup is None else _identity(backup)]

    def _journal_append(self, records: List[list]) -> None:
        """Append lines to the transaction record, durably, before the
        changes they describe are made (see :func:`recover`)."""
        if not records:
            return
        if self._journal_file is None:
            fd, path = _open_temporary(self._root, TRANSACTION_SUFFIX)
            self._journal_file = (fd, path)
            _fsync_directory(self._root)
        fd = self._journal_file[0]
        content = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records)
        os.write(fd, content.encode("utf-8", "surrogatepass"))
        os.fsync(fd)

    def _journal_close(self) -> None:
        """Remove the transaction record: the commit point of a transaction
        (or the end of its rollback)."""
        journal_file, self._journal_file = self._journal_file, None
        if journal_file is not None:
            os.close(journal_file[0])
            _unlink_quietly(journal_file[1])
            _fsync_directory(self._root)

    def _apply(self, changes: List[_Pending], replaces_pair: bool = False) -> None:
        """Install prepared changes in order, then sync their directories.

        ``replaces_pair``: the changes replace both files of an existing
        key, so an intent record makes them one step for a crash.
        """
        journaling = self._journaling()
        directories = []
        intent = None
        try:
            if journaling:
                # Backed up and recorded before an intent record exists: a
                # crash can then never complete a change the transaction's
                # record does not know about.
                records = []
                for change in changes:
                    record = self._back_up(change.path)
                    if record is not None:
                        records.append(record)
                    records.append(["a", os.path.relpath(change.path, self._root),
                                    None if change.temporary is None else _identity(change.temporary)])
                self._journal_append(records)
            if replaces_pair:
                renames = [(change.temporary, change.path) for change in changes
                           if change.temporary is not None]
                if len(renames) > 1:
                    intent = _write_intent(self._root, renames)
            for change in changes:
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
            if intent is not None and directories:
                for directory in directories:
                    _fsync_directory(directory)
                directories = []
            if intent is not None:
                # Its temporary files are all renamed or discarded by now.
                _unlink_quietly(intent)
        for directory in directories:
            _fsync_directory(directory)

    def _listened(self) -> bool:
        return is_listened(self.event_manager, StoreSetEvent, StoreUpdateEvent)

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data and metadata of a key.

        The data is staged in a temporary file before the key is locked;
        then data and metadata are put in place as one step, also for a
        crash (see the module documentation).

        Parameters
        ----------
        value : Value or (file-like, dict) tuple
            The new data and metadata.  A stream given in a tuple is read
            to its end but not closed; a Value's stream is closed.

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            After the write.
        """
        data, metadata, size, opened = value_parts(value)
        steps = -1 if size is None else size
        try:
            content = _dump_metadata(metadata)
            data_path, metadata_path = self._paths(key)
            staged = self._prepare_data(key, data_path, data, buffer_size, metadata, steps)
        finally:
            if opened:
                data.close()  # type: ignore[attr-defined]
        try:
            with self._writing(key):
                existed = os.path.isfile(metadata_path)
                with _staging() as changes:
                    if not existed:
                        changes.extend(self._creation_changes(key, data_path))
                    changes.append(staged)
                    # Metadata equal to what is stored is not written again.
                    if not existed or _read_bytes(metadata_path) != content:
                        changes.append(self._prepare_bytes(metadata_path, content))
                self._apply(changes, replaces_pair=existed)
                self._written(key, "w")
        finally:
            staged.discard()
        self._emit_write(key, existed, metadata)

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of a key, keeping its metadata.

        Parameters
        ----------
        data : file-like
            A readable binary stream, read to its end (not closed).

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            After the write, with the key's metadata.
        """
        data_path, metadata_path = self._paths(key)
        progress_metadata = None
        if progress_is_listened(self.event_manager):
            # For the progress events only: the data is staged unlocked.
            try:
                progress_metadata = self._read_metadata(key, metadata_path)
            except KeyError:
                pass
        staged = self._prepare_data(key, data_path, data, buffer_size, progress_metadata, -1)
        try:
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
                    changes.append(staged)
                    if not existed:
                        metadata = {}
                        changes.append(self._prepare_bytes(metadata_path, b"{}"))
                self._apply(changes)
                self._written(key, "w")
        finally:
            staged.discard()
        self._emit_write(key, existed, metadata)

    def set_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Replace the metadata of a key, keeping its data.

        Parameters
        ----------
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
        """Merge new values into the metadata of a key."""
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
        journal = self._end_journal()
        try:
            self._journal_close()  # the commit point
        finally:
            for backup in journal.values():
                if backup is not None:
                    _unlink_quietly(backup)

    def _rollback_transaction(self) -> None:
        journal = self._end_journal()
        try:
            directories = _restore(self._root, [(path, backup, None) for path, backup in journal.items()])
        finally:
            self._journal_close()
        for directory in sorted(directories, key=len, reverse=True):
            self._remove_empty_directories(directory)

    # -- copying out ---------------------------------------------------------

    def to_bytes(self, key: str, buffer_size: int = DEFAULT_BUFFER_SIZE) -> bytes:
        """Return the data of a key as bytes.

        Parameters
        ----------
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
