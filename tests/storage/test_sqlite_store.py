"""Tests of SqliteStore: every bundled conformance mixin for an in-memory and
a file database, plus the behaviour specific to the SQLite store (layout,
JSON metadata, index columns, transactions, WAL, threads, large values)."""
import io
import json
import os
import pickle
import shutil
import sqlite3
import tempfile
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import pytest

from encore.events.event_manager import EventManager
from encore.storage import sqlite_store
from encore.storage.abstract_store import StoreError
from encore.storage.events import (
    StoreProgressEndEvent,
    StoreProgressEvent,
    StoreProgressStartEvent,
    StoreProgressStepEvent,
    StoreSetEvent,
    StoreUpdateEvent,
)
from encore.storage.sqlite_store import SqliteStore, SqliteValue
from encore.storage.string_value import StringValue
from encore.storage.tests.abstract_test import (
    EventRecorder,
    PatternFile,
    pattern_digest,
    store_test_cases,
)

# ---------------------------------------------------------------------------
# The conformance mixins, for a memory and a file database
# ---------------------------------------------------------------------------


def _memory_store(index="dynamic"):
    """Make a store in a private in-memory database."""
    def make(test):
        return SqliteStore(index=index, event_manager=EventManager())
    return make


def _file_store(index="dynamic"):
    """Make a store in a new database file."""
    def make(test):
        directory = tempfile.mkdtemp(prefix="encore_sqlite_test_")
        test.addCleanup(shutil.rmtree, directory, True)
        return SqliteStore(os.path.join(directory, "store.db"), index=index,
                           event_manager=EventManager())
    return make


_ATTRIBUTES = {
    # Spans many buffers and the blob path, while keeping the suite fast.
    "LargeValues": {"large_value_size": 16 << 20},
    "Concurrency": {"concurrency_rounds": 15},
}

globals().update(store_test_cases(_memory_store(), "TestMemory", attributes=_ATTRIBUTES))
globals().update(store_test_cases(_file_store(), "TestFile", attributes=_ATTRIBUTES))
# The read mixin again, without the metadata index.
globals().update(store_test_cases(_memory_store(index=None), "TestMemoryUnindexed", include=["Read"]))
globals().update(store_test_cases(_file_store(index=None), "TestFileUnindexed", include=["Read"]))


# ---------------------------------------------------------------------------
# Fixtures for the specific tests
# ---------------------------------------------------------------------------


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "test.db")


@pytest.fixture
def file_store(db_path, event_manager):
    store = SqliteStore(db_path, event_manager=event_manager)
    store.connect()
    yield store
    store.disconnect()


@pytest.fixture(params=["memory", "file"])
def store(request, tmp_path, event_manager):
    location = ":memory:" if request.param == "memory" else str(tmp_path / "param.db")
    store = SqliteStore(location, event_manager=event_manager)
    store.connect()
    yield store
    store.disconnect()


def put(store, key, data=b"", metadata=None):
    store.set(key, (io.BytesIO(data), {} if metadata is None else metadata))


def raw_connection(path):
    return sqlite3.connect(path, isolation_level=None)


def index_table_rows(path, table="store"):
    """The rows of a table's companion index table, as {key: {column: value}}."""
    with raw_connection(path) as connection:
        cursor = connection.execute(
            'SELECT * FROM "{}"'.format((table + "__encore_index").replace('"', '""')))
        names = [description[0] for description in cursor.description]
        return {row[0]: dict(zip(names[1:], row[1:])) for row in cursor}


def reference_query(store, **criteria):
    """The keys matching criteria, computed in Python from all metadata."""
    return sorted(
        key for key, metadata in store.query()
        if all(metadata.get(name) == value for name, value in criteria.items())
    )


# ---------------------------------------------------------------------------
# Layout, connection and description
# ---------------------------------------------------------------------------


def test_table_has_encores_layout_and_metadata_is_json(file_store, db_path):
    put(file_store, "k", b"data", {"a": [1, 2.5, None], "b": {"c": "d"}, "e": "\u00e9"})
    with raw_connection(db_path) as connection:
        columns = [(row[1], row[2].lower()) for row in connection.execute("PRAGMA table_info(store)")]
        row = connection.execute("SELECT key, metadata, typeof(metadata), created, modified, data "
                                 "FROM store").fetchone()
    assert columns == [("key", "text"), ("metadata", "dict"), ("created", "float"),
                       ("modified", "float"), ("data", "blob")]
    key, metadata, kind, created, modified, data = row
    assert (key, kind, data) == ("k", "text", b"data")
    assert json.loads(metadata) == {"a": [1, 2.5, None], "b": {"c": "d"}, "e": "\u00e9"}
    assert isinstance(created, float) and created == modified


