"""Tests of DictMemoryStore: every bundled conformance mixin, plus the
behaviour specific to the dictionary store."""
import io
import threading
import time
import unittest

import pytest

from encore.events.event_manager import EventManager
from encore.events.package_globals import get_event_manager
from encore.storage.abstract_store import AbstractStore
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import (
    StoreDeleteEvent,
    StoreModificationEvent,
    StoreProgressEndEvent,
    StoreProgressEvent,
    StoreProgressStartEvent,
    StoreProgressStepEvent,
    StoreSetEvent,
    StoreTransactionEndEvent,
    StoreUpdateEvent,
)
from encore.storage.string_value import StringValue
from encore.storage.tests.abstract_test import (
    EventRecorder,
    StoreBadInputTestMixin,
    StoreConcurrencyTestMixin,
    StoreEventTestMixin,
    StoreKeyTestMixin,
    StoreLargeValueTestMixin,
    StoreMetadataCopyTestMixin,
    StoreReadTestMixin,
    StoreTransactionTestMixin,
    StoreWriteTestMixin,
    populate,
    read_fixture,
    store_test_cases,
    write_fixture,
)


def _fill_read_directly(store):
    """The read fixture put straight into ``_store`` (not through ``set``)."""
    now = time.time()
    for key, data, metadata in read_fixture():
        store._store[key] = (data, metadata, now, now)


globals().update(store_test_cases(
    lambda test: DictMemoryStore(event_manager=EventManager()),
    "TestDictMemoryStore",
    fixtures={"Read": _fill_read_directly},
    attributes={
        # The medium is memory: no streaming bound to check, and a modest size.
        "LargeValues": {"streaming": False, "large_value_size": 8 << 20},
        "Concurrency": {"concurrency_threads": 6, "concurrency_rounds": 200},
    },
))


# ---------------------------------------------------------------------------
# Behaviour specific to the dictionary store
# ---------------------------------------------------------------------------


def test_is_an_abstract_store():
    store = DictMemoryStore()
    assert isinstance(store, AbstractStore)


def test_default_event_manager_is_the_global_one():
    assert DictMemoryStore().event_manager is get_event_manager()


def test_event_manager_positional_and_keyword(event_manager):
    assert DictMemoryStore(event_manager).event_manager is event_manager
    assert DictMemoryStore(event_manager=event_manager).event_manager is event_manager


def test_connect_disconnect():
    store = DictMemoryStore()
    assert not store.is_connected()
    store.connect(credentials={"ignored": True})
    assert store.is_connected()
    store.from_bytes("kept", b"data")
    store.disconnect()
    assert not store.is_connected()
    store.connect()
    assert store.to_bytes("kept") == b"data"


def test_info(dict_store):
    info = dict_store.info()
    assert info["readonly"] is False
    assert info["authorizing"] is False
    assert info["type"] == "DictMemoryStore"


def test_internal_shape(dict_store):
    before = time.time()
    dict_store.set("key", (io.BytesIO(b"data"), {"a": [1]}))
    after = time.time()
    entry = dict_store._store["key"]
    assert type(entry) is tuple and len(entry) == 4
    data, metadata, created, modified = entry
    assert type(data) is bytes and data == b"data"
    assert metadata == {"a": [1]}
    assert before <= created == modified <= after


def test_overwrite_keeps_created_and_bumps_modified(dict_store):
    dict_store._store["key"] = (b"old", {"v": 1}, 100.0, 200.0)
    for write in (
        lambda: dict_store.set("key", (io.BytesIO(b"new"), {"v": 2})),
        lambda: dict_store.set_data("key", io.BytesIO(b"newer")),
        lambda: dict_store.set_metadata("key", {"v": 3}),
        lambda: dict_store.update_metadata("key", {"w": 4}),
        lambda: dict_store.from_bytes("key", b"bytes"),
    ):
        before = time.time()
        write()
        value = dict_store.get("key")
        assert value.created == 100.0
        assert before <= value.modified <= time.time()
    assert dict_store.get_metadata("key") == {"v": 3, "w": 4}


