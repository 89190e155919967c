"""More of issue 11's promises, each by a test that can fail: bodies that
stall or break on every read path of both URL stores, destinations kept
whole by a failed ``to_file``, finite default timeouts, and a static copy
re-published under a polling reader."""
import io
import json
import threading

import pytest

from encore.events.event_manager import EventManager
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.dynamic_url_store import DynamicURLStore
from encore.storage.publish import publish
from encore.storage.server import StoreServer, serve
from encore.storage.static_url_store import StaticURLStore
from encore.storage.url_value import IncompleteBodyError


class _Faulty(object):
    """A WSGI app serving one key ``k`` in both URL layouts (dynamic:
    ``/k/data``, static: ``/data/k`` and ``/index.json``) whose body
    ``mode`` decides: 'stall' sends 10 of 100 bytes and then nothing until
    released; 'chunked' sends 3 bytes without a length and breaks off."""

    def __init__(self, mode):
        self.mode = mode
        self.release = threading.Event()

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/index.json":
            body = json.dumps({"k": {"a": 1}}).encode()
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]
        if path == "/k/metadata":
            body = b'{"a": 1}'
            start_response("200 OK", [("Content-Length", str(len(body))),
                                      ("Content-Type", "application/json")])
            return [body]
        if self.mode == "chunked":
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            if environ["REQUEST_METHOD"] == "HEAD":
                return []

            def broken():
                yield b"abc"
                raise RuntimeError("the disk went away")
            return broken()
        ranged = bool(environ.get("HTTP_RANGE"))
        start_response("206 Partial Content" if ranged else "200 OK",
                       [("Content-Length", "100"), ("Content-Type", "application/octet-stream")]
                       + ([("Content-Range", "bytes 0-99/200")] if ranged else []))
        if environ["REQUEST_METHOD"] == "HEAD":
            return []
        release = self.release

        def stalled():
            yield b"0123456789"
            release.wait(60)
        return stalled()


@pytest.fixture(params=["stall", "chunked"])
def faulty(request):
    app = _Faulty(request.param)
    server = StoreServer(app, "127.0.0.1", 0)
    yield request.param, server
    app.release.set()
    server.shutdown()


def _stores(server):
    dynamic = DynamicURLStore(server.url, server.query_url, timeout=0.5, retries=0,
                              event_manager=EventManager())
    static = StaticURLStore(server.url + "/", "data/", "index.json", poll=0, timeout=0.5, retries=0,
                            event_manager=EventManager())
    return dynamic, static


def _read_paths(store, tmp_path):
    """Every way of reading a value's data."""
    def read_in_pieces():
        stream = store.get_data("k")
        while stream.read(4):
            pass

    return {
        "get_data().read()": lambda: store.get_data("k").read(),
        "get_data().read(4)...": read_in_pieces,
        "get().data.read()": lambda: store.get("k").data.read(),
        "to_bytes": lambda: store.to_bytes("k"),
        "to_file": lambda: store.to_file("k", str(tmp_path / "new_file")),
        "get_data_range": lambda: store.get_data_range("k", 0, 50).read(),
        "get().range": lambda: store.get("k").range(5).read(),
    }


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_stalled_or_broken_bodies_raise_on_every_read_path(faulty, kind, tmp_path):
    mode, server = faulty
    dynamic, static = _stores(server)
    store = dynamic if kind == "dynamic" else static
    store.connect()
    # A stalled body is a timeout; a broken chunked one is an incomplete body.
    expected = TimeoutError if mode == "stall" else IncompleteBodyError
    try:
        for name, read in _read_paths(store, tmp_path).items():
            with pytest.raises(expected):
                read()
                pytest.fail("{} returned instead of raising".format(name))
    finally:
        store.disconnect()
    assert not (tmp_path / "new_file").exists()


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_a_failed_download_leaves_the_destination_byte_for_byte(faulty, kind, tmp_path):
    mode, server = faulty
    dynamic, static = _stores(server)
    store = dynamic if kind == "dynamic" else static
    target = tmp_path / "kept"
    target.write_bytes(b"the old content")
    store.connect()
    try:
        with pytest.raises(OSError):  # TimeoutError or IncompleteBodyError
            store.to_file("k", str(target))
    finally:
        store.disconnect()
    assert target.read_bytes() == b"the old content"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept"]


