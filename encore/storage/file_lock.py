"""Advisory locks between processes, made of files.

A lock is a path ``<name>.lock``.  It is free when nothing is there.  An
**exclusive** lock (:class:`FileLock`) is a *file* at that path, created
atomically (``O_CREAT | O_EXCL``) and holding a few lines identifying the
holder (host, process id, user, uid).  **Shared** locks
(:class:`SharedFileLock`) are a *directory* at that path holding one file per
reader.  Since the path cannot be a file and a directory at once, readers
exclude writers and writers exclude everybody, on any file system where
creating a file and removing an empty directory are atomic -- including
network file systems shared by several machines.

Waiters poll every ``poll_interval`` seconds.  A lock whose holder died stays
until someone breaks it: with ``force_timeout > 0`` a waiter breaks a lock
after waiting that long while the lock did not change (same holder, same
readers); :meth:`FileLock.force_break` breaks one at once.  With
``force_timeout > 0`` a waiter also breaks *at once* a lock (or removes a
reader) that a process of this host made and that no longer runs: the
holder's host name and process id are in the lock file (and in each
reader's file name), and a process id with no process behind it (or only
an unreaped zombie) is dead.  Holders on other hosts, holders whose
process id now belongs to a new process, and lock files whose content is
not in the default format are only broken after ``force_timeout``.  (Hosts
sharing a file system must have distinct host names for this: containers
sharing one name and one volume but not one process namespace should keep
``force_timeout`` at 0.)

A writer waits as long as any reader holds the lock, so a steady stream of
readers can starve writers.  An empty lock directory is left behind by the
last reader and removed by the next exclusive acquirer.
"""
from __future__ import annotations

import errno
import getpass
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from typing import Any, Dict, FrozenSet, Optional, Tuple, Union

__all__ = ["FileLock", "SharedFileLock", "LockError"]

logger = logging.getLogger(__name__)


class LockError(Exception):
    """Raised when a lock cannot be acquired in time, or is released by
    someone who does not hold it."""


_identity: Optional[Tuple[str, str]] = None


def _host_and_user() -> Tuple[str, str]:
    """The host name and login name, looked up once per process (the user
    lookup can be slow)."""
    global _identity
    if _identity is None:
        try:
            user = getpass.getuser()
        except Exception:  # no login name in this environment
            user = "unknown"
        _identity = (socket.gethostname(), user)
    return _identity


def _lock_path(name: str, dir: Optional[str]) -> str:
    if dir is None:
        return os.fspath(name) + ".lock"
    return os.path.join(os.fspath(dir), os.fspath(name).lstrip("/\\") + ".lock")


def _process_is_dead(pid: int) -> bool:
    """Whether no process ``pid`` runs on this host (a zombie counts as
    dead).  Unknown (Windows, no permission) counts as alive."""
    if pid <= 0 or pid == os.getpid() or os.name == "nt":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, but not ours to signal
        return False
    try:
        with open("/proc/{}/stat".format(pid), "rb") as stream:
            stat = stream.read()
    except OSError:
        return False
    # "pid (command) state ...": the command may hold spaces and parentheses.
    fields = stat[stat.rfind(b")") + 1:].split()
    return bool(fields) and fields[0] == b"Z"


def _dead_holder(content: Optional[bytes]) -> bool:
    """Whether an exclusive lock file's ``content`` (the default
    ``host\\npid\\nuser\\nuid\\nLOCK``) names a dead process of this
    host."""
    if not content:
        return False
    lines = content.split(b"\n")
    if len(lines) < 5 or lines[-1] != b"LOCK":
        return False
    try:
        host = lines[0].decode("utf-8")
        pid = int(lines[1])
    except ValueError:
        return False
    return host == _host_and_user()[0] and _process_is_dead(pid)


def _clean_part(part: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in part)


def _dead_reader(name: str) -> bool:
    """Whether a shared lock's reader file ``name``
    (``<host>__<pid>__<user>__<uid>.lock``) names a dead process of this
    host."""
    prefix = _clean_part(_host_and_user()[0]) + "__"
    if not name.startswith(prefix):
        return False
    pid, separator, _ = name[len(prefix):].partition("__")
    if not separator or not pid.isdigit():
        return False
    return _process_is_dead(int(pid))


