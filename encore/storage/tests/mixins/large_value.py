"""Large values streamed with bounded memory: :class:`StoreLargeValueTestMixin`."""
from __future__ import annotations

import contextlib
import os
import shutil
import tracemalloc


from ._support import (
    create_file_like_data,
    _file_digest,
    pattern_digest,
    PatternFile,
    _StoreTestHelpers,
    _stream_digest,
    temp_dir,
)


class StoreLargeValueTestMixin(_StoreTestHelpers):
    """Tests that large values stream through the store.

    Fixture contract: ``setUp`` sets ``self.store`` to an empty connected
    writable store.

    A value of :attr:`large_value_size` bytes is written with ``set``,
    ``set_data`` and ``from_file`` and read back with ``get_data``,
    ``get_data_range`` and ``to_file``; the content is checked by hashing.
    When :attr:`streaming` is true the peak of Python memory allocations
    during each operation (measured with :mod:`tracemalloc`) must stay below
    :attr:`streaming_peak_limit`; a store whose medium is memory sets it to
    ``False`` (and usually a smaller size).

    Attributes
    ----------
    large_value_size : int
        The size of the values (64 MiB).
    streaming : bool
        Whether to check the memory peak (True).
    streaming_peak_limit : int
        The allowed peak of allocations (8 MiB).
    large_buffer_size : int
        The ``buffer_size`` passed to the writes and reads (1 MiB).
    """

    large_value_size = 64 << 20
    streaming = True
    streaming_peak_limit = 8 << 20
    large_buffer_size = 1 << 20

    @contextlib.contextmanager
    def _bounded_memory(self, operation: str, key: str = "large"):
        if not self.streaming:
            yield
            return
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            baseline = tracemalloc.get_traced_memory()[0]
            yield
            peak = tracemalloc.get_traced_memory()[1] - baseline
        finally:
            if started:
                tracemalloc.stop()
        self.assertLess(peak, self.streaming_peak_limit, self._about(
            key, "{} of {} bytes should allocate less than {} bytes at its peak (streaming)".format(
                operation, self.large_value_size, self.streaming_peak_limit), actual=peak))

    def _check_large(self, key: str) -> None:
        size = self.large_value_size
        with self._bounded_memory("get_data", key):
            digest, length = _stream_digest(self.store.get_data(key), self.large_buffer_size)
        self._expect(
            (digest, length),
            (pattern_digest(size), size),
            key, "(digest, length) of _stream_digest(get_data(key), self.large_buffer_size)")
        self._expect(self.store.get(key).size, size, key, "get(key).size")

    def test_large_set(self):
        """set and get_data stream a large value."""
        size = self.large_value_size
        with self._bounded_memory("set"):
            self.store.set("large", (PatternFile(size), {"size": size}), buffer_size=self.large_buffer_size)
        self._check_large("large")
        self._expect(self.store.get_metadata("large"), {"size": size}, 'large', "get_metadata('large')")

    def test_large_set_data(self):
        """set_data over an existing key streams a large value."""
        self.store.set("large", (create_file_like_data(b"small"), {"kept": True}))
        with self._bounded_memory("set_data"):
            self.store.set_data("large", PatternFile(self.large_value_size),
                                buffer_size=self.large_buffer_size)
        self._check_large("large")
        self._expect(self.store.get_metadata("large"), {"kept": True}, 'large', "get_metadata('large')")

    def test_large_file_round_trip(self):
        """from_file and to_file stream a large value."""
        size = self.large_value_size
        with temp_dir() as directory:
            source = os.path.join(directory, "source.dat")
            with open(source, "wb") as stream:
                shutil.copyfileobj(PatternFile(size), stream, 1 << 20)
            with self._bounded_memory("from_file"):
                self.store.from_file("large", source, buffer_size=self.large_buffer_size)
            os.remove(source)
            target = os.path.join(directory, "target.dat")
            with self._bounded_memory("to_file"):
                self.store.to_file("large", target, buffer_size=self.large_buffer_size)
            self._expect(_file_digest(target), (pattern_digest(size), size), "large",
                         "(SHA-1, size) of the file written by to_file")

    def test_large_range(self):
        """get_data_range reads the middle and the tail of a large value."""
        size = self.large_value_size
        self.store.set("large", (PatternFile(size), {}), buffer_size=self.large_buffer_size)
        reference = PatternFile(size)
        for start, end in ((size - 1000, size), (size // 2, size // 2 + 12345), (size - 10, None)):
            with self.subTest(start=start, end=end):
                with self._bounded_memory("get_data_range"):
                    stream = self.store.get_data_range("large", start, end)
                    data = self._read(stream)
                self._expect(data, reference.expected(start, end), "large",
                             "get_data_range({}, {})".format(start, end))

    def test_large_copy(self):
        """A large value copies to another key through get and set."""
        size = self.large_value_size
        self.store.set("large", (PatternFile(size), {"n": 1}), buffer_size=self.large_buffer_size)
        with self._bounded_memory("copy of large to", "large_copy"):
            self.store.set("large_copy", self.store.get("large"), buffer_size=self.large_buffer_size)
        self._check_large("large_copy")
        self._expect(
            self.store.get_metadata("large_copy"),
            {"n": 1},
            'large_copy', "get_metadata('large_copy')")
