"""encore.storage.publish: static copies that StaticURLStore reads."""
import functools
import io
import json
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from encore.events.event_manager import EventManager
from encore.storage import publish as publish_module
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.publish import publish
from encore.storage.static_url_store import StaticURLStore


@pytest.fixture
def source():
    store = DictMemoryStore(event_manager=EventManager())
    store.connect()
    store.set("a", (io.BytesIO(b"alpha"), {"n": 1}))
    store.set("dir/b c?#", (io.BytesIO(b"beta"), {"n": 2, "tags": ["x"]}))
    store.set("big", (io.BytesIO(os.urandom(300000)), {}))
    return store


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def site(tmp_path):
    directory = tmp_path / "site"
    directory.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield directory, "http://127.0.0.1:{}/".format(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_published_store_is_read_over_http_server(source, site):
    directory, url = site
    assert publish(source, directory) == 3
    static = StaticURLStore(url, "data/", "index.json", poll=0, event_manager=EventManager())
    static.connect()
    try:
        assert sorted(static.query_keys()) == ["a", "big", "dir/b c?#"]
        for key in ("a", "dir/b c?#", "big"):
            assert static.to_bytes(key) == source.to_bytes(key)
            assert static.get_metadata(key) == source.get_metadata(key)
    finally:
        static.disconnect()


def test_republish_updates_and_removes(source, tmp_path):
    target = tmp_path / "out"
    publish(source, target)
    source.delete("dir/b c?#")
    source.set("a", (io.BytesIO(b"new"), {"n": 9}))
    assert publish(source, target) == 2
    assert json.loads((target / "index.json").read_text()) == {"a": {"n": 9}, "big": {}}
    assert (target / "data" / "a").read_bytes() == b"new"
    assert not (target / "data" / "dir").exists()
    assert not [name for name in os.listdir(target) if name.startswith(".publish-") or name.endswith(".part")]
    assert publish(source, target, "b*") == 1


def test_readers_never_see_a_half_written_index(source, tmp_path, monkeypatch):
    target = tmp_path / "out"
    publish(source, target)
    old = (target / "index.json").read_bytes()
    for number in range(200):
        source.set("key{}".format(number), (io.BytesIO(b"v"), {"long": "x" * 100}))
    halfway = threading.Event()
    proceed = threading.Event()
    original = publish_module._atomic_write

    def slow(path, write):
        if not path.endswith("index.json"):
            return original(path, write)

        def slowly(stream):
            class Slow(object):
                def write(self, data):
                    # Write half, let the reader look, then the rest.
                    stream.write(data[:len(data) // 2])
                    stream.flush()
                    halfway.set()
                    assert proceed.wait(30)
                    stream.write(data[len(data) // 2:])
            write(Slow())
        return original(path, slowly)

    monkeypatch.setattr(publish_module, "_atomic_write", slow)
    thread = threading.Thread(target=publish, args=(source, target))
    thread.start()
    try:
        assert halfway.wait(30)
        # Mid-write, the index readers see is the old one, whole.
        assert (target / "index.json").read_bytes() == old
    finally:
        proceed.set()
        thread.join(30)
    assert len(json.loads((target / "index.json").read_text())) == 203


def test_bad_keys_and_metadata_are_refused_before_writing(tmp_path):
    for keys in (["a/../b"], ["a//b"], ["x", "x/y"], ["."]):
        store = DictMemoryStore(event_manager=EventManager())
        store.connect()
        for key in keys:
            store.set(key, (io.BytesIO(b"d"), {}))
        with pytest.raises(ValueError):
            publish(store, tmp_path / "bad")
        assert not (tmp_path / "bad").exists()
    store = DictMemoryStore(event_manager=EventManager())
    store.connect()
    store.set("k", (io.BytesIO(b"d"), {}))
    store.get_metadata = lambda key, select=None: {"bad": object()}  # a store with odd metadata
    with pytest.raises(TypeError):
        publish(store, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError):
        publish(store, tmp_path / "bad", data_path="../data/")
    with pytest.raises(ValueError):
        publish(store, tmp_path / "bad", index_name="../index.json")
