"""Tests of FileSystemStore: every bundled conformance mixin, plus the on-disk
layout, the key encoding, atomic writes and the behaviour specific to the
file system store."""
import io
import json
import os
import shutil
import tempfile
import threading
import unittest

import pytest

from encore.events.event_manager import EventManager
from encore.storage.abstract_store import StoreError
from encore.storage.events import StoreDeleteEvent, StoreSetEvent, StoreUpdateEvent
from encore.storage.file_value import FileValue
from encore.storage.filesystem_store import (
    FileSystemStore,
    FileSystemStoreError,
    decode_key,
    encode_key,
    init_shared_store,
)
from encore.storage.tests.abstract_test import (
    EventRecorder,
    StoreBadInputTestMixin,
    StoreConcurrencyTestMixin,
    StoreEventTestMixin,
    StoreKeyTestMixin,
    StoreLargeValueTestMixin,
    StoreReadTestMixin,
    StoreTransactionTestMixin,
    StoreWriteTestMixin,
    populate,
    read_fixture,
    write_fixture,
)


class _DirectoryStore(object):
    """setUp: a connected, empty store in ``<private dir>/store`` with a
    private event manager."""

    fixture = None

    def make_store(self, path, event_manager):
        return FileSystemStore(path, event_manager=event_manager)

    def setUp(self):
        self.parent = tempfile.mkdtemp(prefix="encore_fs_test_")
        self.store_directory = os.path.join(self.parent, "store")
        init_shared_store(self.store_directory)
        self.event_manager = EventManager()
        self.store = self.make_store(self.store_directory, self.event_manager)
        self.store.connect()
        if self.fixture is not None:
            populate(self.store, self.fixture())

    def tearDown(self):
        self.store.disconnect()
        shutil.rmtree(self.parent, ignore_errors=True)


class TestFileSystemStoreRead(_DirectoryStore, unittest.TestCase, StoreReadTestMixin):
    fixture = staticmethod(read_fixture)


class TestFileSystemStoreWrite(_DirectoryStore, unittest.TestCase, StoreWriteTestMixin):
    fixture = staticmethod(write_fixture)


class TestFileSystemStoreEvents(_DirectoryStore, unittest.TestCase, StoreEventTestMixin):
    pass


class TestFileSystemStoreTransactions(_DirectoryStore, unittest.TestCase, StoreTransactionTestMixin):
    pass


class TestFileSystemStoreKeys(_DirectoryStore, unittest.TestCase, StoreKeyTestMixin):
    pass


class TestFileSystemStoreBadInput(_DirectoryStore, unittest.TestCase, StoreBadInputTestMixin):
    pass


class TestFileSystemStoreLargeValues(_DirectoryStore, unittest.TestCase, StoreLargeValueTestMixin):
    # Big enough to span many buffers, small enough to keep fsync cheap.
    large_value_size = 16 << 20


class TestFileSystemStoreConcurrency(_DirectoryStore, unittest.TestCase, StoreConcurrencyTestMixin):
    concurrency_rounds = 15
