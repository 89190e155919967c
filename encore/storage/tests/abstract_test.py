"""Conformance test mixins for key-value stores.

Any implementation of the storage API, including one written outside encore,
can check that it behaves as the API promises by mixing these classes into a
:class:`unittest.TestCase` whose ``setUp`` provides the store::

    import unittest
    from encore.storage.tests.abstract_test import (
        StoreReadTestMixin, StoreWriteTestMixin)

    class MyStoreReadTest(unittest.TestCase, StoreReadTestMixin):

        def setUp(self):
            self.store = MyStore()
            self.store.connect()
            ...  # put the fixture data described by the mixin in the store

        def tearDown(self):
            self.store.disconnect()

The tests only use ``unittest`` assertions, so they run under ``unittest`` and
under pytest alike.

:func:`store_test_cases` builds these classes for a store factory, filling
the fixtures through the API -- the way encore's own stores are tested, and
the shortest way to test a new one::

    globals().update(store_test_cases(lambda test: MyStore(), "TestMyStore"))

:class:`StoreReadTestMixin` and :class:`StoreWriteTestMixin` keep the fixture
contract of Encore 0.8's mixins, so a test class written for Encore runs
unchanged.  The other mixins check properties Encore did not test: metadata copies
sharing nothing with the store (:class:`StoreMetadataCopyTestMixin`),
metadata values beyond JSON kept exactly (:class:`StoreMetadataTypesTestMixin`), the
events emitted (:class:`StoreEventTestMixin`), real transactions
(:class:`StoreTransactionTestMixin`), awkward keys (:class:`StoreKeyTestMixin`),
rejected input (:class:`StoreBadInputTestMixin`), large values streamed with
bounded memory (:class:`StoreLargeValueTestMixin`) and concurrent use
(:class:`StoreConcurrencyTestMixin`).  Each documents its fixture contract in
its docstring; most need nothing but an empty connected store.
"""
from __future__ import annotations

import logging

from encore.storage.events import (  # noqa: F401  (importable from here before the split)
    StoreDeleteEvent, StoreEvent, StoreModificationEvent, StoreProgressEndEvent,
    StoreProgressEvent, StoreProgressStartEvent, StoreProgressStepEvent, StoreSetEvent,
    StoreTransactionEndEvent, StoreTransactionStartEvent, StoreUpdateEvent,
)

from .mixins._support import (  # noqa: F401  (private helpers re-exported too)
    DEFAULT_PATTERN,
    EventRecorder,
    LARGE_SIZE,
    PatternFile,
    _Boom,
    _FailingFile,
    _StoreTestHelpers,
    _file_digest,
    _glob_escape,
    _stream_digest,
    create_file_like_data,
    pattern_digest,
    populate,
    read_fixture,
    temp_dir,
    write_fixture,
)
from .mixins.bad_input import StoreBadInputTestMixin
from .mixins.cases import CONFORMANCE_MIXINS, conformance_cases, store_test_cases
from .mixins.concurrency import StoreConcurrencyTestMixin
from .mixins.events import StoreEventTestMixin
from .mixins.keys import StoreKeyTestMixin
from .mixins.large_value import StoreLargeValueTestMixin
from .mixins.metadata_copy import StoreMetadataCopyTestMixin
from .mixins.metadata_types import StoreMetadataTypesTestMixin, metadata_type_samples
from .mixins.read import StoreReadTestMixin
from .mixins.transactions import StoreTransactionTestMixin
from .mixins.write import StoreWriteTestMixin

logger = logging.getLogger(__name__)

__all__ = [
    "create_file_like_data",
    "temp_dir",
    "PatternFile",
    "pattern_digest",
    "read_fixture",
    "write_fixture",
    "populate",
    "EventRecorder",
    "StoreReadTestMixin",
    "StoreWriteTestMixin",
    "StoreMetadataCopyTestMixin",
    "StoreMetadataTypesTestMixin",
    "metadata_type_samples",
    "StoreEventTestMixin",
    "StoreTransactionTestMixin",
    "StoreKeyTestMixin",
    "StoreBadInputTestMixin",
    "StoreLargeValueTestMixin",
    "StoreConcurrencyTestMixin",
    "CONFORMANCE_MIXINS",
    "conformance_cases",
    "store_test_cases",
]
