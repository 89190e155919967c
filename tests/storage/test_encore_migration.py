"""Migrating from Encore 0.8: its test classes, and the data it wrote, both ways.

The Encore 0.8 stores used here are laid out in the tests themselves, from
the formats documented in the migration notes (a FileSystemStore directory
of ``<key>.data`` / ``<key>.metadata`` files named after the keys; an SQLite
table whose metadata column holds ``pickle.dumps(metadata, protocol=2)`` and
whose index columns hold the pickled values).  After encore writes, the
data is read back the way Encore 0.8 reads it.
"""
from __future__ import annotations

import datetime
import decimal
import hashlib
import inspect
import io
import json
import os
import pickle
import pickletools
import sqlite3
import unittest
import uuid

import pytest

from encore.storage import _metadata_codec
from encore.storage.abstract_store import StoreError
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.filesystem_store import FileSystemStore, init_shared_store
from encore.storage.sqlite_store import SqliteStore, adapt_dict, convert_dict
from encore.storage.tests import abstract_test
from encore.storage.tests.abstract_test import (
    StoreReadTestMixin,
    StoreWriteTestMixin,
    create_file_like_data,
    metadata_type_samples,
    populate,
    read_fixture,
    store_test_cases,
    write_fixture,
)

ON_WINDOWS = os.name == "nt"


# ---------------------------------------------------------------------------
# Encore 0.8 test classes keep working: names, super() calls, helpers
# ---------------------------------------------------------------------------

ENCORE_READ_TESTS = [
    "test_get", "test_get_copies", "test_get_data", "test_get_data_range",
    "test_get_metadata", "test_get_metadata_select", "test_get_metadata_select_missing",
    "test_exists", "test_multiget", "test_multiget_data", "test_multiget_metadata",
    "test_query1", "test_query1_keys", "test_query2", "test_query2_keys", "test_query_copy",
    "test_query_empty", "test_query_keys_empty", "test_query_select_missing", "test_glob",
    "test_to_bytes", "test_to_file", "test_to_file_large", "test_utils_large",
]
ENCORE_WRITE_TESTS = [
    "test_set", "test_set_copies", "test_set_large", "test_set_buffer", "test_set_data",
    "test_set_data_large", "test_set_data_buffer", "test_set_metadata", "test_update_metadata",
    "test_delete", "test_multiset", "test_multiset_overwrite", "test_multiset_data",
    "test_multiset_metadata", "test_from_file", "test_from_bytes",
]


@pytest.mark.parametrize("mixin, names", [(StoreReadTestMixin, ENCORE_READ_TESTS),
                                          (StoreWriteTestMixin, ENCORE_WRITE_TESTS)])
def test_mixins_keep_every_encore_test_name(mixin, names):
    missing = [name for name in names if not callable(getattr(mixin, name, None))]
    assert missing == []


def test_create_file_like_data_keeps_encore_parameter_name():
    assert list(inspect.signature(create_file_like_data).parameters) == ["data_bytes"]
    assert create_file_like_data(data_bytes=b"abc").read() == b"abc"


class EncoreStyleDictStoreReadTest(unittest.TestCase, StoreReadTestMixin):
    """Written as for Encore 0.8: overrides tests and calls super()."""

    def setUp(self):
        self.store = DictMemoryStore()
        self.store.connect()
        populate(self.store, read_fixture())
        self.calls = []

    def utils_large(self):
        # Encore 0.8's hook: the large value is 'test3'.
        self.calls.append("utils_large")
        self.store.set("test3", (create_file_like_data(b"test4" * 10 ** 7), {}))

    def test_get_copies(self):
        super().test_get_copies()
        self.assertIsNot(self.store.get_metadata("test1"), self.store.get_metadata("test1"))

    def test_query1(self):
        super().test_query1()
        self.assertEqual(len(list(self.store.query(query_test1="value"))), 10)

    def test_query2_keys(self):
        super().test_query2_keys()

    def test_query_select_missing(self):
        super().test_query_select_missing()

    def test_to_file_large(self):
        super().test_to_file_large()
        self.assertEqual(self.calls, ["utils_large"])
        self.assertEqual(self.store.get("test3").size, 5 * 10 ** 7)


