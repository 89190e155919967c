"""Unindexed SqliteStore queries: SQLite filters the JSON, Python decides.

Every query is compared with the same query on a DictMemoryStore holding the
same values, whose matching is plain Python ``metadata.get(name) == value``.
"""
from __future__ import annotations

import io
import sqlite3

import pytest

from encore.storage._sqlite_index import _scan_condition
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.sqlite_store import SqliteStore

VALUES = [
    1, 1.0, True, 0, 0.0, False, 2, 2.5, -1, 2 ** 62, 2 ** 70, 1e300, 1e16,
    "1", "a", "", "é", "quote\"d", "back\\slash", "[1]", "{\"a\":1}", "nul\x00",
    None, [1, 2], [1.0, 2], [True, 2], [], {"a": 1}, {"a": 1.0}, {"a": {"b": [1]}}, {},
]

CRITERIA = VALUES + [(1, 2), "missing", 3, [1, 2, 3], {"a": 2}]

NAMES = ["n", "with space", "dotted.name", "é", "quo\"te", "b\\s", "[x]"]


def fill(store):
    for index, value in enumerate(VALUES):
        metadata = {name: value for name in NAMES}
        metadata["index"] = index
        if index % 3 == 0:
            metadata["nested"] = {"n": value}
        if index % 4 == 0:
            del metadata["n"]  # a missing name
        store.set("k%02d" % index, (io.BytesIO(b""), metadata))


@pytest.fixture(params=["dynamic", None])
def stores(request, tmp_path):
    sqlite = SqliteStore(str(tmp_path / "scan.db"), index=request.param)
    sqlite.connect()
    memory = DictMemoryStore()
    memory.connect()
    fill(sqlite)
    fill(memory)
    yield sqlite, memory
    sqlite.disconnect()


@pytest.mark.parametrize("name", NAMES + ["nested", "absent"])
def test_unindexed_queries_match_python_equality(stores, name):
    sqlite, memory = stores
    for value in CRITERIA:
        expected = sorted(memory.query_keys(**{name: value}))
        assert sorted(sqlite.query_keys(**{name: value})) == expected, (name, value)
        assert sorted(sqlite.query(**{name: value})) == sorted(memory.query(**{name: value}))
        assert sorted(sqlite.query(select=["index"], **{name: value})) == \
            sorted(memory.query(select=["index"], **{name: value}))


def test_several_criteria_and_one_to_one_point_o_to_true(stores):
    sqlite, memory = stores
    for criteria in ({"n": 1, "index": 0}, {"n": True, "index": 1}, {"n": 1.0, "index": 2},
                     {"n": 1, "with space": 1.0}, {"index": 1, "nested": None}):
        assert sorted(sqlite.query_keys(**criteria)) == sorted(memory.query_keys(**criteria))
    assert sorted(sqlite.query_keys(**{"with space": 1})) == ["k00", "k01", "k02"]


def test_the_sql_filter_is_used_for_plain_values():
    assert _scan_condition("n", 1) is not None
    assert _scan_condition("n", "text") is not None
    assert _scan_condition("n", None) is not None
    assert _scan_condition("n", [1]) is not None
    # Left to Python: names SQLite would read differently, values it would
    # compare differently.
    assert _scan_condition('quo"te', 1) is None
    assert _scan_condition("é", 1) is None
    assert _scan_condition("n", 2.5) is None
    assert _scan_condition("n", 2 ** 70) is None
    assert _scan_condition("n", "nul\x00") is None
    assert _scan_condition("n", (1, 2)) is None


def test_a_scan_reads_only_matching_rows_in_python(tmp_path, monkeypatch):
    store = SqliteStore(str(tmp_path / "count.db"), index=None)
    store.connect()
    for index in range(200):
        store.set("k%03d" % index, (io.BytesIO(b""), {"group": index % 50, "name": "x"}))
    decoded = []
    original = store._decode_metadata

    def counting(raw, key=None):
        decoded.append(raw)
        return original(raw, key)

    monkeypatch.setattr(store, "_decode_metadata", counting)
    assert sorted(store.query_keys(group=7)) == ["k007", "k057", "k107", "k157"]
    assert len(decoded) == 4


def test_metadata_text_that_is_not_json_is_reported_as_by_a_python_scan(tmp_path):
    store = SqliteStore(str(tmp_path / "bad.db"), index=None)
    store.connect()
    store.set("good", (io.BytesIO(b""), {"n": 1}))
    store.set("bad", (io.BytesIO(b""), {"n": 1}))
    connection = sqlite3.connect(str(tmp_path / "bad.db"))
    with connection:
        connection.execute("UPDATE store SET metadata = ? WHERE key = 'bad'", ("{not json",))
    connection.close()
    with pytest.raises(Exception) as direct:
        store.get_metadata("bad")
    with pytest.raises(type(direct.value)):
        list(store.query_keys(n=1))
    store.disconnect()
