"""Code written for Encore 0.8 runs unchanged.

The test classes here are written the way a third party wrote them against
Encore 0.8: ``unittest.TestCase`` subclasses mixing in the bundled
conformance mixins, whose ``setUp`` fills ``self.store`` through the public
API or through ``DictMemoryStore._store``; and a store written in the Encore
0.8 style, implementing every method itself (no ``event_manager`` argument,
``super().__init__()`` without arguments, a ``DummyTransactionContext``).
A table of the documented API (module paths, names, signatures, defaults)
is checked by introspection, and a database with Encore's SQLite table
shape is filled directly through ``sqlite3`` and read back by the store.
"""
import fnmatch
import importlib
import inspect
import io
import shutil
import sqlite3
import tempfile
import time
import unittest
from datetime import timedelta

import pytest

from encore.events.api import EventManager, get_event_manager
from encore.storage.abstract_store import AbstractReadOnlyStore, AbstractStore
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import (
    StoreDeleteEvent,
    StoreEvent,
    StoreModificationEvent,
    StoreSetEvent,
    StoreUpdateEvent,
)
from encore.storage.filesystem_store import FileSystemStore, init_shared_store
from encore.storage.sqlite_store import SqliteStore
from encore.storage.string_value import StringValue
from encore.storage.tests import abstract_test
from encore.storage.utils import DummyTransactionContext, buffer_iterator


# ---------------------------------------------------------------------------
# Test classes as an Encore 0.8 user wrote them
# ---------------------------------------------------------------------------

class DictMemoryStoreReadTest(unittest.TestCase, abstract_test.StoreReadTestMixin):
    """Filled through the store's private dictionary, as Encore's own tests did."""

    def setUp(self):
        self.store = DictMemoryStore()
        t = time.time()
        self.store._store["test1"] = (
            b"test2\n",
            {
                "a_str": "test3",
                "an_int": 1,
                "a_float": 2.0,
                "a_bool": True,
                "a_list": ["one", "two", "three"],
                "a_dict": {"one": 1, "two": 2, "three": 3},
            },
            t,
            t,
        )
        for i in range(10):
            metadata = {"query_test1": "value", "query_test2": i}
            if i % 2 == 0:
                metadata["optional"] = True
            self.store._store["key%d" % i] = (("value%d" % i).encode("ascii"), metadata, t, t)
        self.store.connect()

    def tearDown(self):
        self.store.disconnect()


class DictMemoryStoreWriteTest(unittest.TestCase, abstract_test.StoreWriteTestMixin):
    """Filled through the store's private dictionary."""

    def setUp(self):
        self.store = DictMemoryStore()
        t = time.time()
        self.store._store["test1"] = (
            b"test2\n",
            {
                "a_str": "test3",
                "an_int": 1,
                "a_float": 2.0,
                "a_bool": True,
                "a_list": ["one", "two", "three"],
                "a_dict": {"one": 1, "two": 2, "three": 3},
            },
            t,
            t,
        )
        for i in range(10):
            self.store._store["existing_key%d" % i] = (
                ("existing_value%d" % i).encode("ascii"), {"meta": True, "meta1": -i}, t, t)
        self.store.connect()

    def tearDown(self):
        self.store.disconnect()


class FileSystemStoreWriteTest(unittest.TestCase, abstract_test.StoreWriteTestMixin):
    """Filled through the public API, in a temporary directory."""

    def setUp(self):
        self.path = tempfile.mkdtemp()
        init_shared_store(self.path)
        self.store = FileSystemStore(self.path)
        self.store.connect()
        self.store.set("test1", (abstract_test.create_file_like_data(b"test2\n"), {
            "a_str": "test3", "an_int": 1, "a_float": 2.0, "a_bool": True,
            "a_list": ["one", "two", "three"], "a_dict": {"one": 1, "two": 2, "three": 3}}))
        for i in range(10):
            self.store.set("existing_key%d" % i, (
                abstract_test.create_file_like_data(("existing_value%d" % i).encode("ascii")),
                {"meta": True, "meta1": -i}))

    def tearDown(self):
        self.store.disconnect()
        shutil.rmtree(self.path)

    # The large-value tests are run by tests/storage/test_filesystem_store.py;
    # None removes them from this class.
    test_set_large = test_set_data_large = test_from_file_large = None