class EncoreStyleDictStoreWriteTest(unittest.TestCase, StoreWriteTestMixin):
    """Encore 0.8's own dict-store test overrides test_set_data and calls super()."""

    def setUp(self):
        self.store = DictMemoryStore()
        self.store.connect()
        populate(self.store, write_fixture())

    def test_set_data(self):
        super().test_set_data()
        self.assertEqual(self.store.to_bytes("existing_key0"), b"new data")

    def test_set_copies(self):
        super().test_set_copies()
        self.assertEqual(self.store.get_metadata("test3"), {"a_str": "test5", "an_int": 3})

    def test_set_buffer(self):
        super().test_set_buffer()

    def test_set_data_buffer(self):
        super().test_set_data_buffer()

    def test_multiset_overwrite(self):
        super().test_multiset_overwrite()
        self.assertEqual(self.store.get_metadata("existing_key9"), {"over": 9})


def test_an_overridden_encore_test_can_fail():
    """The mixin tests called through super() really check the store."""
    class Broken(DictMemoryStore):
        def get_metadata(self, key, select=None):
            metadata = super().get_metadata(key, select)
            metadata["bogus"] = True  # a selected-out name leaks through
            return metadata

    class Case(EncoreStyleDictStoreReadTest):
        def setUp(self):
            super().setUp()
            self.store = Broken()
            self.store.connect()
            populate(self.store, read_fixture())

    result = unittest.TestResult()
    Case("test_get_metadata_select_missing").run(result)
    assert len(result.failures) == 1
    result = unittest.TestResult()
    EncoreStyleDictStoreReadTest("test_get_metadata_select_missing").run(result)
    assert result.wasSuccessful()


# ---------------------------------------------------------------------------
# Metadata value types beyond JSON, in every store
# ---------------------------------------------------------------------------

# store_test_cases builds StoreMetadataTypesTestMixin's case for every store
# in that store's own test module (TestMemoryMetadataTypes and
# TestFileMetadataTypes of SqliteStore, the dictionary and file-system stores,
# the composites, S3Store).  Here: the SQLite variants those modules leave out.

def _sqlite_file(**options):
    def make(test):
        directory = abstract_test.temp_dir()
        path = directory.__enter__()
        test.addCleanup(directory.__exit__, None, None, None)
        return SqliteStore(os.path.join(path, "types.db"), **options)
    return make


globals().update(store_test_cases(_sqlite_file(index=None), "TestSqliteUnindexed",
                                  include=["MetadataTypes"]))
globals().update(store_test_cases(_sqlite_file(legacy_pickle=True), "TestSqliteLegacyPickle",
                                  include=["MetadataTypes"]))


def test_tagged_json_form_is_documented_and_stable():
    samples = {
        "when": datetime.datetime(2011, 3, 4, 5, 6, 7, 8),
        "day": datetime.date(2011, 3, 4),
        "at": datetime.time(1, 2, 3, tzinfo=datetime.timezone.utc),
        "price": decimal.Decimal("1.50"),
        "blob": b"\x00\xff",
        "tags": {"b", "a"},
        "frozen": frozenset(),
        "id": uuid.UUID(int=1),
        "lookalike": {"$encore:set": [1]},
    }
    text = _metadata_codec.encode_metadata(samples)
    assert json.loads(text) == {
        "when": {"$encore:datetime": "2011-03-04T05:06:07.000008"},
        "day": {"$encore:date": "2011-03-04"},
        "at": {"$encore:time": "01:02:03+00:00"},
        "price": {"$encore:decimal": "1.50"},
        "blob": {"$encore:bytes": "AP8="},
        "tags": {"$encore:set": ["a", "b"]},
        "frozen": {"$encore:frozenset": []},
        "id": {"$encore:uuid": "00000000-0000-0000-0000-000000000001"},
        "lookalike": {"$encore:dict": ["$encore:set", [1]]},
    }
    assert _metadata_codec.decode_metadata(text) == samples
    assert _metadata_codec.from_json(json.loads(text)) == samples
    fold = datetime.datetime(2020, 11, 1, 1, 30, fold=1)
    back = _metadata_codec.decode_metadata(_metadata_codec.encode_metadata({"t": fold}))["t"]
    assert back == fold and back.fold == 1


