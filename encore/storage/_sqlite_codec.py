"""Metadata encoding and decoding for :mod:`encore.storage.sqlite_store`.

Metadata is stored as compact JSON text.  This module holds the encoder the
store uses for checked metadata, the decoder of stored metadata (including
the restricted reading of the pickles Encore 0.8 wrote, when a store allows
it), and the process-wide :mod:`sqlite3` adapter and converter for
dictionaries that importing the store registers.
"""
from __future__ import annotations

import io
import json
import pickle
import sqlite3
from json.encoder import encode_basestring_ascii
from typing import Any, Dict

from .abstract_store import StoreError, check_metadata

_ENCODER = json.JSONEncoder(
    ensure_ascii=True, separators=(",", ":"), allow_nan=False, check_circular=False
)


def _make_metadata_encoder() -> Any:
    """A compact JSON encoder for checked metadata, built once.

    ``JSONEncoder.encode`` builds its C encoder on every call; metadata
    written by the store is already checked (no cycles, no NaN), so one C
    encoder serves every call.
    """
    try:
        from json.encoder import c_make_encoder  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - pure-Python json
        c_make_encoder = None
    if c_make_encoder is None:  # pragma: no cover
        return _ENCODER.encode

    def refuse(value: Any) -> Any:
        raise TypeError("{} is not JSON serializable".format(type(value).__name__))

    iterencode = c_make_encoder(None, refuse, encode_basestring_ascii, None, ":", ",",
                                False, False, False)
    join = "".join

    def encode(metadata: Dict[str, Any]) -> str:
        return join(iterencode(metadata, 0))

    return encode


_encode_metadata = _make_metadata_encoder()
_decode_json = json.JSONDecoder().decode


# ---------------------------------------------------------------------------
# The process-wide sqlite3 adapter and converter for dictionaries
# ---------------------------------------------------------------------------

def _adapt_dict(value: dict) -> str:
    """Encode a dictionary for SQLite as compact JSON text."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def _convert_dict(raw: bytes) -> dict:
    """Decode a ``dict`` column read with ``PARSE_DECLTYPES``.

    Only JSON is accepted: the pickles Encore 0.8 wrote are refused, since
    unpickling data from a file may run arbitrary code.
    """
    if raw[:1].isspace() or raw[:1] in (b"{", b"["):
        return json.loads(raw.decode("utf-8"))
    raise ValueError(
        "this 'dict' column does not hold JSON (a pickle written by Encore 0.8?); "
        "refusing to unpickle it -- open the database with "
        "SqliteStore(..., legacy_pickle=True) to read it"
    )


sqlite3.register_adapter(dict, _adapt_dict)
sqlite3.register_converter("dict", _convert_dict)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain data only: any reference to a class or function fails."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            "refusing to load {}.{} from legacy metadata".format(module, name)
        )


def _unpickle_legacy(raw: bytes) -> Dict[str, Any]:
    try:
        value = _RestrictedUnpickler(io.BytesIO(raw), encoding="utf-8").load()
    except Exception as error:
        raise StoreError("cannot read legacy pickled metadata: {}".format(error)) from None
    if not isinstance(value, dict):
        raise StoreError("legacy metadata is a {}, not a dict".format(type(value).__name__))
    try:
        return check_metadata(value)
    except (TypeError, ValueError) as error:
        raise StoreError("legacy metadata is not JSON-representable: {}".format(error)) from None


def _decode_metadata(raw: Any, legacy_pickle: bool) -> Dict[str, Any]:
    """Decode metadata as read from the table.

    Parameters
    ----------
    raw : str, bytes or None
        The content of the ``metadata`` column.
    legacy_pickle : bool
        Whether metadata pickled by Encore 0.8 may be read (plain data only).

    Returns
    -------
    dict
        The metadata (``{}`` for NULL).

    Raises
    ------
    StoreError
        If the content is not a JSON object (or an allowed legacy pickle).
    """
    if type(raw) is str:
        try:
            metadata = _decode_json(raw)
        except ValueError as error:
            raise StoreError("stored metadata is not valid JSON: {}".format(error)) from None
    elif raw is None:
        return {}
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw)
        if raw[:1] == b"\x80" or not raw.lstrip()[:1] == b"{":
            if not legacy_pickle:
                raise StoreError(
                    "stored metadata is not JSON (a pickle written by Encore 0.8?); "
                    "it is read only by a store created with legacy_pickle=True")
            return _unpickle_legacy(raw)
        try:
            metadata = _decode_json(raw.decode("utf-8"))
        except ValueError as error:
            raise StoreError("stored metadata is not valid JSON: {}".format(error)) from None
    else:
        raise StoreError("stored metadata has the SQL type of a {}".format(type(raw).__name__))
    if type(metadata) is not dict:
        raise StoreError("stored metadata is a JSON {}, not an object".format(
            type(metadata).__name__))
    return metadata
