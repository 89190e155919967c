"""A key-value store that lives in a dictionary in memory.

:class:`DictMemoryStore` keeps every key in a plain dictionary, which makes it
the fastest store and a handy stand-in for a real one in tests.  It is also
the sample implementation of the storage API: it implements the abstract core
(``get``, ``query``, ``set``, ``set_data``, ``set_metadata``, ``delete``)
plus a few methods that are much cheaper when done directly on the
dictionary, and inherits everything else from
:class:`~encore.storage.abstract_store.AbstractStore`.

Example
-------
>>> import io
>>> from encore.storage.dict_memory_store import DictMemoryStore
>>> store = DictMemoryStore()
>>> store.connect()
>>> store.set('greeting', (io.BytesIO(b'hello'), {'lang': 'en'}))
>>> store.to_bytes('greeting')
b'hello'
>>> list(store.query_keys(lang='en'))
['greeting']
"""
from __future__ import annotations

import io
import logging
from time import time as _now
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple

from .abstract_store import (
    AbstractStore,
    check_key,
    checks_own_arguments,
    copy_metadata,
    select_metadata,
    value_parts,
)
from .events import StoreDeleteEvent, StoreSetEvent, StoreUpdateEvent
from .string_value import StringValue
from .utils import DEFAULT_BUFFER_SIZE, _read_chunks, progress_is_listened, store_progress, transaction_lock

logger = logging.getLogger(__name__)

_new_object = object.__new__

__all__ = ["DictMemoryStore"]

#: One entry of ``DictMemoryStore._store``: data, metadata, created, modified.
Entry = Tuple[bytes, Dict[str, Any], float, float]

#: Streams whose ``read()`` returns their whole rest efficiently.
_WHOLE_READ_TYPES = (io.BytesIO, io.BufferedReader, io.FileIO)