@pytest.mark.parametrize("text", [
    '{"a": {"$encore:nonsense": 1}}',
    '{"a": {"$encore:date": "2020-13-01"}}',
    '{"a": {"$encore:bytes": "***"}}',
    '{"a": {"$encore:set": [[1]]}}',
    '{"a": {"$encore:decimal": 5}}',
])
def test_malformed_tagged_values_are_errors(text):
    with pytest.raises(ValueError, match="tagged value"):
        _metadata_codec.decode_metadata(text)


def test_time_zones_are_kept_as_their_offset():
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        zone = zoneinfo.ZoneInfo("Europe/Paris")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database on this machine")
    store = DictMemoryStore()
    moment = datetime.datetime(2021, 7, 1, 12, tzinfo=zone)
    store.set_metadata("k", {"t": moment})
    stored = store.get_metadata("k")["t"]
    assert stored == moment and stored.utcoffset() == datetime.timedelta(hours=2)
    assert type(stored.tzinfo) is datetime.timezone


def test_adapt_and_convert_dict():
    samples = metadata_type_samples()
    text = adapt_dict(samples)
    assert isinstance(text, str) and convert_dict(text.encode("utf-8")) == samples
    assert convert_dict(pickle.dumps(samples, protocol=2)) == samples
    with pytest.raises(TypeError, match="at a"):
        adapt_dict({"a": object()})


# ---------------------------------------------------------------------------
# A FileSystemStore directory written by Encore 0.8
# ---------------------------------------------------------------------------

ENCORE_FS_KEYS = [
    "plain", "café", "日本語", "naïve résumé", "emoji \U0001F600", "a:b", "star*", "what?",
    'say "hi"', "<tag>", "pipe|x", "back\\slash", "tab\there", "100%", "%zz", "x%4",
    "50%4g", "dir/inner", "dir/café",
]
if ON_WINDOWS:  # names Windows cannot hold: Encore 0.8 could not have written them there
    ENCORE_FS_KEYS = [key for key in ENCORE_FS_KEYS
                      if not any(character in key for character in ':*?"<>|\\\t')]


def write_encore_fs_store(root, keys):
    """Lay out a FileSystemStore directory as Encore 0.8 wrote it."""
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".FSStore"), "wb") as stream:
        stream.write(b"__version__ = 0\n")
    for number, key in enumerate(keys):
        stem = os.path.normpath(os.path.join(root, key))
        os.makedirs(os.path.dirname(stem), exist_ok=True)
        with open(stem + ".metadata", "wb") as stream:
            stream.write(json.dumps({"n": number, "key": key}, ensure_ascii=False).encode("utf-8"))
        with open(stem + ".data", "wb") as stream:
            stream.write(key.encode("utf-8") * 3)


def encore_fs_query_keys(root):
    """The keys Encore 0.8 lists: top-level ``*.metadata`` not starting with '.'."""
    return sorted(name[: -len(".metadata")] for name in os.listdir(root)
                  if name.endswith(".metadata") and not name.startswith("."))


def encore_fs_get(root, key):
    stem = os.path.normpath(os.path.join(root, key))
    with open(stem + ".data", "rb") as stream:
        data = stream.read()
    with open(stem + ".metadata", "rb") as stream:
        metadata = json.loads(stream.read().decode("utf-8"))
    return data, metadata


def files_under(root):
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            if name.startswith(".~") and name.endswith(".writer"):
                continue  # a writer marker (stays while its writer runs)
            found.append(os.path.relpath(os.path.join(directory, name), root).replace(os.sep, "/"))
    return sorted(found)


def test_encore_filesystem_store_is_read_as_is(tmp_path):
    root = str(tmp_path / "encore_fs")
    write_encore_fs_store(root, ENCORE_FS_KEYS)
    store = FileSystemStore(root)
    store.connect()
    assert sorted(store.query_keys()) == sorted(ENCORE_FS_KEYS)
    for number, key in enumerate(ENCORE_FS_KEYS):
        assert store.exists(key), key
        assert store.get_metadata(key) == {"n": number, "key": key}
        assert store.to_bytes(key) == key.encode("utf-8") * 3
        assert list(store.query_keys(key=key)) == [key]
    assert sorted(store.glob("*é*")) == sorted(key for key in ENCORE_FS_KEYS if "é" in key)