def test_wal_mode_for_file_databases(file_store, db_path):
    put(file_store, "k")
    with raw_connection(db_path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_info_and_connection_state(db_path):
    store = SqliteStore(db_path, table="things", index=None)
    assert not store.is_connected()
    with pytest.raises(StoreError):
        store.get("k")
    store.connect()
    store.connect()  # connecting again does nothing
    assert store.is_connected()
    info = store.info()
    assert info["readonly"] is False and info["authorizing"] is False
    assert info["location"] == db_path and info["table"] == "things"
    assert info["index"] is None
    store.disconnect()
    assert not store.is_connected()
    with pytest.raises(StoreError):
        store.exists("k")


def test_memory_database_is_private_and_ends_with_disconnect():
    first, second = SqliteStore(), SqliteStore()
    first.connect()
    second.connect()
    put(first, "k")
    assert not second.exists("k")
    first.disconnect()
    first.connect()
    assert not first.exists("k")
    first.disconnect()
    second.disconnect()


def test_existing_table_with_another_layout_is_refused(db_path):
    with raw_connection(db_path) as connection:
        connection.execute("CREATE TABLE store (key text, value blob)")
    with pytest.raises(StoreError, match="metadata"):
        SqliteStore(db_path).connect()


def test_bad_constructor_arguments():
    for table, error in ((None, TypeError), ("", ValueError), ("a\x00b", ValueError),
                         ("sqlite_master", ValueError)):
        with pytest.raises(error):
            SqliteStore(table=table)
    with pytest.raises(TypeError):
        SqliteStore(index_columns="name")
    with pytest.raises(TypeError):
        SqliteStore(index_columns=[1])


def test_relative_path_resolved_at_construction(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = SqliteStore("relative.db")
    store.connect()
    put(store, "k", b"v")
    os.mkdir(str(tmp_path / "elsewhere"))
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert store.to_bytes("k") == b"v"  # a new reader connection opens the same file
    store.disconnect()
    assert os.path.exists(str(tmp_path / "relative.db"))


# ---------------------------------------------------------------------------
# Reopening a database
# ---------------------------------------------------------------------------


def test_reopen_keeps_data_metadata_times_and_index_columns(db_path):
    store = SqliteStore(db_path)
    store.connect()
    put(store, "a", b"alpha", {"kind": "letter", "n": 1})
    put(store, "big", bytes(range(256)) * 8192, {"kind": "blob"})
    created = store.get("a").created
    assert store.index_columns == ["kind", "n"]
    store.disconnect()

    again = SqliteStore(db_path)
    again.connect()
    assert again.index_columns == ["kind", "n"]
    assert again.to_bytes("a") == b"alpha"
    assert again.to_bytes("big") == bytes(range(256)) * 8192
    assert again.get_metadata("a") == {"kind": "letter", "n": 1}
    assert again.get("a").created == created
    # Writing an already indexed name must not try to add its column again.
    put(again, "b", b"beta", {"kind": "letter", "n": 2})
    assert sorted(again.query_keys(kind="letter")) == ["a", "b"]
    assert list(again.query_keys(n=2)) == ["b"]
    again.disconnect()


def test_reopen_unindexed_database_as_dynamic_fills_new_columns(db_path):
    store = SqliteStore(db_path, index=None)
    store.connect()
    for i in range(5):
        put(store, "k%d" % i, b"", {"parity": i % 2, "other": "x"})
    assert store.index_columns == []
    store.disconnect()

    dynamic = SqliteStore(db_path)
    dynamic.connect()
    put(dynamic, "k5", b"", {"parity": 1})
    assert dynamic.index_columns == ["parity"]
    # The old rows were put in the new column when it was created.
    assert sorted(dynamic.query_keys(parity=1)) == ["k1", "k3", "k5"]
    assert sorted(dynamic.query_keys(other="x")) == ["k0", "k1", "k2", "k3", "k4"]
    assert index_table_rows(db_path)["k3"] == {"md_parity": "1"}
    dynamic.disconnect()


# ---------------------------------------------------------------------------
# Index modes
# ---------------------------------------------------------------------------


def test_dynamic_index_adds_columns_and_partial_indexes(file_store, db_path):
    put(file_store, "a", b"", {"colour": "red", "size": 3})
    file_store.set_metadata("b", {"colour": "blue", "Shape": "round"})
    assert file_store.index_columns == ["Shape", "colour", "size"]
    with raw_connection(db_path) as connection:
        indexes = {row[1] for row in connection.execute(
            "PRAGMA index_list(store__encore_index)")}
        plan = " ".join(row[3] for row in connection.execute(
            "EXPLAIN QUERY PLAN SELECT key FROM store__encore_index WHERE md_colour = ?",
            ('"red"',)))
    assert "store__encore_index:md_colour" in indexes
    assert "store__encore_index:md_colour" in plan
    assert list(file_store.query_keys(colour="red")) == ["a"]
    assert list(file_store.query_keys(Shape="round")) == ["b"]


@pytest.mark.parametrize("index", ["fixed", True, 1, "yes"])
def test_fixed_index_creates_only_the_given_columns(db_path, index):
    seed = SqliteStore(db_path, index=None)
    seed.connect()
    put(seed, "old", b"", {"tag": "t", "other": 1})
    seed.disconnect()

    store = SqliteStore(db_path, index=index, index_columns=["tag", "missing"])
    store.connect()
    assert store.info()["index"] == "fixed"
    assert store.index_columns == ["missing", "tag"]
    put(store, "new", b"", {"tag": "t", "unlisted": 5})
    assert store.index_columns == ["missing", "tag"]
    assert sorted(store.query_keys(tag="t")) == ["new", "old"]
    assert list(store.query_keys(unlisted=5)) == ["new"]
    assert list(store.query_keys(missing=None, other=1)) == ["old"]
    store.disconnect()


@pytest.mark.parametrize("index", [None, False, ""])
def test_no_index_creates_no_columns(db_path, index):
    store = SqliteStore(db_path, index=index)
    store.connect()
    put(store, "a", b"", {"x": 1})
    assert store.index_columns == []
    assert store.info()["index"] is None
    assert list(store.query_keys(x=1)) == ["a"]
    with raw_connection(db_path) as connection:
        tables = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert tables == ["store"]
    store.disconnect()


def test_unindexed_store_keeps_existing_columns_in_sync(db_path):
    dynamic = SqliteStore(db_path)
    dynamic.connect()
    put(dynamic, "a", b"", {"x": 1})
    dynamic.disconnect()
    plain = SqliteStore(db_path, index=None)
    plain.connect()
    assert plain.index_columns == ["x"]
    plain.set_metadata("a", {"x": 2})
    put(plain, "b", b"", {"x": 1})
    plain.disconnect()
    dynamic.connect()
    assert list(dynamic.query_keys(x=1)) == ["b"]
    assert list(dynamic.query_keys(x=2)) == ["a"]
    dynamic.disconnect()


def test_two_tables_in_one_database_index_the_same_name(db_path):
    first = SqliteStore(db_path, table="one")
    second = SqliteStore(db_path, table="two")
    first.connect()
    second.connect()
    put(first, "a", b"", {"shared": 1})
    put(second, "b", b"", {"shared": 1})
    assert list(first.query_keys(shared=1)) == ["a"]
    assert list(second.query_keys(shared=1)) == ["b"]
    first.disconnect()
    second.disconnect()


def test_columns_added_by_another_connection_are_maintained(db_path):
    first = SqliteStore(db_path)
    second = SqliteStore(db_path)
    first.connect()
    second.connect()
    put(second, "b", b"", {"late": "x"})  # second creates the column
    put(first, "a", b"", {"late": "x"})   # first must notice it and fill it
    assert sorted(second.query_keys(late="x")) == ["a", "b"]
    first.set_metadata("a", {"late": "y"})
    assert list(second.query_keys(late="x")) == ["b"]
    assert list(second.query_keys(late="y")) == ["a"]
    first.disconnect()
    second.disconnect()


def test_index_columns_rolled_back_with_their_transaction(store):
    put(store, "a", b"", {"kept": 1})
    with pytest.raises(RuntimeError):
        with store.transaction("failing"):
            put(store, "b", b"", {"transient": 1})
            assert list(store.query_keys(transient=1)) == ["b"]
            raise RuntimeError("undo")
    assert store.index_columns == ["kept"]
    put(store, "c", b"", {"transient": 2})
    assert store.index_columns == ["kept", "transient"]
    assert list(store.query_keys(transient=2)) == ["c"]


# ---------------------------------------------------------------------------
# Index columns stay in sync with every write path
# ---------------------------------------------------------------------------


def assert_index_agrees(store, criteria_list):
    for criteria in criteria_list:
        assert sorted(store.query_keys(**criteria)) == reference_query(store, **criteria), criteria
        assert sorted(key for key, _ in store.query(**criteria)) == reference_query(store, **criteria)


def test_index_in_sync_after_every_write_path(store):
    checks = [{"c": 1}, {"c": 2}, {"c": 3}, {"d": "x"}, {"c": 1, "d": "x"}, {"e": True}]
    put(store, "s", b"", {"c": 1, "d": "x"})
    assert_index_agrees(store, checks)
    store.set_data("s", io.BytesIO(b"data"))                       # keeps metadata
    store.set_data("new_data", io.BytesIO(b"data"))                # new key, {} metadata
    assert_index_agrees(store, checks)
    store.set_metadata("s", {"c": 2})                              # drops d
    store.set_metadata("new_meta", {"c": 1, "e": True})            # new key
    assert_index_agrees(store, checks)
    store.update_metadata("s", {"d": "x"})
    store.update_metadata("new_meta", {"c": 3})
    assert_index_agrees(store, checks)
    store.multiset(["m1", "m2", "s"], [(io.BytesIO(b""), {"c": 1}), (io.BytesIO(b""), {"d": "x"}),
                                       (io.BytesIO(b""), {"c": 3})])
    assert_index_agrees(store, checks)
    store.multiset_metadata(["m1", "m3"], [{"c": 2}, {"c": 2, "d": "x"}])
    store.multiupdate_metadata(["m2", "m3"], [{"c": 1}, {"d": "y"}])
    store.multiset_data(["m1", "m4"], [io.BytesIO(b"1"), io.BytesIO(b"4")])
    assert_index_agrees(store, checks)
    store.set_metadata("m1", {})
    store.delete("m2")
    assert_index_agrees(store, checks)
    # The final state, spelled out.
    assert sorted(store.query_keys(c=2)) == ["m3"]
    assert sorted(store.query_keys(c=3)) == ["new_meta", "s"]
    assert list(store.query_keys(c=1)) == []
    assert list(store.query_keys(d="x")) == []
    assert list(store.query_keys(d="y")) == ["m3"]
    assert list(store.query_keys(e=True)) == ["new_meta"]


def test_deleted_key_leaves_the_index(file_store, db_path):
    put(file_store, "a", b"", {"x": 1})
    file_store.delete("a")
    assert index_table_rows(db_path) == {}
    put(file_store, "a", b"", {"y": 1})
    assert list(file_store.query_keys(x=1)) == []


def test_multiset_with_repeated_keys_keeps_the_last(store):
    store.multiset(["k", "k", "j"], [(io.BytesIO(b"1"), {"v": 1}), (io.BytesIO(b"2"), {"w": 2}),
                                     (io.BytesIO(b"3"), {"v": 1})])
    assert store.to_bytes("k") == b"2"
    assert store.get_metadata("k") == {"w": 2}
    assert list(store.query_keys(v=1)) == ["j"]
    assert list(store.query_keys(w=2)) == ["k"]


# ---------------------------------------------------------------------------
# Query semantics
# ---------------------------------------------------------------------------

SEMANTIC_VALUES = {
    "int1": 1, "float1": 1.0, "true": True, "int0": 0, "false": False, "float0": 0.0,
    "negzero": -0.0, "half": 0.5, "str1": "1", "strtrue": "true", "none": None,
    "big": 2 ** 53 + 1, "bigfloat": float(2 ** 53), "huge": 10 ** 30, "hugefloat": 1e30,
    "list": [1, 2.0, True], "list2": [1.0, 2, 1], "nested": [[1], {"a": 1.0}],
    "dict": {"b": 1, "a": [2]}, "dict2": {"a": [2.0], "b": True}, "empty": [],
    "emptydict": {}, "unicode": "\u00e9\U0001F600", "quote": 'say "hi"\n',
}
QUERY_VALUES = list(SEMANTIC_VALUES.values()) + [
    2, 1.5, (1, 2.0, True), [1, 2], {"a": [2]}, "", float(2 ** 53 + 1), {1, 2}, object(),
    float("nan"), -1, "missing",
]


@pytest.mark.parametrize("index", ["dynamic", None])
def test_query_matches_python_equality(tmp_path, index):
    store = SqliteStore(str(tmp_path / "q.db"), index=index)
    store.connect()
    for key, value in SEMANTIC_VALUES.items():
        put(store, key, b"", {"v": value, "tag": key})
    put(store, "absent", b"", {"tag": "absent"})
    if index == "dynamic":
        assert store.index_columns == ["tag", "v"]
    for value in QUERY_VALUES:
        expected = reference_query(store, v=value)
        assert sorted(store.query_keys(v=value)) == expected, value
        assert sorted(key for key, _ in store.query(v=value)) == expected, value
    # Python semantics checked by hand on a few cases.
    assert sorted(store.query_keys(v=1)) == ["float1", "int1", "true"]
    assert sorted(store.query_keys(v=0)) == ["false", "float0", "int0", "negzero"]
    assert sorted(store.query_keys(v=None)) == ["absent", "none"]
    assert sorted(store.query_keys(v=[1, 2, 1])) == ["list", "list2"]
    assert sorted(store.query_keys(v={"a": [2], "b": 1})) == ["dict", "dict2"]
    assert list(store.query_keys(v=(1, 2.0, True))) == []
    assert list(store.query_keys(v=2 ** 53)) == ["bigfloat"]
    assert list(store.query_keys(v=10 ** 30)) == ["huge"]
    store.disconnect()


def test_queries_with_all_and_some_arguments_indexed(store):
    for i in range(20):
        put(store, "k%02d" % i, b"x" * i, {"mod2": i % 2, "mod3": i % 3, "name": "n%d" % i})
    assert sorted(store.query_keys(mod2=0, mod3=0)) == ["k00", "k06", "k12", "k18"]
    assert sorted(key for key, _ in store.query(mod2=1, mod3=2)) == ["k05", "k11", "k17"]
    assert list(store.query(select=["name", "nothing"], mod2=1, mod3=2, name="n11")) == [
        ("k11", {"name": "n11"})]
    assert list(store.query_keys(mod2=0, name="n1")) == []
    assert sorted(store.query_keys(mod2=0, unknown=None))[:2] == ["k00", "k02"]


def test_query_keys_reads_no_data_nor_metadata_when_all_indexed(file_store):
    for i in range(5):
        put(file_store, "k%d" % i, b"x" * 100, {"n": i, "m": "y"})
    statements = []
    original = file_store._rows

    def recording(sql, parameters):
        statements.append(sql)
        return original(sql, parameters)

    file_store._rows = recording
    assert list(file_store.query_keys(n=3, m="y")) == ["k3"]
    assert list(file_store.query_keys(n=3, unindexed=None)) == ["k3"]
    assert list(file_store.query(n=3)) == [("k3", {"n": 3, "m": "y"})]
    fields = [sql.split(" FROM ")[0] for sql in statements]
    assert fields == ["SELECT t.key", "SELECT t.key, t.metadata", "SELECT t.key, t.metadata"]


def test_query_is_lazy_and_survives_writes_while_iterating(store):
    count = 600  # more than one fetch batch
    store.multiset(["k%04d" % i for i in range(count)],
                   [(io.BytesIO(b""), {"group": "a"}) for _ in range(count)])
    seen = []
    for key in store.query_keys(group="a"):
        seen.append(key)
        if len(seen) % 25 == 1:  # a few commits are enough (each one syncs)
            store.set_metadata(key, {"group": "b"})  # writes while iterating
            assert store.get_metadata(key) == {"group": "b"}  # and reads its own writes
    assert sorted(seen) == ["k%04d" % i for i in range(count)]
    assert len(list(store.query_keys(group="a"))) == count - 24


def test_glob_uses_prefix_and_matches_exactly(store):
    keys = ["photo/a.jpg", "photo/b.png", "photo", "photos/c.jpg", "other/photo/d.jpg",
            "photo[1].jpg", "\U0010ffff\U0010ffffx", "\U0010ffffy"]
    for key in keys:
        put(store, key)
    assert sorted(store.glob("photo/*.jpg")) == ["photo/a.jpg"]
    assert sorted(store.glob("photo*")) == ["photo", "photo/a.jpg", "photo/b.png",
                                             "photo[1].jpg", "photos/c.jpg"]
    assert list(store.glob("photo[[]1].jpg")) == ["photo[1].jpg"]
    assert list(store.glob("photo")) == ["photo"]
    assert sorted(store.glob("\U0010ffff*")) == ["\U0010ffffy", "\U0010ffff\U0010ffffx"]
    assert sorted(store.glob("*photo*")) == sorted(k for k in keys if "photo" in k)


# ---------------------------------------------------------------------------
# Names cannot inject SQL
# ---------------------------------------------------------------------------

HOSTILE = 'x"; DROP TABLE store; --'


def test_hostile_table_name(db_path):
    normal = SqliteStore(db_path)
    normal.connect()
    put(normal, "a", b"safe", {"k": 1})
    hostile = SqliteStore(db_path, table=HOSTILE)
    hostile.connect()
    put(hostile, "b", b"data", {"k": 2, HOSTILE: HOSTILE})
    hostile.set_metadata("b", {"k": 3, HOSTILE: 1})
    assert list(hostile.query_keys(k=3)) == ["b"]
    assert list(hostile.query_keys(**{HOSTILE: 1})) == ["b"]
    assert list(hostile.glob("*")) == ["b"]
    hostile.delete("b")
    put(hostile, "big", b"z" * (3 << 20))  # the blob path takes the raw table name
    assert hostile.to_bytes("big") == b"z" * (3 << 20)
    assert normal.to_bytes("a") == b"safe"
    assert list(normal.query_keys(k=1)) == ["a"]
    with raw_connection(db_path) as connection:
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"store", "store__encore_index", HOSTILE, HOSTILE + "__encore_index"}
    hostile.disconnect()
    normal.disconnect()


@pytest.mark.parametrize("name", [
    HOSTILE, "key", "KEY", "Key", "metadata", "data", "rowid", "md_x", "mdx_00",
    "with space", "", "\u00e9", "a.b", "select", "'", '"', "x\x00y", "\ud800",
])
def test_awkward_metadata_names_are_indexed_safely(db_path, name):
    store = SqliteStore(db_path)
    store.connect()
    # Neighbours whose columns a careless name mapping would confuse.
    neighbours = {other: 0 for other in ("md_x", "KEY", "key", "data") if other != name}
    put(store, "a", b"", dict(neighbours, **{name: "v"}))
    put(store, "b", b"", dict(neighbours, **{name: "w"}))
    assert name in store.index_columns
    assert list(store.query_keys(**{name: "v"})) == ["a"]
    assert list(store.query_keys(**{name: "w"})) == ["b"]
    store.disconnect()
    again = SqliteStore(db_path)
    again.connect()
    assert name in again.index_columns
    assert list(again.query_keys(**{name: "w"})) == ["b"]
    again.disconnect()


def test_names_differing_in_case_have_distinct_columns(store):
    put(store, "a", b"", {"Name": 1, "name": 2, "NAME": 3})
    assert list(store.query_keys(Name=1)) == ["a"]
    assert list(store.query_keys(name=2)) == ["a"]
    assert list(store.query_keys(NAME=1)) == []
    assert store.index_columns == ["NAME", "Name", "name"]


# ---------------------------------------------------------------------------
# JSON, never pickle
# ---------------------------------------------------------------------------


class _Exploit(object):
    """Unpickling this creates a directory: the proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def insert_raw(path, key, metadata_blob, data=b""):
    with raw_connection(path) as connection:
        connection.execute("INSERT INTO store VALUES (?, ?, 1.0, 1.0, ?)",
                           (key, sqlite3.Binary(metadata_blob), data))


def test_pickled_rows_are_never_unpickled_by_default(db_path, tmp_path):
    marker = str(tmp_path / "pwned")
    store = SqliteStore(db_path)
    store.connect()
    put(store, "json", b"", {"ok": True})
    insert_raw(db_path, "evil", pickle.dumps({"x": _Exploit(marker)}, protocol=2))
    insert_raw(db_path, "legacy", pickle.dumps({"x": 1}, protocol=2))
    for call in (lambda: store.get_metadata("evil"), lambda: store.get("legacy"),
                 lambda: list(store.query()), lambda: store.update_metadata("legacy", {})):
        with pytest.raises(StoreError, match="legacy_pickle"):
            call()
    assert store.get_metadata("json") == {"ok": True}
    put(store, "new", b"", {"fresh": 1})
    # Rows cannot be read, so 'fresh' is not indexed: a query on it reads
    # the rows and fails on the first unreadable one, naming it.
    assert "fresh" not in store.index_columns
    with pytest.raises(StoreError, match="key '(evil|legacy)'.*legacy_pickle"):
        list(store.query_keys(fresh=1))
    assert not os.path.exists(marker)
    store.disconnect()


def test_legacy_database_opens_only_with_the_opt_in(tmp_path):
    path = str(tmp_path / "legacy.db")
    marker = str(tmp_path / "pwned")
    with raw_connection(path) as connection:
        connection.execute("CREATE TABLE store (key text primary key, metadata dict, "
                           "created float, modified float, data blob)")
    insert_raw(path, "a", pickle.dumps({"name": "old", "n": 1, "t": (1, 2)}, protocol=2), b"A")
    insert_raw(path, "b", pickle.dumps({"n": _Exploit(marker)}, protocol=2), b"B")
    with pytest.raises(StoreError, match="legacy_pickle=True"):
        SqliteStore(path).connect()

    store = SqliteStore(path, legacy_pickle=True)
    store.connect()
    assert store.get_metadata("a") == {"name": "old", "n": 1, "t": [1, 2]}
    assert store.to_bytes("a") == b"A"
    with pytest.raises(StoreError, match="refusing"):
        store.get_metadata("b")
    assert not os.path.exists(marker)
    store.update_metadata("a", {"n": 2})  # rewritten as Encore 0.8 reads it
    with raw_connection(path) as connection:
        kind, blob = connection.execute("SELECT typeof(metadata), metadata FROM store "
                                        "WHERE key = 'a'").fetchone()
    assert kind == "blob" and blob[:2] == b"\x80\x02"
    assert pickle.loads(blob, encoding="ascii") == {"name": "old", "n": 2, "t": [1, 2]}
    store.disconnect()


def test_registered_adapter_and_converter_use_json(file_store, db_path):
    with sqlite3.connect(db_path, detect_types=sqlite3.PARSE_DECLTYPES) as connection:
        connection.execute("INSERT INTO store VALUES (?, ?, ?, ?, ?)",
                           ("direct", {"inserted": "directly", "n": [1, 2]}, 1.0, 2.0, b"raw"))
        connection.commit()
        metadata, kind = connection.execute(
            "SELECT metadata, typeof(metadata) FROM store WHERE key = 'direct'").fetchone()
    assert metadata == {"inserted": "directly", "n": [1, 2]} and kind == "text"
    assert file_store.get_metadata("direct") == {"inserted": "directly", "n": [1, 2]}
    assert file_store.to_bytes("direct") == b"raw"
    value = file_store.get("direct")
    assert (value.created, value.modified, value.size) == (1.0, 2.0, 3)
    # Encore 0.8's pickles are read, through the restricted unpickler.
    assert sqlite_store.convert_dict(pickle.dumps({"a": 1}, protocol=2)) == {"a": 1}
    with pytest.raises(ValueError, match="refusing"):
        sqlite_store.convert_dict(pickle.dumps({"a": _Exploit("/nonexistent/x")}, protocol=2))
    assert sqlite_store._convert_dict(b'{"a": 1}') == {"a": 1}


def test_rows_with_null_metadata_or_data(file_store, db_path):
    with raw_connection(db_path) as connection:
        connection.execute("INSERT INTO store (key) VALUES ('bare')")
    assert file_store.get_metadata("bare") == {}
    assert file_store.to_bytes("bare") == b""
    assert file_store.get_data("bare").read() == b""
    assert file_store.get("bare").size == 0


# ---------------------------------------------------------------------------
# Transactions
# ---------------------------------------------------------------------------


def test_transaction_commits_and_rolls_back(store):
    put(store, "a", b"1", {"n": 1})
    with store.transaction("commit"):
        put(store, "b", b"2", {"n": 2})
        store.delete("a")
    assert sorted(store.query_keys()) == ["b"]
    with pytest.raises(KeyError):
        with store.transaction("rollback"):
            put(store, "c", b"3", {"n": 3})
            store.update_metadata("b", {"n": 20})
            store.delete("missing")
    assert sorted(store.query_keys()) == ["b"]
    assert store.get_metadata("b") == {"n": 2}
    assert list(store.query_keys(n=20)) == []


def test_failed_write_inside_a_transaction_undoes_only_itself(store):
    with store.transaction("outer"):
        put(store, "a", b"1", {"n": 1})
        with pytest.raises(OSError):
            store.set("b", (BrokenStream(b"x" * (3 << 20)), {"n": 2}))
        with pytest.raises(KeyError):
            store.update_metadata("missing", {"n": 3})
        assert not store.exists("b")
    assert store.to_bytes("a") == b"1"
    assert sorted(store.query_keys()) == ["a"]


class BrokenStream(object):
    """Yields data, then fails (after the inline limit, on the spool path)."""

    def __init__(self, data, fail_at=None):
        self._data = io.BytesIO(data)
        self._fail_at = len(data) - 1 if fail_at is None else fail_at

    def read(self, size=-1):
        if self._data.tell() >= self._fail_at:
            raise OSError("broken")
        return self._data.read(min(size, self._fail_at - self._data.tell()))


def test_single_writes_emit_after_commit(store, event_manager):
    seen = []

    def listener(event):
        # The write is committed and visible from another thread.
        with ThreadPoolExecutor(1) as executor:
            seen.append(executor.submit(store.exists, event.key).result(timeout=10))

    event_manager.connect(StoreSetEvent, listener)
    put(store, "k")
    assert seen == [True]


def test_multi_writes_are_one_transaction(store):
    put(store, "a", b"a", {"n": 1})
    with pytest.raises(KeyError):
        store.multiupdate_metadata(["a", "missing"], [{"n": 2}, {"n": 3}])
    assert store.get_metadata("a") == {"n": 1}
    with pytest.raises(OSError):
        store.multiset(["x", "y"], [(io.BytesIO(b"x"), {}), (BrokenStream(b"yy", 1), {})])
    assert not store.exists("x")
    with pytest.raises(OSError):
        store.multiset_data(["a", "z"], [io.BytesIO(b"new"), BrokenStream(b"zz", 1)])
    assert store.to_bytes("a") == b"a"


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------


def test_file_readers_never_see_an_open_transaction(file_store):
    written, read_done = threading.Event(), threading.Event()
    results = []

    def reader():
        assert written.wait(10)
        results.append((file_store.exists("k"), list(file_store.query_keys(n=1))))
        read_done.set()

    thread = threading.Thread(target=reader)
    thread.start()
    with file_store.transaction("slow"):
        put(file_store, "k", b"v", {"n": 1})
        written.set()
        assert read_done.wait(10)  # the reader ran while this was uncommitted
    thread.join(10)
    assert not thread.is_alive()
    assert results == [(False, [])]
    assert file_store.exists("k")


def test_memory_readers_wait_for_an_open_transaction():
    store = SqliteStore()
    store.connect()
    written, reading = threading.Event(), threading.Event()
    with ThreadPoolExecutor(1) as executor:
        def reader():
            assert written.wait(10)
            reading.set()
            return store.exists("k"), store.get_metadata("k")

        future = executor.submit(reader)
        with store.transaction("slow"):
            put(store, "k", b"v", {"n": 1})
            written.set()
            assert reading.wait(10)
            # A window for the reader to (wrongly) read before the commit.
            threading.Event().wait(0.05)
            assert not future.done()
        assert future.result(timeout=10) == (True, {"n": 1})
    store.disconnect()


def test_open_stream_does_not_hide_later_writes(store):
    put(store, "big", b"b" * (3 << 20))
    stream = store.get_data("big")
    assert stream.read(10) == b"b" * 10
    put(store, "other", b"o", {"x": 1})
    assert store.to_bytes("other") == b"o"
    assert list(store.query_keys(x=1)) == ["other"]
    assert len(stream.read()) == (3 << 20) - 10
    stream.close()


def test_stream_reads_a_consistent_snapshot_while_rewritten(file_store):
    old = bytes(range(256)) * (12 << 10)  # 3 MiB
    put(file_store, "k", old)
    stream = file_store.get_data("k")
    first = stream.read(1 << 20)
    put(file_store, "k", b"n" * len(old))
    rest = stream.read()
    stream.close()
    assert first + rest == old
    assert file_store.to_bytes("k") == b"n" * len(old)


def test_memory_stream_of_a_rewritten_value_fails_cleanly():
    store = SqliteStore()
    store.connect()
    put(store, "k", b"o" * (3 << 20))
    stream = store.get_data("k")
    assert stream.read(10) == b"o" * 10
    put(store, "k", b"n" * (3 << 20))
    with pytest.raises(StoreError, match="changed or deleted"):
        stream.read()
    stream.close()
    assert store.to_bytes("k") == b"n" * (3 << 20)
    store.disconnect()


def test_streams_from_many_threads(file_store):
    data = {("k%d" % i): bytes([i]) * ((2 << 20) + i) for i in range(4)}
    for key, value in data.items():
        put(file_store, key, value)

    def read(key):
        with file_store.get_data(key) as stream:
            parts = []
            while True:
                chunk = stream.read(65536)
                if not chunk:
                    return b"".join(parts)
                parts.append(chunk)

    with ThreadPoolExecutor(4) as executor:
        futures = {key: executor.submit(read, key) for key in data for _ in range(3)}
        for key, future in futures.items():
            assert future.result(timeout=30) == data[key]


def test_disconnect_closes_reader_connections(file_store):
    put(file_store, "k", b"k" * (2 << 20))
    stream = file_store.get_data("k")
    assert file_store._readers
    file_store.disconnect()
    assert not file_store._readers
    with pytest.raises(Exception):
        stream.read()
    stream.close()
    file_store.connect()


# ---------------------------------------------------------------------------
# Large values
# ---------------------------------------------------------------------------


def traced_peak(call):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_metadata_change_of_a_large_value_is_bounded(store):
    size = 20 << 20
    store.set("large", (PatternFile(size), {"v": 1}))
    created = store.get("large").created
    assert traced_peak(lambda: store.set_metadata("large", {"v": 2})) < (4 << 20)
    assert traced_peak(lambda: store.update_metadata("large", {"w": 3})) < (4 << 20)
    value = store.get("large")
    assert value.metadata == {"v": 2, "w": 3}
    assert value.created == created and value.size == size
    assert list(store.query_keys(v=2, w=3)) == ["large"]
    with value as stream:
        digest = __import__("hashlib").sha1()
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    assert digest.hexdigest() == pattern_digest(size)


def test_value_of_large_data_refuses_to_mix_versions(store):
    put(store, "k", b"a" * (2 << 20), {"v": 1})
    value = store.get("k")
    assert isinstance(value, SqliteValue) and value.size == 2 << 20
    assert value.range(-3).read() == b"aaa"
    put(store, "k", b"b" * (2 << 20), {"v": 2})
    with pytest.raises(StoreError, match="get"):
        value.data
    store.delete("k")
    with pytest.raises(StoreError):
        value.range(0, 10)


def test_value_with_wrong_size_is_refused_and_changes_nothing(store):
    put(store, "k", b"old", {"v": 1})
    for claimed in ((2 << 20) - 1, (2 << 20) + 1):
        value = StringValue(b"x" * (2 << 20), {"v": 2})
        value.size = claimed
        value.__class__ = _OpaqueStringValue
        with pytest.raises(StoreError, match="size"):
            store.set("k", value)
        assert store.to_bytes("k") == b"old"
        assert store.get_metadata("k") == {"v": 1}


class _OpaqueStringValue(StringValue):
    """A StringValue whose stream hides its size (not seekable)."""

    @property
    def data(self):
        return _Unseekable(self._bytes)


class _Unseekable(io.RawIOBase):
    def __init__(self, data):
        super().__init__()
        self._stream = io.BytesIO(data)

    def readable(self):
        return True

    def read(self, size=-1):
        return self._stream.read(size)


def test_large_value_over_itself(store):
    data = bytes(range(256)) * (8 << 10)  # 2 MiB
    put(store, "k", data, {"v": 1})
    store.set("k", store.get("k"))
    assert store.to_bytes("k") == data
    assert store.get_metadata("k") == {"v": 1}


def test_from_file_progress_uses_the_known_size(store, event_manager, tmp_path):
    path = str(tmp_path / "source")
    size = 3 << 20
    with open(path, "wb") as stream:
        stream.write(b"p" * size)
    with EventRecorder(event_manager, store, StoreProgressEvent) as recorder:
        store.from_file("k", path, buffer_size=256 << 10)
    starts = recorder.of_type(StoreProgressStartEvent)
    steps = recorder.of_type(StoreProgressStepEvent)
    ends = recorder.of_type(StoreProgressEndEvent)
    assert len(starts) == 1 and len(ends) == 1 and starts[0].steps == size
    assert [event.step for event in steps] == [(i + 1) * (256 << 10) for i in range(12)]
    assert store.to_bytes("k") == b"p" * size


def test_without_incremental_blob_io(store, monkeypatch):
    monkeypatch.setattr(sqlite_store, "_BLOB_IO", False)
    data = bytes(range(256)) * (12 << 10)  # 3 MiB
    store.set("k", (io.BytesIO(data), {"v": 1}))
    store.set_data("j", PatternFile(3 << 20))
    assert store.to_bytes("k") == data
    assert store.get_data("k").read() == data
    assert store.get_data_range("k", 10, 20).read() == data[10:20]
    value = store.get("k")
    assert value.size == len(data) and value.range(-5).read() == data[-5:]
    store.set_metadata("k", {"v": 2})
    assert store.to_bytes("k") == data and list(store.query_keys(v=2)) == ["k"]


def test_data_streams_are_seekable(store):
    data = bytes(range(256)) * (8 << 10) + b"tail"
    put(store, "k", data)
    with store.get_data("k") as stream:
        assert stream.seekable()
        stream.seek(-4, io.SEEK_END)
        assert stream.read() == b"tail"
        stream.seek(256)
        assert stream.read(3) == bytes([0, 1, 2])
        assert stream.tell() == 259
    with store.get_data_range("k", 256, 512) as stream:
        assert stream.read() == bytes(range(256))


def test_set_value_from_another_store(store, tmp_path):
    other = SqliteStore(str(tmp_path / "other.db"))
    other.connect()
    data = bytes(range(256)) * (10 << 10)
    put(other, "src", data, {"from": "other"})
    store.set("dst", other.get("src"))
    assert store.to_bytes("dst") == data
    assert store.get_metadata("dst") == {"from": "other"}
    other.disconnect()


def test_events_of_set_carry_existence_and_metadata(store, event_manager):
    with EventRecorder(event_manager, store) as recorder:
        put(store, "k", b"1", {"a": 1})
        put(store, "k", b"2", {"b": 2})
        store.multiset(["k", "j"], [(io.BytesIO(b"3"), {"c": 3}), (io.BytesIO(b"4"), {})])
    assert [(type(e), e.key, e.metadata) for e in recorder.modifications()] == [
        (StoreSetEvent, "k", {"a": 1}), (StoreUpdateEvent, "k", {"b": 2}),
        (StoreUpdateEvent, "k", {"c": 3}), (StoreSetEvent, "j", {}),
    ]


def test_failed_multiset_emits_nothing(store, event_manager):
    with EventRecorder(event_manager, store) as recorder:
        with pytest.raises(OSError):
            store.multiset(["a", "b", "c"], [(io.BytesIO(b"a"), {"n": 1}),
                                             (io.BytesIO(b"b"), {"n": 2}),
                                             (BrokenStream(b"cc", 1), {"n": 3})])
    assert recorder.modifications() == []
    assert list(store.query_keys()) == []


def test_multi_write_events_arrive_after_commit(store, event_manager):
    seen = []

    def listener(event):
        with ThreadPoolExecutor(1) as executor:
            seen.append((event.key, executor.submit(store.exists, "b").result(timeout=10)))

    event_manager.connect(StoreSetEvent, listener)
    store.multiset(["a", "b"], [(io.BytesIO(b"a"), {}), (io.BytesIO(b"b"), {})])
    store.multiset_metadata(["c"], [{"x": 1}])
    assert seen == [("a", True), ("b", True), ("c", True)]


def test_transaction_cannot_begin_inside_a_write(store, event_manager, tmp_path):
    path = str(tmp_path / "source")
    with open(path, "wb") as stream:
        stream.write(b"s" * (3 << 20))
    errors = []

    def listener(event):
        # Progress steps of a known-size value come while its blob is filled,
        # inside the write's transaction.
        try:
            with store.transaction("inside"):
                pass
        except StoreError as error:
            errors.append(error)

    event_manager.connect(StoreProgressStepEvent, listener)
    store.from_file("k", path)
    assert len(errors) == 3
    assert store.to_bytes("k") == b"s" * (3 << 20)


def test_large_streams_read_lines(store):
    lines = [b"line %d\n" % i for i in range(200000)]
    put(store, "text", b"".join(lines))
    assert store.get("text").size > sqlite_store.INLINE_LIMIT
    with store.get_data("text") as stream:
        assert stream.readline() == b"line 0\n"
        assert list(stream)[-1] == b"line 199999\n"
