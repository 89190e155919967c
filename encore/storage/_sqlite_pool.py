"""Connections of :mod:`encore.storage.sqlite_store`.

A store writes through one connection and reads a file database through a
small pool of other, read-only connections, so that reads never wait for a
writer and only see committed data.  This module opens connections and
keeps that pool.
"""
from __future__ import annotations

import sqlite3
import threading
from typing import Callable, List

_MAX_IDLE_READERS = 8


def _open_connection(path: str, timeout: float, uri: bool, reader: bool) -> sqlite3.Connection:
    """Open a connection in autocommit mode, usable from any thread.

    A reader connection is made query-only.
    """
    connection = sqlite3.connect(
        path,
        timeout=timeout,
        isolation_level=None,
        check_same_thread=False,
        uri=uri,
    )
    if reader:
        connection.execute("PRAGMA query_only = ON")
    return connection


class _ReaderPool(object):
    """The read connections of a store, with up to a few kept idle.

    The pool lends connections only between :meth:`open` and
    :meth:`close_all`.

    Parameters
    ----------
    opener : callable
        Opens a new read connection.
    fail : callable
        ``fail(reason)`` returns the exception raised when a connection is
        asked for while the pool is closed, ``reason`` being
        ``"is not connected"`` or (when it was closed while a connection was
        being opened) ``"was disconnected"``.
    """

    def __init__(self, opener: Callable[[], sqlite3.Connection],
                 fail: Callable[[str], Exception]) -> None:
        self._opener = opener
        self._fail = fail
        self._open = False
        self._lock = threading.Lock()
        self._idle: List[sqlite3.Connection] = []
        #: Every open read connection, idle or lent out.
        self.readers: set = set()
        self._generation = 0

    def open(self) -> None:
        """Let the pool lend connections (again)."""
        with self._lock:
            self._open = True

    def acquire(self) -> sqlite3.Connection:
        """Lend a read connection, opening one if none is idle."""
        with self._lock:
            if not self._open:
                raise self._fail("is not connected")
            if self._idle:
                return self._idle.pop()
            generation = self._generation
        connection = self._opener()
        with self._lock:
            if generation != self._generation or not self._open:
                connection.close()
                raise self._fail("was disconnected")
            self.readers.add(connection)
        return connection

    def release(self, connection: sqlite3.Connection) -> None:
        """Take back a lent connection (closed if enough are idle or the pool was closed)."""
        with self._lock:
            if connection in self.readers:
                if len(self._idle) < _MAX_IDLE_READERS:
                    self._idle.append(connection)
                    return
                self.readers.discard(connection)
        try:
            connection.close()
        except sqlite3.Error:
            pass

    def close_all(self) -> None:
        """Close every read connection, idle or lent out, until :meth:`open`."""
        with self._lock:
            self._open = False
            readers = list(self.readers)
            self.readers.clear()
            self._idle = []
            self._generation += 1
        for connection in readers:
            try:
                connection.close()
            except sqlite3.Error:
                pass
