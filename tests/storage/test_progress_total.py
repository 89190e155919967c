"""Copies in and out of every local store announce the size they know.

A library user calling ``from_file``, ``from_bytes``, ``to_file``, ``set``
or ``set_data`` with a file or bytes gets progress events whose ``steps`` is
the size in bytes, so a :class:`~encore.terminal.progress_display.ProgressDisplay`
draws a bar with a percentage instead of a spinner.
"""
import io
import os
import shutil
import tempfile
import unittest

from encore.events.api import EventManager
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import (
    StoreProgressEndEvent,
    StoreProgressEvent,
    StoreProgressStartEvent,
    StoreProgressStepEvent,
)
from encore.storage.filesystem_store import FileSystemStore, init_shared_store
from encore.storage.locking_filesystem_store import LockingFileSystemStore
from encore.storage.sqlite_store import SqliteStore
from encore.storage.utils import remaining_size
from encore.terminal.progress_display import ProgressDisplay

SIZE = 3 * (1 << 20) + 12345  # several buffers, not a multiple of one


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal (the display animates)."""

    def isatty(self):
        return True


class _Recorder(object):
    """Collects the store progress events of one store."""

    def __init__(self, store):
        self.store = store
        self.events = []

    def __call__(self, event):
        if event.source is self.store:
            self.events.append(event)

    def starts(self):
        return [e for e in self.events if isinstance(e, StoreProgressStartEvent)]

    def steps(self):
        return [e for e in self.events if isinstance(e, StoreProgressStepEvent)]

    def ends(self):
        return [e for e in self.events if isinstance(e, StoreProgressEndEvent)]


class _ProgressTotalCases(object):
    """The checks, run against each local store by the classes below."""

    def make_store(self, event_manager, directory):
        raise NotImplementedError

    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="encore_progress_")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.event_manager = EventManager()
        self.store = self.make_store(self.event_manager, self.directory)
        self.store.connect()
        self.addCleanup(self.store.disconnect)
        self.content = os.urandom(SIZE)
        self.path = os.path.join(self.directory, "source.bin")
        with open(self.path, "wb") as stream:
            stream.write(self.content)
        self.recorder = _Recorder(self.store)
        self.event_manager.connect(StoreProgressEvent, self.recorder)
        self.addCleanup(self.event_manager.disconnect, StoreProgressEvent, self.recorder)

    def assert_one_operation_of(self, size, key):
        starts = self.recorder.starts()
        self.assertEqual(len(starts), 1, "one progress operation for key %r" % key)
        self.assertEqual(starts[0].steps, size,
                         "key %r: start event should announce the size %d, got steps=%r"
                         % (key, size, starts[0].steps))
        self.assertEqual(starts[0].key, key)
        steps = self.recorder.steps()
        self.assertTrue(steps, "key %r: no step events" % key)
        self.assertEqual(steps[-1].step, size, "key %r: last step" % key)
        self.assertEqual(len(self.recorder.ends()), 1)

    def test_from_file_announces_file_size(self):
        self.store.from_file("big", self.path)
        self.assert_one_operation_of(SIZE, "big")
        self.assertEqual(self.store.to_bytes("big"), self.content)

    def test_from_file_of_existing_key(self):
        self.store.set_metadata("big", {"kept": True})
        self.store.from_file("big", self.path)
        self.assert_one_operation_of(SIZE, "big")
        self.assertEqual(self.store.get_metadata("big"), {"kept": True})

    def test_from_bytes_announces_length(self):
        self.store.from_bytes("big", self.content)
        self.assert_one_operation_of(SIZE, "big")
        self.assertEqual(self.store.to_bytes("big"), self.content)

    def test_set_data_of_open_file_announces_rest(self):
        with open(self.path, "rb") as stream:
            stream.seek(100)
            self.store.set_data("big", stream)
        self.assert_one_operation_of(SIZE - 100, "big")
        self.assertEqual(self.store.to_bytes("big"), self.content[100:])

    def test_set_of_tuple_with_bytesio_announces_length(self):
        self.store.set("big", (io.BytesIO(self.content), {"a": 1}))
        self.assert_one_operation_of(SIZE, "big")

    def test_to_file_announces_value_size(self):
        self.event_manager.disconnect(StoreProgressEvent, self.recorder)
        self.store.from_file("big", self.path)
        self.event_manager.connect(StoreProgressEvent, self.recorder)
        target = os.path.join(self.directory, "copy.bin")
        self.store.to_file("big", target)
        self.assert_one_operation_of(SIZE, "big")
        with open(target, "rb") as stream:
            self.assertEqual(stream.read(), self.content)

    def test_progress_display_draws_a_bar_with_percent(self):
        stream = _Terminal()
        display = ProgressDisplay(self.event_manager, stream, animate=True)
        self.store.from_file("big", self.path, buffer_size=1 << 20)
        text = stream.getvalue()
        self.assertIn("100% [", text)
        self.assertIn("3.0 MiB/3.0 MiB", text)
        self.assertIs(display.event_manager, self.event_manager)

    def test_unknown_length_stays_unknown(self):
        read_end, write_end = os.pipe()
        with open(read_end, "rb") as reader, open(write_end, "wb") as writer:
            writer.write(b"x" * 1000)
            writer.close()
            self.store.set_data("piped", reader)
        starts = self.recorder.starts()
        self.assertEqual([e.steps for e in starts], [-1])
        self.assertEqual(self.store.to_bytes("piped"), b"x" * 1000)


class TestDictMemoryStoreProgress(_ProgressTotalCases, unittest.TestCase):
    def make_store(self, event_manager, directory):
        return DictMemoryStore(event_manager=event_manager)


class TestSqliteStoreProgress(_ProgressTotalCases, unittest.TestCase):
    def make_store(self, event_manager, directory):
        return SqliteStore(os.path.join(directory, "store.db"), event_manager=event_manager)


class TestFileSystemStoreProgress(_ProgressTotalCases, unittest.TestCase):
    def make_store(self, event_manager, directory):
        init_shared_store(os.path.join(directory, "fs"))
        return FileSystemStore(os.path.join(directory, "fs"), event_manager=event_manager)


class TestLockingFileSystemStoreProgress(_ProgressTotalCases, unittest.TestCase):
    def make_store(self, event_manager, directory):
        init_shared_store(os.path.join(directory, "lfs"))
        return LockingFileSystemStore(os.path.join(directory, "lfs"), event_manager=event_manager)


class TestRemainingSize(unittest.TestCase):
    def test_bytesio_from_position(self):
        stream = io.BytesIO(b"0123456789")
        stream.seek(3)
        self.assertEqual(remaining_size(stream), 7)
        self.assertEqual(stream.tell(), 3)

    def test_not_seekable(self):
        class Chunks(io.RawIOBase):
            def readable(self):
                return True
        self.assertIsNone(remaining_size(Chunks()))
        self.assertIsNone(remaining_size(object()))

    def test_closed_file(self):
        stream = io.BytesIO(b"abc")
        stream.close()
        self.assertIsNone(remaining_size(stream))


if __name__ == "__main__":
    unittest.main()