def test_encore_keys_are_overwritten_in_place(tmp_path):
    root = str(tmp_path / "encore_fs")
    write_encore_fs_store(root, ENCORE_FS_KEYS)
    before = files_under(root)
    store = FileSystemStore(root)
    store.connect()
    for key in ENCORE_FS_KEYS:
        store.set(key, (io.BytesIO(b"new " + key.encode("utf-8")), {"rewritten": key}))
        store.update_metadata(key, {"more": 1})
    assert files_under(root) == before  # no second copy of any key
    assert sorted(store.query_keys()) == sorted(ENCORE_FS_KEYS)
    for key in ENCORE_FS_KEYS:
        # ... and Encore 0.8 reads the new values under the same names.
        assert encore_fs_get(root, key) == (b"new " + key.encode("utf-8"),
                                            {"rewritten": key, "more": 1})
    top_level = [key for key in ENCORE_FS_KEYS if "/" not in key]
    assert encore_fs_query_keys(root) == sorted(top_level)


def test_new_keys_are_readable_by_encore(tmp_path):
    root = str(tmp_path / "store")
    init_shared_store(root)
    store = FileSystemStore(root)
    store.connect()
    keys = ["fresh", "überall", "中文 key", "percent 100%", "dot.ted", "dir/sub"]
    if not ON_WINDOWS:
        keys += ["colon:x", "quote\"d", "question?"]
    os.makedirs(os.path.join(root, "dir"), exist_ok=True)
    for key in keys:
        store.set(key, (io.BytesIO(key.encode("utf-8")), {"k": key, "list": [1, 2.5]}))
    for key in keys:
        assert encore_fs_get(root, key) == (key.encode("utf-8"), {"k": key, "list": [1, 2.5]})
    assert encore_fs_query_keys(root) == sorted(key for key in keys if "/" not in key)


def test_ambiguous_percent_names_as_documented(tmp_path):
    # An Encore 0.8 key with '%' before two upper-case hex digits: its file
    # name reads as an escape, so it is not listed until renamed.
    root = str(tmp_path / "encore_fs")
    write_encore_fs_store(root, ["50%41", "ok"])
    store = FileSystemStore(root)
    store.connect()
    assert list(store.query_keys()) == ["ok"]
    assert not store.exists("50%41") and not store.exists("50A")
    for suffix in (".data", ".metadata"):
        os.rename(os.path.join(root, "50%41" + suffix), os.path.join(root, "50%2541" + suffix))
    assert sorted(store.query_keys()) == ["50%41", "ok"]
    assert store.get_metadata("50%41") == {"n": 0, "key": "50%41"}


def test_metadata_types_in_filesystem_files_are_tagged_json(tmp_path):
    root = str(tmp_path / "store")
    init_shared_store(root)
    store = FileSystemStore(root)
    store.connect()
    store.set_metadata("k", {"when": datetime.date(2020, 1, 2), "name": "é"})
    with open(os.path.join(root, "k.metadata"), "rb") as stream:
        raw = stream.read().decode("utf-8")
    assert json.loads(raw) == {"when": {"$encore:date": "2020-01-02"}, "name": "é"}
    assert "é" in raw  # written as Encore 0.8 did: ensure_ascii=False


# ---------------------------------------------------------------------------
# An SQLite database written by Encore 0.8, shared both ways
# ---------------------------------------------------------------------------

