"""Publish a store as files that any static web server can serve to
:class:`~encore.storage.static_url_store.StaticURLStore`.

:func:`publish` (and ``encore publish DIRECTORY [GLOB]``) writes::

    DIRECTORY/
        index.json      {"key": {...metadata...}, ...}
        data/
            key         the data of each key ("a/b" is data/a/b)

so that ``python -m http.server -d DIRECTORY`` (or nginx, Apache, S3 static
hosting, a ``file:`` URL...) serves it, and
``StaticURLStore('http://host:port/', 'data/', 'index.json')`` reads it.

The index is UTF-8 JSON with sorted names, metadata values beyond JSON
(``datetime``, ``date``, ``time``, ``Decimal``, ``bytes``, ``set``,
``frozenset``, ``UUID``) in the tagged form of
:mod:`encore.storage._metadata_codec` (``{"$encore:date": "2024-05-01"}``),
which :class:`~encore.storage.static_url_store.StaticURLStore` turns back
into the values; plain metadata gives plain JSON.

Re-publishing into the same directory is safe for readers that poll it:

* every file is written under a temporary name in its final directory and
  renamed over the old one, so a reader never sees a half-written file --
  least of all a half-written index;
* the data files are written first and the index last, so the new index
  never names data that is not there yet; data of keys the new index no
  longer lists is removed only after the index is replaced.

Between the renaming of a changed key's data and that of the index, a
reader may see the new data with the old metadata; the index itself always
changes in one step.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable, Dict, List, Optional, Union

from ._atomic_file import replacing
from ._metadata_codec import decode_metadata, to_json
from .utils import DEFAULT_BUFFER_SIZE

logger = logging.getLogger(__name__)

__all__ = ["publish"]


def _check_key(key: str) -> List[str]:
    if not isinstance(key, str) or not key:
        raise ValueError("cannot publish the key {!r}: keys must be non-empty strings".format(key))
    segments = key.split("/")
    for segment in segments:
        if segment in ("", ".", "..") or "\0" in segment or (os.sep != "/" and os.sep in segment):
            raise ValueError("cannot publish the key {!r} as a file: its path segments must be "
                             "non-empty, not '.' or '..', without NUL".format(key))
    return segments


def _atomic_write(path: str, write: Callable[[Any], None]) -> None:
    """Write a file readable by a web server, replacing ``path`` when complete."""
    with replacing(path, mode=0o644) as stream:
        write(stream)


def _copy(source: Any, buffer_size: int) -> Callable[[Any], None]:
    def write(stream: Any) -> None:
        try:
            while True:
                chunk = source.read(buffer_size)
                if not chunk:
                    break
                stream.write(chunk)
        finally:
            source.close()
    return write


def _write_index(path: str, document: bytes) -> None:
    _atomic_write(path, lambda stream: stream.write(document))


def publish(store: Any, directory: Union[str, "os.PathLike[str]"], pattern: Optional[str] = None,
            data_path: str = "data/", index_name: str = "index.json",
            buffer_size: int = DEFAULT_BUFFER_SIZE) -> int:
    """Write (or update) a static copy of a store's keys in a directory.

    Parameters
    ----------
    store : AbstractReadOnlyStore
        The store to publish, connected.
    directory : str or os.PathLike
        Where the files go; created if missing.
    pattern : str, optional
        Publish only the keys matching this glob pattern (as
        ``store.glob``); default every key.
    data_path : str, optional
        The directory of the data files, relative to ``directory`` (default
        ``'data/'``; the ``data_path`` of the static store).
    index_name : str, optional
        The name of the index (default ``'index.json'``; the
        ``query_path`` of the static store).
    buffer_size : int, optional
        The size of the chunks copied.

    Returns
    -------
    int
        The number of keys published.

    Raises
    ------
    ValueError
        Before anything is written: if a key cannot be a file path (empty
        segments, ``.``, ``..``), if one key is a directory of another
        (``a`` and ``a/b``), or if ``data_path``/``index_name`` would leave
        ``directory``.
    TypeError
        Before anything is written, if some metadata cannot be encoded as
        JSON.

    Notes
    -----
    See the module documentation for what readers see during an update.
    """
    if not isinstance(data_path, str) or not data_path.endswith("/") or data_path.startswith("/") \
            or ".." in data_path.split("/"):
        raise ValueError("data_path must be a relative directory ending with '/', such as 'data/'")
    if not isinstance(index_name, str) or not index_name or "/" in index_name or index_name in (".", ".."):
        raise ValueError("index_name must be a plain file name, such as 'index.json'")
    root = os.path.abspath(os.fspath(directory))
    data_root = os.path.join(root, *data_path.rstrip("/").split("/"))
    keys = sorted(store.query_keys() if pattern is None else store.glob(pattern))
    paths: Dict[str, List[str]] = {}
    for key in keys:
        paths[key] = _check_key(key)
    prefixes = {"/".join(segments[:n]) for segments in paths.values() for n in range(1, len(segments))}
    clashes = sorted(key for key in keys if key in prefixes)
    if clashes:
        raise ValueError("cannot publish both {!r} and keys below it as files".format(clashes[0]))
    index = {key: store.get_metadata(key) for key in keys}
    try:
        # The tagged form of the metadata codec (plain JSON for plain
        # values), sorted so that an unchanged store gives the same bytes.
        document = json.dumps(to_json(index), sort_keys=True, ensure_ascii=False,
                              allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise TypeError("the metadata cannot be published as JSON: {}".format(error)) from None

    index_path = os.path.join(root, index_name)
    previous: Dict[str, Any] = {}
    if os.path.exists(index_path):
        try:
            with open(index_path, "rb") as stream:
                loaded = decode_metadata(stream.read().decode("utf-8"))
            if isinstance(loaded, dict):
                previous = loaded
        except (OSError, ValueError):
            logger.warning("Ignoring the unreadable old index %s", index_path)

    os.makedirs(data_root, exist_ok=True)
    for key in keys:
        target = os.path.join(data_root, *paths[key])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(target):
            raise ValueError("cannot publish {!r}: a directory is in the way at {}".format(key, target))
        _atomic_write(target, _copy(store.get_data(key), buffer_size))
    _write_index(index_path, document)
    logger.info("Published %d keys to %s", len(keys), root)

    for key in previous:
        if key in index or not isinstance(key, str):
            continue
        try:
            segments = _check_key(key)
        except ValueError:
            continue
        stale = os.path.join(data_root, *segments)
        try:
            os.unlink(stale)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            continue
        parent = os.path.dirname(stale)
        while parent != data_root and parent.startswith(data_root):
            try:
                os.rmdir(parent)  # only empty directories
            except OSError:
                break
            parent = os.path.dirname(parent)
    return len(keys)
