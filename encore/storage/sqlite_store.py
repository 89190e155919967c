"""A key-value store in an SQLite database.

:class:`SqliteStore` keeps every key in one row of a table with Encore's
layout::

    CREATE TABLE store (key text primary key, metadata dict,
                        created float, modified float, data blob)

``metadata`` holds the metadata as JSON text and ``data`` the value's bytes.
Importing this module registers, process-wide, an :mod:`sqlite3` adapter for
``dict`` and a converter for the declared type ``dict`` (:func:`adapt_dict`
and :func:`convert_dict`: JSON, and Encore 0.8's pickles read safely), so code
that inserts dictionaries into such a table directly, or reads it with
``detect_types=sqlite3.PARSE_DECLTYPES``, keeps working.  The store itself
does not rely on these registrations: it encodes and decodes its metadata
explicitly.

The values JSON lacks (datetimes, decimals, bytes, sets, UUIDs) are written
in the tagged form of :mod:`encore.storage._metadata_codec`.  Encore 0.8
pickled its metadata; such a database opens only when ``legacy_pickle=True``
is passed, and is then read with a restricted unpickler (no pickle can run
code) and written as Encore 0.8 wrote it, so old and new programs can share
it (see :class:`SqliteStore`).  A row whose metadata cannot be read raises
:class:`~encore.storage.abstract_store.StoreError` naming its key.

Indexed queries
---------------
Some metadata names can be *indexed*: their values are also kept in the
columns of a companion table (``<table>__encore_index``, one row per key, one
column per indexed name, each with its own partial index) so that
:meth:`SqliteStore.query` finds matching keys without reading every row.
Keeping them out of the main table keeps that table exactly in Encore's
shape, and keeps the data blob the last column of its rows, which is what
lets SQLite write a large value incrementally (see below).  A column holds a
canonical JSON text of the value, in which numbers equal in Python (``1``,
``1.0`` and ``True``, or ``Decimal('2')`` and ``2``) have the same text, so
an indexed query matches exactly the keys for which
``metadata.get(name) == value``.  A name is indexed only if every row can be
read when its column is built, so a query on it fails on an unreadable row
just as an unindexed one does.

A condition on a name without an index is evaluated by SQLite too, with
``json_extract`` over the stored JSON, as a *superset* filter: it keeps
every row that may match (numbers compare by value, so ``1``, ``1.0`` and
``true`` all pass for ``1``; a name holding an object passes for any number,
since a tagged value may equal it; a list or dictionary passes for any array
or object) and Python then checks each row it returns with ``==``.  Values
SQLite could compare differently (non-integral floats, integers beyond 64
bits, strings with NUL characters, tuples and other types) and names that
do not fit in a JSON path (anything but printable ASCII without double
quotes and backslashes) are left to Python alone.  Rows whose metadata is
not JSON text (Encore 0.8 pickles) always pass the filter.  The results are exactly those of checking
every row in Python, at the cost of SQLite's own scan.

Large values
------------
Values larger than 1 MiB are written and read incrementally with SQLite's
incremental blob I/O (:meth:`sqlite3.Connection.blobopen`, Python 3.11+): the
row is written with a zero-filled blob of the right size, which is then
filled buffer by buffer; reads return a stream over the blob.  When the size
of the incoming data is not known in advance (a pipe, a generator-backed
stream), it is first spooled to a temporary file.  On Python 3.10 values are
held in memory while they are written or read.

Concurrency
-----------
A file database is opened in WAL mode.  Writes go through one connection,
serialised by the store's transaction lock; reads use a small pool of other
connections, so they never wait for a writer and only ever see committed
data; a stream over a value reads the version that was current when it was
opened, even if the key is rewritten meanwhile.  An in-memory database
(``':memory:'``) lives in one connection, which reads and writes share under
the same lock: reads wait for an open transaction, and a stream over a large
value (over 1 MiB) raises
:class:`~encore.storage.abstract_store.StoreError` if the key is rewritten or
deleted before the stream is read to its end (it never returns a mix of two
versions).

Example
-------
>>> import io
>>> from encore.storage.sqlite_store import SqliteStore
>>> store = SqliteStore()
>>> store.connect()
>>> store.set('greeting', (io.BytesIO(b'hello'), {'lang': 'en'}))
>>> store.to_bytes('greeting')
b'hello'
>>> list(store.query_keys(lang='en'))
['greeting']
"""
from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import sqlite3
import threading
from fnmatch import fnmatchcase
from time import time as _now
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from ._sqlite_blobs import (  # noqa: F401  (re-exported: names of this module before the split)
    INLINE_LIMIT,
    _blob_bytes,
    _blob_reader,
    _BlobStream,
    _bytes_range,
    _fill_blob,
    _Payload,
    _prepare_payload,
    _remaining_size,
    _small_bytes,
    _spool_blob,
)
from ._sqlite_codec import (  # noqa: F401  (re-exported: names of this module before the split)
    EMPTY_PICKLE,
    _adapt_dict,
    _convert_dict,
    _decode_json,
    _decode_metadata,
    _encode_legacy,
    _encode_metadata,
    _RestrictedUnpickler,
    _unpickle_legacy,
    adapt_dict,
    convert_dict,
)
from ._sqlite_index import _scan_condition, _scan_where
from ._sqlite_index import (  # noqa: F401  (re-exported: names of this module before the split)
    INDEX_TABLE_SUFFIX,
    _add_index_column,
    _canonical,
    _check_table_name,
    _column_for,
    _discover_columns,
    _fill_index_column,
    _index_put_sql,
    _index_row,
    _index_value,
    _index_values,
    _write_index_values,
    _name_for,
    _PROBE_SAFE_NAME,
    _quote,
    _SIMPLE_NAME,
    _successor,
    _Unindexable,
)
from ._sqlite_pool import _MAX_IDLE_READERS, _open_connection, _ReaderPool  # noqa: F401
from .abstract_store import AbstractStore, StoreError, Value, check_metadata, value_parts
from .events import (
    StoreDeleteEvent,
    StoreSetEvent,
    StoreUpdateEvent,
)
from .utils import (
    DEFAULT_BUFFER_SIZE,
    EventHold,
    emit_events,
    is_listened,
    progress_is_listened,
    slice_offsets,
    StoreProgressManager,
    transaction_lock,
)

if TYPE_CHECKING:
    from encore.events.abstract_event_manager import BaseEventManager

logger = logging.getLogger(__name__)

__all__ = ["SqliteStore", "SqliteValue", "adapt_dict", "convert_dict"]

#: A metadata-only change to a row whose data is larger than this rewrites
#: the row with incremental blob I/O instead of an SQL ``UPDATE`` (which
#: would make SQLite load the whole value into memory, twice).
REWRITE_LIMIT = 4 << 20

# Whether this Python's sqlite3 has incremental blob I/O (3.11+).  Module
# level so that tests can exercise the fallback.
_BLOB_IO = hasattr(sqlite3.Connection, "blobopen")