def _read_file(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        # PermissionError: Windows reports opening a directory this way.
        return None


#: What a waiter sees at a lock path: None (free), ('file', inode, mtime,
#: content) or ('dir', reader names).
_Signature = Optional[Tuple[Any, ...]]


class _BaseFileLock(object):
    """What exclusive and shared locks have in common."""

    path: str

    def __init__(self, name: str, dir: Optional[str], poll_interval: float, timeout: float,
                 force_timeout: float, uid: Any) -> None:
        self.name = name
        self.dir = dir
        self.path = _lock_path(name, dir)
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.force_timeout = force_timeout
        self.uid = id(self) if uid is None else uid

    def __repr__(self) -> str:
        return "<{} {!r}>".format(type(self).__name__, self.path)

    # -- observing and breaking ----------------------------------------------

    def _signature(self) -> _Signature:
        path = self.path
        try:
            status = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if os.path.isdir(path):
            try:
                readers: FrozenSet[str] = frozenset(os.listdir(path))
            except (FileNotFoundError, NotADirectoryError):
                return None
            return ("dir", readers)
        return ("file", status.st_ino, status.st_mtime_ns, _read_file(path))

    def _break_if_unchanged(self, signature: _Signature) -> bool:
        """Break the lock if it is still what ``signature`` describes.

        The lock file is first renamed aside, so that a lock taken by a new
        holder in the meantime is not removed by mistake.
        """
        if signature is None:
            return False
        path = self.path
        if signature[0] == "dir":
            broken = False
            for reader in signature[1]:
                try:
                    os.unlink(os.path.join(path, reader))
                    broken = True
                except OSError:
                    pass
            try:
                os.rmdir(path)
            except OSError:
                pass
            if broken:
                logger.warning("Broke the stale shared lock %s (readers %s)", path,
                               ", ".join(sorted(signature[1])))
            return broken
        aside = "{}.{}.broken".format(path, uuid.uuid4().hex)
        try:
            os.rename(path, aside)
        except OSError:
            return False
        try:
            status = os.stat(aside)
            if (status.st_ino, status.st_mtime_ns) == signature[1:3]:
                logger.warning("Broke the stale lock %s held by %r", path, signature[3])
                return True
            # A new holder took the lock after we looked: give it back.
            try:
                os.link(aside, path)
            except OSError:
                logger.error("Broke a fresh lock %s by mistake and could not restore it", path)
            return False
        finally:
            try:
                os.unlink(aside)
            except OSError:
                pass

    def _break_dead(self, signature: _Signature) -> bool:
        """Break what of the lock ``signature`` describes belongs to
        processes of this host that no longer run; return whether anything
        was broken."""
        if signature is None:
            return False
        if signature[0] == "dir":
            dead = frozenset(name for name in signature[1] if _dead_reader(name))
            if not dead:
                return False
            for reader in dead:
                try:
                    os.unlink(os.path.join(self.path, reader))
                except OSError:
                    pass
            logger.warning("Removed readers of ended processes from the shared lock %s (%s)",
                           self.path, ", ".join(sorted(dead)))
            if dead == signature[1]:
                try:
                    os.rmdir(self.path)
                except OSError:
                    pass
            return True
        if not _dead_holder(signature[3]):
            return False
        return self._break_if_unchanged(signature)

    def force_break(self) -> bool:
        """Break the lock now, whoever holds it.

        Returns
        -------
        bool
            ``True`` if there was a lock (exclusive or shared) to break,
            ``False`` if the lock was free.  (Encore 0.8 returned the
            opposite, and for shared locks tried to ``rmdir`` a file.)
        """
        path = self.path
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            return True
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError as error:
            if error.errno in (errno.EISDIR, errno.EPERM, errno.EACCES) and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
                return True
            raise
        return True

    # -- waiting ---------------------------------------------------------------

    def _waiter(self) -> "_Waiter":
        return _Waiter(self)

    def _blocked(self) -> bool:
        raise NotImplementedError

    def wait(self) -> bool:
        """Wait until the lock could be acquired, without acquiring it.

        Returns
        -------
        bool
            ``True`` when the lock became available, ``False`` if
            ``timeout`` (when positive) passed first.
        """
        waiter = self._waiter()
        while self._blocked():
            if not waiter.sleep(force=False):
                return False
        return True

    def __enter__(self) -> "_BaseFileLock":
        if not self.acquire():  # type: ignore[attr-defined]
            raise LockError("timed out after {} s waiting for the lock {}".format(
                self.timeout, self.path))
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.release()  # type: ignore[attr-defined]


#: Seconds between two checks of whether a lock's holder still runs.
_DEAD_CHECK_INTERVAL = 0.05


class _Waiter(object):
    """Time-keeping of one wait for a lock: timeout and stale-lock breaking."""

    def __init__(self, lock: _BaseFileLock) -> None:
        self.lock = lock
        self.start = time.monotonic()
        self.seen: _Signature = None
        self.seen_since = self.start
        self.checked_at = -float("inf")

    def sleep(self, force: bool = True) -> bool:
        """Wait one poll interval; return False when the timeout passed.

        When ``force`` and the lock has not changed for ``force_timeout``
        seconds, break it instead of sleeping.
        """
        lock = self.lock
        now = time.monotonic()
        if force and lock.force_timeout and lock.force_timeout > 0:
            signature = lock._signature()
            if signature is not None and now - self.checked_at >= _DEAD_CHECK_INTERVAL:
                # Whether the holder still runs is asked at most every
                # _DEAD_CHECK_INTERVAL: it may die while we wait.
                self.checked_at = now
                if lock._break_dead(signature):
                    self.seen, self.seen_since = None, now
                    return True  # try again at once
            if signature != self.seen:
                self.seen, self.seen_since = signature, now
            elif now - self.seen_since >= lock.force_timeout:
                lock._break_if_unchanged(signature)
                self.seen, self.seen_since = None, now
                return True
        if lock.timeout and lock.timeout > 0 and now - self.start >= lock.timeout:
            return False
        time.sleep(lock.poll_interval)
        return True


class FileLock(_BaseFileLock):
    """An exclusive lock between processes (and machines sharing a file
    system): a file created atomically.

    The lock is not re-entrant: acquiring it again before releasing it
    waits like any other acquirer.

    Parameters
    ----------
    name : str
        The lock path without the ``.lock`` suffix.
    dir : str, optional
        A directory the name is relative to (leading slashes of ``name``
        are dropped).
    poll_interval : float, optional
        Seconds between two attempts while waiting (default 0.01).
    timeout : float, optional
        Seconds after which :meth:`acquire` gives up; 0 (the default)
        waits for ever.
    force_timeout : float, optional
        Seconds after which a waiter breaks a lock that has not changed
        meanwhile (its holder presumably died); 0 (the default) never
        breaks locks.
    uid : object, optional
        Identifies the holder within its process (default ``id(self)``);
        formatted with ``str``.
    data : bytes or str, optional
        What the lock file contains; by default
        ``b'<host>\\n<pid>\\n<user>\\n<uid>\\nLOCK'``.

    Attributes
    ----------
    name, dir, poll_interval, timeout, force_timeout, uid
        The arguments, as given (``uid`` defaulted).
    path : str
        The lock file (also :attr:`full_path`, Encore's name).
    """

    def __init__(self, name: str, dir: Optional[str] = None, poll_interval: float = 0.01,
                 timeout: float = 0, force_timeout: float = 0, uid: Any = None,
                 data: Union[bytes, str, None] = None) -> None:
        super().__init__(name, dir, poll_interval, timeout, force_timeout, uid)
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._explicit_data = data
        self._pid = -1
        self._data = b""
        self._mutex = threading.Lock()

    @property
    def full_path(self) -> str:
        """str : The lock file: ``name + '.lock'``, inside ``dir`` if given
        (Encore's name for :attr:`path`)."""
        return self.path

    @property
    def data(self) -> bytes:
        """bytes : What this lock writes into the lock file."""
        if self._explicit_data is not None:
            return self._explicit_data
        pid = os.getpid()
        if pid != self._pid:  # computed again in a forked child
            host, user = _host_and_user()
            self._data = "{}\n{}\n{}\n{}\nLOCK".format(host, pid, user, self.uid).encode("utf-8")
            self._pid = pid
        return self._data

    def _blocked(self) -> bool:
        return self.locked()

    def acquire(self) -> bool:
        """Acquire the lock, waiting for it as needed.

        Returns
        -------
        bool
            ``True`` once acquired; ``False`` if ``timeout`` (when positive)
            passed first.

        Raises
        ------
        LockError
            If the lock cannot be created at all (its directory does not
            exist, say).
        """
        data = self.data
        waiter = self._waiter()
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0)
        while True:
            try:
                fd = os.open(self.path, flags, 0o644)
            except (FileExistsError, IsADirectoryError, PermissionError) as error:
                # A directory means shared holders -- or none left: an empty
                # directory is removed and the attempt made again.
                if os.path.isdir(self.path):
                    try:
                        os.rmdir(self.path)
                        continue
                    except OSError:
                        pass
                elif not os.path.exists(self.path):
                    if not isinstance(error, PermissionError):
                        continue  # released in between: try again at once
                    directory = os.path.dirname(os.path.abspath(self.path))
                    if not os.access(directory, os.W_OK):
                        raise LockError("cannot create the lock {}: {}".format(
                            self.path, error)) from None
                    # A Windows pending delete: wait a moment (not a busy loop).
                if not waiter.sleep():
                    return False
                continue
            except (FileNotFoundError, NotADirectoryError) as error:
                raise LockError("cannot create the lock {}: {}".format(self.path, error)) from None
            try:
                os.write(fd, data)
            except BaseException:
                os.close(fd)
                os.unlink(self.path)
                raise
            os.close(fd)
            return True

    def release(self) -> None:
        """Release the lock.

        Raises
        ------
        LockError
            If the lock is not held, or held by someone else (its content is
            not this lock's data).
        """
        content = _read_file(self.path)
        if content is None:
            raise LockError("the lock {} is not held".format(self.path))
        if content != self.data:
            raise LockError("the lock {} is held by someone else".format(self.path))
        for attempt in range(50):
            try:
                os.unlink(self.path)
                return
            except FileNotFoundError:
                raise LockError("the lock {} was broken while held".format(self.path)) from None
            except PermissionError:
                # Windows: a reader has the file open for a moment.
                if attempt == 49:
                    raise
                time.sleep(self.poll_interval)

    def locked(self) -> bool:
        """Whether anybody holds the lock (exclusively or shared).

        Returns
        -------
        bool
            ``True`` if the lock file exists, or the shared-lock directory
            holds readers.
        """
        path = self.path
        if os.path.isdir(path):
            try:
                return bool(os.listdir(path))
            except OSError:
                return False
        return os.path.exists(path)

    def acquired(self) -> bool:
        """Whether this lock holds the lock file.

        Returns
        -------
        bool
            ``True`` if the lock file contains this lock's data.
        """
        return _read_file(self.path) == self.data

    def get_data(self) -> Optional[bytes]:
        """Return the content of the lock file (who holds the lock).

        Returns
        -------
        bytes or None
            ``None`` when no exclusive lock is held.
        """
        return _read_file(self.path)