def test_value_and_stream_types(dict_store):
    dict_store.set("key", (io.BytesIO(b"0123456789"), {"n": 1}))
    value = dict_store.get("key")
    assert isinstance(value, StringValue)
    assert (value.size, value.metadata) == (10, {"n": 1})
    stream = dict_store.get_data("key")
    assert isinstance(stream, io.BytesIO)
    assert stream.read() == b"0123456789"
    assert dict_store.get_data_range("key", -3, None).read() == b"789"
    assert dict_store.get_data_range("key", 2, -2).read() == b"234567"


def test_update_metadata_merges_emits_and_does_not_mutate(dict_store, record_events):
    """Encore 0.8 updated in place, emitted nothing and kept ``modified``."""
    dict_store._store["key"] = (b"data", {"a": 1, "b": 1}, 100.0, 100.0)
    previous = dict_store._store["key"][1]
    with record_events(dict_store) as recorder:
        dict_store.update_metadata("key", {"b": 2, "c": 3})
    assert previous == {"a": 1, "b": 1}  # the old entry is never changed in place
    assert dict_store.get_metadata("key") == {"a": 1, "b": 2, "c": 3}
    assert dict_store.get("key").modified > 100.0
    events = recorder.modifications()
    assert [(type(e), e.key, e.metadata) for e in events] == [
        (StoreUpdateEvent, "key", {"a": 1, "b": 2, "c": 3})
    ]


def test_from_file_and_from_bytes_keep_metadata(dict_store, tmp_path):
    """Encore 0.8 reset the metadata to {}."""
    dict_store.set("key", (io.BytesIO(b"old"), {"keep": "me"}))
    dict_store.from_bytes("key", b"from bytes")
    assert dict_store.get_metadata("key") == {"keep": "me"}
    path = tmp_path / "source"
    path.write_bytes(b"from file")
    dict_store.from_file("key", str(path))
    assert dict_store.get_metadata("key") == {"keep": "me"}
    assert dict_store.to_bytes("key") == b"from file"


def test_set_copies_a_value_of_the_store(dict_store):
    dict_store.set("source", (io.BytesIO(b"payload"), {"n": [1]}))
    dict_store.set("copy", dict_store.get("source"))
    assert dict_store.to_bytes("copy") == b"payload"
    assert dict_store.get_metadata("copy") == {"n": [1]}
    # The copies are independent.
    assert dict_store._store["copy"][1] is not dict_store._store["source"][1]
    assert dict_store._store["copy"][1]["n"] is not dict_store._store["source"][1]["n"]


class _ForeignValue(object):
    """A value-like object from another library, with a closable stream."""

    def __init__(self, data, metadata):
        self.stream = io.BytesIO(data)
        self._metadata = metadata
        self.size = len(data)

    @property
    def data(self):
        return self.stream

    @property
    def metadata(self):
        return dict(self._metadata)


def test_set_closes_the_stream_of_a_value_but_not_of_a_tuple(dict_store):
    foreign = _ForeignValue(b"foreign", {"x": 1})
    dict_store.set("foreign", foreign)
    assert foreign.stream.closed
    assert dict_store.to_bytes("foreign") == b"foreign"
    stream = io.BytesIO(b"tuple")
    dict_store.set("tuple", (stream, {}))
    assert not stream.closed


def test_set_accepts_bytearray_and_memoryview_chunks(dict_store):
    class Chunks(object):
        def __init__(self):
            self.parts = [bytearray(b"ab"), memoryview(b"cd"), b"ef"]

        def read(self, size=-1):
            return self.parts.pop(0) if self.parts else b""

    dict_store.set_data("key", Chunks())
    assert dict_store.to_bytes("key") == b"abcdef"
    assert type(dict_store._store["key"][0]) is bytes