# ---------------------------------------------------------------------------
# A third-party store in the Encore 0.8 style
# ---------------------------------------------------------------------------

class LegacyStore(AbstractStore):
    """A store written for Encore 0.8: every method implemented here."""

    def __init__(self, event_manager=None):
        super().__init__()
        if event_manager is not None:
            self.event_manager = event_manager
        self._data = {}
        self._metadata = {}
        self._times = {}
        self.calls = []

    def connect(self, credentials=None):
        self._connected = True

    def disconnect(self):
        self._connected = False

    def is_connected(self):
        return self._connected

    def info(self):
        return {"readonly": False, "authorizing": False}

    def get(self, key):
        self.calls.append("get")
        created, modified = self._times[key]
        return StringValue(self._data[key], self._metadata[key], created, modified)

    def get_data(self, key):
        return io.BytesIO(self._data[key])

    def get_data_range(self, key, start=None, end=None):
        return io.BytesIO(self._data[key][start:end])

    def get_metadata(self, key, select=None):
        metadata = self._metadata[key]
        if select is not None:
            return dict((name, metadata[name]) for name in select if name in metadata)
        return dict(metadata)

    def exists(self, key):
        return key in self._data

    def set(self, key, value, buffer_size=1048576):
        self.calls.append("set")
        if isinstance(value, tuple):
            data, metadata = value
            metadata = dict(metadata)
        else:
            data = value.data
            metadata = value.metadata
        with self.transaction("Setting key %s" % key):
            content = b"".join(buffer_iterator(data, buffer_size))
            self._write(key, content, metadata)

    def set_data(self, key, data, buffer_size=1048576):
        self.calls.append("set_data")
        with self.transaction("Setting data of %s" % key):
            content = b"".join(buffer_iterator(data, buffer_size))
            self._write(key, content, self._metadata.get(key, {}))

    def set_metadata(self, key, metadata):
        self.calls.append("set_metadata")
        with self.transaction("Setting metadata of %s" % key):
            self._write(key, self._data.get(key, b""), dict(metadata))

    def update_metadata(self, key, metadata):
        self.calls.append("update_metadata")
        with self.transaction("Updating metadata of %s" % key):
            merged = dict(self._metadata[key])
            merged.update(metadata)
            self._write(key, self._data[key], merged)

    def _write(self, key, data, metadata):
        now = time.time()
        existed = key in self._data
        created = self._times[key][0] if existed else now
        self._data[key] = data
        self._metadata[key] = metadata
        self._times[key] = (created, now)
        event_class = StoreUpdateEvent if existed else StoreSetEvent
        self.event_manager.emit(event_class(self, key=key, metadata=dict(metadata)))

    def delete(self, key):
        self.calls.append("delete")
        with self.transaction("Deleting %s" % key):
            metadata = self._metadata.pop(key)
            del self._data[key]
            del self._times[key]
            self.event_manager.emit(StoreDeleteEvent(self, key=key, metadata=metadata))

    def transaction(self, notes):
        return DummyTransactionContext(self)

    def query(self, select=None, **kwargs):
        for key, metadata in list(self._metadata.items()):
            if all(metadata.get(name) == value for name, value in kwargs.items()):
                if select is not None:
                    metadata = dict((name, metadata[name]) for name in select if name in metadata)
                yield key, dict(metadata)

    def query_keys(self, **kwargs):
        for key, metadata in self.query(**kwargs):
            yield key

    def glob(self, pattern):
        return fnmatch.filter(list(self.query_keys()), pattern)

    def multiget(self, keys):
        return (self.get(key) for key in keys)

    def multiget_data(self, keys):
        return (self.get_data(key) for key in keys)

    def multiget_metadata(self, keys, select=None):
        return (self.get_metadata(key, select) for key in keys)

    def to_file(self, key, path, buffer_size=1048576):
        with open(path, "wb") as stream:
            stream.write(self._data[key])

    def to_bytes(self, key, buffer_size=1048576):
        return self._data[key]

    def from_file(self, key, path, buffer_size=1048576):
        with open(path, "rb") as stream:
            self.set_data(key, stream, buffer_size)

    def from_bytes(self, key, data, buffer_size=1048576):
        self.set_data(key, io.BytesIO(data), buffer_size)


