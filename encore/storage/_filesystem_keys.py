"""The file names of :mod:`encore.storage.filesystem_store` keys.

A key is stored under a relative path derived from it by :func:`encode_key`
and read back from that path by :func:`decode_key`; the module docstring of
:mod:`encore.storage.filesystem_store` describes the encoding.  This module
also holds the suffixes and prefixes of the files a store writes, and the
probe telling whether a file system ignores case.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from typing import Iterable, List

__all__ = ["encode_key", "decode_key"]

logger = logging.getLogger("encore.storage.filesystem_store")

DATA_SUFFIX = ".data"
METADATA_SUFFIX = ".metadata"
LOCK_SUFFIX = ".lock"
TEMP_PREFIX = ".~"
TEMP_SUFFIX = ".tmp"
BACKUP_SUFFIX = ".bak"

KEY_SUFFIX = ".key"

#: The longest directory or file name (before suffixes) the key encoding
#: produces; keys needing longer names are hashed.
MAX_PART_LENGTH = 200
#: The longest relative path (before suffixes) the key encoding produces;
#: keys needing longer paths are hashed.
MAX_STEM_LENGTH = 1024
#: The top-level directory of hashed keys (a key's own top-level directory
#: of that name has its first character escaped).
LONG_KEY_DIRECTORY = "%%long"

#: Whether names follow Windows' rules (more characters cannot be in them).
WINDOWS_NAMES = os.name == "nt"

# What cannot be in a file name: NUL and the slash everywhere (a slash that
# is not a directory separator is escaped), the characters and control
# codes Windows refuses there, and lone surrogates (not UTF-8).  A "%" is
# escaped only where it would read as an escape: before two upper-case hex
# digits.  Everything else -- non-ASCII letters included -- stays as it is,
# which is how Encore 0.8 named its files.
_WINDOWS_UNSAFE = '\x01-\x1f<>:"\\\\|?*'
_UNSAFE_CLASS = "\x00/\ud800-\udfff" + (_WINDOWS_UNSAFE if WINDOWS_NAMES else "")
_UNSAFE = re.compile("[{}]|%(?=[0-9A-F]{{2}})".format(_UNSAFE_CLASS))
_UNSAFE_FOLDED = re.compile("[{}A-Z]|%(?=[0-9A-F]{{2}})".format(_UNSAFE_CLASS))
_ESCAPE = re.compile("(?:%[0-9A-F]{2})+")
#: The printable ASCII characters never escaped (besides letters on a file
#: system that ignores case).
_SAFE_CHARACTERS = "".join(
    chr(code) for code in range(0x20, 0x7F)
    if not _UNSAFE_FOLDED.match(chr(code)) or chr(code).isupper())
# A slash is a directory separator only between two non-slash characters.
_SEPARATOR = re.compile(r"(?<=[^/])/(?=[^/])")
_RESERVED_DIRECTORY_SUFFIXES = (DATA_SUFFIX, METADATA_SUFFIX, LOCK_SUFFIX)
_LOG_PREFIX = "__log__.txt"


def _escape(text: str) -> str:
    return "".join("%{:02X}".format(byte) for byte in text.encode("utf-8", "surrogatepass"))


def _keeps_case(character: str) -> bool:
    """Whether a character is the same in every case (safe where case folds)."""
    return character.lower() == character and character.upper().lower() == character


def _escape_unsafe(text: str, fold_case: bool) -> str:
    pattern = _UNSAFE_FOLDED if fold_case else _UNSAFE
    if pattern.search(text) is not None:
        text = pattern.sub(lambda match: _escape(match.group()), text)
    if fold_case and not text.isascii():
        # Non-ASCII letters with case are escaped too, so that keys
        # differing only in their case keep distinct names.
        text = "".join(
            character if character.isascii() or _keeps_case(character) else _escape(character)
            for character in text)
    return text


def _safe_directory_name(name: str, top_level: bool, magic_fname: str) -> str:
    """Escape a directory name that would be special or collide with files."""
    if name == "." or name == "..":
        return name.replace(".", "%2E")
    lowered = name.lower()
    if lowered.endswith(_RESERVED_DIRECTORY_SUFFIXES):
        dot = name.rfind(".")
        return name[:dot] + "%2E" + name[dot + 1:]
    if top_level and (lowered == magic_fname.lower() or lowered.startswith(_LOG_PREFIX)
                      or lowered == LONG_KEY_DIRECTORY):
        return _escape(name[0]) + name[1:]
    return name


def _hashed_parts(key: str) -> List[str]:
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return [LONG_KEY_DIRECTORY, digest[:2], digest]


def encode_key(key: str, fold_case: bool = False, magic_fname: str = ".FSStore") -> List[str]:
    """Return the relative path parts naming a key (without the suffix).

    Parameters
    ----------
    key : str
        Any key.
    fold_case : bool, optional
        Whether upper-case letters must be escaped (for file systems that
        ignore case).
    magic_fname : str, optional
        The store's magic file name, which no top-level directory may take.

    Returns
    -------
    list of str
        Directory names followed by the file name stem; append ``.data``
        or ``.metadata`` to the last one.  Keys whose encoding would have
        a name longer than :data:`MAX_PART_LENGTH` or be longer than
        :data:`MAX_STEM_LENGTH` in all are named by their SHA-256 digest,
        ``%%long/<2 hex digits>/<64 hex digits>``, and the key itself is
        kept next to the data in a ``.key`` file.
    """
    segments = _SEPARATOR.split(key)
    parts: List[str] = []
    last = len(segments) - 1
    total = 0
    for index, segment in enumerate(segments):
        part = _escape_unsafe(segment, fold_case)
        if index != last:
            part = _safe_directory_name(part, not parts, magic_fname)
        elif not parts and part.lower() == LONG_KEY_DIRECTORY:
            part = "%25" + part[1:]  # the top-level name of hashed keys
        size = len(part) if part.isascii() else len(part.encode("utf-8"))
        total += size + 1
        if size > MAX_PART_LENGTH or total > MAX_STEM_LENGTH:
            return _hashed_parts(key)
        parts.append(part)
    return parts


def decode_key(parts: Iterable[str]) -> str:
    """Return the key named by relative path parts (inverse of :func:`encode_key`
    for keys that are not hashed).

    Parameters
    ----------
    parts : iterable of str
        Directory names and the file name stem.

    Returns
    -------
    str
        The key.  The result is meaningful only if re-encoding it gives
        ``parts`` back; stores check that.

    Raises
    ------
    ValueError
        If the escapes do not form valid UTF-8.
    """
    text = "/".join(parts)
    if "%" not in text:
        return text
    return _ESCAPE.sub(_unescape, text)


def _unescape(match: "re.Match[str]") -> str:
    return bytes.fromhex(match.group().replace("%", "")).decode("utf-8", "surrogatepass")


def _folds_case(root: str, magic_fname: str) -> bool:
    """Tell whether the file system holding ``root`` ignores case in names."""
    swapped = magic_fname.swapcase()
    if swapped != magic_fname:
        try:
            return os.path.samefile(os.path.join(root, magic_fname), os.path.join(root, swapped))
        except OSError:
            return False
    try:
        fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX + "case", suffix=TEMP_SUFFIX, dir=root)
    except OSError:
        logger.warning("Cannot probe whether %s ignores case; assuming it does not", root)
        return False
    os.close(fd)
    try:
        head, tail = os.path.split(probe)
        return os.path.exists(os.path.join(head, tail.upper()))
    finally:
        os.unlink(probe)