def test_default_timeouts_are_finite(tmp_path):
    dynamic = DynamicURLStore("http://127.0.0.1:9/", "http://127.0.0.1:9/query")
    static = StaticURLStore("http://127.0.0.1:9/", "data/", "index.json")
    for store in (dynamic, static):
        timeout = store.timeout
        if isinstance(timeout, tuple):  # (connect, read)
            assert all(part is not None and 0 < part <= 120 for part in timeout)
        else:
            assert timeout is not None and 0 < timeout <= 120
    backing = DictMemoryStore()
    backing.connect()
    server = serve(backing, "127.0.0.1", 0)
    try:
        assert 0 < server._server.idle_timeout < 60
    finally:
        server.shutdown()


def test_republishing_under_a_polling_reader(tmp_path):
    """Re-publish again and again, adding and removing keys and changing
    values, while a reader polls the copy through StaticURLStore: every
    index it reads is whole, and every key it lists can be read."""
    source = DictMemoryStore(event_manager=EventManager())
    source.connect()
    target = tmp_path / "site"
    for number in range(40):
        source.set("stable%d" % number, (io.BytesIO(b"s" * 2000), {"long": "x" * 300}))
    publish(source, target)
    stop = threading.Event()
    problems = []
    reads = []

    def poll():
        while not stop.is_set():
            reader = StaticURLStore(target.as_uri() + "/", "data/", "index.json", poll=0,
                                    event_manager=EventManager())
            try:
                reader.connect()
                keys = list(reader.query_keys())
                for key in keys:
                    try:
                        data = reader.to_bytes(key)
                    except KeyError:
                        continue  # removed by a publish after this index was read
                    if not data:
                        problems.append("empty " + key)
                reads.append(len(keys))
            except Exception as error:  # reported below
                import traceback
                problems.append(traceback.format_exc())
            finally:
                reader.disconnect()

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        for round_number in range(30):
            if round_number % 2:
                for number in range(20):
                    source.delete("round%d" % number)
            else:
                for number in range(20):
                    source.set("round%d" % number,
                               (io.BytesIO(b"r%d" % round_number * 500), {"round": round_number}))
            for number in range(40):
                source.set_data("stable%d" % number, io.BytesIO(b"%d" % round_number * 700))
            publish(source, target)
    finally:
        stop.set()
        thread.join(60)
    assert problems == [], "\n".join(problems)
    assert reads and set(reads) <= {40, 60}


def test_a_data_file_replaced_while_opened_is_read_whole(tmp_path, monkeypatch):
    """StaticURLStore over file: while ``publish`` replaces a data file:
    the reader gets the old or the new bytes, whole, never a false
    truncation error."""
    import os

    source = DictMemoryStore(event_manager=EventManager())
    source.connect()
    source.set("k", (io.BytesIO(b"old" * 1000), {}))
    target = tmp_path / "site"
    publish(source, target)
    reader = StaticURLStore(target.as_uri() + "/", "data/", "index.json", poll=0,
                            event_manager=EventManager())
    reader.connect()
    data_file = os.path.realpath(os.path.join(str(target), "data", "k"))
    real_stat = os.stat
    replaced = []

    def stat_then_republish(path, *args, **kwargs):
        status = real_stat(path, *args, **kwargs)
        if not replaced and isinstance(path, str) and os.path.realpath(path) == data_file:
            replaced.append(path)  # a publish lands right after the stat
            source.set_data("k", io.BytesIO(b"new"))
            publish(source, target)
        return status

    monkeypatch.setattr(os, "stat", stat_then_republish)
    try:
        data = reader.to_bytes("k")
    finally:
        monkeypatch.undo()
        reader.disconnect()
    assert replaced
    assert data in (b"old" * 1000, b"new")


def test_a_data_file_removed_while_opened_is_a_missing_key(tmp_path, monkeypatch):
    import os

    source = DictMemoryStore(event_manager=EventManager())
    source.connect()
    source.set("k", (io.BytesIO(b"old"), {}))
    target = tmp_path / "site"
    publish(source, target)
    reader = StaticURLStore(target.as_uri() + "/", "data/", "index.json", poll=0,
                            event_manager=EventManager())
    reader.connect()
    data_file = os.path.realpath(os.path.join(str(target), "data", "k"))
    real_stat = os.stat
    removed = []

    def stat_then_republish(path, *args, **kwargs):
        status = real_stat(path, *args, **kwargs)
        if not removed and isinstance(path, str) and os.path.realpath(path) == data_file:
            removed.append(path)  # a publish removing the key lands right after the stat
            source.delete("k")
            publish(source, target)
        return status

    monkeypatch.setattr(os, "stat", stat_then_republish)
    try:
        with pytest.raises(KeyError):
            reader.to_bytes("k")
    finally:
        monkeypatch.undo()
        reader.disconnect()
    assert removed