def test_progress_events_of_set(dict_store, record_events):
    data = bytes(range(256)) * 40  # 10240 bytes
    with record_events(dict_store, StoreProgressEvent) as recorder:
        dict_store.set("key", (io.BytesIO(data), {"m": 1}), buffer_size=1024)
    events = recorder.events
    assert isinstance(events[0], StoreProgressStartEvent)
    assert events[0].steps == len(data)  # a BytesIO tells its length
    assert events[0].metadata == {"m": 1}
    assert isinstance(events[-1], StoreProgressEndEvent)
    steps = [e.step for e in events if isinstance(e, StoreProgressStepEvent)]
    assert steps == [1024 * i for i in range(1, 11)]
    assert all(e.key == "key" and e.source is dict_store for e in events)


def test_progress_steps_of_a_value_are_its_size(dict_store, record_events):
    dict_store.set("source", (io.BytesIO(b"x" * 5000), {}))
    with record_events(dict_store, StoreProgressEvent) as recorder:
        dict_store.set("copy", dict_store.get("source"), buffer_size=1000)
    assert recorder.of_type(StoreProgressStartEvent)[0].steps == 5000
    assert len(recorder.of_type(StoreProgressStepEvent)) == 5
    assert dict_store.to_bytes("copy") == b"x" * 5000


class _SilentManager(EventManager):
    """A manager that reports no listeners and fails if anything is emitted."""

    def has_listeners(self, cls):
        return False

    def emit(self, event, block=True):
        raise AssertionError("emitted {!r} although nobody listens".format(event))


def test_no_events_built_when_nobody_listens():
    store = DictMemoryStore(event_manager=_SilentManager())
    store.set("key", (io.BytesIO(b"x" * 100000), {"a": 1}), buffer_size=1000)
    store.set_data("key", io.BytesIO(b"y"))
    store.set_metadata("key", {"b": 2})
    store.update_metadata("key", {"c": 3})
    store.from_bytes("key", b"z")
    store.set("copy", store.get("key"))
    store.delete("key")
    assert list(store.query_keys()) == ["copy"]


def test_events_carry_copies(dict_store, record_events):
    with record_events(dict_store) as recorder:
        dict_store.set("key", (io.BytesIO(b""), {"a": {"b": 1}}))
        dict_store.delete("key")
    for event in recorder.modifications():
        event.metadata["a"]["b"] = 2
    assert [type(e) for e in recorder.modifications()] == [StoreSetEvent, StoreDeleteEvent]
    assert recorder.modifications()[1].metadata == {"a": {"b": 2}}  # its own copy
    assert recorder.modifications()[0].metadata is not recorder.modifications()[1].metadata


def test_rollback_restores_times(dict_store):
    dict_store._store["key"] = (b"data", {"a": 1}, 100.0, 200.0)
    with pytest.raises(RuntimeError):
        with dict_store.transaction("fail"):
            dict_store.set("key", (io.BytesIO(b"new"), {}))
            dict_store.delete("key")
            dict_store.set("other", (io.BytesIO(b""), {}))
            raise RuntimeError("boom")
    assert dict_store._store == {"key": (b"data", {"a": 1}, 100.0, 200.0)}
    assert dict_store._undo is None


def test_transaction_events_after_commit(dict_store, record_events):
    with record_events(dict_store) as recorder:
        with dict_store.transaction("two writes"):
            dict_store.from_bytes("a", b"1")
            dict_store.from_bytes("b", b"2")
            assert recorder.modifications() == []
    kinds = [type(e) for e in recorder.events]
    assert kinds[-3:] == [StoreTransactionEndEvent, StoreSetEvent, StoreSetEvent]