class DictMemoryStore(AbstractStore):
    """A store that keeps its keys in a dictionary in memory.

    Each key maps to a tuple ``(data, metadata, created, modified)`` in the
    private ``_store`` dictionary: the data as ``bytes``, the metadata dict
    (a private copy, never changed in place) and the creation and last
    modification times in seconds since the epoch.

    Data streams returned are :class:`io.BytesIO` objects.  Writes are
    atomic: a stream is read completely before the key is touched, so a
    failing stream leaves the key as it was.  The store is thread-safe;
    transactions really roll back (an undo log restores the keys a failed
    transaction touched), and hold back their events until they commit.
    Readers on other threads are not isolated from a transaction in
    progress: they see its writes before it commits.

    Parameters
    ----------
    event_manager : BaseEventManager, optional
        Where the store emits its events; defaults to the package-wide
        manager.
    """

    def __init__(self, event_manager: Any = None) -> None:
        super().__init__(event_manager=event_manager)
        self._store: Dict[str, Entry] = {}
        # Writers (and whole transactions) are serialised by the store's
        # re-entrant transaction lock.  Readers take no lock: looking a key up
        # and copying the dictionary (``dict.copy``, used by the queries) are
        # atomic operations on a dict with str keys.
        self._write_lock = transaction_lock(self)
        # The undo log of the open transaction: key -> entry before the
        # transaction first touched it (None: the key did not exist).
        self._undo: Optional[Dict[str, Optional[Entry]]] = None

    # -- connection and description -----------------------------------------

    def connect(self, credentials: Any = None) -> None:
        """Connect to the store.

        Parameters
        ----------
        credentials : object, optional
            Ignored: the store has no authentication and no external
            resources.
        """
        self._connected = True

    def disconnect(self) -> None:
        """Disconnect from the store.

        The content is kept; it lives as long as the store object.
        """
        self._connected = False

    def info(self) -> Dict[str, Any]:
        """Describe the store.

        Returns
        -------
        dict
            ``{'type': 'DictMemoryStore', 'readonly': False,
            'authorizing': False}``.
        """
        return {"type": "DictMemoryStore", "readonly": False, "authorizing": False}

    # -- reading -------------------------------------------------------------

    @checks_own_arguments
    def get(self, key: str) -> StringValue:
        """Return the value of a key.

        Returns
        -------
        StringValue
            With the data, a copy of the metadata, the size and the times.
        """
        # The hottest read: the key is checked here rather than by the base
        # class's wrapper (see @checks_own_arguments), and the
        # value is assembled without going through its constructor.
        if type(key) is not str:
            check_key(key)
        data, metadata, created, modified = self._store[key]
        value = _new_object(StringValue)
        value._bytes = data
        value._metadata = metadata
        value.size = len(data)
        value.created = created
        value.modified = modified
        return value

    def get_data(self, key: str) -> io.BytesIO:
        """Return the data of a key as a stream.

        Returns
        -------
        io.BytesIO
            A stream over the data.
        """
        return io.BytesIO(self._store[key][0])

    def get_data_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> io.BytesIO:
        """Return part of the data of a key as a stream.

        Returns
        -------
        io.BytesIO
            A stream over the range.
        """
        return io.BytesIO(self._store[key][0][start:end])

    def get_metadata(self, key: str, select: Optional[Iterable[str]] = None) -> Dict[str, Any]:
        """Return the metadata of a key."""
        metadata = self._store[key][1]
        if select is None:
            return copy_metadata(metadata)
        return select_metadata(metadata, select)

    def exists(self, key: str) -> bool:
        return key in self._store

    def to_bytes(self, key: str, buffer_size: int = DEFAULT_BUFFER_SIZE) -> bytes:
        """Return the data of a key as bytes.

        Parameters
        ----------
        buffer_size : int, optional
            Ignored: the data is already in memory.
        """
        return self._store[key][0]

    def _items(self) -> Iterable[Tuple[str, Entry]]:
        # A consistent snapshot even while other threads write.
        return self._store.copy().items()

    def query(self, select: Optional[Iterable[str]] = None, **kwargs: Any) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """Find the keys whose metadata match the given values.

        The store's content is captured when ``query`` is called, so writes
        made while the result is consumed do not disturb it.

        Parameters
        ----------
        **kwargs
            Metadata names and values: a key matches when
            ``metadata.get(name) == value`` for all of them (so ``name=None``
            also matches keys without ``name``).
        """
        items = self._items()
        if select is not None:
            select = list(select)
        criteria = list(kwargs.items())
        return self._query(items, select, criteria)

    @staticmethod
    def _query(items, select, criteria) -> Iterator[Tuple[str, Dict[str, Any]]]:
        for key, entry in items:
            metadata = entry[1]
            for name, value in criteria:
                if metadata.get(name) != value:
                    break
            else:
                if select is None:
                    yield key, copy_metadata(metadata)
                else:
                    yield key, select_metadata(metadata, select)

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Find the keys whose metadata match the given values."""
        if not kwargs:
            return iter(self._store.copy())
        criteria = list(kwargs.items())
        return (
            key
            for key, entry in self._items()
            if all(entry[1].get(name) == value for name, value in criteria)
        )

    # -- writing -------------------------------------------------------------

    def _read_stream(self, stream: Any, buffer_size: int, progress: Any = None) -> bytes:
        """Read a stream to its end, buffer by buffer, as bytes."""
        if progress is None and type(stream) in _WHOLE_READ_TYPES:
            # The whole rest at once: a BytesIO usually without a copy, a
            # file into one buffer of its size (read in chunks and joined,
            # a large file would briefly need twice its size).
            return stream.read()
        if buffer_size is None or buffer_size <= 0:
            buffer_size = DEFAULT_BUFFER_SIZE
        chunks = _read_chunks(stream, buffer_size)
        first = next(chunks, b"")
        if not first:
            return b""
        total = len(first)
        if progress is not None:
            progress.step(step=total)
        chunk = next(chunks, b"")
        if not chunk:
            return first  # one buffer: no copy at all
        # Several buffers: gather them in ONE growing buffer.  A BytesIO
        # grows its bytes object in place (realloc) and getvalue() hands
        # that object over without a copy, so the value costs one copy of
        # its size at most -- joining a list of chunks would need two.
        buffer = io.BytesIO()
        write = buffer.write
        write(first)
        del first
        while chunk:
            write(chunk)
            if progress is not None:
                total += len(chunk)
                progress.step(step=total)
            chunk = next(chunks, b"")
        del chunk
        data = buffer.getvalue()
        buffer.close()
        return data

    def _read_with_progress(
        self, key: str, stream: Any, metadata: Optional[Dict[str, Any]], steps: int, buffer_size: int
    ) -> bytes:
        """Read a stream, emitting progress events when anyone listens."""
        if not progress_is_listened(self.event_manager):
            return self._read_stream(stream, buffer_size)
        progress = store_progress(
            self, key, None if metadata is None else copy_metadata(metadata),
            "Storing {}".format(key), steps, stream)
        with progress:
            return self._read_stream(stream, buffer_size, progress)

    def _write(self, key: str, data: Optional[bytes], metadata: Optional[Dict[str, Any]],
               merge: bool = False) -> None:
        """Store data and/or metadata for a key, then emit the write's event.

        ``data=None`` keeps the data (``b''`` for a new key);
        ``metadata=None`` keeps the metadata (``{}`` for a new key);
        ``merge=True`` merges ``metadata`` into the existing metadata and
        requires the key to exist.
        """
        now = _now()
        with self._write_lock:
            store = self._store
            old = store.get(key)
            if old is None:
                if merge:
                    raise KeyError(key)
                entry = (b"" if data is None else data, {} if metadata is None else metadata, now, now)
            else:
                if metadata is None:
                    metadata = old[1]
                elif merge:
                    merged = old[1].copy()
                    merged.update(metadata)
                    metadata = merged
                entry = (old[0] if data is None else data, metadata, old[2], now)
            undo = self._undo
            if undo is not None and key not in undo:
                undo[key] = old
            store[key] = entry
        self._emit_modification(StoreSetEvent if old is None else StoreUpdateEvent, key, entry[1])

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data and metadata of a key.

        The data stream is read to its end before the key is changed.

        Parameters
        ----------
        key : str
            The key; created or replaced (its creation time is kept).
        value : Value or (file-like, dict) tuple
            The new data and metadata.  A tuple's stream is left open; the
            stream of a Value is closed after reading.

        Raises
        ------
        TypeError, ValueError
            If the value, its data or its metadata are of the wrong type.

        Events
        ------
        StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent
            While the data is read, when anyone listens (``steps``: the
            value's size, or what a tuple's seekable stream has left;
            ``-1`` when unknown).
        StoreSetEvent or StoreUpdateEvent
            After the write (after the transaction, inside one).
        """
        if type(value) is tuple:
            # Already checked: the metadata is a private copy.
            stream, metadata = value
            if type(stream) is io.BytesIO and not progress_is_listened(self.event_manager):
                data = stream.read()  # the common case, kept short
            else:
                data = self._read_with_progress(key, stream, metadata, -1, buffer_size)
        elif type(value) is StringValue and not progress_is_listened(self.event_manager):
            data = value._bytes
            metadata = copy_metadata(value._metadata)
        else:
            stream, metadata, size, _ = value_parts(value)
            try:
                data = self._read_with_progress(
                    key, stream, metadata, -1 if size is None else size, buffer_size)
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        self._write(key, data, metadata)

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Replace the data of a key, keeping its metadata.

        Parameters
        ----------
        data : file-like
            A readable binary stream, read to its end (and left open).

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            After the write.
        """
        entry = self._store.get(key)
        payload = self._read_with_progress(
            key, data, None if entry is None else entry[1], -1, buffer_size)
        self._write(key, payload, None)

    def set_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        self._write(key, None, metadata)

    def update_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Merge new values into the metadata of a key.

        Encore 0.8 changed the stored dictionary in place, emitted nothing
        and left the modification time alone; this emits a
        :class:`~encore.storage.events.StoreUpdateEvent` and updates
        ``modified``.

        Raises
        ------
        TypeError, ValueError
            If the metadata cannot be stored.
        """
        self._write(key, None, metadata, merge=True)

    def delete(self, key: str) -> None:
        with self._write_lock:
            old = self._store.pop(key)
            undo = self._undo
            if undo is not None and key not in undo:
                undo[key] = old
        self._emit_modification(StoreDeleteEvent, key, old[1])

    def from_bytes(self, key: str, data: bytes, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data of a key from bytes, keeping its metadata.

        Encore 0.8 reset the metadata to ``{}``; it is kept here.

        Parameters
        ----------
        buffer_size : int, optional
            Ignored.

        Events
        ------
        StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent
            When anyone listens: ``steps`` is ``len(data)`` in bytes.
        """
        payload = bytes(data)
        if progress_is_listened(self.event_manager):
            entry = self._store.get(key)
            progress = store_progress(
                self, key, None if entry is None else copy_metadata(entry[1]),
                "Storing {}".format(key), len(payload))
            with progress:
                progress.step(step=len(payload))
        self._write(key, payload, None)

    # -- transactions --------------------------------------------------------

    def _begin_transaction(self) -> None:
        """Start an undo log (called with the transaction lock held)."""
        self._undo = {}

    def _commit_transaction(self) -> None:
        """Forget the undo log: the writes stand."""
        self._undo = None

    def _rollback_transaction(self) -> None:
        """Restore every key the transaction touched."""
        undo, self._undo = self._undo, None
        if not undo:
            return
        store = self._store
        for key, entry in undo.items():
            if entry is None:
                store.pop(key, None)
            else:
                store[key] = entry
