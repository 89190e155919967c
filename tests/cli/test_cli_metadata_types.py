"""``encore meta``/``put``/``query`` with metadata values beyond JSON: printed
in their tagged JSON form, read back by ``name:=json``."""
import datetime
import decimal
import io
import json
import uuid

import pytest

from encore.cli import main, parse_assignment
from encore.storage.server import serve
from encore.storage.sqlite_store import SqliteStore

SAMPLES = {
    "when": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc),
    "day": datetime.date(2024, 5, 1),
    "at": datetime.time(8, 15),
    "price": decimal.Decimal("19.990"),
    "blob": b"\x00\xff",
    "tags": {"b", "a"},
    "frozen": frozenset({1}),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "title": "café ☕",
    "nested": {"list": [datetime.date(2000, 1, 2)]},
}

TAGGED = {
    "when": {"$encore:datetime": "2024-05-01T12:30:00+00:00"},
    "day": {"$encore:date": "2024-05-01"},
    "at": {"$encore:time": "08:15:00"},
    "price": {"$encore:decimal": "19.990"},
    "blob": {"$encore:bytes": "AP8="},
    "tags": {"$encore:set": ["a", "b"]},
    "frozen": {"$encore:frozenset": [1]},
    "id": {"$encore:uuid": "12345678-1234-5678-1234-567812345678"},
    "title": "café ☕",
    "nested": {"list": [{"$encore:date": "2000-01-02"}]},
}


def run(*argv):
    out = io.BytesIO()
    err = io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENCORE_STORE", raising=False)
    (tmp_path / "a.txt").write_bytes(b"hello\n")
    path = str(tmp_path / "types.db")
    store = SqliteStore(path)
    store.connect()
    store.set("k", (io.BytesIO(b"data"), SAMPLES))
    store.disconnect()
    return path


def stored(path, key):
    store = SqliteStore(path)
    store.connect()
    try:
        return store.get_metadata(key)
    finally:
        store.disconnect()


def test_meta_prints_the_tagged_form_in_utf8(database):
    status, out, err = run("--store", database, "meta", "k")
    assert status == 0, err
    assert json.loads(out.decode("utf-8")) == TAGGED
    assert "café ☕".encode("utf-8") in out  # not \\u escapes
    names = [line.split(":")[0].strip().strip('"') for line in out.decode("utf-8").splitlines()
             if line.startswith('  "')]
    assert names == sorted(TAGGED)


def test_meta_long_prints_the_tagged_form(database):
    status, out, err = run("--store", database, "meta", "-l", "k")
    assert status == 0, err
    document = json.loads(out.decode("utf-8"))
    assert list(document) == ["key", "size", "created", "modified", "metadata"]
    assert document["metadata"] == TAGGED


def test_printed_values_are_read_back_by_name_json(database):
    _, out, _ = run("--store", database, "meta", "k")
    items = ["{}:={}".format(name, json.dumps(value, ensure_ascii=False))
             for name, value in json.loads(out.decode("utf-8")).items()]
    status, _, err = run("--store", database, "put", "copy", "a.txt", "--meta", *items)
    assert status == 0, err
    metadata = stored(database, "copy")
    assert metadata == SAMPLES
    assert {name: type(value) for name, value in metadata.items()} == \
        {name: type(value) for name, value in SAMPLES.items()}
    assert str(metadata["price"]) == "19.990"


def test_set_and_query_with_tagged_values(database):
    status, _, err = run("--store", database, "meta", "k", "--set",
                         'seen:={"$encore:date": "2024-06-01"}', "plain:=[1, 2]")
    assert status == 0, err
    metadata = stored(database, "k")
    assert metadata["seen"] == datetime.date(2024, 6, 1) and type(metadata["seen"]) is datetime.date
    assert metadata["plain"] == [1, 2]
    assert run("--store", database, "query", 'seen:={"$encore:date": "2024-06-01"}')[1] == b"k\n"
    assert run("--store", database, "query", "seen=2024-06-01")[1] == b""
    assert run("--store", database, "query", 'price:={"$encore:decimal": "19.99"}')[1] == b"k\n"


def test_malformed_tagged_values_are_usage_errors(database):
    for item in ('day:={"$encore:date": "tomorrow"}', 'x:={"$encore:nonsense": 1}'):
        status, _, err = run("--store", database, "meta", "k", "--set", item)
        assert status == 2
        assert "tagged value" in err and "Traceback" not in err
    assert stored(database, "k") == SAMPLES


def test_parse_assignment_reads_tags_at_any_depth():
    assert parse_assignment('d:={"$encore:date": "2024-05-01"}') == ("d", datetime.date(2024, 5, 1))
    name, value = parse_assignment('x:={"a": [{"$encore:bytes": "AP8="}]}')
    assert value == {"a": [b"\x00\xff"]}
    # A dictionary written as the escape reads as itself.
    assert parse_assignment('x:={"$encore:dict": ["$encore:date", 1]}') == ("x", {"$encore:date": 1})


def test_meta_through_the_store_server(database, tmp_path):
    store = SqliteStore(database)
    store.connect()
    server = serve(store)
    try:
        url = server.base_url + "/"
        status, out, err = run("--store", url, "meta", "k")
        assert status == 0, err
        assert json.loads(out.decode("utf-8")) == TAGGED
        status, _, err = run("--store", url, "meta", "k", "--set", 'at:={"$encore:time": "09:00:00"}')
        assert status == 0, err
        assert run("--store", url, "query", 'at:={"$encore:time": "09:00:00"}')[1] == b"k\n"
    finally:
        server.shutdown()
        store.disconnect()
    assert stored(database, "k")["at"] == datetime.time(9, 0)