def test_single_write_waits_for_another_threads_transaction(dict_store):
    """A write from another thread must not slip into an open transaction:
    if it did, the rollback would restore the key and lose that write."""
    dict_store.from_bytes("key", b"original")
    in_transaction = threading.Event()
    writer_started = threading.Event()
    errors = []

    def writer():
        try:
            in_transaction.wait(10)
            writer_started.set()
            dict_store.from_bytes("key", b"from the other thread")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    with pytest.raises(RuntimeError):
        with dict_store.transaction("to be rolled back"):
            dict_store.from_bytes("key", b"transaction")
            in_transaction.set()
            assert writer_started.wait(10)
            # Give the writer a window in which it would write if it could.
            thread.join(0.2)
            assert thread.is_alive()
            raise RuntimeError("roll back")
    thread.join(10)
    assert not thread.is_alive()
    assert errors == []
    assert dict_store.to_bytes("key") == b"from the other thread"


def test_query_is_a_snapshot(dict_store):
    for i in range(100):
        dict_store.set("key%d" % i, (io.BytesIO(b""), {"even": i % 2 == 0}))
    seen = []
    for key, metadata in dict_store.query(even=True):
        seen.append(key)
        dict_store.set(key + "_new", (io.BytesIO(b""), {"even": True}))  # grows the dict
        dict_store.delete(key)
    assert sorted(seen) == sorted("key%d" % i for i in range(0, 100, 2))
    keys = dict_store.query_keys()
    dict_store.from_bytes("late", b"")
    assert "late" not in list(keys)


def test_query_none_matches_missing(dict_store):
    """As in Encore 0.8, ``name=None`` matches keys without ``name``."""
    dict_store.set("with", (io.BytesIO(b""), {"x": None}))
    dict_store.set("without", (io.BytesIO(b""), {}))
    dict_store.set("other", (io.BytesIO(b""), {"x": 1}))
    assert sorted(dict_store.query_keys(x=None)) == ["with", "without"]
    assert sorted(k for k, _ in dict_store.query(x=None)) == ["with", "without"]


def test_query_select(dict_store):
    dict_store.set("k", (io.BytesIO(b""), {"a": 1, "b": [2]}))
    assert list(dict_store.query(select=("b", "c"))) == [("k", {"b": [2]})]
    selected = dict(dict_store.query(select=iter(["b"]), a=1))
    selected["k"]["b"].append(3)
    assert dict_store.get_metadata("k") == {"a": 1, "b": [2]}


def test_to_bytes_returns_the_stored_bytes(dict_store):
    dict_store.from_bytes("key", bytearray(b"abc"))
    assert dict_store.to_bytes("key") == b"abc"
    assert type(dict_store.to_bytes("key")) is bytes


def test_record_events_only_from_this_store(event_manager):
    store = DictMemoryStore(event_manager=event_manager)
    other = DictMemoryStore(event_manager=event_manager)
    with EventRecorder(event_manager, store, StoreModificationEvent) as recorder:
        other.from_bytes("key", b"")
        store.from_bytes("key", b"")
    assert [e.source for e in recorder.events] == [store]


# ---------------------------------------------------------------------------
# The mixins catch broken stores: each broken variant of the dictionary store
# below reproduces a real bug (several are Encore 0.8's) and must make the
# named mixin tests fail.
# ---------------------------------------------------------------------------


class InPlaceUpdateStore(DictMemoryStore):
    """Encore 0.8's update_metadata: in place, no event, modified unchanged."""

    def update_metadata(self, key, metadata):
        self._store[key][1].update(metadata)


class ResettingFromBytesStore(DictMemoryStore):
    """Encore 0.8's from_bytes: resets the metadata."""

    def from_bytes(self, key, data, buffer_size=1048576):
        self.set(key, (io.BytesIO(bytes(data)), {}))


class NoRollbackStore(DictMemoryStore):
    """Transactions that cannot roll back."""

    _begin_transaction = None
    _commit_transaction = None
    _rollback_transaction = None