LEGACY_VALUES = {
    "datetime": datetime.datetime(2012, 5, 6, 7, 8, 9, 123456),
    "datetime_utc": datetime.datetime(2012, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
    "date": datetime.date(1999, 12, 31),
    "time": datetime.time(23, 59, 58, 999),
    "decimal": decimal.Decimal("3.14159"),
    "decimal_int": decimal.Decimal("42"),
    "bytes": b"\x00\x80\xff raw",
    "bytes_empty": b"",
    "set": {1, 2, "three"},
    "set_empty": set(),
    "frozenset": frozenset({"x", b"y"}),
    "uuid": uuid.UUID("87654321-4321-8765-4321-876543218765"),
    "tuple": (1, "two"),
    "nested": {"when": [datetime.date(2000, 1, 1), decimal.Decimal("0.5")]},
    "unicode": "naïve",
    "int": 7,
    "float": 2.5,
}

#: The globals Encore 0.8's metadata pickles (protocol 2) may name.
ENCORE_PICKLE_GLOBALS = {
    "_codecs encode", "__builtin__ set", "__builtin__ frozenset", "__builtin__ bytes",
    "datetime datetime", "datetime date", "datetime time", "datetime timezone",
    "datetime timedelta", "decimal Decimal", "uuid UUID",
}


def expected_read(value):
    """What a value reads back as (tuples are lists, as in JSON)."""
    if isinstance(value, tuple):
        return [expected_read(item) for item in value]
    if isinstance(value, list):
        return [expected_read(item) for item in value]
    if isinstance(value, dict):
        return {name: expected_read(item) for name, item in value.items()}
    return value


def encore_pickle(value):
    return pickle.dumps(value, protocol=2)


def make_encore_database(path, rows, index_columns=("kind",)):
    """Lay out an SQLite database as Encore 0.8 wrote it (dynamic index columns included)."""
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE store (key text primary key, metadata dict, "
                       "created float, modified float, data blob, notes text)")
    for column in index_columns:
        connection.execute('ALTER TABLE store ADD COLUMN "{0}" blob'.format(column))
        connection.execute('CREATE INDEX "{0}" ON store ("{0}")'.format(column))
    for key, metadata, data in rows:
        connection.execute(
            "INSERT INTO store (key, metadata, created, modified, data{}) VALUES (?, ?, ?, ?, ?{})"
            .format("".join(', "{}"'.format(column) for column in index_columns),
                    ", ?" * len(index_columns)),
            [key, sqlite3.Binary(encore_pickle(metadata)), 1e9, 1e9 + 1, sqlite3.Binary(data)]
            + [sqlite3.Binary(encore_pickle(metadata[column])) if column in metadata else None
               for column in index_columns])
    connection.commit()
    connection.close()


def legacy_rows():
    rows = [("typed", dict(LEGACY_VALUES, kind="typed"), b"typed data")]
    for name, value in LEGACY_VALUES.items():
        rows.append(("one_" + name, {"value": value, "kind": "one"}, name.encode()))
    rows.append(("plain", {"kind": "plain", "n": 1}, b""))
    return rows


def encore_reads(path):
    """Read every row as Encore 0.8 does: unpickle (encoding='ascii') each metadata."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT key, metadata, data FROM store").fetchall()
        found = {}
        for key, raw, data in rows:
            assert isinstance(raw, bytes), key
            found[key] = (pickle.loads(raw, encoding="ascii"), bytes(data or b""))
        return found
    finally:
        connection.close()


def encore_index_query(path, column, value):
    """An indexed query as Encore 0.8 runs it: the column compared as pickled bytes."""
    connection = sqlite3.connect(path)
    try:
        sql = 'SELECT key FROM store WHERE "{}" = ?'.format(column)
        return sorted(row[0] for row in connection.execute(sql, [encore_pickle(value)]))
    finally:
        connection.close()


def pickle_globals(raw):
    found = set()
    strings = []
    for opcode, argument, _ in pickletools.genops(raw):
        if opcode.name == "GLOBAL":
            found.add(argument)
        elif opcode.name == "STACK_GLOBAL":
            found.add(" ".join(strings[-2:]))
        elif "UNICODE" in opcode.name:
            strings.append(argument)
    return found


def snapshot(directory):
    result = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as stream:
            result[name] = hashlib.sha256(stream.read()).hexdigest()
    return result


def test_refusing_a_legacy_database_changes_nothing_on_disk(tmp_path):
    path = str(tmp_path / "encore.db")
    make_encore_database(path, legacy_rows())
    before = snapshot(str(tmp_path))
    for index in ("dynamic", None):
        with pytest.raises(StoreError, match="legacy_pickle=True"):
            SqliteStore(path, index=index, index_columns=["kind"]).connect()
    assert snapshot(str(tmp_path)) == before  # no WAL switch, no index table, no side files
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert [row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")] == ["store"]
    connection.close()


def test_legacy_database_values_read_exactly(tmp_path):
    path = str(tmp_path / "encore.db")
    rows = legacy_rows()
    make_encore_database(path, rows)
    store = SqliteStore(path, legacy_pickle=True)
    store.connect()
    try:
        for key, metadata, data in rows:
            got = store.get_metadata(key)
            assert got == expected_read(metadata), key
            for name, value in metadata.items():
                assert type(got[name]) is type(expected_read(value)), (key, name)
            assert store.to_bytes(key) == data
        assert sorted(store.query_keys(kind="one")) == sorted(
            key for key, metadata, _ in rows if metadata["kind"] == "one")
        for name, value in LEGACY_VALUES.items():
            if name == "tuple":
                value = list(value)
            assert "one_" + name in list(store.query_keys(value=value)), name
    finally:
        store.disconnect()


def test_encore_still_reads_and_queries_every_row_after_we_wrote(tmp_path):
    path = str(tmp_path / "encore.db")
    make_encore_database(path, legacy_rows())
    store = SqliteStore(path, legacy_pickle=True)
    store.connect()
    new_metadata = {"kind": "new", "when": datetime.datetime(2030, 1, 1), "tags": {"a"},
                    "price": decimal.Decimal("9.99"), "raw": b"\x01"}
    store.set("new_key", (io.BytesIO(b"new data"), new_metadata))
    store.update_metadata("typed", {"kind": "updated", "extra": datetime.date(2024, 2, 29)})
    store.set_metadata("plain", {"n": 2})  # no 'kind' any more
    store.set_data("data_only", io.BytesIO(b"only data"))
    store.multiset(["multi0", "multi1"],
                   [(io.BytesIO(b"m0"), {"kind": "multi", "u": uuid.UUID(int=5)}),
                    (io.BytesIO(b"m1"), {"kind": "multi"})])
    store.from_bytes("one_int", b"changed data")
    store.set_metadata("notes", {"notes": "a metadata name, not an index column"})
    assert store.info()["index_columns"] == []  # a legacy store keeps no index of its own
    store.disconnect()

    connection = sqlite3.connect(path)
    tables = [row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")]
    columns = [row[1] for row in connection.execute("PRAGMA table_info(store)")]
    raws = dict(connection.execute("SELECT key, metadata FROM store"))
    notes = connection.execute("SELECT notes FROM store WHERE key = 'notes'").fetchone()[0]
    connection.close()
    assert notes is None  # a column that is not one of Encore's index columns is left alone
    assert tables == ["store"]  # nothing Encore 0.8's connect() could trip over
    assert columns == ["key", "metadata", "created", "modified", "data", "notes", "kind"]
    for key, raw in raws.items():
        assert raw[:2] == b"\x80\x02", key  # protocol 2, as Encore 0.8 wrote
        assert pickle_globals(raw) <= ENCORE_PICKLE_GLOBALS, key

    found = encore_reads(path)  # Encore 0.8's reading of every row (its connect() does this too)
    assert found["new_key"] == (new_metadata, b"new data")
    typed = dict(LEGACY_VALUES, kind="updated", extra=datetime.date(2024, 2, 29))
    typed["tuple"] = list(typed["tuple"])
    assert found["typed"][0] == typed
    assert found["plain"] == ({"n": 2}, b"")
    assert found["data_only"] == ({}, b"only data")
    assert found["multi0"][0] == {"kind": "multi", "u": uuid.UUID(int=5)}
    assert found["one_int"] == ({"value": 7, "kind": "one"}, b"changed data")

    # Encore 0.8's indexed queries compare the pickled column: kept up to date.
    assert encore_index_query(path, "kind", "new") == ["new_key"]
    assert encore_index_query(path, "kind", "updated") == ["typed"]
    assert encore_index_query(path, "kind", "multi") == ["multi0", "multi1"]
    assert encore_index_query(path, "kind", "plain") == []
    assert encore_index_query(path, "kind", "one") == sorted(
        "one_" + name for name in LEGACY_VALUES)

    # And we read it all back.
    store = SqliteStore(path, legacy_pickle=True)
    store.connect()
    assert store.get_metadata("new_key") == new_metadata
    assert sorted(store.query_keys(kind="multi")) == ["multi0", "multi1"]
    store.disconnect()


def test_restricted_unpickler_refuses_code(tmp_path):
    path = str(tmp_path / "encore.db")
    make_encore_database(path, [("ok", {"kind": "x"}, b"")])
    marker = str(tmp_path / "pwned")
    connection = sqlite3.connect(path)
    payload = b"\x80\x02cposix\nmkdir\nq\x00X" + len(marker).to_bytes(4, "little") \
        + marker.encode() + b"\x85R}q\x01."
    connection.execute("INSERT INTO store (key, metadata) VALUES ('evil', ?)", [payload])
    connection.commit()
    connection.close()
    store = SqliteStore(path, legacy_pickle=True)
    store.connect()
    with pytest.raises(StoreError, match="'evil'.*refusing"):
        store.get_metadata("evil")
    with pytest.raises(StoreError, match="'evil'"):
        list(store.query(kind="x"))
    store.disconnect()
    assert not os.path.exists(marker)


def put_raw(path, key, metadata):
    connection = sqlite3.connect(path)
    connection.execute("INSERT INTO store (key, metadata, created, modified, data) "
                       "VALUES (?, ?, 1.0, 1.0, X'')", (key, metadata))
    connection.commit()
    connection.close()


@pytest.mark.parametrize("broken", ['{"a": ', "[1, 2]", '{"x": {"$encore:date": "nope"}}'])
def test_an_unreadable_row_fails_queries_naming_it_with_or_without_index(tmp_path, broken):
    path = str(tmp_path / "store.db")
    store = SqliteStore(path)
    store.connect()
    for i in range(5):
        store.set_metadata("k%d" % i, {"a": i})
    put_raw(path, "broken", broken)
    # Before any index on 'fresh' exists: the rows are read, the bad one fails.
    for call in (lambda: list(store.query_keys(fresh=1)), lambda: list(store.query(fresh=1)),
                 lambda: store.get_metadata("broken")):
        with pytest.raises(StoreError, match="'broken'"):
            call()
    # Writing a new name would build its index: it is not built over an
    # unreadable row, so queries keep failing the same way.
    store.set_metadata("k9", {"fresh": 1})
    assert "fresh" not in store.index_columns
    with pytest.raises(StoreError, match="'broken'"):
        list(store.query_keys(fresh=1))
    store.disconnect()
    # Reopened (the name is looked at again), and with a fixed index.
    store = SqliteStore(path, index_columns=["other"])
    store.connect()
    assert "other" not in store.index_columns
    store.set_metadata("k8", {"other": 1})
    with pytest.raises(StoreError, match="'broken'"):
        list(store.query_keys(other=1))
    # Once the row is gone, the name is indexed and queries succeed.
    store.delete("broken")
    store.disconnect()
    store = SqliteStore(path)
    store.connect()
    store.set_metadata("k7", {"fresh": 1})
    assert "fresh" in store.index_columns
    assert sorted(store.query_keys(fresh=1)) == ["k7", "k9"]
    store.disconnect()


def test_index_matches_python_equality_for_extra_types(tmp_path):
    store = SqliteStore(str(tmp_path / "q.db"))
    store.connect()
    values = {
        "dec2": decimal.Decimal("2"), "dec2.0": decimal.Decimal("2.000"), "int2": 2,
        "float2": 2.0, "true": True, "one": decimal.Decimal(1), "half": decimal.Decimal("0.5"),
        "fhalf": 0.5, "tenth": decimal.Decimal("0.1"), "ftenth": 0.1,
        "dt": datetime.datetime(2000, 1, 1, 12), "date": datetime.date(2000, 1, 1),
        "dt_utc": datetime.datetime(2000, 1, 1, 12, tzinfo=datetime.timezone.utc),
        "dt_plus1": datetime.datetime(2000, 1, 1, 13,
                                      tzinfo=datetime.timezone(datetime.timedelta(hours=1))),
        "time": datetime.time(1), "bytes": b"ab", "str": "ab", "uuid": uuid.UUID(int=3),
        "set": {1, 2}, "frozen": frozenset({1, 2}), "list": [1, 2],
        "listdec": [decimal.Decimal("1"), datetime.date(2000, 1, 1)],
    }
    for key, value in values.items():
        store.set_metadata(key, {"v": value})
    assert "v" in store.index_columns
    for query in list(values.values()) + [1, 0.1, decimal.Decimal("0.10"), [1, datetime.date(2000, 1, 1)]]:
        expected = sorted(key for key, value in values.items() if value == query)
        assert sorted(store.query_keys(v=query)) == expected, query
    store.disconnect()