class LegacyReadOnlyStore(AbstractReadOnlyStore):
    """A read-only store written for Encore 0.8, sharing a dict of entries."""

    def __init__(self, entries):
        super().__init__()
        self.event_manager = get_event_manager()
        self._entries = entries

    def get(self, key):
        data, metadata = self._entries[key]
        return StringValue(data, metadata)

    def query(self, select=None, **kwargs):
        for key, (data, metadata) in self._entries.items():
            if all(metadata.get(name) == value for name, value in kwargs.items()):
                if select is not None:
                    metadata = dict((name, metadata[name]) for name in select if name in metadata)
                yield key, dict(metadata)


def _fill(store, items):
    for key, data, metadata in items:
        store.set(key, (io.BytesIO(data), metadata))


class LegacyStoreReadTest(unittest.TestCase, abstract_test.StoreReadTestMixin):

    def setUp(self):
        self.store = LegacyStore()
        self.store.connect()
        _fill(self.store, abstract_test.read_fixture())


class LegacyStoreWriteTest(unittest.TestCase, abstract_test.StoreWriteTestMixin):

    def setUp(self):
        self.store = LegacyStore()
        self.store.connect()
        _fill(self.store, abstract_test.write_fixture())


class LegacyStoreEventTest(unittest.TestCase, abstract_test.StoreEventTestMixin):
    """The store's own events, emitted on the manager it set itself."""

    def setUp(self):
        self.event_manager = EventManager()
        self.store = LegacyStore(self.event_manager)
        self.store.connect()

    # The legacy store emits no progress events, and emits shallow copies of
    # its metadata (nested parts shared), which only the stricter checks of
    # the newer mixins reject.  None removes these tests from this class.
    test_set_progress_events = test_to_file_progress_events = None
    test_progress_ends_before_modification_event = test_event_metadata_is_a_copy = None


class LegacyReadOnlyStoreReadTest(unittest.TestCase, abstract_test.StoreReadTestMixin):

    def setUp(self):
        self.entries = {key: (data, metadata) for key, data, metadata in abstract_test.read_fixture()}
        self.store = LegacyReadOnlyStore(self.entries)
        self.store.connect()

    def utils_large(self):
        # A read-only store: put the large values in its entries directly.
        self.entries["test_large"] = (
            abstract_test.PatternFile(abstract_test.LARGE_SIZE).read(), {"large": True})
        self.entries["test3"] = (b"test4" * 10 ** 7, {})


