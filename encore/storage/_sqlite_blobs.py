"""Streaming of data into and out of :mod:`encore.storage.sqlite_store`.

Values larger than ``INLINE_LIMIT`` are written and read with SQLite's
incremental blob I/O.  This module holds the stream over a blob that reads
return, the preparation of incoming data (small data read whole, large data
of unknown size spooled to learn its size) and the copying of prepared data
into a zero-filled blob.
"""
from __future__ import annotations

import io
import sqlite3
import tempfile
from typing import Any, Optional

from .abstract_store import StoreError
from .utils import DEFAULT_BUFFER_SIZE, _chunk_bytes, _read_chunks, remaining_size as _remaining_size, slice_offsets

#: Values up to this size are written and read in one SQL statement; larger
#: ones go through incremental blob I/O.
INLINE_LIMIT = 1 << 20


class _BlobStream(io.RawIOBase):
    """A read-only, seekable stream over part of an SQLite blob.

    It owns the blob handle and, for pooled connections, the connection,
    which it gives back when closed.
    """

    def __init__(self, blob: Any, start: int, end: int, lock: Any = None,
                 release: Any = None) -> None:
        super().__init__()
        self._blob = blob
        self._start = start
        self._length = max(0, end - start)
        self._position = 0
        self._lock = lock
        self._release = release

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self.closed:
            raise ValueError("seek on a closed stream")
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._length + offset
        else:
            raise ValueError("invalid whence ({})".format(whence))
        if position < 0:
            raise ValueError("negative seek position {}".format(position))
        self._position = position
        return position

    def _read_at(self, size: int) -> bytes:
        blob = self._blob
        offset = self._start + self._position
        try:
            if self._lock is None:
                blob.seek(offset)
                data = blob.read(size)
            else:
                with self._lock:
                    blob.seek(offset)
                    data = blob.read(size)
        except sqlite3.Error as error:
            raise StoreError(
                "the value could not be read: it was changed or deleted while it was "
                "read, or the store was disconnected ({})".format(error)
            ) from None
        self._position += len(data)
        return data

    def read(self, size: Optional[int] = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed stream")
        remaining = self._length - self._position
        if size is None or size < 0 or size > remaining:
            size = remaining
        if size <= 0:
            return b""
        return self._read_at(size)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            blob, self._blob = self._blob, None
            release, self._release = self._release, None
            try:
                if blob is not None:
                    try:
                        blob.close()
                    except sqlite3.Error:
                        pass
                if release is not None:
                    release()
            finally:
                super().close()


def _blob_reader(blob: Any, start: int, end: int, lock: Any = None, release: Any = None) -> io.BufferedReader:
    """A buffered stream over ``blob[start:end]`` (efficient small reads and lines)."""
    return io.BufferedReader(_BlobStream(blob, start, end, lock, release), 1 << 16)


def _bytes_range(data: Any, start: Optional[int], end: Optional[int]) -> io.BytesIO:
    data = _blob_bytes(data)
    first, last = slice_offsets(start, end, len(data))
    return io.BytesIO(data[first:last])


def _blob_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)



class _Payload(object):
    """Data ready to be written: inline bytes, or a stream of known size."""

    __slots__ = ("inline", "size", "stream", "owned", "verify")

    def __init__(self, inline: Optional[bytes] = None, size: int = 0, stream: Any = None,
                 owned: bool = False, verify: bool = False) -> None:
        self.inline = inline
        self.size = len(inline) if inline is not None else size
        self.stream = stream
        self.owned = owned
        self.verify = verify

    def close(self) -> None:
        if self.owned and self.stream is not None:
            self.stream.close()
        self.stream = None


def _small_bytes(stream: io.BytesIO) -> Optional[bytes]:
    """The rest of a BytesIO if it is small enough to write inline, else None."""
    with stream.getbuffer() as view:
        size = len(view)
    if size - stream.tell() > INLINE_LIMIT:
        return None
    return stream.read()


def _prepare_payload(stream: Any, size: Optional[int], buffer_size: int, progress: Any,
                     force_spool: bool, blob_io: bool) -> _Payload:
    """Read small data, or learn the size of large data, before writing.

    Parameters
    ----------
    stream : file-like
        The incoming data.
    size : int or None
        Its size if known.
    buffer_size : int
        The size of the reads.
    progress : StoreProgressManager or None
        Told of the bytes read while the data is read or spooled.
    force_spool : bool
        Whether to read or spool the data even if its size is known.
    blob_io : bool
        Whether incremental blob I/O is available; without it all data is
        read into memory.
    """
    if buffer_size is None or buffer_size <= 0:
        buffer_size = DEFAULT_BUFFER_SIZE
    if not force_spool:
        if progress is None and type(stream) is io.BytesIO:
            data = _small_bytes(stream)
            if data is not None:
                return _Payload(inline=data)
        if size is None:
            size = _remaining_size(stream)
        if blob_io and size is not None and size > INLINE_LIMIT:
            return _Payload(size=size, stream=stream, verify=True)
    limit = INLINE_LIMIT if blob_io else None
    chunks = _read_chunks(stream, buffer_size)
    parts = []
    total = 0
    for chunk in chunks:
        parts.append(chunk)
        total += len(chunk)
        if progress is not None:
            progress.step(step=total)
        if limit is not None and total > limit:
            break
    if limit is None or total <= limit:
        return _Payload(inline=parts[0] if len(parts) == 1 else b"".join(parts))
    # Too large to hold and of unknown size: spool it to learn the size.
    spool = tempfile.TemporaryFile(prefix="encore-sqlite-")
    try:
        for part in parts:
            spool.write(part)
        del parts
        for chunk in chunks:  # where the first loop stopped
            spool.write(chunk)
            total += len(chunk)
            if progress is not None:
                progress.step(step=total)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return _Payload(size=total, stream=spool, owned=True)


def _fill_blob(connection: sqlite3.Connection, table: str, rowid: int, key: str,
               payload: _Payload, buffer_size: int, progress: Any) -> None:
    """Copy a payload into the zero-filled blob of row ``rowid`` (the key ``key``)."""
    if buffer_size is None or buffer_size <= 0:
        buffer_size = DEFAULT_BUFFER_SIZE
    size = payload.size
    read = payload.stream.read
    total = 0
    with connection.blobopen(table, "data", rowid) as blob:
        while total < size:
            chunk = read(min(buffer_size, size - total))
            if type(chunk) is not bytes:
                chunk = _chunk_bytes(chunk)
            if not chunk:
                raise StoreError(
                    "the data for {!r} ended after {} bytes, but its size was given "
                    "as {}".format(key, total, size))
            if len(chunk) > size - total:
                raise StoreError("the data stream for {!r} returned more bytes than "
                                 "asked for".format(key))
            blob.write(chunk)
            total += len(chunk)
            if progress is not None:
                progress.step(step=total)
    if payload.verify:
        extra = read(1)
        if extra:
            raise StoreError(
                "the data for {!r} is longer than its given size of {} bytes".format(
                    key, size))


def _spool_blob(connection: sqlite3.Connection, table: str, rowid: int) -> Any:
    """A temporary file holding a copy of the data of row ``rowid``, at its start."""
    spool = tempfile.TemporaryFile(prefix="encore-sqlite-")
    try:
        with connection.blobopen(table, "data", rowid, readonly=True) as blob:
            while True:
                chunk = blob.read(DEFAULT_BUFFER_SIZE)
                if not chunk:
                    break
                spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool
