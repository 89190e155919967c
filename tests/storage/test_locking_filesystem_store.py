"""Tests of LockingFileSystemStore: every bundled conformance mixin, plus
locks, the change log, remote events and the poll thread."""
import gc
import io
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import unittest
import weakref
from datetime import datetime, timedelta, timezone

import pytest

from encore.events.event_manager import EventManager
from encore.storage.events import (
    StoreDeleteEvent,
    StoreKeyEvent,
    StoreModificationEvent,
    StoreSetEvent,
    StoreUpdateEvent,
)
from encore.storage.file_lock import FileLock, SharedFileLock
from encore.storage.filesystem_store import FileSystemStore, FileSystemStoreError, init_shared_store
from encore.storage.locking_filesystem_store import LockingFileSystemStore, LogEntry
from encore.storage.tests.abstract_test import (
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


class _LockingStore(object):
    """setUp: a connected, empty store in ``<private dir>/store``."""

    fixture = None

    def setUp(self):
        self.parent = tempfile.mkdtemp(prefix="encore_lfs_test_")
        self.store_directory = os.path.join(self.parent, "store")
        init_shared_store(self.store_directory)
        self.event_manager = EventManager()
        self.store = LockingFileSystemStore(self.store_directory, event_manager=self.event_manager)
        self.store.connect()
        if self.fixture is not None:
            populate(self.store, self.fixture())

    def tearDown(self):
        self.store.disconnect()
        shutil.rmtree(self.parent, ignore_errors=True)


class TestLockingStoreRead(_LockingStore, unittest.TestCase, StoreReadTestMixin):
    fixture = staticmethod(read_fixture)


class TestLockingStoreWrite(_LockingStore, unittest.TestCase, StoreWriteTestMixin):
    fixture = staticmethod(write_fixture)


class TestLockingStoreEvents(_LockingStore, unittest.TestCase, StoreEventTestMixin):
    pass


class TestLockingStoreTransactions(_LockingStore, unittest.TestCase, StoreTransactionTestMixin):
    pass


class TestLockingStoreKeys(_LockingStore, unittest.TestCase, StoreKeyTestMixin):
    pass


class TestLockingStoreBadInput(_LockingStore, unittest.TestCase, StoreBadInputTestMixin):
    pass


class TestLockingStoreLargeValues(_LockingStore, unittest.TestCase, StoreLargeValueTestMixin):
    large_value_size = 16 << 20


class TestLockingStoreConcurrency(_LockingStore, unittest.TestCase, StoreConcurrencyTestMixin):
    concurrency_rounds = 15