class TestLegacyStore:
    def test_instantiates_with_its_own_event_manager(self):
        manager = EventManager()
        store = LegacyStore(manager)
        assert store.event_manager is manager
        assert LegacyStore().event_manager is get_event_manager()
        assert not store.is_connected()
        store.connect()
        assert store.is_connected()

    def test_argument_checks_run_before_its_code(self):
        store = LegacyStore()
        store.connect()
        store.set("k", (io.BytesIO(b"v"), {"a": 1}))
        store.calls[:] = []
        with pytest.raises(TypeError):
            store.set(1, (io.BytesIO(b"v"), {}))
        with pytest.raises(TypeError):
            store.set("k", (io.StringIO("text"), {}))
        with pytest.raises(TypeError):
            store.set("k", (io.BytesIO(b"v"), {"bad": object()}))
        with pytest.raises(ValueError):
            store.set_metadata("k", {"bad": float("nan")})
        with pytest.raises(TypeError):
            store.update_metadata("k", {1: "non-str name"})
        with pytest.raises(TypeError):
            store.set_data("k", b"bytes, not a stream")
        with pytest.raises(TypeError):
            store.from_bytes("k", "text")
        with pytest.raises(TypeError):
            store.delete(b"k")
        with pytest.raises(TypeError):
            store.get(None)
        with pytest.raises(TypeError):
            store.multiset(["a", "b"], [(io.BytesIO(b"1"), {}), (io.BytesIO(b"2"), {2: 2})])
        assert store.calls == []
        assert store.get_metadata("k") == {"a": 1}
        assert store.to_bytes("k") == b"v"

    def test_metadata_reaching_the_store_is_a_private_copy(self):
        store = LegacyStore()
        metadata = {"a": [1]}
        store.set_metadata("k", metadata)
        metadata["a"].append(2)
        assert store.get_metadata("k") == {"a": [1]}

    def test_derived_multi_methods_use_its_transaction_and_events(self):
        manager = EventManager()
        events = []
        manager.connect(StoreModificationEvent, events.append)
        store = LegacyStore(manager)
        store.multiset(iter(["a", "b"]), iter([(io.BytesIO(b"1"), {"n": 1}),
                                               (io.BytesIO(b"2"), {"n": 2})]))
        assert [(type(e), e.key, e.metadata) for e in events] == [
            (StoreSetEvent, "a", {"n": 1}), (StoreSetEvent, "b", {"n": 2})]
        assert isinstance(store.transaction("x"), DummyTransactionContext)
        assert store.transaction("x") is store.transaction("y")
        with store.transaction("x") as context:
            assert context is store.transaction("z")

    def test_events_on_a_reassigned_manager(self):
        store = LegacyStore()
        store.event_manager = manager = EventManager()
        events = []
        manager.connect(StoreEvent, events.append)
        store.set("k", (io.BytesIO(b"v"), {}))
        store.delete("k")
        assert [type(e) for e in events] == [StoreSetEvent, StoreDeleteEvent]


def test_legacy_unpacking_of_values():
    store = DictMemoryStore()
    store.set("k", (io.BytesIO(b"data"), {"m": 1}))
    with pytest.warns(DeprecationWarning):
        data, metadata = store.get("k")
    assert data.read() == b"data"
    assert metadata == {"m": 1}


def test_sqlite_store_index_spelling():
    from encore.storage.sqlite_store import SQLiteStore

    assert SQLiteStore is SqliteStore


def test_encore_positional_event_manager():
    # The 0.7 manual built stores with the event manager as an argument.
    manager = EventManager()
    assert DictMemoryStore(manager).event_manager is manager
    assert SqliteStore(":memory:", "store", "dynamic", None, manager).event_manager is manager


# ---------------------------------------------------------------------------
# Encore's SQLite table shape
# ---------------------------------------------------------------------------

def test_sqlite_rows_written_directly_are_read_by_the_store(tmp_path):
    path = str(tmp_path / "encore.db")
    store = SqliteStore(path)
    store.connect()
    store.disconnect()
    connection = sqlite3.connect(path, detect_types=sqlite3.PARSE_DECLTYPES)
    columns = [(row[1], row[2].lower())
               for row in connection.execute("PRAGMA table_info(store)")]
    assert columns == [("key", "text"), ("metadata", "dict"), ("created", "float"),
                       ("modified", "float"), ("data", "blob")]
    now = time.time()
    # The dict is adapted by the adapter the module registered.
    connection.execute("INSERT INTO store VALUES (?, ?, ?, ?, ?)",
                       ("direct", {"a": 1, "tags": ["x", "y"]}, now, now,
                        sqlite3.Binary(b"row data")))
    connection.commit()
    connection.close()

    store = SqliteStore(path)
    store.connect()
    try:
        value = store.get("direct")
        assert value.metadata == {"a": 1, "tags": ["x", "y"]}
        assert value.created == now and value.modified == now
        assert value.size == 8
        with value as data:
            assert data.read() == b"row data"
        assert list(store.query_keys(a=1)) == ["direct"]
        store.set("written", (io.BytesIO(b"by the store"), {"b": [1, 2]}))
    finally:
        store.disconnect()

    # And what the store writes reads back as a dict through the converter.
    connection = sqlite3.connect(path, detect_types=sqlite3.PARSE_DECLTYPES)
    try:
        row = connection.execute(
            "SELECT metadata, data FROM store WHERE key = ?", ("written",)).fetchone()
    finally:
        connection.close()
    assert row == ({"b": [1, 2]}, b"by the store")


