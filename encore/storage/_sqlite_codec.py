"""Metadata encoding and decoding for :mod:`encore.storage.sqlite_store`.

Metadata is stored as compact JSON text, with the values JSON lacks
(datetimes, decimals, bytes, sets, UUIDs) in the tagged form of
:mod:`encore.storage._metadata_codec`.  A store created with
``legacy_pickle=True`` writes it instead as Encore 0.8 did,
``pickle.dumps(metadata, protocol=2)``, so that Encore 0.8 programs sharing
the database keep reading every row.

Pickles are only ever read through :class:`_RestrictedUnpickler`, which
knows exactly the globals that Encore 0.8's metadata pickles use for the
types above (``_codecs.encode`` -- for latin-1 text only --, ``set``,
``frozenset``, an empty ``bytes()``, ``datetime.datetime``/``date``/
``time``/``timezone``/``timedelta``, ``decimal.Decimal`` and
``uuid.UUID``); any other global -- any other class or function -- is
refused, so no pickle can make it run code.

This module also holds the process-wide :mod:`sqlite3` adapter and
converter for dictionaries that importing the store registers
(:func:`adapt_dict`, :func:`convert_dict`).
"""
from __future__ import annotations

import _codecs
import datetime
import decimal
import io
import pickle
import sqlite3
import uuid
from typing import Any, Dict, Optional

from ._metadata_codec import decode_metadata as _decode_tagged_json
from ._metadata_codec import make_encoder
from .abstract_store import StoreError, check_metadata

__all__ = ["adapt_dict", "convert_dict"]


#: Encode checked metadata as compact, ASCII-only tagged JSON.
_encode_metadata = make_encoder(ensure_ascii=True, separators=(",", ":"))


def _encode_legacy(metadata: Dict[str, Any]) -> bytes:
    """Encode checked metadata as Encore 0.8 did: a protocol 2 pickle."""
    return pickle.dumps(metadata, protocol=2)


_decode_json = _decode_tagged_json

#: The ``metadata`` content of an empty dictionary, per encoding.
EMPTY_JSON = "{}"
EMPTY_PICKLE = _encode_legacy({})


# ---------------------------------------------------------------------------
# Reading Encore 0.8's pickles
# ---------------------------------------------------------------------------

def _latin1_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol 2 pickles of bytes use it, and nothing else."""
    if type(text) is not str or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError("refusing _codecs.encode with other arguments than "
                                     "latin-1 text")
    return _codecs.encode(text, "latin1")


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()``, as protocol 2 pickles of ``b''`` call it."""
    if args:
        raise pickle.UnpicklingError("refusing bytes() with arguments")
    return b""


_LEGACY_GLOBALS = {
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "date"): datetime.date,
    ("datetime", "time"): datetime.time,
    ("datetime", "timezone"): datetime.timezone,
    ("datetime", "timedelta"): datetime.timedelta,
    ("decimal", "Decimal"): decimal.Decimal,
    ("uuid", "UUID"): uuid.UUID,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain data and the value types of Encore 0.8's metadata only.

    Any reference to another class or function fails.
    """

    def find_class(self, module: str, name: str) -> Any:
        found = _LEGACY_GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                "refusing to load {}.{} from legacy metadata".format(module, name))
        return found


def _unpickle(raw: bytes) -> Any:
    return _RestrictedUnpickler(io.BytesIO(raw), encoding="utf-8").load()


def _unpickle_legacy(raw: bytes, key: Optional[str] = None) -> Dict[str, Any]:
    try:
        value = _unpickle(raw)
    except Exception as error:
        raise StoreError("{}a legacy pickle that cannot be read: {}".format(
            _of(key), error)) from None
    if not isinstance(value, dict):
        raise StoreError("{}a pickled {}, not a dict".format(
            _of(key), type(value).__name__))
    try:
        return check_metadata(value)
    except (TypeError, ValueError) as error:
        raise StoreError("{}a legacy pickle holding a value that cannot be stored: {}".format(
            _of(key), error)) from None


def _of(key: Optional[str]) -> str:
    return "stored metadata is " if key is None else "the metadata of key {!r} is ".format(key)


# ---------------------------------------------------------------------------
# The process-wide sqlite3 adapter and converter for dictionaries
# ---------------------------------------------------------------------------

def adapt_dict(value: dict) -> str:
    """Encode a dictionary for an SQLite ``dict`` column (the registered adapter).

    Parameters
    ----------
    value : dict
        Metadata; checked as a store checks it.

    Returns
    -------
    str
        Compact JSON text, the extra value types tagged (see
        :mod:`encore.storage._metadata_codec`).

    Raises
    ------
    TypeError, ValueError
        If the dictionary holds something metadata cannot.
    """
    return _encode_metadata(check_metadata(value))


def convert_dict(raw: bytes) -> dict:
    """Decode a ``dict`` column read with ``PARSE_DECLTYPES`` (the registered converter).

    Parameters
    ----------
    raw : bytes
        The column content: JSON text (tagged values decoded), or a pickle
        written by Encore 0.8, which is read through the restricted
        unpickler (plain data and Encore's metadata value types only; any
        other class or function is refused, so no code runs).

    Returns
    -------
    dict
        The metadata.

    Raises
    ------
    ValueError
        If the content is neither.
    """
    raw = bytes(raw)
    if raw[:1] == b"\x80":
        try:
            value = _unpickle(raw)
        except Exception as error:
            raise ValueError("this 'dict' column holds a pickle that cannot be read "
                             "safely: {}".format(error)) from None
        if not isinstance(value, dict):
            raise ValueError("this 'dict' column holds a pickled {}, not a dict".format(
                type(value).__name__))
        return value
    return _decode_tagged_json(raw.decode("utf-8"))


# The names of this module before they were public.
_adapt_dict = adapt_dict
_convert_dict = convert_dict

sqlite3.register_adapter(dict, adapt_dict)
sqlite3.register_converter("dict", convert_dict)


def _decode_metadata(raw: Any, legacy_pickle: bool, key: Optional[str] = None) -> Dict[str, Any]:
    """Decode metadata as read from the table.

    Parameters
    ----------
    raw : str, bytes or None
        The content of the ``metadata`` column.
    legacy_pickle : bool
        Whether metadata pickled by Encore 0.8 may be read (restricted).
    key : str, optional
        The key of the row, named in error messages.

    Returns
    -------
    dict
        The metadata (``{}`` for NULL).

    Raises
    ------
    StoreError
        If the content is not a JSON object (or an allowed legacy pickle);
        the message names the key.
    """
    if type(raw) is str:
        try:
            metadata = _decode_json(raw)
        except ValueError as error:
            raise StoreError("{}not valid JSON: {}".format(_of(key), error)) from None
    elif raw is None:
        return {}
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw)
        if raw[:1] == b"\x80" or not raw.lstrip()[:1] == b"{":
            if not legacy_pickle:
                raise StoreError(
                    "{}not JSON (a pickle written by Encore 0.8?); it is read only by a "
                    "store created with legacy_pickle=True".format(_of(key)))
            return _unpickle_legacy(raw, key)
        try:
            metadata = _decode_json(raw.decode("utf-8"))
        except ValueError as error:
            raise StoreError("{}not valid JSON: {}".format(_of(key), error)) from None
    else:
        raise StoreError("{}of the SQL type of a {}".format(_of(key), type(raw).__name__))
    if type(metadata) is not dict:
        raise StoreError("{}a JSON {}, not an object".format(_of(key), type(metadata).__name__))
    return metadata
