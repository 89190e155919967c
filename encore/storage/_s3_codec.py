"""How :class:`~encore.storage.s3_store.S3Store` lays values out in objects.

Two reversible mappings live here, kept apart from the network code so they
can be tested on their own:

**Keys to object names.**  A key is any string; an object name must survive
S3-compatible servers that refuse some names.  SeaweedFS, for one, refuses the
path segments ``.`` and ``..``, turns a name ending in ``/`` into a directory
marker and limits every segment to 255 bytes; AWS limits a whole name to 1024
bytes.  Filer-backed servers (SeaweedFS) also keep ``a/b`` as a file ``b``
in a directory ``a``, so keys ``a`` and ``a/b`` would conflict.  A key is
therefore escaped into one segment:

* ``%`` (the escape character), ``/``, ``\\``, control and other
  non-printable characters become ``%XX`` per UTF-8 byte (upper-case hex);
* a leading ``.`` becomes ``%2E`` (so no name is ``.``, ``..`` or hidden);
* the empty key becomes ``%`` alone, which escaping never produces
  otherwise;
* a name that would still be longer than 1024 bytes (with the store's
  prefix) is replaced by ``%=`` and the SHA-256 of the key, and the key is
  recorded in the object's header;
* an escaped segment longer than :data:`SEGMENT_BYTES` bytes is cut into
  pieces, each but the last ending in ``%+`` ("continued in the next
  segment"), again a sequence escaping never produces.

So ``reports/2024 q1.csv`` is stored as ``reports%2F2024 q1.csv`` (still
readable in a bucket browser), and ``../x`` as ``%2E.%2Fx``.

**Values to object bodies.**  An object holds a whole value, so that one PUT
publishes data and metadata together (S3 has no multi-object transactions)::

    MAGIC (8 bytes) | header length N (4 bytes, big-endian) | header (N bytes) | data

The header is UTF-8 JSON: ``{"metadata": {...}, "created": t, "modified": t}``
with times in seconds since the epoch.  Metadata values beyond JSON
(datetimes, dates, times, decimals, bytes, sets, frozensets, UUIDs) are
written in the tagged form of :mod:`encore.storage._metadata_codec` and read
back as their types.  Metadata size is limited only by memory (AWS's 2 KB
limit on user metadata does not apply); non-ASCII text is kept as UTF-8.  An object without the magic bytes
(uploaded by another tool) reads as a value with empty metadata whose data is
the whole object.
"""
from __future__ import annotations

import hashlib
import struct
from typing import Any, Dict, Optional, Tuple

from ._metadata_codec import decode_metadata, make_encoder

#: The first bytes of every object the store writes.
MAGIC = b"ENCORE\x00\x01"

#: The length of the fixed part before the JSON header.
PREFIX_SIZE = len(MAGIC) + 4

#: The longest escaped segment, in bytes (SeaweedFS allows 255).
SEGMENT_BYTES = 200

#: Encodes a header document (or the metadata index), extra types tagged.
encode_document = make_encoder(ensure_ascii=False, separators=(",", ":"))

_EMPTY = "%"
_CONTINUED = "%+"
_HEX = "0123456789ABCDEF"


def _escape_char(char: str) -> str:
    return "".join("%" + _HEX[byte >> 4] + _HEX[byte & 15] for byte in char.encode("utf-8"))


def _escape_segment(segment: str) -> str:
    if not segment:
        return _EMPTY
    if segment.isprintable() and segment[0] != "." and "%" not in segment and "/" not in segment \
            and "\\" not in segment:
        return segment  # the common case: nothing to escape
    parts = []
    for index, char in enumerate(segment):
        if char in "%/\\" or not char.isprintable() or (index == 0 and char == "."):
            parts.append(_escape_char(char))
        else:
            parts.append(char)
    return "".join(parts)