class ShallowCopyStore(DictMemoryStore):
    """Hands out shallow copies: nested metadata can be changed from outside."""

    def get_metadata(self, key, select=None):
        return dict(self._store[key][1])


class InclusiveRangeStore(DictMemoryStore):
    """Treats the end of a range as inclusive."""

    def get_data_range(self, key, start=None, end=None):
        data = self._store[key][0]
        return io.BytesIO(data[start:None if end is None else end + 1])


class HiddenDotKeysStore(DictMemoryStore):
    """Encore 0.8's file system store: keys starting with '.' are not listed."""

    def query(self, select=None, **kwargs):
        return ((k, m) for k, m in super().query(select, **kwargs) if not k.startswith("."))

    def query_keys(self, **kwargs):
        return (k for k in super().query_keys(**kwargs) if not k.startswith("."))


class CaseInsensitiveStore(DictMemoryStore):
    """Folds keys to lower case, as a case-insensitive medium would."""

    def get(self, key):
        return super().get(key.lower())

    def get_data(self, key):
        return super().get_data(key.lower())

    def exists(self, key):
        return super().exists(key.lower())

    def _write(self, key, data, metadata, merge=False):
        super()._write(key.lower(), data, metadata, merge)

    def delete(self, key):
        super().delete(key.lower())


class PartialWriteStore(DictMemoryStore):
    """Stores each buffer as it is read, so a failing stream leaves a torn value."""

    def set_data(self, key, data, buffer_size=1048576):
        parts = []
        metadata = self._store[key][1] if key in self._store else {}
        while True:
            chunk = data.read(buffer_size)
            if not chunk:
                break
            parts.append(chunk)
            self._store[key] = (b"".join(parts), metadata, 0.0, time.time())


class LaxDataStore(DictMemoryStore):
    """Accepts bytes where a stream is required (its check is bypassed)."""


def _lax_set_data(self, key, data, buffer_size=1048576):
    if isinstance(data, (bytes, str)):
        data = io.BytesIO(data if isinstance(data, bytes) else data.encode())
    DictMemoryStore.set_data(self, key, data, buffer_size)


# Assigned after class creation, so the argument checks do not wrap it.
LaxDataStore.set_data = _lax_set_data


class RacyUpdateStore(DictMemoryStore):
    """update_metadata as an unlocked read-modify-write: updates get lost."""

    def update_metadata(self, key, metadata):
        merged = self.get_metadata(key)
        time.sleep(0.001)  # widens the race window
        merged.update(metadata)
        self.set_metadata(key, merged)