# ---------------------------------------------------------------------------
# The documented API, by introspection
# ---------------------------------------------------------------------------

_E = inspect.Parameter.empty
_BUFFER = ("buffer_size", 1048576)

#: name -> documented parameters (after self): a name, or a (name, default).
#: ``**`` marks a ``**kwargs`` parameter.  A callable may add optional
#: parameters after these (``event_manager=None`` for every store).
DOCUMENTED = {
    # abstract_store
    "abstract_store.StoreError": None,
    "abstract_store.AuthorizationError": None,
    "abstract_store.Value.iterdata": [_BUFFER, ("progress", None)],
    "abstract_store.Value.range": [("start", None), ("end", None)],
    "abstract_store.AbstractReadOnlyStore": [],
    "abstract_store.AbstractReadOnlyStore.connect": [("credentials", None)],
    "abstract_store.AbstractReadOnlyStore.disconnect": [],
    "abstract_store.AbstractReadOnlyStore.is_connected": [],
    "abstract_store.AbstractReadOnlyStore.info": [],
    "abstract_store.AbstractReadOnlyStore.get": ["key"],
    "abstract_store.AbstractReadOnlyStore.get_data": ["key"],
    "abstract_store.AbstractReadOnlyStore.get_data_range": ["key", ("start", None), ("end", None)],
    "abstract_store.AbstractReadOnlyStore.get_metadata": ["key", ("select", None)],
    "abstract_store.AbstractReadOnlyStore.exists": ["key"],
    "abstract_store.AbstractReadOnlyStore.multiget": ["keys"],
    "abstract_store.AbstractReadOnlyStore.multiget_data": ["keys"],
    "abstract_store.AbstractReadOnlyStore.multiget_metadata": ["keys", ("select", None)],
    "abstract_store.AbstractReadOnlyStore.query": [("select", None), "**"],
    "abstract_store.AbstractReadOnlyStore.query_keys": ["**"],
    "abstract_store.AbstractReadOnlyStore.glob": ["pattern"],
    "abstract_store.AbstractReadOnlyStore.to_file": ["key", "path", _BUFFER],
    "abstract_store.AbstractReadOnlyStore.to_bytes": ["key", _BUFFER],
    "abstract_store.AbstractStore.set": ["key", "value", _BUFFER],
    "abstract_store.AbstractStore.set_data": ["key", "data", _BUFFER],
    "abstract_store.AbstractStore.set_metadata": ["key", "metadata"],
    "abstract_store.AbstractStore.update_metadata": ["key", "metadata"],
    "abstract_store.AbstractStore.delete": ["key"],
    "abstract_store.AbstractStore.transaction": ["notes"],
    "abstract_store.AbstractStore.multiset": ["keys", "values", _BUFFER],
    "abstract_store.AbstractStore.multiset_data": ["keys", "datas", _BUFFER],
    "abstract_store.AbstractStore.multiset_metadata": ["keys", "metadatas"],
    "abstract_store.AbstractStore.multiupdate_metadata": ["keys", "metadatas"],
    "abstract_store.AbstractStore.from_file": ["key", "path", _BUFFER],
    "abstract_store.AbstractStore.from_bytes": ["key", "data", _BUFFER],
    "abstract_store.AbstractAuthorizingStore.get_permissions": ["key"],
    "abstract_store.AbstractAuthorizingStore.set_permissions": ["key", "permissions"],
    "abstract_store.AbstractAuthorizingStore.update_permissions": ["key", "permissions"],
    # events
    "events.StoreEvent": [("source", None), "**"],
    "events.StoreTransactionEvent": [("source", None), "**"],
    "events.StoreTransactionStartEvent": [("source", None), "**"],
    "events.StoreTransactionEndEvent": [("source", None), "**"],
    "events.StoreKeyEvent": [("source", None), "**"],
    "events.StoreModificationEvent": [("source", None), "**"],
    "events.StoreSetEvent": [("source", None), "**"],
    "events.StoreUpdateEvent": [("source", None), "**"],
    "events.StoreDeleteEvent": [("source", None), "**"],
    "events.StoreProgressEvent": [("source", None), "**"],
    "events.StoreProgressStartEvent": [("source", None), "**"],
    "events.StoreProgressStepEvent": [("source", None), "**"],
    "events.StoreProgressEndEvent": [("source", None), "**"],
    # utils
    "utils.add_context_manager_support": ["obj"],
    "utils.buffer_iterator": ["filelike", _BUFFER, ("progress", None), ("max_bytes", None)],
    "utils.BufferIteratorIO": ["iterator"],
    "utils.BufferIteratorIO.close": [],
    "utils.BufferIteratorIO.read": ["buffer_size"],
    "utils.hashing_file.read": ["nbytes"],
    "utils.tee": ["filelike", ("n", 2), _BUFFER],
    "utils.hashing_file": ["filelike", "hash"],
    "utils.DummyTransactionContext": ["store"],
    "utils.SimpleTransactionContext": ["store"],
    "utils.SimpleTransactionContext.begin": [],
    "utils.SimpleTransactionContext.commit": [],
    "utils.SimpleTransactionContext.rollback": [],
    "utils.StoreProgressManager": [("event_manager", None), ("source", None),
                                   ("operation_id", None),
                                   ("message", "Performing operation"), ("steps", -1), "**"],
    # values
    "string_value.StringValue": [("data", b""), ("metadata", None), ("created", None),
                                 ("modified", None)],
    "file_value.FileValue": ["path", ("metadata", None)],
    "url_value.URLValue": ["url", ("metadata", None), ("opener", None)],
    "url_value.URLValue.open": [],
    # stores
    "dict_memory_store.DictMemoryStore": [],
    "sqlite_store.SqliteStore": [("location", ":memory:"), ("table", "store"),
                                 ("index", "dynamic"), ("index_columns", None)],
    "filesystem_store.FileSystemStore": ["path", ("magic_fname", ".FSStore")],
    "filesystem_store.FileSystemStoreError": None,
    "filesystem_store.init_shared_store": ["path", ("magic_fname", ".FSStore")],
    "locking_filesystem_store.LockingFileSystemStore": [
        "path", ("force_lock_timeout", 10.0), ("magic_fname", ".FSStore"),
        ("remote_event_poll_interval", 5.0), ("max_time_delta", timedelta(minutes=1))],
    "locking_filesystem_store.LockingFileSystemStore.get_modified_keys": ["since"],
    "locking_filesystem_store.locking": ["function", ("recurse", True), ("shared", False)],
    "locking_filesystem_store.write_log": ["func", ("event", "w")],
    "locking_filesystem_store.transact": ["function", ("on_commit", True)],
    "dynamic_url_store.RequestsURLValue": [
        "session", "base_url", "key", ("url_format", "{base}/{key}/{part}"),
        ("parts", {"data": "data", "metadata": "metadata", "permissions": "auth"})],
    "dynamic_url_store.RequestsURLValue.open": [],
    "static_url_store.basic_auth_factory": ["**"],
    "simple_auth_store.SimpleAuthStore.transaction": ["notes"],
    "file_lock.LockError": None,
    "file_lock.FileLock": ["name", ("dir", None), ("poll_interval", 0.01), ("timeout", 0),
                           ("force_timeout", 0), ("uid", None), ("data", None)],
    "file_lock.SharedFileLock": ["name", ("dir", None), ("poll_interval", 0.01),
                                 ("timeout", 0), ("force_timeout", 0), ("uid", None)],
    # the bundled mixins
    "tests.abstract_test.create_file_like_data": ["data_bytes"],
    "tests.abstract_test.temp_dir": [],
    "tests.abstract_test.StoreReadTestMixin.utils_large": [],
    "tests.abstract_test.StoreReadTestMixin": None,
    "tests.abstract_test.StoreWriteTestMixin": None,
}