def _split_long(escaped: str) -> list:
    """Cut an escaped segment into pieces of at most SEGMENT_BYTES bytes."""
    if len(escaped.encode("utf-8")) <= SEGMENT_BYTES:
        return [escaped]
    limit = SEGMENT_BYTES - len(_CONTINUED)
    pieces = []
    current: list = []
    size = 0
    index = 0
    while index < len(escaped):
        # An escape sequence %XX is never cut.
        unit = escaped[index:index + 3] if escaped[index] == "%" else escaped[index]
        index += len(unit)
        unit_size = len(unit.encode("utf-8"))
        if size + unit_size > limit:
            pieces.append("".join(current) + _CONTINUED)
            current, size = [], 0
            if unit == ".":
                unit, unit_size = "%2E", 3  # no piece is "." or ".."
        current.append(unit)
        size += unit_size
    pieces.append("".join(current))
    return pieces


def encode_key(key: str) -> str:
    """Return the object name (relative to the store's area) of a key.

    Parameters
    ----------
    key : str
        Any string.

    Returns
    -------
    str
        A name no S3-compatible server refuses (see the module docstring).
    """
    return "/".join(_split_long(_escape_segment(key)))


def _unescape(segment: str) -> str:
    if "%" not in segment:
        return segment
    out = bytearray()
    index = 0
    while index < len(segment):
        char = segment[index]
        if char == "%":
            out.append(int(segment[index + 1:index + 3], 16))
            index += 3
        else:
            out.extend(char.encode("utf-8"))
            index += 1
    return out.decode("utf-8")


def decode_key(name: str) -> str:
    """Return the key of an object name made by :func:`encode_key`.

    Parameters
    ----------
    name : str
        The object name relative to the store's area.

    Returns
    -------
    str
        The key.

    Raises
    ------
    ValueError
        If the name cannot have been made by :func:`encode_key`.
    """
    pieces = name.split("/")
    for piece in pieces[:-1]:
        if not piece.endswith(_CONTINUED):
            raise ValueError("object name {!r} was not made by encode_key".format(name))
    joined = "".join(piece[: -len(_CONTINUED)] for piece in pieces[:-1]) + pieces[-1]
    return "" if joined == _EMPTY else _unescape(joined)


def pack_header(metadata: Dict[str, Any], created: float, modified: float, key: Optional[str] = None) -> bytes:
    """Return the bytes that precede the data in an object.

    Parameters
    ----------
    metadata : dict
        The value's metadata (checked by
        :func:`~encore.storage.abstract_store.check_metadata`).
    created, modified : float
        Times in seconds since the epoch.
    key : str, optional
        The key, recorded for keys whose object name is a hash (keys too
        long for an object name).

    Returns
    -------
    bytes
        Magic, length and JSON header.
    """
    document = {"metadata": metadata, "created": created, "modified": modified}
    if key is not None:
        document["key"] = key
    header = encode_document(document).encode("utf-8")
    return MAGIC + struct.pack(">I", len(header)) + header


def header_length(prefix: bytes) -> Optional[int]:
    """Return the total length of magic, length and header, from the first
    :data:`PREFIX_SIZE` bytes of an object, or ``None`` for a foreign object.

    Parameters
    ----------
    prefix : bytes
        At least the first :data:`PREFIX_SIZE` bytes (fewer: a foreign or
        empty object).

    Returns
    -------
    int or None
        The offset at which the data starts.
    """
    if len(prefix) < PREFIX_SIZE or not prefix.startswith(MAGIC):
        return None
    return PREFIX_SIZE + struct.unpack(">I", prefix[len(MAGIC):PREFIX_SIZE])[0]


def parse_header(raw: bytes) -> Tuple[Dict[str, Any], Optional[float], Optional[float], Optional[str]]:
    """Return ``(metadata, created, modified, key)`` from a whole header.

    Parameters
    ----------
    raw : bytes
        The bytes from the start of the object to the end of the header.

    Returns
    -------
    tuple
        The metadata, the two times and the key recorded (``None`` unless
        the object name is a hash).
    """
    document = decode_metadata(raw[PREFIX_SIZE:].decode("utf-8"))
    return document["metadata"], document.get("created"), document.get("modified"), document.get("key")


#: The longest object name, in bytes (AWS and SeaweedFS: 1024).
NAME_BYTES = 1024

#: Starts the name of a key too long for an object name: a SHA-256 follows.
HASHED = "%="


def hashed_name(key: str) -> str:
    """Return the object name (relative to the store's area) used for a key
    whose escaped form does not fit in :data:`NAME_BYTES`."""
    return HASHED + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
