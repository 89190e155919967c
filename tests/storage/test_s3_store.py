"""Tests of S3Store against a real SeaweedFS started on 127.0.0.1: every
bundled conformance mixin, plus the behaviour specific to object storage
(layout, key mapping, all-or-nothing values, large metadata, streaming,
the metadata index, errors, two volume servers, two servers over a bucket)."""
import io
import json
import os
import subprocess
import sys
import threading
import time
import unittest
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

obstore = pytest.importorskip("obstore", reason="S3Store tests need obstore (pip install '.[s3]')")

from encore.events.event_manager import EventManager  # noqa: E402
from encore.storage import _s3_codec as codec  # noqa: E402
from encore.storage import open_store  # noqa: E402
from encore.storage.abstract_store import AuthorizationError, StoreError  # noqa: E402
from encore.storage.events import StoreSetEvent, StoreUpdateEvent  # noqa: E402
from encore.storage.s3_store import S3Store  # noqa: E402
from encore.storage.tests.abstract_test import (  # noqa: E402
    EventRecorder,
    PatternFile,
    StoreBadInputTestMixin,
    StoreConcurrencyTestMixin,
    StoreEventTestMixin,
    StoreKeyTestMixin,
    StoreLargeValueTestMixin,
    StoreMetadataCopyTestMixin,
    StoreReadTestMixin,
    StoreTransactionTestMixin,
    StoreWriteTestMixin,
    pattern_digest,
    populate,
    read_fixture,
    write_fixture,
)

from .seaweedfs_support import CREDENTIALS, free_ports, new_bucket, seaweedfs  # noqa: E402,F401

# One bucket for the conformance classes; each test gets its own prefix.
_SHARED = {}


def shared_bucket(server):
    bucket = _SHARED.get(server.endpoint)
    if bucket is None:
        bucket = new_bucket()
        store = S3Store(bucket, endpoint_url=server.endpoint, create_bucket=True)
        store.connect(CREDENTIALS)
        store.disconnect()
        _SHARED[server.endpoint] = bucket
    return bucket


def make_store(server, bucket=None, prefix=None, **options):
    store = S3Store(bucket or shared_bucket(server), prefix if prefix is not None else "t-" + uuid.uuid4().hex,
                    endpoint_url=server.endpoint, **options)
    store.connect(CREDENTIALS)
    return store


@pytest.fixture(scope="class")
def s3_class(request, seaweedfs):  # noqa: F811
    request.cls.server = seaweedfs


# ---------------------------------------------------------------------------
# The conformance mixins
# ---------------------------------------------------------------------------


@pytest.mark.usefixtures("s3_class")
class _S3Store(object):
    fixture = None

    def setUp(self):
        self.event_manager = EventManager()
        self.store = make_store(self.server, event_manager=self.event_manager)
        if self.fixture is not None:
            populate(self.store, self.fixture())

    def tearDown(self):
        self.store.disconnect()


class TestS3Read(_S3Store, unittest.TestCase, StoreReadTestMixin):
    fixture = staticmethod(read_fixture)


class TestS3Write(_S3Store, unittest.TestCase, StoreWriteTestMixin):
    fixture = staticmethod(write_fixture)


class TestS3Events(_S3Store, unittest.TestCase, StoreEventTestMixin):
    pass


class TestS3MetadataCopies(_S3Store, unittest.TestCase, StoreMetadataCopyTestMixin):
    pass


class TestS3Transactions(_S3Store, unittest.TestCase, StoreTransactionTestMixin):
    pass


class TestS3Keys(_S3Store, unittest.TestCase, StoreKeyTestMixin):
    pass


class TestS3BadInput(_S3Store, unittest.TestCase, StoreBadInputTestMixin):
    pass


class TestS3LargeValues(_S3Store, unittest.TestCase, StoreLargeValueTestMixin):
    large_value_size = 24 << 20


class TestS3Concurrency(_S3Store, unittest.TestCase, StoreConcurrencyTestMixin):
    concurrency_rounds = 10