for _name in ("acquire", "release", "locked", "acquired", "force_break", "wait", "get_data"):
    DOCUMENTED["file_lock.FileLock." + _name] = []
    DOCUMENTED["file_lock.SharedFileLock." + _name] = []

#: Methods every concrete store must offer with the abstract signature.
_STORE_METHODS = [name.rsplit(".", 1)[1] for name in DOCUMENTED
                  if name.startswith(("abstract_store.AbstractReadOnlyStore.",
                                      "abstract_store.AbstractStore."))]

#: Attributes named by the manual (properties, class attributes).
ATTRIBUTES = {
    "abstract_store.Value": ["data", "metadata", "permissions", "size", "created", "modified"],
    "abstract_store.AbstractAuthorizingStore": ["user_tag"],
    "events.StoreModificationEvent": ["action"],
    "events.StoreSetEvent": ["action"],
    "utils.StoreProgressManager": ["StartEventType", "StepEventType", "EndEventType"],
    "tests.abstract_test.StoreReadTestMixin": ["resolution"],
    "tests.abstract_test.StoreWriteTestMixin": ["resolution"],
}


def _resolve(name):
    module_name, _, rest = name.partition(".")
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module("encore.storage." + ".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(name)


def _check_signature(name, obj, documented):
    parameters = list(inspect.signature(obj).parameters.values())
    if not isinstance(obj, type) and parameters and parameters[0].name in ("self", "cls"):
        parameters = parameters[1:]
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    wanted = [item for item in documented if item != "**"]
    assert len(positional) >= len(wanted), (name, inspect.signature(obj))
    for parameter, item in zip(positional, wanted):
        expected_name, default = (item, _E) if isinstance(item, str) else item
        assert parameter.name == expected_name, (name, inspect.signature(obj))
        if default is not _E:
            assert parameter.default == default, (name, parameter)
            assert type(parameter.default) is type(default), (name, parameter)
    for parameter in positional[len(wanted):]:
        assert parameter.default is not _E, ("extra required parameter", name, parameter)
    if "**" in documented:
        assert any(p.kind is p.VAR_KEYWORD for p in parameters), (name, "no **kwargs")


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_documented_signatures(name):
    obj = _resolve(name)
    documented = DOCUMENTED[name]
    if documented is not None:
        _check_signature(name, obj, documented)


@pytest.mark.parametrize("name", sorted(ATTRIBUTES))
def test_documented_attributes(name):
    obj = _resolve(name)
    for attribute in ATTRIBUTES[name]:
        assert hasattr(obj, attribute), (name, attribute)


@pytest.mark.parametrize("store_name", [
    "dict_memory_store.DictMemoryStore",
    "sqlite_store.SqliteStore",
    "filesystem_store.FileSystemStore",
    "locking_filesystem_store.LockingFileSystemStore",
])
def test_stores_keep_the_abstract_signatures(store_name):
    cls = _resolve(store_name)
    assert "event_manager" in inspect.signature(cls).parameters
    assert inspect.signature(cls).parameters["event_manager"].default is None
    for method in _STORE_METHODS:
        for prefix in ("abstract_store.AbstractReadOnlyStore.", "abstract_store.AbstractStore."):
            if prefix + method in DOCUMENTED:
                _check_signature(store_name + "." + method, getattr(cls, method),
                                 DOCUMENTED[prefix + method])


def test_event_hierarchy():
    from encore.events.progress_events import ProgressStartEvent
    from encore.storage import events

    assert [cls.__name__ for cls in events.StoreProgressStartEvent.__mro__[:-2]] == [
        "StoreProgressStartEvent", "ProgressStartEvent", "StoreProgressEvent",
        "ProgressEvent", "StoreKeyEvent", "StoreEvent"]
    assert issubclass(events.StoreProgressStartEvent, ProgressStartEvent)
    assert [events.StoreSetEvent.action, events.StoreUpdateEvent.action,
            events.StoreDeleteEvent.action] == ["set", "update", "delete"]
    assert issubclass(events.StoreTransactionStartEvent, events.StoreTransactionEvent)
    assert issubclass(events.StoreTransactionEvent, events.StoreEvent)
