"""Index columns of :mod:`encore.storage.sqlite_store`.

Indexed metadata names have their values kept, as canonical JSON text, in
the columns of a companion table (``<table>__encore_index``).  This module
holds the naming of SQL identifiers and index columns, the canonical text
of a value, the rows of the companion table and the SQL that creates and
fills its columns.  What is indexed when (the store's index mode and its
transaction state) stays with the store.
"""
from __future__ import annotations

import datetime
import decimal
import re
import sqlite3
import uuid
from json.encoder import encode_basestring_ascii
from typing import Any, Callable, Dict, List, Optional, Tuple

#: The suffix of the companion table holding the index columns.
INDEX_TABLE_SUFFIX = "__encore_index"

_SIMPLE_NAME = re.compile(r"[a-z0-9_]+\Z")
_PROBE_SAFE_NAME = re.compile(r"[A-Za-z0-9_]+\Z")


def _quote(name: str) -> str:
    """Quote an SQL identifier so that no name can change the statement."""
    return '"' + name.replace('"', '""') + '"'


def _check_table_name(table: Any) -> str:
    if not isinstance(table, str):
        raise TypeError("the table name must be a str, not {}".format(type(table).__name__))
    if not table:
        raise ValueError("the table name must not be empty")
    if "\x00" in table:
        raise ValueError("the table name must not contain NUL characters")
    if table.lower().startswith("sqlite_"):
        raise ValueError("table names starting with 'sqlite_' are reserved by SQLite")
    try:
        table.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the table name must be encodable as UTF-8") from None
    return table


def _column_for(name: str) -> str:
    """The index column holding the values of the metadata name ``name``.

    Lower-case identifiers keep a readable column name; any other name
    (SQLite compares column names case-insensitively) is hex-encoded.
    """
    if _SIMPLE_NAME.match(name):
        return "md_" + name
    return "mdx_" + name.encode("utf-8", "surrogatepass").hex()


def _name_for(column: str) -> Optional[str]:
    """The metadata name an index column holds, or None for other columns."""
    name: Optional[str] = None
    if column.startswith("md_"):
        name = column[3:]
    elif column.startswith("mdx_"):
        try:
            name = bytes.fromhex(column[4:]).decode("utf-8", "surrogatepass")
        except ValueError:
            return None
    if name is None or _column_for(name) != column:
        return None
    return name


class _Unindexable(Exception):
    """A query value that has no canonical index text."""


def _canonical(value: Any) -> str:
    """Return a text equal for two JSON values exactly when they are ``==``.

    Numbers are normalised (``True``, ``1`` and ``1.0`` are all ``1``),
    dictionaries sorted; tuples, sets and other types raise
    :class:`_Unindexable` (a tuple is never equal to the list stored).
    """
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if kind is bool:
        return "1" if value else "0"
    if kind is int:
        try:
            return repr(value)
        except ValueError:  # more digits than int -> str allows
            raise _Unindexable() from None
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise _Unindexable()
        if value.is_integer():
            return repr(int(value))
        return repr(value)
    if value is None:
        return "null"
    if kind is list:
        return "[" + ",".join([_canonical(item) for item in value]) + "]"
    if kind is dict:
        for name in value:
            if type(name) is not str:
                raise _Unindexable()
        return "{" + ",".join(
            [encode_basestring_ascii(name) + ":" + _canonical(value[name]) for name in sorted(value)]
        ) + "}"
    return _canonical_extra(value, kind)


def _canonical_extra(value: Any, kind: type) -> str:
    """The canonical text of the metadata types beyond JSON (see ``_canonical``).

    The texts start with a letter and a colon, so they never equal the text
    of a JSON value.  A Decimal equal to an int or a float has that number's
    text.  Times, sets and frozensets are not indexed (a stored one gets
    NULL, a query on one reads the rows).
    """
    if kind is decimal.Decimal:
        if not value.is_finite():
            raise _Unindexable()
        if value == value.to_integral_value():
            if value.adjusted() < 100000:
                try:
                    return repr(int(value))
                except ValueError:  # more digits than int -> str allows
                    pass
            return "D:" + str(value.normalize())
        as_float = float(value)
        if as_float == value:
            return _canonical(as_float)
        return "D:" + str(value.normalize())
    if kind is datetime.datetime:
        offset = value.utcoffset()
        if offset is None:
            return "T:" + value.isoformat()
        try:
            return "TZ:" + (value.replace(tzinfo=None) - offset).isoformat()
        except OverflowError:
            raise _Unindexable() from None
    if kind is datetime.date:
        return "d:" + value.isoformat()
    if kind is bytes:
        return "b:" + value.hex()
    if kind is uuid.UUID:
        return "u:" + value.hex
    raise _Unindexable()


