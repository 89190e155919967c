"""The metadata value types beyond JSON, and their tagged JSON form.

Metadata is a dictionary with ``str`` keys whose values are JSON values
(``str``, ``int``, finite ``float``, ``bool``, ``None``, lists and
dictionaries) or one of the types Encore 0.8 programs commonly stored in
their (pickled) metadata:

==========================  ======================================================
type                        tagged JSON form
==========================  ======================================================
``datetime.datetime``       ``{"$encore:datetime": "2024-05-01T12:30:00.000001+02:00"}``
``datetime.date``           ``{"$encore:date": "2024-05-01"}``
``datetime.time``           ``{"$encore:time": "12:30:00"}``
``decimal.Decimal``         ``{"$encore:decimal": "1.10"}``
``bytes``                   ``{"$encore:bytes": "<standard base64>"}``
``set``                     ``{"$encore:set": [<elements, sorted by their JSON text>]}``
``frozenset``               ``{"$encore:frozenset": [<elements>]}``
``uuid.UUID``               ``{"$encore:uuid": "12345678-1234-5678-1234-567812345678"}``
==========================  ======================================================

A datetime or time whose ``fold`` is 1 has ``|fold=1`` after its ISO text.
A ``tzinfo`` is kept as its fixed UTC offset (a :class:`datetime.timezone`,
to which :func:`check_value` converts any other ``tzinfo``), which keeps
the value ``==`` to the original.  The elements of sets are hashable values
of the types above (no lists, dictionaries or sets; frozensets are fine).

A JSON object with exactly one member whose name starts with ``$encore:``
is a tagged value.  A metadata dictionary that would look like one (exactly
one item, named ``$encore:...``) is written as
``{"$encore:dict": [<name>, <value>]}``, so every metadata dictionary reads
back as itself.

This module is the one place the JSON-based stores (SQLite, file system,
the HTTP protocol, object storage) encode and decode metadata:
:func:`encode_metadata` / :func:`decode_metadata` for whole documents,
:func:`to_json` / :func:`from_json` for values embedded in larger JSON
documents.  :func:`check_value` is what
:func:`encore.storage.abstract_store.check_metadata` uses for these types.
"""
from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import json
import math
import uuid
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any, Callable, Dict

__all__ = [
    "EXTRA_TYPES",
    "TAG_PREFIX",
    "check_value",
    "decode_metadata",
    "encode_metadata",
    "from_json",
    "make_encoder",
    "permissions_to_json",
    "to_json",
]

#: The prefix of the member name of a tagged value.
TAG_PREFIX = "$encore:"

#: The metadata value types accepted besides the JSON ones.
EXTRA_TYPES = (
    datetime.datetime, datetime.date, datetime.time, decimal.Decimal,
    bytes, set, frozenset, uuid.UUID,
)

_EXTRA = frozenset(EXTRA_TYPES)
_PLAIN = frozenset({str, int, float, bool, type(None)})
_HASHABLE = frozenset({str, int, float, bool, type(None), datetime.datetime, datetime.date,
                       datetime.time, decimal.Decimal, bytes, frozenset, uuid.UUID})
_FOLD = "|fold=1"
# How a tag's name starts in JSON text.
_MARK = '"' + TAG_PREFIX
_ALLOWED = ("use str, int, float, bool, None, list or dict, or datetime, date, time, "
            "Decimal, bytes, set, frozenset or UUID")


# ---------------------------------------------------------------------------
# Checking (used by check_metadata)
# ---------------------------------------------------------------------------

def _fixed_zone(value: Any, path: str) -> Any:
    """The value with its tzinfo replaced by the equivalent fixed offset."""
    zone = value.tzinfo
    if zone is None or type(zone) is datetime.timezone:
        return value
    offset = value.utcoffset()
    if offset is None:
        raise TypeError(
            "metadata value at {} is a {} whose tzinfo ({}) gives no UTC offset; "
            "it cannot be stored".format(path or "top level", type(value).__name__,
                                         type(zone).__name__))
    return value.replace(tzinfo=datetime.timezone(offset))