_REQUIRED_COLUMNS = ("key", "metadata", "created", "modified", "data")
_FETCH_BATCH = 512


class SqliteValue(Value):
    """The value of a key of a :class:`SqliteStore`.

    Small data (up to 1 MiB) is read together with the metadata, so the
    value is a consistent snapshot.  Larger data is read from the database
    when :attr:`data` or :meth:`range` is used; if the key was written or
    deleted since :meth:`SqliteStore.get` returned the value, that raises
    :class:`~encore.storage.abstract_store.StoreError` rather than mix the
    old metadata with new data.

    Values are made by :meth:`SqliteStore.get`, not by user code.

    Parameters
    ----------
    store : SqliteStore
        The store holding the key.
    key : str
        The key.
    rowid : int
        The key's row in the store's table.
    metadata : str or bytes
        The metadata as stored (decoded on each access).
    created, modified : float
        The key's times.
    size : int
        The size of the data in bytes.
    inline : bytes or None
        The data itself when it is small, else ``None``.

    Attributes
    ----------
    size : int
        The size of the data in bytes.
    created : float
        When the key was created (seconds since the epoch).
    modified : float
        When the key was last modified.
    """

    def __init__(self, store: "SqliteStore", key: str, rowid: int, metadata: Any,
                 created: Any, modified: Any, size: int, inline: Optional[bytes]) -> None:
        self._store = store
        self._key = key
        self._rowid = rowid
        self._raw_metadata = metadata
        self._inline = inline
        self.size = size
        self.created = created
        self.modified = modified

    @property
    def data(self) -> Any:
        """file-like : A new stream over the data, from its start."""
        if self._inline is not None:
            return io.BytesIO(self._inline)
        return self._store._open_value_data(self, 0, self.size)  # type: ignore[arg-type]

    @property
    def metadata(self) -> Dict[str, Any]:
        """dict : A new copy of the metadata."""
        return self._store._decode_metadata(self._raw_metadata, self._key)

    def range(self, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        """Return a stream over ``data[start:end]``: a copy of a small value, else
        the blob, checked to be unchanged since ``get``."""
        first, last = slice_offsets(start, end, self.size)
        if self._inline is not None:
            return io.BytesIO(self._inline[first:last])
        return self._store._open_value_data(self, first, last)


# The store
# ---------------------------------------------------------------------------

class SqliteStore(AbstractStore):
    """A key-value store in a table of an SQLite database.

    Parameters
    ----------
    location : str or os.PathLike, optional
        The database: a file path (created if missing), ``':memory:'`` (the
        default: a private in-memory database, which lives until
        :meth:`disconnect`) or an SQLite ``file:`` URI.
    table : str, optional
        The table holding the keys (default ``'store'``); created if
        missing.  Any name is safe: names are quoted in every statement.
    index : str or None, optional
        How metadata names are indexed for :meth:`query`:
        ``'dynamic'`` (default) indexes every name as it first appears in
        written metadata; any other true value indexes exactly the names of
        ``index_columns``; ``None`` or another false value creates no index
        (indexes already in the database are still kept up to date and
        used).
    index_columns : iterable of str, optional
        Metadata names to index from the start (created when missing, and
        filled from the existing rows).
    event_manager : BaseEventManager, optional
        Where the store emits its events; defaults to the package-wide
        manager.
    legacy_pickle : bool, optional
        Keyword only.  Share the database with Encore 0.8 programs (default
        ``False``: a database holding Encore 0.8's pickled metadata refuses
        to open, leaving it untouched, and such rows cannot be read).  When
        true, pickled rows are read with a restricted unpickler that knows
        only the globals of Encore 0.8's metadata pickles (plain data,
        datetimes, decimals, bytes, sets, UUIDs; any other class or function
        is refused), and metadata is written as Encore 0.8 wrote it,
        ``pickle.dumps(metadata, protocol=2)``, with Encore's own index
        columns of the table kept up to date, so Encore 0.8 programs keep
        reading and querying every row.  Such a store builds no index of
        its own (``index`` and ``index_columns`` are then ignored): Encore
        0.8 programs would not keep it up to date, so queries read the
        rows.  Use it only with files you trust: the pickle machinery was
        not designed for hostile input.

    Attributes
    ----------
    location : str
        The database location as given.
    table : str
        The table name.
    index : str or None
        The indexing mode: ``'dynamic'``, ``'fixed'`` or ``None``.
    legacy_pickle : bool
        Whether legacy pickled metadata is read.

    Raises
    ------
    TypeError, ValueError
        If the table name or index column names are not usable.

    Notes
    -----
    Call :meth:`connect` before use.  The store is thread-safe; see the
    module documentation for how connections are used.  A change of only the
    metadata of a key whose data is larger than 4 MiB rewrites the whole row
    (in buffers), since SQLite keeps data and metadata in the same row.
    """

    #: Seconds a connection waits for a lock held by another process.
    busy_timeout = 30.0

    def __init__(
        self,
        location: Any = ":memory:",
        table: str = "store",
        index: Any = "dynamic",
        index_columns: Optional[Iterable[str]] = None,
        event_manager: Optional["BaseEventManager"] = None,
        *,
        legacy_pickle: bool = False,
    ) -> None:
        super().__init__(event_manager=event_manager)
        if isinstance(location, os.PathLike):
            location = os.fspath(location)
        if isinstance(location, bytes):
            location = os.fsdecode(location)
        if not isinstance(location, str):
            raise TypeError("location must be a str or os.PathLike, not {}".format(
                type(location).__name__))
        self.location = location
        self.table = _check_table_name(table)
        if index == "dynamic":
            self.index: Optional[str] = "dynamic"
        elif index:
            self.index = "fixed"
        else:
            self.index = None
        wanted: List[str] = []
        if index_columns is not None:
            if isinstance(index_columns, str):
                raise TypeError("index_columns must be an iterable of metadata names, not a str")
            for name in index_columns:
                if not isinstance(name, str):
                    raise TypeError("index column names must be str, not {}".format(
                        type(name).__name__))
                if name not in wanted:
                    wanted.append(name)
        self._wanted_columns = wanted
        self.legacy_pickle = bool(legacy_pickle)
        # Metadata is written as Encore 0.8 reads it when the database is
        # shared with it, else as JSON.
        self._encode = _encode_legacy if self.legacy_pickle else _encode_metadata
        # Metadata names that cannot be indexed (a row could not be read
        # when their column was to be built): queries on them read the rows.
        self._unindexable: set = set()
        # Encore 0.8's own index columns in the main table (legacy databases).
        self._legacy_columns: Tuple[str, ...] = ()

        self._uri = location.startswith("file:")
        if self._uri:
            query = location.partition("?")[2]
            path_part = location[5:].partition("?")[0]
            self._shared = "mode=memory" in query or path_part in ("", ":memory:")
            self._path = location
        else:
            self._shared = location in (":memory:", "")
            self._path = location if self._shared else os.path.abspath(location)

        self._table_sql = _quote(self.table)
        self._index_table = self.table + INDEX_TABLE_SUFFIX
        self._index_sql = _quote(self._index_table)

        self._tx_lock = transaction_lock(self)
        self._writer: Optional[sqlite3.Connection] = None
        self._tx_owner: Optional[int] = None
        # Index columns: committed ones, and those of the open transaction.
        self._columns: Dict[str, str] = {}
        self._tx_columns: Optional[Dict[str, str]] = None
        self._schema_version: Optional[int] = None
        self._index_full = False
        # Pooled read connections (file databases only).
        self._pool = _ReaderPool(functools.partial(self._open_connection, reader=True),
                                 self._not_connected)
        self._statements: Dict[Any, str] = {}
        self._build_statements()

    def __repr__(self) -> str:
        return "{}(location={!r}, table={!r})".format(type(self).__name__, self.location, self.table)

    # -- SQL -----------------------------------------------------------------

    def _build_statements(self) -> None:
        table = self._table_sql
        insert = "INSERT INTO {} (key, metadata, created, modified, data) ".format(table)
        # The metadata of a key created by set_data: {} in the store's encoding.
        empty = "X'{}'".format(EMPTY_PICKLE.hex()) if self.legacy_pickle else "'{}'"
        statements = {}
        for name, data in (("", "?"), ("_zero", "zeroblob(?)")):
            statements["set" + name] = (
                insert + "VALUES (?, ?, ?, ?, {}) ON CONFLICT(key) DO UPDATE SET "
                "metadata = excluded.metadata, modified = excluded.modified, "
                "data = excluded.data".format(data))
            statements["set_data" + name] = (
                insert + "VALUES (?, {}, ?, ?, {}) ON CONFLICT(key) DO UPDATE SET "
                "modified = excluded.modified, data = excluded.data".format(empty, data))
        statements["set_metadata"] = (
            insert + "VALUES (?, ?, ?, ?, X'') ON CONFLICT(key) DO UPDATE SET "
            "metadata = excluded.metadata, modified = excluded.modified")
        statements["insert_zero"] = insert + "VALUES (?, ?, ?, ?, zeroblob(?))"
        statements["row_info"] = (
            "SELECT rowid, length(data), created FROM {} WHERE key = ?".format(table))
        statements["metadata"] = "SELECT metadata FROM {} WHERE key = ?".format(table)
        statements["metadata_info"] = (
            "SELECT metadata, rowid, length(data), created FROM {} WHERE key = ?".format(table))
        statements["exists"] = "SELECT 1 FROM {} WHERE key = ?".format(table)
        statements["rowid"] = "SELECT rowid FROM {} WHERE key = ?".format(table)
        statements["get"] = (
            "SELECT rowid, metadata, created, modified, length(data), "
            "CASE WHEN length(data) <= {} THEN data END FROM {} WHERE key = ?".format(
                INLINE_LIMIT, table))
        statements["get_data"] = (
            "SELECT rowid, length(data), modified, "
            "CASE WHEN length(data) <= {} THEN data END FROM {} WHERE key = ?".format(
                INLINE_LIMIT, table))
        statements["whole_data"] = "SELECT data FROM {} WHERE key = ?".format(table)
        statements["get_whole"] = (
            "SELECT rowid, metadata, created, modified, length(data), data "
            "FROM {} WHERE key = ?".format(table))
        statements["get_data_whole"] = (
            "SELECT rowid, length(data), modified, data FROM {} WHERE key = ?".format(table))
        statements["check_row"] = (
            "SELECT key, length(data), modified FROM {} WHERE rowid = ?".format(table))
        statements["delete"] = "DELETE FROM {} WHERE key = ?".format(table)
        statements["index_delete"] = "DELETE FROM {} WHERE key = ?".format(self._index_sql)
        self._statements = statements

    def _index_put_sql(self, columns: Tuple[str, ...]) -> str:
        cache_key = ("index_put", columns)
        sql = self._statements.get(cache_key)
        if sql is None:
            sql = self._statements[cache_key] = _index_put_sql(self._index_sql, columns)
        return sql

    # -- connection ----------------------------------------------------------

    def _open_connection(self, reader: bool) -> sqlite3.Connection:
        return _open_connection(self._path, self.busy_timeout, self._uri, reader)

    def connect(self, credentials: Any = None) -> None:
        """Open the database, creating the table (and index columns) if needed.

        Connecting a connected store does nothing.

        Parameters
        ----------
        credentials : object, optional
            Ignored: SQLite has no authentication.

        Raises
        ------
        StoreError
            If the SQLite library is older than 3.24, the table exists with
            another layout, or it holds metadata pickled by Encore 0.8 and
            ``legacy_pickle`` is false.
        sqlite3.Error
            If the database cannot be opened.
        """
        with self._tx_lock:
            if self._writer is not None:
                return
            if sqlite3.sqlite_version_info < (3, 24, 0):
                raise StoreError("SqliteStore needs SQLite 3.24 or newer (this is {})".format(
                    sqlite3.sqlite_version))
            connection = self._open_connection(reader=False)
            try:
                # A database that is refused must be left exactly as it was:
                # check before anything (the journal mode) is changed.
                info = connection.execute(
                    "PRAGMA table_info({})".format(self._table_sql)).fetchall()
                if info:
                    self._check_table(connection, info)
                if not self._shared:
                    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                    if str(mode).lower() != "wal":
                        logger.warning("could not put %s in WAL mode (journal mode is %s)",
                                       self.location, mode)
                    connection.execute("PRAGMA journal_size_limit = 67108864")
                self._setup(connection)
            except BaseException:
                connection.close()
                raise
            self._writer = connection
            self._pool.open()
            self._connected = True

    def _setup(self, connection: sqlite3.Connection) -> None:
        """Create or check the table, discover and create index columns."""
        connection.execute("BEGIN IMMEDIATE")
        try:
            info = connection.execute("PRAGMA table_info({})".format(self._table_sql)).fetchall()
            if not info:
                connection.execute(
                    "CREATE TABLE {} (key text primary key, metadata dict, "
                    "created float, modified float, data blob)".format(self._table_sql))
            else:
                self._check_table(connection, info)
                # Encore 0.8's index columns: extra columns with an SQL index
                # of the same name (other extra columns are left alone).
                indexes = {row[1] for row in connection.execute(
                    "PRAGMA index_list({})".format(self._table_sql))}
                self._legacy_columns = tuple(
                    row[1] for row in info
                    if row[1].lower() not in _REQUIRED_COLUMNS and row[1] in indexes)
            self._tx_columns = None
            self._unindexable = set()
            self._columns = self._discover_columns(connection)
            wanted = [name for name in self._wanted_columns if name not in self._columns]
            if wanted and not self.legacy_pickle:
                self._tx_owner = threading.get_ident()
                self._add_columns(connection, wanted)
                self._columns = self._tx_columns or self._columns
            self._schema_version = connection.execute("PRAGMA schema_version").fetchone()[0]
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            self._columns = {}
            raise
        finally:
            self._tx_columns = None
            self._tx_owner = None

    def _check_table(self, connection: sqlite3.Connection, info: list) -> None:
        """Refuse an existing table of another layout, or of Encore 0.8 unless allowed."""
        columns = {row[1].lower(): row for row in info}
        missing = [name for name in _REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise StoreError("table {!r} exists without the column(s) {}".format(
                self.table, ", ".join(missing)))
        if not columns["key"][5]:
            raise StoreError("table {!r} exists but its key column is not its "
                             "primary key".format(self.table))
        self._check_legacy(connection)

    def _check_legacy(self, connection: sqlite3.Connection) -> None:
        row = connection.execute(
            "SELECT metadata FROM {} LIMIT 1".format(self._table_sql)).fetchone()
        if row is None or not isinstance(row[0], bytes) or self.legacy_pickle:
            return
        if row[0][:1] not in (b"{", b" ", b"\n", b"\t", b"\r"):
            raise StoreError(
                "table {!r} of {} holds metadata pickled by Encore 0.8; unpickling data "
                "from a file can run code, so it is refused unless the store is created "
                "with legacy_pickle=True (only for files you trust)".format(
                    self.table, self.location))

    def _discover_columns(self, connection: sqlite3.Connection) -> Dict[str, str]:
        return _discover_columns(connection, self._index_sql)

    def disconnect(self) -> None:
        """Close the database connections.

        A transaction still open is rolled back.  Streams still open on the
        store's data fail when read afterwards.  An in-memory database is
        discarded.
        """
        with self._tx_lock:
            # The pool first: from here on no read connection is lent.
            self._pool.close_all()
            writer, self._writer = self._writer, None
            self._connected = False
            if writer is not None:
                try:
                    if writer.in_transaction:
                        writer.execute("ROLLBACK")
                finally:
                    writer.close()
            self._tx_owner = None
            self._tx_columns = None

    def is_connected(self) -> bool:
        return self._writer is not None

    def info(self) -> Dict[str, Any]:
        """Describe the store.

        Returns
        -------
        dict
            ``'type'`` (``'SqliteStore'``), ``'readonly'`` (False),
            ``'authorizing'`` (False), ``'location'``, ``'table'``,
            ``'index'`` (the mode) and ``'index_columns'`` (the indexed
            metadata names).
        """
        return {
            "type": type(self).__name__,
            "readonly": False,
            "authorizing": False,
            "location": self.location,
            "table": self.table,
            "index": self.index,
            "index_columns": sorted(self._columns),
        }

    @property
    def index_columns(self) -> List[str]:
        """list of str : The metadata names currently indexed."""
        return sorted(self._columns)

    def _require_writer(self) -> sqlite3.Connection:
        writer = self._writer
        if writer is None:
            raise StoreError("the SqliteStore of {} is not connected".format(self.location))
        return writer

    # -- reading connections -------------------------------------------------

    @property
    def _readers(self) -> set:
        # The open read connections (tests look at them).
        return self._pool.readers

    def _not_connected(self, reason: str) -> StoreError:
        return StoreError("the SqliteStore of {} {}".format(self.location, reason))

    def _read_one(self, sql: str, parameters: tuple) -> Any:
        """Run a query and return its first row (or None), as one read."""
        if self._shared:
            with self._tx_lock:
                cursor = self._require_writer().execute(sql, parameters)
                row = cursor.fetchone()
                cursor.close()
                return row
        if self._tx_owner == threading.get_ident():
            cursor = self._writer.execute(sql, parameters)  # type: ignore[union-attr]
            row = cursor.fetchone()
            cursor.close()
            return row
        connection = self._pool.acquire()
        try:
            cursor = connection.execute(sql, parameters)
            row = cursor.fetchone()
            cursor.close()
            return row
        finally:
            self._pool.release(connection)

    def _rows(self, sql: str, parameters: Iterable[Any]) -> Iterator[tuple]:
        """Iterate over the rows of a query, from one consistent snapshot."""
        parameters = tuple(parameters)
        if self._shared:
            with self._tx_lock:
                rows = self._require_writer().execute(sql, parameters).fetchall()
            yield from rows
            return
        if self._tx_owner == threading.get_ident():
            rows = self._writer.execute(sql, parameters).fetchall()  # type: ignore[union-attr]
            yield from rows
            return
        connection = self._pool.acquire()
        try:
            cursor = connection.execute(sql, parameters)
            try:
                while True:
                    batch = cursor.fetchmany(_FETCH_BATCH)
                    if not batch:
                        break
                    yield from batch
            finally:
                cursor.close()
        finally:
            self._pool.release(connection)

    def _read_columns(self) -> Dict[str, str]:
        if self._tx_owner == threading.get_ident() and self._tx_columns is not None:
            return self._tx_columns
        return self._columns

    # -- metadata encoding ---------------------------------------------------

    def _decode_metadata(self, raw: Any, key: Optional[str] = None) -> Dict[str, Any]:
        return _decode_metadata(raw, self.legacy_pickle, key)

    # -- reads ---------------------------------------------------------------

    def get(self, key: str) -> SqliteValue:
        """Return the value of a key.

        Returns
        -------
        SqliteValue
            The data, metadata, size and times of the key.
        """
        row = self._read_one(self._statements["get" if _BLOB_IO else "get_whole"], (key,))
        if row is None:
            raise KeyError(key)
        rowid, metadata, created, modified, size, inline = row
        if type(metadata) is not str:
            self._decode_metadata(metadata, key)  # fail now rather than later
        if size is None:
            size, inline = 0, b""
        elif inline is not None and type(inline) is not bytes:
            inline = _blob_bytes(inline)
            size = len(inline)
        return SqliteValue(self, key, rowid, metadata, created, modified, size, inline)

    def _whole_data(self, key: str) -> bytes:
        row = self._read_one(self._statements["whole_data"], (key,))
        if row is None:
            raise KeyError(key)
        return _blob_bytes(row[0])

    def get_data(self, key: str) -> Any:
        """Return the data of a key as a readable stream."""
        return self._open_key_data(key, None, None)

    def get_data_range(self, key: str, start: Optional[int] = None, end: Optional[int] = None) -> Any:
        """Return part of the data of a key as a readable stream."""
        return self._open_key_data(key, start, end)

    @staticmethod
    def _blob_row(connection: sqlite3.Connection, sql: str, key: str) -> Tuple[Any, ...]:
        """The ``(rowid, size, modified, inline)`` row of ``key``; KeyError if absent."""
        cursor = connection.execute(sql, (key,))
        row = cursor.fetchone()
        cursor.close()
        if row is None:
            raise KeyError(key)
        return row

    def _open_key_data(self, key: str, start: Optional[int], end: Optional[int]) -> Any:
        sql = self._statements["get_data" if _BLOB_IO else "get_data_whole"]
        check = self._statements["check_row"]
        if self._shared or self._tx_owner == threading.get_ident():
            # One connection: the row cannot change between the statements.
            with self._tx_lock:
                connection = self._require_writer()
                rowid, size, _, inline = self._blob_row(connection, sql, key)
                if size is None or inline is not None:
                    return _bytes_range(inline, start, end)
                first, last = slice_offsets(start, end, size)
                blob = connection.blobopen(self.table, "data", rowid, readonly=True)
                return _blob_reader(blob, first, last, lock=self._tx_lock)
        connection = self._pool.acquire()
        try:
            for _ in range(20):
                rowid, size, modified, inline = self._blob_row(connection, sql, key)
                if size is None or inline is not None:
                    return _bytes_range(inline, start, end)
                first, last = slice_offsets(start, end, size)
                try:
                    blob = connection.blobopen(self.table, "data", rowid, readonly=True)
                except sqlite3.OperationalError:
                    continue  # the row went away in between: look again
                # The open blob pins a snapshot: check it is still this key.
                cursor = connection.execute(check, (rowid,))
                current = cursor.fetchone()
                cursor.close()
                if current != (key, size, modified):
                    blob.close()
                    continue
                stream = _blob_reader(blob, first, last,
                                      release=functools.partial(self._pool.release, connection))
                connection = None  # type: ignore[assignment]
                return stream
            raise StoreError("the data of {!r} kept changing while it was opened".format(key))
        finally:
            if connection is not None:
                self._pool.release(connection)

    def _open_value_data(self, value: SqliteValue, first: int, last: int) -> Any:
        """Open the data of a large SqliteValue, checking it is unchanged."""
        expected = (value._key, value.size, value.modified)
        check = self._statements["check_row"]
        changed = StoreError(
            "the value of {!r} was changed or deleted after get() returned it; "
            "call get() again".format(value._key))
        if self._shared or self._tx_owner == threading.get_ident():
            with self._tx_lock:
                connection = self._require_writer()
                cursor = connection.execute(check, (value._rowid,))
                current = cursor.fetchone()
                cursor.close()
                if current != expected:
                    raise changed
                blob = connection.blobopen(self.table, "data", value._rowid, readonly=True)
                return _blob_reader(blob, first, last, lock=self._tx_lock)
        connection = self._pool.acquire()
        try:
            try:
                blob = connection.blobopen(self.table, "data", value._rowid, readonly=True)
            except sqlite3.OperationalError:
                raise changed from None
            cursor = connection.execute(check, (value._rowid,))
            current = cursor.fetchone()
            cursor.close()
            if current != expected:
                blob.close()
                raise changed
            stream = _blob_reader(blob, first, last,
                                  release=functools.partial(self._pool.release, connection))
            connection = None  # type: ignore[assignment]
            return stream
        finally:
            if connection is not None:
                self._pool.release(connection)

    def get_metadata(self, key: str, select: Optional[Iterable[str]] = None) -> Dict[str, Any]:
        """Return the metadata of a key.

        Returns
        -------
        dict
            A new dictionary.
        """
        row = self._read_one(self._statements["metadata"], (key,))
        if row is None:
            raise KeyError(key)
        metadata = self._decode_metadata(row[0], key)
        if select is None:
            return metadata
        return {name: metadata[name] for name in select if name in metadata}

    def exists(self, key: str) -> bool:
        return self._read_one(self._statements["exists"], (key,)) is not None

    def to_bytes(self, key: str, buffer_size: int = DEFAULT_BUFFER_SIZE) -> bytes:
        """Return the data of a key as bytes.

        Parameters
        ----------
        buffer_size : int, optional
            Ignored: the data is read in one statement.
        """
        return self._whole_data(key)

    def query(self, select: Optional[Iterable[str]] = None, **kwargs: Any) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """Find the keys whose metadata match the given values.

        Conditions on indexed names are evaluated by SQLite with the index;
        the others are checked in Python on the metadata of the remaining
        rows.  Either way a key matches when ``metadata.get(name) == value``.
        The keys and metadata come from one snapshot of the database.
        """
        if select is not None:
            select = list(select)
        return self._query(select, kwargs, keys_only=False)

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Find the keys whose metadata match the given values.

        When every condition is on an indexed name, only the index is read
        (no metadata, and never any data).
        """
        return self._query(None, kwargs, keys_only=True)

    def _query(self, select: Optional[List[str]], criteria: Dict[str, Any], keys_only: bool) -> Iterator[Any]:
        self._require_writer()
        # Programs of Encore 0.8 writing a legacy database do not keep the
        # index up to date: a legacy store reads the rows.
        columns = {} if self.legacy_pickle else self._read_columns()
        conditions = []
        parameters = []
        rest = []
        for name, value in criteria.items():
            column = columns.get(name)
            if column is not None and value is not None:
                try:
                    text = _canonical(value)
                except _Unindexable:
                    pass
                else:
                    conditions.append("i.{} = ?".format(_quote(column)))
                    parameters.append(text)
                    continue
            rest.append((name, value))
        with_metadata = not keys_only or bool(rest)
        fields = "t.key, t.metadata" if with_metadata else "t.key"
        if conditions:
            sql = "SELECT {} FROM {} AS t JOIN {} AS i ON i.key = t.key WHERE {}".format(
                fields, self._table_sql, self._index_sql, " AND ".join(conditions))
        else:
            sql = "SELECT {} FROM {} AS t".format(fields, self._table_sql)
        # Unindexed names: SQLite scans the JSON with a superset filter and
        # Python confirms every row it returns with ==.
        scans = [condition for condition in (_scan_condition(name, value) for name, value in rest)
                 if condition is not None]
        if not scans:
            return self._filter_rows(self._rows(sql, parameters), with_metadata, rest, select, keys_only)
        where, scan_parameters = _scan_where(scans)
        scan_sql = sql + (" AND " if conditions else " WHERE ") + where
        return self._scan_rows(scan_sql, parameters + scan_parameters, sql, parameters,
                               rest, select, keys_only)

    def _scan_rows(self, scan_sql: str, scan_parameters: list, sql: str, parameters: list,
                   rest: List[Tuple[str, Any]], select: Optional[List[str]],
                   keys_only: bool) -> Iterator[Any]:
        """Rows of the SQL-filtered scan; if SQLite finds metadata text that
        is not JSON, the rest of the scan is done in Python (which reports
        the row as any read would)."""
        seen = set()
        try:
            for item in self._filter_rows(self._rows(scan_sql, scan_parameters), True, rest,
                                          select, keys_only):
                seen.add(item if keys_only else item[0])
                yield item
            return
        except sqlite3.OperationalError as error:
            if "json" not in str(error).lower():
                raise
        for item in self._filter_rows(self._rows(sql, parameters), True, rest, select, keys_only):
            if (item if keys_only else item[0]) not in seen:
                yield item

    def _filter_rows(self, rows: Iterator[tuple], with_metadata: bool, rest: List[Tuple[str, Any]],
                     select: Optional[List[str]], keys_only: bool) -> Iterator[Any]:
        if not with_metadata:
            for row in rows:
                yield row[0]
            return
        decode = self._decode_metadata
        for key, raw in rows:
            metadata = decode(raw, key)
            if rest:
                get = metadata.get
                if not all(get(name) == value for name, value in rest):
                    continue
            if keys_only:
                yield key
            elif select is None:
                yield key, metadata
            else:
                yield key, {name: metadata[name] for name in select if name in metadata}

    def glob(self, pattern: str) -> Iterator[str]:
        """Find the keys matching a shell-style pattern.

        The literal start of the pattern narrows the search with the primary
        key index; the pattern itself is matched with
        :func:`fnmatch.fnmatchcase`.
        """
        self._require_writer()
        prefix = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
        sql = "SELECT key FROM {}".format(self._table_sql)
        parameters: List[str] = []
        if prefix:
            sql += " WHERE key >= ?"
            parameters.append(prefix)
            upper = _successor(prefix)
            if upper is not None:
                sql += " AND key < ?"
                parameters.append(upper)
        rows = self._rows(sql, parameters)
        return (row[0] for row in rows if fnmatchcase(row[0], pattern))

    # -- transactions --------------------------------------------------------

    def _begin_transaction(self) -> None:
        """Begin a write transaction (called with the transaction lock held)."""
        connection = self._require_writer()
        if self._tx_owner == threading.get_ident():
            raise StoreError("a transaction cannot begin inside a write of the same store "
                             "(from a listener of its progress events, say)")
        connection.execute("BEGIN IMMEDIATE")
        self._tx_owner = threading.get_ident()
        self._tx_columns = None
        try:
            version = connection.execute("PRAGMA schema_version").fetchone()[0]
            if version != self._schema_version:
                # Another connection changed the schema: pick up its columns.
                self._columns = self._discover_columns(connection)
                self._schema_version = version
        except BaseException:
            self._rollback_transaction()
            raise

    def _commit_transaction(self) -> None:
        """Commit the open transaction."""
        connection = self._require_writer()
        version = None
        if self._tx_columns is not None:
            version = connection.execute("PRAGMA schema_version").fetchone()[0]
        connection.execute("COMMIT")
        if self._tx_columns is not None:
            self._columns = self._tx_columns
            self._schema_version = version
        self._tx_columns = None
        self._tx_owner = None

    def _rollback_transaction(self) -> None:
        """Roll back the open transaction."""
        connection = self._writer
        self._tx_columns = None
        self._tx_owner = None
        if connection is not None and connection.in_transaction:
            connection.execute("ROLLBACK")

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """Make a write atomic.

        Yields the writer connection.  The write reports its changes with
        ``_emit_write`` and ``_emit_delete`` as it goes; an
        :class:`~encore.storage.utils.EventHold` keeps those events until
        the write is safely done: after the commit, or -- inside a
        transaction of this thread, where the write becomes a savepoint --
        when the savepoint is released, into the hold of the enclosing
        write or transaction.  A caller that wants them later still (after
        its progress end event, say) holds them itself around the call.
        """
        hold = EventHold(self).open()
        try:
            with self._tx_lock:
                if self._tx_owner == threading.get_ident():
                    connection = self._require_writer()
                    connection.execute("SAVEPOINT encore_write")
                    saved = None if self._tx_columns is None else dict(self._tx_columns)
                    try:
                        yield connection
                    except BaseException:
                        if connection.in_transaction:
                            connection.execute("ROLLBACK TO encore_write")
                            connection.execute("RELEASE encore_write")
                        self._tx_columns = saved
                        raise
                    connection.execute("RELEASE encore_write")
                else:
                    self._begin_transaction()
                    try:
                        yield self._writer  # type: ignore[misc]
                        self._commit_transaction()
                    except BaseException:
                        try:
                            self._rollback_transaction()
                        except sqlite3.Error:
                            logger.exception("rolling back a failed write failed too")
                        raise
        except BaseException:
            hold.close()  # the write did not happen: its events go
            raise
        emit_events(self, hold.close())

    @contextlib.contextmanager
    def _events_after(self) -> Iterator[None]:
        """Hold this thread's modification events of the store until the
        block ends (they follow a progress end event), dropping them if it
        raises."""
        hold = EventHold(self).open()
        try:
            yield
        except BaseException:
            hold.close()
            raise
        emit_events(self, hold.close())

    def _write_columns(self) -> Dict[str, str]:
        return self._tx_columns if self._tx_columns is not None else self._columns

    # -- index maintenance ---------------------------------------------------

    def _add_columns(self, connection: sqlite3.Connection, names: Iterable[str]) -> None:
        """Create index columns for metadata names (inside a transaction)."""
        if self._index_full:
            return
        columns = self._tx_columns
        if columns is None:
            columns = self._tx_columns = dict(self._columns)
        for name in names:
            if name in columns or name in self._unindexable:
                continue
            values = self._column_values(connection, name)
            if values is None:
                self._unindexable.add(name)
                continue
            column = _column_for(name)
            error = _add_index_column(connection, self._index_table, column,
                                      create_table=not columns)
            if error is not None:
                logger.warning("%s: no more index columns can be added (%s); further "
                               "metadata names are queried without an index", self, error)
                self._index_full = True
                return
            columns[name] = column
            _write_index_values(connection, self._index_sql, column, values)

    def _column_values(self, connection: sqlite3.Connection, name: str) -> Optional[list]:
        """The contents of a new index column, or None if a row cannot be read.

        A name is indexed only when every row can be read, so that a query
        on it raises on an unreadable row the same way with and without
        the index.
        """
        def decode(key: str, raw: Any) -> Optional[Dict[str, Any]]:
            try:
                return self._decode_metadata(raw, key)
            except StoreError as error:
                logger.warning("%s: %s; %r is not indexed", self, error, name)
                return None

        return _index_values(connection, self._table_sql, name, decode)

    def _index_row(self, key: str, metadata: Dict[str, Any], columns: Dict[str, str]) -> Optional[list]:
        row = _index_row(key, metadata, tuple(columns))
        for value in row[1:]:
            if value is not None:
                return row
        return None

    def _put_index(self, connection: sqlite3.Connection, key: str, metadata: Dict[str, Any],
                   may_exist: bool = True) -> None:
        """Bring the index row of a key in line with its new metadata."""
        if self._legacy_columns and self.legacy_pickle:
            self._put_legacy_columns(connection, [(key, metadata)])
        if self.index == "dynamic" and not self._index_full and not self.legacy_pickle:
            columns = self._write_columns()
            missing = [name for name in metadata if name not in columns]
            if missing:
                self._add_columns(connection, missing)
        columns = self._write_columns()
        if not columns:
            return
        row = self._index_row(key, metadata, columns)
        if row is not None:
            connection.execute(self._index_put_sql(tuple(columns.values())), row)
        elif may_exist:
            connection.execute(self._statements["index_delete"], (key,))

    def _put_legacy_columns(self, connection: sqlite3.Connection, items: list) -> None:
        """Keep Encore 0.8's index columns of the main table up to date.

        Each holds, as Encore 0.8 wrote it, the protocol 2 pickle of the
        value of the metadata name it is called after (NULL when the key
        lacks the name), so that Encore 0.8 programs sharing the database
        query the keys written here correctly.  The rows are written
        already.
        """
        columns = self._legacy_columns
        sql = "UPDATE {} SET {} WHERE key = ?".format(
            self._table_sql, ", ".join("{} = ?".format(_quote(column)) for column in columns))
        rows = []
        for key, metadata in items:
            row: List[Any] = []
            for column in columns:
                if column in metadata:
                    row.append(_encode_legacy(metadata[column]))
                else:
                    row.append(None)
            row.append(key)
            rows.append(row)
        connection.executemany(sql, rows)

    # -- writing helpers -----------------------------------------------------

    def _modifications_listened(self) -> bool:
        return is_listened(self.event_manager, StoreSetEvent, StoreUpdateEvent)

    def _progress(self, key: str, metadata: Any, size: Optional[int], message: str) -> Any:
        """A progress manager, or None when nobody listens."""
        if not self._progress_listened():
            return None
        return StoreProgressManager(event_manager=self.event_manager, source=self,
                                    message=message, steps=-1 if size is None else size,
                                    key=key, metadata=metadata)

    def _progress_listened(self) -> bool:
        return progress_is_listened(self.event_manager)

    def _prepare(self, stream: Any, size: Optional[int], buffer_size: int, progress: Any,
                 force_spool: bool = False) -> _Payload:
        """Read small data, or learn the size of large data, before writing."""
        return _prepare_payload(stream, size, buffer_size, progress, force_spool, _BLOB_IO)

    def _fill_blob(self, connection: sqlite3.Connection, key: str, payload: _Payload,
                   buffer_size: int, progress: Any) -> None:
        """Copy a payload into the zero-filled blob just written for ``key``."""
        rowid = connection.execute(self._statements["rowid"], (key,)).fetchone()[0]
        _fill_blob(connection, self.table, rowid, key, payload, buffer_size, progress)

    def _write_payload(self, connection: sqlite3.Connection, statement: str, key: str,
                       head: tuple, payload: _Payload, buffer_size: int, progress: Any) -> None:
        """Run an insert/upsert ``statement`` with the payload as its data."""
        if payload.inline is not None:
            connection.execute(self._statements[statement], head + (payload.inline,))
            return
        connection.execute(self._statements[statement + "_zero"], head + (payload.size,))
        # A spooled payload reported its progress while it was spooled.
        self._fill_blob(connection, key, payload, buffer_size, None if payload.owned else progress)

    def _rewrite_row(self, connection: sqlite3.Connection, key: str, rowid: int, size: int,
                     created: Any, metadata_text: Union[str, bytes], now: float) -> None:
        """Change the metadata of a row with large data, in bounded memory."""
        spool = _spool_blob(connection, self.table, rowid)
        try:
            connection.execute(self._statements["delete"], (key,))
            connection.execute(self._statements["insert_zero"],
                               (key, metadata_text, created, now, size))
            self._fill_blob(connection, key, _Payload(size=size, stream=spool),
                            DEFAULT_BUFFER_SIZE, None)
        finally:
            spool.close()

    def _put_metadata(self, connection: sqlite3.Connection, key: str, metadata: Dict[str, Any],
                      row: Any, now: float) -> None:
        """Write new metadata for a key; ``row`` is its (rowid, size, created) or None."""
        text = self._encode(metadata)
        if row is not None and _BLOB_IO and row[1] is not None and row[1] > REWRITE_LIMIT:
            self._rewrite_row(connection, key, row[0], row[1], row[2], text, now)
        else:
            connection.execute(self._statements["set_metadata"], (key, text, now, now))
        self._put_index(connection, key, metadata, row is not None)

    # -- the write API -------------------------------------------------------

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data and metadata of a key.

        Parameters
        ----------
        key : str
            The key; created, or replaced (keeping its creation time).
        value : Value or (file-like, dict) tuple
            The new data and metadata.  A tuple's stream is read to its end
            and left open; the stream of a Value is closed after reading.

        Raises
        ------
        TypeError, ValueError
            If the value, its data or its metadata are of the wrong type.
        StoreError
            If a Value's data is not as long as its ``size`` says.

        Events
        ------
        StoreSetEvent or StoreUpdateEvent
            After the write (after the transaction, inside one).
        """
        self._set_value(key, value, buffer_size)

    def _set_value(self, key: str, value: Any, buffer_size: int) -> None:
        stream, metadata, size, close = self._value_parts(key, value)
        try:
            if size is None:
                size = _remaining_size(stream)
            progress = self._progress(key, metadata, None if size == -1 else size,
                                      "Storing {}".format(key))
            if progress is None:
                self._set(key, stream, metadata, size, buffer_size, None)
            else:
                # The modification event follows the progress end event.
                with self._events_after(), progress:
                    self._set(key, stream, metadata, size, buffer_size, progress)
        finally:
            if close:
                closer = getattr(stream, "close", None)
                if closer is not None:
                    closer()

    def _value_parts(self, key: str, value: Any) -> Tuple[Any, Dict[str, Any], Optional[int], bool]:
        """Split a (checked) value into stream, metadata, size and ownership."""
        if type(value) is tuple:
            return value[0], value[1], None, False
        if isinstance(value, SqliteValue) and value._inline is not None:
            return (io.BytesIO(value._inline), check_metadata(value.metadata),
                    len(value._inline), True)
        data, metadata, size, opened = value_parts(value)
        if (isinstance(value, SqliteValue) and value._store is self and self._shared
                and value._key == key):
            size = -1  # over itself, on one connection: spool the old data first
        return data, metadata, size, opened

    def _set(self, key: str, stream: Any, metadata: Dict[str, Any], size: Optional[int],
             buffer_size: int, progress: Any) -> None:
        payload = self._prepare(stream, None if size == -1 else size, buffer_size, progress,
                                force_spool=size == -1)
        try:
            events_wanted = self._modifications_listened()
            with self._write_transaction() as connection:
                existed = True
                if events_wanted:
                    existed = connection.execute(self._statements["exists"], (key,)).fetchone() is not None
                now = _now()
                self._write_payload(connection, "set", key,
                                    (key, self._encode(metadata), now, now),
                                    payload, buffer_size, progress)
                self._put_index(connection, key, metadata, existed)
                if events_wanted:
                    self._emit_write(key, existed, metadata)
        finally:
            payload.close()

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
        self._set_data_value(key, data, buffer_size)

    def _set_data_value(self, key: str, data: Any, buffer_size: int) -> None:
        size = _remaining_size(data)
        progress = None
        if self._progress_listened():
            row = self._read_one(self._statements["metadata"], (key,))
            progress = self._progress(key, {} if row is None else self._decode_metadata(row[0], key),
                                      size, "Storing {}".format(key))
        if progress is None:
            self._set_data(key, data, size, buffer_size, None)
        else:
            with self._events_after(), progress:
                self._set_data(key, data, size, buffer_size, progress)

    def _set_data(self, key: str, data: Any, size: Optional[int], buffer_size: int,
                  progress: Any) -> None:
        payload = self._prepare(data, size, buffer_size, progress)
        try:
            events_wanted = self._modifications_listened()
            with self._write_transaction() as connection:
                if events_wanted:
                    row = connection.execute(self._statements["metadata"], (key,)).fetchone()
                now = _now()
                self._write_payload(connection, "set_data", key, (key, now, now),
                                    payload, buffer_size, progress)
                if events_wanted:
                    metadata = {} if row is None else self._decode_metadata(row[0], key)
                    self._emit_write(key, row is not None, metadata)
        finally:
            payload.close()

    def set_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        events_wanted = self._modifications_listened()
        with self._write_transaction() as connection:
            row = connection.execute(self._statements["row_info"], (key,)).fetchone()
            self._put_metadata(connection, key, metadata, row, _now())
            if events_wanted:
                self._emit_write(key, row is not None, metadata)

    def update_metadata(self, key: str, metadata: Dict[str, Any]) -> None:
        """Merge new values into the metadata of a key.

        Raises
        ------
        TypeError, ValueError
            If the metadata cannot be stored.
        """
        events_wanted = self._modifications_listened()
        with self._write_transaction() as connection:
            merged = self._update_one(connection, key, metadata, _now())
            if events_wanted:
                self._emit_write(key, True, merged)

    def _update_one(self, connection: sqlite3.Connection, key: str, metadata: Dict[str, Any],
                    now: float) -> Dict[str, Any]:
        row = connection.execute(self._statements["metadata_info"], (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        merged = self._decode_metadata(row[0], key)
        merged.update(metadata)
        self._put_metadata(connection, key, merged, row[1:], now)
        return merged

    def delete(self, key: str) -> None:
        events_wanted = is_listened(self.event_manager, StoreDeleteEvent)
        with self._write_transaction() as connection:
            if events_wanted:
                row = connection.execute(self._statements["metadata"], (key,)).fetchone()
                if row is None:
                    raise KeyError(key)
            if connection.execute(self._statements["delete"], (key,)).rowcount == 0:
                raise KeyError(key)
            if self._write_columns():
                connection.execute(self._statements["index_delete"], (key,))
            if events_wanted:
                try:
                    metadata = self._decode_metadata(row[0], key)
                except StoreError:
                    metadata = {}
                self._emit_delete(key, metadata)

    # -- several keys at once ------------------------------------------------

    def multiset(self, keys: Iterable[str], values: Iterable[Any], buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Set the data and metadata of several keys in one transaction.

        Small values are written in batches (``executemany``).
        """
        if (self._modifications_listened()
                or self._progress_listened()):
            with self._write_transaction():
                for key, value in zip(keys, values):
                    self._set_value(key, value, buffer_size)
            return
        with self._write_transaction() as connection:
            batch: list = []
            batch_bytes = 0
            now = _now()
            for key, value in zip(keys, values):
                if type(value) is tuple and type(value[0]) is io.BytesIO:
                    # The common case, kept cheap: small data already in memory.
                    data = _small_bytes(value[0])
                    if data is not None:
                        batch.append((key, value[1], data))
                        batch_bytes += len(data)
                        if len(batch) >= 2000 or batch_bytes > (16 << 20):
                            self._flush_batch(connection, batch, now)
                            batch, batch_bytes = [], 0
                        continue
                stream, metadata, size, close = self._value_parts(key, value)
                payload = None
                try:
                    payload = self._prepare(stream, None if size == -1 else size, buffer_size,
                                            None, force_spool=size == -1)
                    if payload.inline is not None:
                        batch.append((key, metadata, payload.inline))
                        batch_bytes += payload.size
                        if len(batch) >= 2000 or batch_bytes > (16 << 20):
                            self._flush_batch(connection, batch, now)
                            batch, batch_bytes = [], 0
                    else:
                        self._flush_batch(connection, batch, now)
                        batch, batch_bytes = [], 0
                        self._write_payload(connection, "set", key,
                                            (key, self._encode(metadata), now, now),
                                            payload, buffer_size, None)
                        self._put_index(connection, key, metadata)
                finally:
                    if payload is not None:
                        payload.close()
                    if close:
                        closer = getattr(stream, "close", None)
                        if closer is not None:
                            closer()
            self._flush_batch(connection, batch, now)

    def _flush_batch(self, connection: sqlite3.Connection, batch: list, now: float) -> None:
        """Write a batch of small values with two ``executemany`` calls."""
        if not batch:
            return
        if self.index == "dynamic" and not self._index_full and not self.legacy_pickle:
            columns = self._write_columns()
            missing: Dict[str, None] = {}
            for _, metadata, _ in batch:
                for name in metadata:
                    if name not in columns:
                        missing[name] = None
            if missing:
                self._add_columns(connection, list(missing))
        encode = self._encode
        connection.executemany(
            self._statements["set"],
            [(key, encode(metadata), now, now, data) for key, metadata, data in batch])
        if self._legacy_columns and self.legacy_pickle:
            self._put_legacy_columns(connection, [(key, metadata) for key, metadata, _ in batch])
        columns = self._write_columns()
        if not columns:
            return
        names = tuple(columns)
        # A row of NULLs is harmless (queries only match non-NULL values) and
        # replaces any previous index row of the key.
        connection.executemany(
            self._index_put_sql(tuple(columns.values())),
            [_index_row(key, metadata, names) for key, metadata, _ in batch])

    def multiset_data(self, keys: Iterable[str], datas: Iterable[Any], buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        with self._write_transaction():
            for key, data in zip(keys, datas):
                self._set_data_value(key, data, buffer_size)

    def multiset_metadata(self, keys: Iterable[str], metadatas: Iterable[Dict[str, Any]]) -> None:
        events_wanted = self._modifications_listened()
        with self._write_transaction() as connection:
            sql = self._statements["row_info"]
            now = _now()
            for key, metadata in zip(keys, metadatas):
                row = connection.execute(sql, (key,)).fetchone()
                self._put_metadata(connection, key, metadata, row, now)
                if events_wanted:
                    self._emit_write(key, row is not None, metadata)

    def multiupdate_metadata(self, keys: Iterable[str], metadatas: Iterable[Dict[str, Any]]) -> None:
        """Merge new values into the metadata of several keys, in one
        transaction.

        Raises
        ------
        KeyError
            If a key is not in the store; nothing is written then.
        """
        events_wanted = self._modifications_listened()
        with self._write_transaction() as connection:
            now = _now()
            for key, metadata in zip(keys, metadatas):
                merged = self._update_one(connection, key, metadata, now)
                if events_wanted:
                    self._emit_write(key, True, merged)


#: The spelling of the class name used by parts of Encore's manual (its
#: index); the same class.
SQLiteStore = SqliteStore