def _index_row(key: str, metadata: Dict[str, Any], names: Tuple[str, ...]) -> list:
    """``[key]`` followed by the index column contents for ``names``."""
    row: List[Optional[str]] = [key]
    append = row.append
    get = metadata.get
    for name in names:
        value = get(name)
        kind = type(value)
        if kind is str:
            append(encode_basestring_ascii(value))  # type: ignore[arg-type]  # (kind is str)
        elif value is None:
            append(None)
        elif kind is int:
            append(repr(value))
        else:
            try:
                append(_canonical(value))
            except _Unindexable:  # a time, a set...: never found with the index
                append(None)
    return row


def _index_value(value: Any) -> Optional[str]:
    """The index column content for a stored metadata value (None -> NULL)."""
    if value is None:
        return None
    return _canonical(value)



def _successor(prefix: str) -> Optional[str]:
    """The smallest string greater than every string starting with ``prefix``."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            following = last + 1
            if 0xD800 <= following <= 0xDFFF:
                following = 0xE000
            return prefix[:-1] + chr(following)
        prefix = prefix[:-1]
    return None


# ---------------------------------------------------------------------------
# The SQL of the companion table
# ---------------------------------------------------------------------------

def _discover_columns(connection: sqlite3.Connection, index_sql: str) -> Dict[str, str]:
    """The index columns of the companion table ``index_sql`` (quoted), by metadata name."""
    columns: Dict[str, str] = {}
    for row in connection.execute("PRAGMA table_info({})".format(index_sql)):
        column = row[1]
        name = _name_for(column)
        if name is not None:
            columns[name] = column
    return columns


def _index_put_sql(index_sql: str, columns: Tuple[str, ...]) -> str:
    """The statement writing a whole index row of the given columns."""
    return "INSERT OR REPLACE INTO {} (key{}) VALUES (?{})".format(
        index_sql,
        "".join(", " + _quote(column) for column in columns),
        ", ?" * len(columns),
    )


def _add_index_column(connection: sqlite3.Connection, index_table: str, column: str,
                      create_table: bool) -> Optional[sqlite3.OperationalError]:
    """Add an index column (and its partial index) to the companion table.

    Parameters
    ----------
    connection : sqlite3.Connection
        The writing connection, inside a transaction.
    index_table : str
        The (unquoted) name of the companion table.
    column : str
        The column to add; a column that already exists is kept.
    create_table : bool
        Whether to create the companion table first if it does not exist.

    Returns
    -------
    sqlite3.OperationalError or None
        The error if the table cannot take another column, else ``None``.
    """
    index_sql = _quote(index_table)
    if create_table:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY NOT NULL) "
            "WITHOUT ROWID".format(index_sql))
    try:
        connection.execute("ALTER TABLE {} ADD COLUMN {} text".format(
            index_sql, _quote(column)))
    except sqlite3.OperationalError as error:
        message = str(error).lower()
        if "too many columns" in message:
            return error
        if "duplicate column" not in message:
            raise
    connection.execute(
        "CREATE INDEX IF NOT EXISTS {} ON {} ({}) WHERE {} IS NOT NULL".format(
            _quote(index_table + ":" + column), index_sql,
            _quote(column), _quote(column)))
    return None


def _index_values(connection: sqlite3.Connection, table_sql: str, name: str,
                  decode: Callable[[str, Any], Optional[Dict[str, Any]]]) -> Optional[list]:
    """The ``(key, text)`` pairs of a new index column, read from every row.

    ``decode(key, raw)`` turns a row's stored metadata into a dictionary, or
    returns ``None`` for a row that cannot be read; then the whole result
    is ``None``: a name is indexed only if every row can be read, so that
    queries on it fail on such a row the same way with and without the
    index.
    """
    sql = "SELECT key, metadata FROM {}".format(table_sql)
    parameters: tuple = ()
    if _PROBE_SAFE_NAME.match(name):
        # Rows whose well-formed, untagged JSON metadata does not even
        # contain the quoted name cannot have it; SQLite skips them without
        # Python decoding them.  Anything else is decoded.
        sql += (" WHERE CASE WHEN typeof(metadata) <> 'text' THEN 1"
                " WHEN NOT json_valid(metadata) THEN 1"
                " WHEN json_type(metadata) <> 'object' THEN 1"
                " ELSE instr(metadata, '\"$encore:') > 0 OR instr(metadata, ?) > 0 END")
        parameters = ('"' + name + '"',)
    updates = []
    try:
        rows = connection.execute(sql, parameters).fetchall()
    except sqlite3.OperationalError:  # no JSON functions in this SQLite
        rows = connection.execute("SELECT key, metadata FROM {}".format(table_sql)).fetchall()
    for key, raw in rows:
        metadata = decode(key, raw)
        if metadata is None:
            return None
        try:
            text = _index_value(metadata.get(name))
        except _Unindexable:
            text = None
        if text is not None:
            updates.append((key, text))
    return updates


def _write_index_values(connection: sqlite3.Connection, index_sql: str, column: str,
                        updates: list) -> None:
    """Write ``(key, text)`` pairs into an index column."""
    if updates:
        connection.executemany(
            "INSERT INTO {table} (key, {column}) VALUES (?, ?) ON CONFLICT(key) "
            "DO UPDATE SET {column} = excluded.{column}".format(
                table=index_sql, column=_quote(column)),
            updates)


def _fill_index_column(connection: sqlite3.Connection, table_sql: str, index_sql: str,
                       name: str, column: str,
                       decode: Callable[[str, Any], Optional[Dict[str, Any]]]) -> bool:
    """Put the values of the existing rows into a new index column.

    Returns ``False`` (and writes nothing) when a row cannot be read; see
    :func:`_index_values`.
    """
    updates = _index_values(connection, table_sql, name, decode)
    if updates is None:
        return False
    _write_index_values(connection, index_sql, column, updates)
    return True
# ---------------------------------------------------------------------------
# Scans without an index: a superset filter in SQL
# ---------------------------------------------------------------------------

#: Metadata names usable in a JSON path: printable ASCII without ``"`` and
#: ``\`` (the stored JSON escapes every other character, and SQLite matches
#: path labels against the raw, escaped text).
_PATH_SAFE_NAME = re.compile(r'[ !#-\[\]-~]+\Z')
_SQL_INTEGER_RANGE = (-(1 << 63), 1 << 63)


def _scan_condition(name: str, value: Any) -> Optional[Tuple[str, list]]:
    """An SQL condition on ``t.metadata`` true for every row whose metadata
    may hold ``value`` under ``name`` (``metadata.get(name) == value``).

    The condition may also be true for rows that do not match (the caller
    checks every row it returns in Python), never false for one that does.
    Returns ``None`` when the value is better left to Python altogether.

    * ``None``: the name is missing or null;
    * strings: ``json_extract`` equals the string;
    * booleans, integers and integral floats: ``json_extract`` equals the
      value -- SQLite compares numbers by value, so ``1``, ``1.0`` and
      ``true`` all match ``1`` as in Python -- or, in metadata holding
      nested objects, the stored value is an object (a tagged value that
      may compare equal in Python, such as a ``Decimal``);
    * lists and dictionaries: the stored value is an array or an object.
    """
    if type(name) is not str or not _PATH_SAFE_NAME.match(name):
        return None
    path = '$."' + name + '"'
    kind = type(value)
    if value is None:
        return "json_extract(t.metadata, ?) IS NULL", [path]
    if kind is list or kind is dict:
        return "json_type(t.metadata, ?) IN ('array', 'object')", [path]
    if kind is str:
        if "\x00" in value:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None
        parameter: Any = value
    elif kind is bool:
        parameter = int(value)
    elif kind is int:
        if not _SQL_INTEGER_RANGE[0] <= value < _SQL_INTEGER_RANGE[1]:
            return None
        parameter = value
    elif kind is float:
        # Only integral floats: SQLite's reading of other decimal texts
        # may differ from Python's in the last bit.
        if not value.is_integer() or abs(value) >= 2.0 ** 53:
            return None
        parameter = int(value)
    else:
        return None
    if kind is str:
        # Only a string equals a string: no tagged value can.
        return "json_extract(t.metadata, ?) = ?", [path, parameter]
    return ("(json_extract(t.metadata, ?) = ? OR (t.metadata LIKE '{%{%' "
            "AND json_type(t.metadata, ?) = 'object'))", [path, parameter, path])


def _scan_where(conditions: List[Tuple[str, list]]) -> Tuple[str, list]:
    """Combine scan conditions.

    Rows the SQL cannot judge always pass, to be decoded (and judged, or
    refused naming their key) in Python: metadata that is not JSON text
    (legacy pickles), text that is not a JSON object as the store writes it
    (it starts with ``{``), and metadata holding tagged values (whose
    decoding may fail, and whose Python values may equal plain ones).
    """
    sql = ("CASE WHEN typeof(t.metadata) <> 'text' OR substr(t.metadata, 1, 1) <> '{{' "
           "OR instr(t.metadata, '\"$encore:') > 0 THEN 1 ELSE ({}) END").format(
        " AND ".join(condition for condition, _ in conditions))
    parameters: list = []
    for _, values in conditions:
        parameters.extend(values)
    return sql, parameters