def _check_element(value: Any, path: str) -> Any:
    kind = type(value)
    if kind not in _HASHABLE:
        raise TypeError(
            "an element of the set at {} has type {}, which cannot be stored in a set "
            "(use str, int, float, bool, None, datetime, date, time, Decimal, bytes, "
            "frozenset or UUID)".format(path or "top level", kind.__name__))
    if kind is float and not math.isfinite(value):
        raise ValueError("an element of the set at {} is {!r}, which cannot be stored".format(
            path or "top level", value))
    if kind in _PLAIN:
        return value
    return check_value(value, path)


def check_value(value: Any, path: str) -> Any:
    """Check a metadata value of one of the :data:`EXTRA_TYPES`.

    Parameters
    ----------
    value : object
        The value.
    path : str
        Where the value is in the metadata (``a.b[2]``), for messages.

    Returns
    -------
    object
        The value to store: the value itself, a new set (a copy), or a
        datetime or time with a fixed-offset ``tzinfo``.

    Raises
    ------
    TypeError
        If the value is not of one of these types (subclasses are refused
        too), or is a set holding an element that cannot be stored.
    ValueError
        If it is a signalling Decimal NaN, or a set holds a NaN or infinite
        float.
    """
    kind = type(value)
    if kind is datetime.datetime or kind is datetime.time:
        return _fixed_zone(value, path)
    if kind is set or kind is frozenset:
        return kind([_check_element(item, path) for item in value])
    if kind is decimal.Decimal:
        if value.is_snan():
            raise ValueError("metadata value at {} is a signalling Decimal NaN, which "
                             "cannot be compared; it cannot be stored".format(path or "top level"))
        return value
    if kind in _EXTRA:
        return value
    raise TypeError(
        "metadata value at {} has type {}, which cannot be stored ({})".format(
            path or "top level", kind.__name__, _ALLOWED))


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------

def _iso(value: Any) -> str:
    text = value.isoformat()
    return text + _FOLD if value.fold else text


def _element_text(item: Any) -> str:
    return json.dumps(to_json(item), sort_keys=True, separators=(",", ":"))


def _tag_set(value: Any) -> list:
    return sorted((to_json(item) for item in value), key=_element_text) if len(value) > 1 \
        else [to_json(item) for item in value]


_ENCODERS: Dict[type, Callable[[Any], Any]] = {
    datetime.datetime: _iso,
    datetime.date: lambda value: value.isoformat(),
    datetime.time: _iso,
    decimal.Decimal: str,
    bytes: lambda value: base64.b64encode(value).decode("ascii"),
    set: _tag_set,
    frozenset: _tag_set,
    uuid.UUID: str,
}
_TAGS = {kind: TAG_PREFIX + kind.__name__.lower() for kind in _ENCODERS}
_DICT_TAG = TAG_PREFIX + "dict"


def _tagged(value: Any) -> Dict[str, Any]:
    """The tagged form of a value of one of the extra types (``default`` hook)."""
    kind = type(value)
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        raise TypeError("metadata value of type {} cannot be stored ({})".format(
            kind.__name__, _ALLOWED))
    return {_TAGS[kind]: encoder(value)}