class SharedFileLock(_BaseFileLock):
    """A shared (read) lock between processes: a directory holding one file
    per reader.

    Any number of :class:`SharedFileLock` holders may hold the lock at once;
    a :class:`FileLock` of the same name excludes them all.  The lock is
    re-entrant: each :meth:`acquire` must be matched by a :meth:`release`.

    Parameters
    ----------
    name : str
        The lock path without the ``.lock`` suffix.
    dir : str, optional
        A directory the name is relative to.
    poll_interval : float, optional
        Seconds between attempts while an exclusive holder has the lock.
    timeout : float, optional
        Seconds after which :meth:`acquire` gives up (0: never).
    force_timeout : float, optional
        Seconds after which a waiter breaks an exclusive lock that has not
        changed meanwhile (0: never).
    uid : object, optional
        Identifies the reader within its process (default ``id(self)``).
    link_source : str, optional
        An existing file on the same file system.  When given, each
        reader's entry is made as a hard link to it instead of a new file,
        which some file systems do many times faster; where hard links fail
        a file is created as usual.  (An encore addition.)

    Attributes
    ----------
    name, dir, poll_interval, timeout, force_timeout, uid
        The arguments, as given (``uid`` defaulted).
    path : str
        The lock directory (also :attr:`dir_path`, Encore's name); this
        holder's file in it is :attr:`file_name`, at :attr:`full_path`.
    """

    def __init__(self, name: str, dir: Optional[str] = None, poll_interval: float = 0.01,
                 timeout: float = 0, force_timeout: float = 0, uid: Any = None,
                 link_source: Optional[str] = None) -> None:
        super().__init__(name, dir, poll_interval, timeout, force_timeout, uid)
        self.link_source = link_source
        self._level = 0
        self._mutex = threading.RLock()
        self._reader_path: Optional[str] = None
        self._reader_names: Dict[int, str] = {}

    @property
    def dir_path(self) -> str:
        """str : The lock directory, ``name + '.lock'`` (inside ``dir`` if
        given); Encore's name for :attr:`path`."""
        return self.path

    @property
    def file_name(self) -> str:
        """str : This holder's file name, ``<host>__<pid>__<user>__<uid>.lock``
        (characters other than letters, digits, ``-``, ``.`` and ``_`` in the
        parts are replaced by ``_``)."""
        return self._reader_name()

    @property
    def full_path(self) -> str:
        """str : This holder's file inside the lock directory."""
        return os.path.join(self.path, self._reader_name())

    def _reader_name(self) -> str:
        pid = os.getpid()
        cached = self._reader_names.get(pid)
        if cached is None:
            host, user = _host_and_user()
            parts = [host, str(pid), user, str(self.uid)]
            cleaned = [_clean_part(part) for part in parts]
            cached = self._reader_names[pid] = "__".join(cleaned) + ".lock"
        return cached

    def _blocked(self) -> bool:
        return self.locked()

    def acquire(self) -> bool:
        """Acquire a shared hold on the lock, waiting while it is held
        exclusively.

        Returns
        -------
        bool
            ``True`` once acquired (at once when this lock already holds
            it); ``False`` if ``timeout`` (when positive) passed first.

        Raises
        ------
        LockError
            If the lock cannot be created at all.
        """
        with self._mutex:
            if self._level > 0:
                self._level += 1
                return True
            name = self._reader_name()
            reader = os.path.join(self.path, name)
            content = "{}\nSHARED".format(name).encode("utf-8")
            waiter = self._waiter()
            flags = os.O_CREAT | os.O_WRONLY | os.O_TRUNC | getattr(os, "O_BINARY", 0)
            while True:
                try:
                    fd = self._register(reader, flags)
                except NotADirectoryError:
                    # An exclusive lock file is there.
                    if not waiter.sleep():
                        return False
                    continue
                except FileNotFoundError:
                    try:
                        os.mkdir(self.path)
                    except FileExistsError:
                        pass
                    except (FileNotFoundError, NotADirectoryError) as error:
                        raise LockError("cannot create the lock {}: {}".format(
                            self.path, error)) from None
                    continue
                except PermissionError:
                    # Windows reports a file in the way like this.
                    if os.path.isfile(self.path):
                        if not waiter.sleep():
                            return False
                        continue
                    raise
                if fd is not None:
                    try:
                        os.write(fd, content)
                    finally:
                        os.close(fd)
                self._reader_path = reader
                self._level = 1
                return True

    def _register(self, reader: str, flags: int) -> Optional[int]:
        """Create this reader's entry: a hard link to :attr:`link_source`
        (returns None) or a new file (returns its descriptor)."""
        source = self.link_source
        if source is not None:
            try:
                os.link(source, reader)
                return None
            except FileExistsError:
                os.unlink(reader)  # left by a dead process that had our name
                return self._register(reader, flags)
            except FileNotFoundError:
                if os.path.exists(source):
                    raise  # the lock directory is missing
                self.link_source = None
            except (NotADirectoryError, PermissionError):
                raise
            except OSError:  # no hard links here (or across devices)
                self.link_source = None
        return os.open(reader, flags, 0o644)

    def release(self) -> None:
        """Release one hold on the lock; the last one removes this reader.

        The lock directory stays (as in Encore 0.8): removing it would cost
        more than the rest of a read, and the next exclusive acquirer
        removes it once empty.

        Raises
        ------
        LockError
            If this lock is not held, or its reader file was removed (the
            lock was broken).
        """
        with self._mutex:
            if self._level <= 0:
                raise LockError("the shared lock {} is not held".format(self.path))
            self._level -= 1
            if self._level:
                return
            reader, self._reader_path = self._reader_path, None
            try:
                os.unlink(reader)  # type: ignore[arg-type]  # (set while a reader)
            except FileNotFoundError:
                raise LockError("the shared lock {} was broken while held".format(self.path)) from None

    def locked(self) -> bool:
        """Whether the lock is held exclusively (so a shared hold must wait).

        Returns
        -------
        bool
            ``True`` if the lock path is a file.
        """
        return os.path.isfile(self.path)

    def acquired(self) -> bool:
        """Whether this lock holds a shared hold.

        Returns
        -------
        bool
            ``True`` if this reader's file exists.
        """
        reader = self._reader_path
        return reader is not None and os.path.isfile(reader)

    def get_data(self) -> Optional[bytes]:
        """Return the content of the exclusive lock file blocking readers.

        Returns
        -------
        bytes or None
            Who holds the lock exclusively, or ``None`` when nobody does.
        """
        return _read_file(self.path)