class TornWriteStore(DictMemoryStore):
    """Publishes half of the data before the whole of it."""

    def _write(self, key, data, metadata, merge=False):
        if data:
            self._store[key] = (data[: len(data) // 2], metadata or {}, 0.0, 0.0)
            time.sleep(0.0005)
        super()._write(key, data, metadata, merge)


class FineGrainedProgressStore(DictMemoryStore):
    """Reports progress every 1 KiB, whatever the buffer size."""

    def _read_with_progress(self, key, stream, metadata, steps, buffer_size):
        return super()._read_with_progress(key, stream, metadata, steps, 1024)


def _run_mixin_test(mixin, store_class, test_name, fixture=None, **attributes):
    """Run one mixin test against a store class; return the unittest result."""

    def setUp(self):
        self.event_manager = EventManager()
        self.store = store_class(event_manager=self.event_manager)
        self.store.connect()
        if fixture is not None:
            populate(self.store, fixture())

    namespace = dict(attributes, setUp=setUp)
    case_class = type("Broken" + mixin.__name__, (unittest.TestCase, mixin), namespace)
    result = unittest.TestResult()
    case_class(test_name).run(result)
    assert result.testsRun == 1 and not result.skipped
    return result


BROKEN_STORES = [
    (StoreWriteTestMixin, InPlaceUpdateStore, "test_update_metadata", write_fixture),
    (StoreEventTestMixin, InPlaceUpdateStore, "test_update_metadata_event", None),
    (StoreWriteTestMixin, ResettingFromBytesStore, "test_from_bytes", write_fixture),
    (StoreTransactionTestMixin, NoRollbackStore, "test_rollback", None),
    (StoreTransactionTestMixin, NoRollbackStore, "test_no_events_after_rollback", None),
    (StoreMetadataCopyTestMixin, ShallowCopyStore, "test_get_metadata_nested", None),
    (StoreReadTestMixin, InclusiveRangeStore, "test_get_data_range", read_fixture),
    (StoreKeyTestMixin, HiddenDotKeysStore, "test_awkward_keys_round_trip", None),
    (StoreKeyTestMixin, CaseInsensitiveStore, "test_keys_differing_in_case", None),
    (StoreBadInputTestMixin, PartialWriteStore, "test_failing_stream", None),
    (StoreBadInputTestMixin, LaxDataStore, "test_data_without_read", None),
    (StoreConcurrencyTestMixin, RacyUpdateStore, "test_metadata_updates", None),
    (StoreConcurrencyTestMixin, TornWriteStore, "test_shared_key", None),
    (StoreEventTestMixin, FineGrainedProgressStore, "test_set_progress_events", None),
]


@pytest.mark.parametrize(
    "mixin, store_class, test_name, fixture",
    BROKEN_STORES,
    ids=["{}-{}".format(store.__name__, name) for _, store, name, _ in BROKEN_STORES],
)
def test_mixins_catch_broken_stores(mixin, store_class, test_name, fixture):
    result = _run_mixin_test(mixin, store_class, test_name, fixture)
    assert result.failures or result.errors, "{} passed on {}".format(test_name, store_class.__name__)


@pytest.mark.parametrize(
    "mixin, store_class, test_name, fixture",
    BROKEN_STORES,
    ids=["{}-{}".format(store.__name__, name) for _, store, name, _ in BROKEN_STORES],
)
def test_same_mixin_tests_pass_on_the_real_store(mixin, store_class, test_name, fixture):
    result = _run_mixin_test(mixin, DictMemoryStore, test_name, fixture)
    assert not result.failures and not result.errors, result.failures + result.errors


def test_streaming_check_catches_a_store_holding_values_in_memory():
    result = _run_mixin_test(
        StoreLargeValueTestMixin, DictMemoryStore, "test_large_set",
        streaming=True, large_value_size=16 << 20,
    )
    assert len(result.failures) == 1
    assert "peak" in result.failures[0][1]


def test_read_only_store_skips_utils_large_with_a_reason():
    class ReadOnly(DictMemoryStore):
        set = None

    case_class = type(
        "ReadOnlyRead", (unittest.TestCase, StoreReadTestMixin),
        {"setUp": lambda self: setattr(self, "store", ReadOnly())},
    )
    result = unittest.TestResult()
    case_class("test_utils_large").run(result)
    assert [reason for _, reason in result.skipped] == [
        "read-only store and utils_large() not overridden"
    ]


def test_store_test_cases_rejects_unknown_labels_and_ambiguous_setups():
    with pytest.raises(ValueError):
        store_test_cases(lambda test: DictMemoryStore(), "TestX", include=["Reed"])
    with pytest.raises(ValueError):
        store_test_cases(None, "TestX")


def test_store_test_cases_builds_runnable_unittest_cases():
    made = store_test_cases(lambda test: DictMemoryStore(event_manager=EventManager()),
                            "TestBuilt", include=["Read", "Keys"])
    assert sorted(made) == ["TestBuiltKeys", "TestBuiltRead"]
    assert all(issubclass(case, unittest.TestCase) for case in made.values())
    assert made["TestBuiltRead"].__module__ == __name__
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(made["TestBuiltRead"])
    result = unittest.TestResult()
    suite.run(result)
    assert result.testsRun > 10 and result.wasSuccessful(), result.failures + result.errors