def to_json(value: Any) -> Any:
    """Return the JSON form of a (checked) metadata value, tags included.

    Parameters
    ----------
    value : object
        A metadata value or a whole metadata dictionary.

    Returns
    -------
    object
        JSON-serialisable data: extra types tagged, dictionaries that would
        look like a tag escaped.

    Raises
    ------
    TypeError
        If the value holds something that cannot be stored.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        result = {name: to_json(item) for name, item in value.items()}
        if len(result) == 1:
            for name, item in result.items():
                if name.startswith(TAG_PREFIX):
                    return {_DICT_TAG: [name, item]}
        return result
    if kind is list or kind is tuple:
        return [to_json(item) for item in value]
    return _tagged(value)


def _needs_escape(value: Dict[str, Any]) -> bool:
    """Whether any dictionary in the metadata looks like a tagged value."""
    if len(value) == 1:
        for name in value:
            if name.startswith(TAG_PREFIX):
                return True
    for item in value.values():
        kind = type(item)
        if kind is dict:
            if _needs_escape(item):
                return True
        elif kind is list or kind is tuple:
            if _list_needs_escape(item):
                return True
    return False


def _list_needs_escape(values: Any) -> bool:
    for item in values:
        kind = type(item)
        if kind is dict:
            if _needs_escape(item):
                return True
        elif kind is list or kind is tuple:
            if _list_needs_escape(item):
                return True
    return False


def make_encoder(ensure_ascii: bool = True,
                 separators: tuple = (",", ":")) -> Callable[[Dict[str, Any]], str]:
    """Return a fast :func:`encode_metadata` with fixed options.

    Parameters
    ----------
    ensure_ascii : bool, optional
        Whether non-ASCII characters are escaped.
    separators : (str, str), optional
        The item and key separators.

    Returns
    -------
    callable
        ``encode(metadata) -> str``, for metadata already checked.
    """
    item_separator, key_separator = separators
    try:
        from json.encoder import c_make_encoder  # type: ignore[attr-defined]  # C accelerator, not in typeshed
    except ImportError:  # pragma: no cover - pure-Python json
        c_make_encoder = None
    if c_make_encoder is None:  # pragma: no cover
        slow = json.JSONEncoder(ensure_ascii=ensure_ascii, separators=separators,
                                allow_nan=False, default=_tagged)
        return lambda metadata: slow.encode(to_json(metadata))
    iterencode = c_make_encoder(
        None, _tagged, encode_basestring_ascii if ensure_ascii else encode_basestring,
        None, key_separator, item_separator, False, False, False)
    join = "".join

    def encode(metadata: Dict[str, Any]) -> str:
        text = join(iterencode(metadata, 0))
        # Only a text naming a tag can hold a dictionary needing an escape.
        if _MARK in text and _needs_escape(metadata):
            text = join(iterencode(to_json(metadata), 0))
        return text

    return encode


_encoders: Dict[tuple, Callable[[Any], str]] = {}


def encode_metadata(metadata: Dict[str, Any], ensure_ascii: bool = True,
                    separators: tuple = (",", ":")) -> str:
    """Encode checked metadata as JSON text, with the extra types tagged.

    Parameters
    ----------
    metadata : dict
        Metadata already checked by
        :func:`~encore.storage.abstract_store.check_metadata` (no NaN, no
        cycles).
    ensure_ascii : bool, optional
        Whether non-ASCII characters are escaped (default ``True``).
    separators : (str, str), optional
        The item and key separators (default compact).

    Returns
    -------
    str
        The JSON text.

    Raises
    ------
    TypeError
        If the metadata holds something that cannot be stored (it was not
        checked).
    """
    options = (ensure_ascii, tuple(separators))
    encoder = _encoders.get(options)
    if encoder is None:
        encoder = _encoders[options] = make_encoder(ensure_ascii, tuple(separators))
    return encoder(metadata)


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------

def _text(payload: Any) -> str:
    if type(payload) is not str:
        raise ValueError("expected a string, found {}".format(type(payload).__name__))
    return payload


def _with_fold(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    def decode(payload: Any) -> Any:
        text = _text(payload)
        if text.endswith(_FOLD):
            return parse(text[:-len(_FOLD)]).replace(fold=1)
        return parse(text)
    return decode


def _decode_decimal(payload: Any) -> decimal.Decimal:
    try:
        return decimal.Decimal(_text(payload))
    except decimal.InvalidOperation:
        raise ValueError("{!r} is not a decimal number".format(payload)) from None


def _decode_bytes(payload: Any) -> bytes:
    try:
        return base64.b64decode(_text(payload).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("{!r} is not base64".format(payload)) from None


def _decode_collection(kind: type) -> Callable[[Any], Any]:
    def decode(payload: Any) -> Any:
        if type(payload) is not list:
            raise ValueError("expected a list, found {}".format(type(payload).__name__))
        for item in payload:
            if type(item) not in _HASHABLE:
                raise ValueError("a set cannot hold a {}".format(type(item).__name__))
        return kind(payload)
    return decode


def _decode_dict(payload: Any) -> Dict[str, Any]:
    if type(payload) is not list or len(payload) != 2 or type(payload[0]) is not str:
        raise ValueError("expected a [name, value] pair")
    return {payload[0]: payload[1]}


_DECODERS: Dict[str, Callable[[Any], Any]] = {
    TAG_PREFIX + "datetime": _with_fold(datetime.datetime.fromisoformat),
    TAG_PREFIX + "date": lambda payload: datetime.date.fromisoformat(_text(payload)),
    TAG_PREFIX + "time": _with_fold(datetime.time.fromisoformat),
    TAG_PREFIX + "decimal": _decode_decimal,
    TAG_PREFIX + "bytes": _decode_bytes,
    TAG_PREFIX + "set": _decode_collection(set),
    TAG_PREFIX + "frozenset": _decode_collection(frozenset),
    TAG_PREFIX + "uuid": lambda payload: uuid.UUID(_text(payload)),
    _DICT_TAG: _decode_dict,
}


def _untag(obj: Dict[str, Any]) -> Any:
    """``object_hook``: turn a tagged object back into its value."""
    if len(obj) == 1:
        for name, payload in obj.items():
            if name.startswith(TAG_PREFIX):
                decoder = _DECODERS.get(name)
                if decoder is None:
                    raise ValueError("unknown tagged value {!r}".format(name))
                try:
                    return decoder(payload)
                except (TypeError, ValueError) as error:
                    raise ValueError("malformed tagged value {!r}: {}".format(
                        name, error)) from None
    return obj


_plain_decode = json.JSONDecoder().decode
_tagged_decode = json.JSONDecoder(object_hook=_untag).decode


def decode_metadata(text: str) -> Any:
    """Decode JSON text written by :func:`encode_metadata`.

    Parameters
    ----------
    text : str
        The JSON text.

    Returns
    -------
    object
        The decoded document (a dict for metadata), tagged values turned
        back into their types.

    Raises
    ------
    ValueError
        If the text is not JSON, or holds an unknown or malformed tagged
        value.
    """
    if _MARK in text:
        return _tagged_decode(text)
    return _plain_decode(text)


def from_json(value: Any) -> Any:
    """Turn tagged values inside already parsed JSON data back into their types.

    Parameters
    ----------
    value : object
        Data from :func:`json.loads` (without an ``object_hook``).

    Returns
    -------
    object
        The same data with every tagged object decoded.

    Raises
    ------
    ValueError
        If it holds an unknown or malformed tagged value.
    """
    kind = type(value)
    if kind is dict:
        return _untag({name: from_json(item) for name, item in value.items()})
    if kind is list:
        return [from_json(item) for item in value]
    return value


def permissions_to_json(permissions: Dict[str, Any]) -> Dict[str, Any]:
    """The JSON form of a permissions dictionary, as the server and client exchange it.

    Parameters
    ----------
    permissions : dict
        Permission names mapped to collections of user tags.

    Returns
    -------
    dict
        The same names, each set, frozenset, list or tuple of tags as a list
        sorted by the tags' text (so equal permissions give equal JSON);
        other values are passed through for the JSON encoder to judge.
    """
    result = {}
    for name, tags in permissions.items():
        if isinstance(tags, (set, frozenset, list, tuple)):
            result[name] = sorted(tags, key=str)
        else:
            result[name] = tags
    return result
