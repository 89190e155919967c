"""Helpers shared by the conformance mixins: fixtures, data streams, event recording."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import math
import shutil
import tempfile
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

from encore.storage.events import (
    StoreEvent,
    StoreModificationEvent,
)

#: The size of the "large" values of the read and write mixins (about 50 MB).
LARGE_SIZE = 50_000_000

#: The default repeating pattern of :class:`PatternFile`: 251 bytes (a prime
#: length, so chunks moved, lost or repeated at power-of-two offsets change
#: the content) covering every byte value but 5.
DEFAULT_PATTERN = bytes(range(251))


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def create_file_like_data(data_bytes: bytes) -> io.BytesIO:
    """Wrap bytes in a readable file-like object.

    Parameters
    ----------
    data_bytes : bytes
        The content of the stream (Encore 0.8's parameter name).

    Returns
    -------
    io.BytesIO
        A stream positioned at its start.
    """
    return io.BytesIO(data_bytes)


@contextlib.contextmanager
def temp_dir() -> Iterator[str]:
    """Create a temporary directory for the duration of a ``with`` block.

    Yields
    ------
    str
        The path of a new, empty directory; it and everything in it is removed
        when the block ends.
    """
    path = tempfile.mkdtemp(prefix="encore_test_")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class PatternFile(io.RawIOBase):
    """A read-only stream of a repeating pattern, generated lazily.

    The bytes are produced on each ``read``, so a stream of hundreds of
    megabytes costs no memory beyond the chunks being read.  The content is
    ``(pattern * n)[:size]``.

    Parameters
    ----------
    size : int
        The number of bytes the stream yields.
    pattern : bytes, optional
        The repeated pattern (non-empty); defaults to :data:`DEFAULT_PATTERN`.
    """

    _BLOCK = 1 << 20

    def __init__(self, size: int, pattern: bytes = DEFAULT_PATTERN) -> None:
        super().__init__()
        if not pattern:
            raise ValueError("the pattern must not be empty")
        self.size = size
        self._pattern = pattern
        self._position = 0
        repeats = self._BLOCK // len(pattern) + 2
        self._block = pattern * repeats

    def readable(self) -> bool:
        """Return True: the stream can be read.

        Returns
        -------
        bool
            Always ``True``.
        """
        return True

    def tell(self) -> int:
        """Return the number of bytes read so far.

        Returns
        -------
        int
            The current position.
        """
        return self._position

    def read(self, size: Optional[int] = -1) -> bytes:
        """Read up to ``size`` bytes (everything left when negative or None).

        Parameters
        ----------
        size : int, optional
            The maximum number of bytes to return.

        Returns
        -------
        bytes
            The next bytes of the pattern; empty at the end of the stream.
        """
        if self.closed:
            raise ValueError("I/O operation on closed file")
        remaining = self.size - self._position
        if size is None or size < 0 or size > remaining:
            size = remaining
        if size <= 0:
            return b""
        offset = self._position % len(self._pattern)
        if offset + size <= len(self._block):
            chunk = self._block[offset:offset + size]
        else:
            repeats = (offset + size) // len(self._pattern) + 1
            chunk = (self._pattern * repeats)[offset:offset + size]
        self._position += size
        return chunk

    def readall(self) -> bytes:
        """Read everything left.

        Returns
        -------
        bytes
            The rest of the stream.
        """
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        """Read into a writable buffer.

        Parameters
        ----------
        buffer : writable bytes-like object
            Receives the bytes.

        Returns
        -------
        int
            The number of bytes written into ``buffer``.
        """
        view = memoryview(buffer).cast("B")
        chunk = self.read(len(view))
        view[:len(chunk)] = chunk
        return len(chunk)

    def expected(self, start: int = 0, end: Optional[int] = None) -> bytes:
        """Return a slice of the full content without consuming the stream.

        Parameters
        ----------
        start, end : int, optional
            Slice bounds (end exclusive) within ``[0, size]``.

        Returns
        -------
        bytes
            ``content[start:end]``.
        """
        end = self.size if end is None else min(end, self.size)
        start = max(0, start)
        if end <= start:
            return b""
        offset = start % len(self._pattern)
        repeats = (offset + end - start) // len(self._pattern) + 1
        return (self._pattern * repeats)[offset:offset + end - start]


@functools.lru_cache(maxsize=16)
def pattern_digest(size: int, pattern: bytes = DEFAULT_PATTERN) -> str:
    """Return the SHA-1 hex digest of the content of ``PatternFile(size, pattern)``.

    Parameters
    ----------
    size : int
        The length of the content.
    pattern : bytes, optional
        The repeated pattern.

    Returns
    -------
    str
        The hex digest (cached).
    """
    return _stream_digest(PatternFile(size, pattern))[0]


def _stream_digest(stream: Any, buffer_size: int = 1 << 20) -> Tuple[str, int]:
    """Hash a stream chunk by chunk, close it, return ``(hexdigest, length)``."""
    digest = hashlib.sha1()
    length = 0
    try:
        while True:
            chunk = stream.read(buffer_size)
            if not chunk:
                break
            digest.update(chunk)
            length += len(chunk)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return digest.hexdigest(), length


def _file_digest(path: str) -> Tuple[str, int]:
    with open(path, "rb") as stream:
        return _stream_digest(stream)


def read_fixture() -> List[Tuple[str, bytes, dict]]:
    """Return the content :class:`StoreReadTestMixin` expects in the store.

    Returns
    -------
    list of (str, bytes, dict)
        ``(key, data, metadata)`` triples; fresh objects on every call.
    """
    items = [
        (
            "test1",
            b"test2\n",
            {
                "a_str": "test3",
                "an_int": 1,
                "a_float": 2.0,
                "a_bool": True,
                "a_list": ["one", "two", "three"],
                "a_dict": {"one": 1, "two": 2, "three": 3},
            },
        )
    ]
    for i in range(10):
        metadata: Dict[str, Any] = {"query_test1": "value", "query_test2": i}
        if i % 2 == 0:
            metadata["optional"] = True
        items.append(("key%d" % i, ("value%d" % i).encode("ascii"), metadata))
    return items


def write_fixture() -> List[Tuple[str, bytes, dict]]:
    """Return the content :class:`StoreWriteTestMixin` expects in the store.

    Returns
    -------
    list of (str, bytes, dict)
        ``(key, data, metadata)`` triples; fresh objects on every call.
    """
    items = read_fixture()[:1]
    for i in range(10):
        items.append(
            (
                "existing_key%d" % i,
                ("existing_value%d" % i).encode("ascii"),
                {"meta": True, "meta1": -i},
            )
        )
    return items


def populate(store: Any, items: List[Tuple[str, bytes, dict]]) -> None:
    """Write ``(key, data, metadata)`` triples into a writable store.

    A convenience for the ``setUp`` of test classes whose store can be filled
    through the API, for example ``populate(self.store, read_fixture())``.

    Parameters
    ----------
    store : AbstractStore
        A connected writable store.
    items : list of (str, bytes, dict)
        What to write.
    """
    for key, data, metadata in items:
        store.set(key, (io.BytesIO(data), metadata))


class EventRecorder(object):
    """A listener that records the events a store emits.

    Use it as a context manager: it connects itself to ``event_class`` on
    entry and disconnects on exit.  Only events whose ``source`` is the store
    are kept.

    Parameters
    ----------
    event_manager : BaseEventManager
        The manager the store emits to.
    store : object
        The store whose events are kept.
    event_class : type, optional
        The class listened to; :class:`~encore.storage.events.StoreEvent` by
        default.

    Attributes
    ----------
    events : list
        The events received, in order.
    """

    def __init__(self, event_manager: Any, store: Any, event_class: type = StoreEvent) -> None:
        self.event_manager = event_manager
        self.store = store
        self.event_class = event_class
        self.events: List[Any] = []
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        if getattr(event, "source", None) is self.store:
            with self._lock:
                self.events.append(event)

    def __enter__(self) -> "EventRecorder":
        self.event_manager.connect(self.event_class, self)
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.event_manager.disconnect(self.event_class, self)

    def of_type(self, event_class: type) -> List[Any]:
        """Return the recorded events that are instances of a class.

        Parameters
        ----------
        event_class : type
            The class to select.

        Returns
        -------
        list
            The matching events, in order.
        """
        with self._lock:
            return [event for event in self.events if isinstance(event, event_class)]

    def modifications(self) -> List[Any]:
        """Return the recorded modification events.

        Returns
        -------
        list of StoreModificationEvent
            In order.
        """
        return self.of_type(StoreModificationEvent)


class _Boom(Exception):
    """The exception the tests raise on purpose inside transactions."""


class _FailingFile(object):
    """A stream that yields some bytes, then raises OSError."""

    def __init__(self, data: bytes, fail_after: int) -> None:
        self._data = io.BytesIO(data)
        self._remaining = fail_after
        self.closed = False

    def read(self, size: int = -1) -> bytes:
        if self._remaining <= 0:
            raise OSError("simulated read failure")
        if size is None or size < 0 or size > self._remaining:
            size = self._remaining
        chunk = self._data.read(size)
        self._remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        self.closed = True


def _short_repr(value: Any, limit: int = 300) -> str:
    """``repr`` of a value, cut in the middle when long (a large value's
    bytes must not flood a failure message)."""
    text = repr(value)
    if len(text) > limit:
        half = limit // 2
        text = "{} ...[{} characters]... {}".format(text[:half], len(text) - 2 * half, text[-half:])
    return text


class _Text(str):
    """A subject of :class:`_About` shown as it is (not as a key's repr)."""


def _query_text(method: str = "query", **criteria: Any) -> _Text:
    """The subject of a check of a query or a glob: ``query(a=1, b='x')``.

    Parameters
    ----------
    method : str
        The method called.
    **criteria
        Its arguments.

    Returns
    -------
    _Text
        A subject for :meth:`_StoreTestHelpers._expect` and
        :meth:`_StoreTestHelpers._about`.
    """
    return _Text("{}({})".format(method, ", ".join(
        "{}={!r}".format(name, value) for name, value in sorted(criteria.items()))))


def _listing_difference(expected: Any, actual: Any) -> str:
    """For two collections of keys (lists, tuples or sets of str): which
    expected ones are missing and which found ones were not expected."""
    kinds = (list, tuple, set, frozenset)
    if not (isinstance(expected, kinds) and isinstance(actual, kinds)):
        return ""
    if not all(isinstance(item, str) for item in list(expected) + list(actual)):
        return ""
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    if not missing and not unexpected:
        return ""
    return "; missing {}; not expected {}".format(_short_repr(missing), _short_repr(unexpected))


class _About(object):
    """The explanation added to a failing assertion of a mixin: which key (or
    keys, or query) was concerned, what was checked and, for a comparison,
    the value expected and the value found.

    It is formatted only when the assertion fails (``str``), so checks of
    large values cost nothing when they pass.

    Parameters
    ----------
    key : object
        The key concerned (shown with ``repr``), a list, tuple or set of
        keys, or a :class:`_Text` shown as it is (see :func:`_query_text`).
    what : str
        What was checked, e.g. ``"get_metadata('k')"``.
    expected, actual : object, optional
        The values compared, when the assertion compares two values.
    """

    _NOTHING: Any = object()

    def __init__(self, key: Any, what: str, expected: Any = _NOTHING, actual: Any = _NOTHING) -> None:
        self.key = key
        self.what = what
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:
        key = self.key
        if isinstance(key, _Text):
            subject = str(key)
        elif isinstance(key, (set, frozenset)):
            subject = "keys {}".format(_short_repr(sorted(key, key=repr)))
        elif isinstance(key, (list, tuple)):
            subject = "keys {}".format(_short_repr(list(key)))
        else:
            subject = "key {}".format(_short_repr(key))
        text = "{}: {}".format(subject, self.what)
        if self.expected is not self._NOTHING:
            text += "; expected {}".format(_short_repr(self.expected))
        if self.actual is not self._NOTHING:
            text += "; got {}".format(_short_repr(self.actual))
            text += _listing_difference(self.expected, self.actual)
        return text

    __repr__ = __str__


class _StoreTestHelpers(object):
    """Assertions and utilities shared by the mixins.

    Every assertion of the mixins says which key it is about and what was
    expected: :meth:`_expect` compares two values, :meth:`_about` explains
    any other assertion (passed as its ``msg``).
    """

    def _about(self, key: Any, what: str, expected: Any = _About._NOTHING,
               actual: Any = _About._NOTHING) -> _About:
        """Return the explanation of an assertion about a key.

        Parameters
        ----------
        key : object
            The key (or keys, or a :func:`_query_text`) concerned.
        what : str
            What is checked, and what is expected of it.
        expected, actual : object, optional
            The values compared.

        Returns
        -------
        _About
            To pass as the ``msg`` of a ``unittest`` assertion.
        """
        return _About(key, what, expected, actual)

    def _expect(self, actual: Any, expected: Any, key: Any, what: str) -> None:
        """Assert that a value found for a key is the value expected.

        The failure message names the key, what was checked, the expected
        value and the value found (then ``unittest``'s own comparison).

        Parameters
        ----------
        actual : object
            The value the store gave.
        expected : object
            The value the contract requires.
        key : object
            The key (or keys, or a :func:`_query_text`) concerned.
        what : str
            What was checked, e.g. ``"get_metadata('k')"``.
        """
        self.assertEqual(actual, expected, _About(key, what, expected, actual))

    def _expect_content(self, actual: Dict[str, Any], expected: Dict[str, Any], what: str) -> None:
        """Assert that a ``{key: value}`` mapping (a snapshot of the store)
        is as expected, naming the keys whose values differ.

        Parameters
        ----------
        actual, expected : dict
            The content found and the content required.
        what : str
            What the content is, e.g. ``'content after the rollback'``.
        """
        missing = object()
        differing = sorted(
            key for key in set(actual) | set(expected)
            if actual.get(key, missing) != expected.get(key, missing))
        self._expect(actual, expected, differing or sorted(expected), what)

    store: Any
    #: How precisely the store records times: ``'arbitrary'`` (to the
    #: precision of :func:`time.time`) or ``'second'`` (whole seconds).
    resolution = "arbitrary"

    def _event_manager(self) -> Any:
        manager = getattr(self, "event_manager", None)
        if manager is None:
            manager = self.store.event_manager
        return manager

    def _recorder(self, event_class: type = StoreEvent) -> EventRecorder:
        return EventRecorder(self._event_manager(), self.store, event_class)

    def _read(self, stream: Any) -> bytes:
        """Read a whole stream in chunks and close it."""
        parts = []
        try:
            while True:
                chunk = stream.read(1 << 20)
                if not chunk:
                    break
                parts.append(chunk)
        finally:
            stream.close()
        return b"".join(parts)

    def _data(self, key: str) -> bytes:
        return self._read(self.store.get_data(key))

    def _snapshot(self) -> Dict[str, Tuple[bytes, dict]]:
        """The whole content of the store as ``{key: (data, metadata)}``."""
        return {
            key: (self._data(key), metadata)
            for key, metadata in list(self.store.query())
        }

    def _assert_time_between(self, value: Any, before: float, after: float,
                             key: Any = None, what: str = "time") -> None:
        about = _About(key, "{} should be a number (not bool) between {!r} and {!r}".format(
            what, before, after), actual=value)
        self.assertIsInstance(value, (int, float), about)
        self.assertNotIsInstance(value, bool, about)
        if self.resolution == "second":
            before = math.floor(before)
            after = math.ceil(after)
        self.assertLessEqual(before, value, about)
        self.assertLessEqual(value, after, about)

    def _assert_stream_is_pattern(self, stream: Any, size: int, key: Any = None,
                                  what: str = "data") -> None:
        digest, length = _stream_digest(stream)
        self._expect(length, size, key, "length of the {}".format(what))
        self._expect(digest, pattern_digest(size), key,
                     "SHA-1 of the {} (PatternFile({}))".format(what, size))


def _glob_escape(key: str) -> str:
    """Escape the fnmatch wildcards of a key so it matches only itself."""
    return "".join("[%s]" % char if char in "*?[" else char for char in key)
