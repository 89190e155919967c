"""The URL stores on a faulty network: timeouts, truncated bodies, one error
vocabulary, retries, connection reuse, request counts, concurrency."""
import io
import json
import os
import socket
import threading
import time

import pytest

from encore.events.event_manager import EventManager
from encore.storage.abstract_store import StoreError
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.dynamic_url_store import DynamicURLStore
from encore.storage.events import StoreUpdateEvent
from encore.storage.server import StoreServer, make_app
from encore.storage.static_url_store import StaticURLStore
from encore.storage.url_value import HTTPStatusError, IncompleteBodyError


@pytest.fixture
def backing():
    store = DictMemoryStore(event_manager=EventManager())
    store.connect()
    store.set("k", (io.BytesIO(b"0123456789"), {"a": 1}))
    return store


class _Recorder(object):
    """Wraps a WSGI app, recording requests; can answer some with a status."""

    def __init__(self, app):
        self.app = app
        self.requests = []
        self.ports = set()
        self.fail = []  # statuses to answer, one per request, before the app
        self.strip_protocol = False
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            self.requests.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
            self.ports.add(environ.get("REMOTE_PORT"))
            status = self.fail.pop(0) if self.fail else None
        if status is not None:
            start_response(status, [("Content-Length", "0")])
            return []
        if self.strip_protocol:
            def start(status, headers, exc_info=None):
                return start_response(status, [h for h in headers if h[0] != "Encore-Protocol"], exc_info)
            return self.app(environ, start)
        return self.app(environ, start_response)


@pytest.fixture
def recorded(backing):
    recorder = _Recorder(make_app(backing))
    server = StoreServer(recorder, "127.0.0.1", 0)
    store = DynamicURLStore(server.url, server.query_url, event_manager=EventManager(), backoff=0.01)
    store.connect()
    yield recorder, store
    store.disconnect()
    server.shutdown()


def _truncating_app(environ, start_response):
    """Announces 100 bytes and sends 10; chunked answers break off."""
    path = environ["PATH_INFO"]
    if path == "/index.json":
        body = json.dumps({"k": {"a": 1}}).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path.endswith("/chunked/data"):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def broken():
            yield b"abc"
            raise RuntimeError("the disk went away")
        return broken()
    start_response("206 Partial Content" if environ.get("HTTP_RANGE") else "200 OK",
                   [("Content-Length", "100"), ("Content-Type", "application/octet-stream")]
                   + ([("Content-Range", "bytes 0-99/200")] if environ.get("HTTP_RANGE") else []))
    if environ["REQUEST_METHOD"] == "HEAD":
        return []
    return [b"0123456789"]


@pytest.fixture
def truncating():
    server = StoreServer(_truncating_app, "127.0.0.1", 0)
    yield server
    server.shutdown()


@pytest.fixture
def silent():
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield "http://127.0.0.1:{}".format(listener.getsockname()[1])
    listener.close()


def _closed_port():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return "http://127.0.0.1:{}".format(port)


# -- never hang -------------------------------------------------------------------

def test_dynamic_store_times_out_on_a_silent_server(silent):
    store = DynamicURLStore(silent, silent + "/query", timeout=0.3, retries=0)
    store.connect()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        store.get_data("k")
    with pytest.raises(TimeoutError):
        store.get_metadata("k")
    assert time.monotonic() - started < 10
    store.disconnect()
    with pytest.raises(ValueError):
        DynamicURLStore(silent, silent, timeout=0)


def test_static_store_times_out_on_a_silent_server(silent):
    store = StaticURLStore(silent + "/", "data/", "index.json", poll=0, timeout=0.3)
    with pytest.raises(TimeoutError):
        store.connect()


def test_static_disconnect_does_not_wait_for_a_hung_poll(tmp_path):
    release = threading.Event()
    hung = threading.Event()
    calls = []

    def app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        if len(calls) > 1:  # every poll after connect hangs until released
            hung.set()
            release.wait(30)
        body = b'{"k": {}}'
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    server = StoreServer(app, "127.0.0.1", 0)
    try:
        store = StaticURLStore(server.url + "/", "data/", "index.json", poll=0.01, event_manager=EventManager())
        store.connect()
        assert hung.wait(20)
        done = threading.Event()
        threading.Thread(target=lambda: (store.disconnect(), done.set()), daemon=True).start()
        # disconnect returns while the poll is still hung on the server.
        assert done.wait(5)
        assert not release.is_set()
        assert not store.is_connected()
    finally:
        release.set()
        server.shutdown()


# -- never lie --------------------------------------------------------------------

def test_dynamic_truncated_bodies_raise_on_every_read_path(truncating, tmp_path):
    store = DynamicURLStore(truncating.url, truncating.query_url, retries=0)
    store.connect()
    try:
        with pytest.raises(IncompleteBodyError):
            store.get_data("k").read()
        stream = store.get_data("k")
        with pytest.raises(IncompleteBodyError):
            while stream.read(4):
                pass
        with pytest.raises(IncompleteBodyError):
            store.get("k").data.read()
        with pytest.raises(IncompleteBodyError):
            store.to_bytes("k")
        with pytest.raises(IncompleteBodyError):
            store.to_file("k", str(tmp_path / "out"))
        with pytest.raises(IncompleteBodyError):
            store.get_data_range("k", 0, 50).read()
        with pytest.raises(IncompleteBodyError):
            store.get("k").range(5).read()
        with pytest.raises(IncompleteBodyError):
            store.get_data("chunked").read()
        assert issubclass(IncompleteBodyError, ConnectionError)
    finally:
        store.disconnect()


def test_static_truncated_bodies_raise_on_every_read_path(truncating, tmp_path):
    store = StaticURLStore(truncating.url + "/", "data/", "index.json", poll=0, event_manager=EventManager())
    store.connect()
    try:
        with pytest.raises(IncompleteBodyError):
            store.to_bytes("k")
        with pytest.raises(IncompleteBodyError):
            store.to_file("k", str(tmp_path / "out"))
        with pytest.raises(IncompleteBodyError):
            store.get_data("k").read()
        with pytest.raises(IncompleteBodyError):
            store.get("k").data.read()
        with pytest.raises(IncompleteBodyError):
            store.get("k").range(0, 50).read()
        with pytest.raises(IncompleteBodyError):
            store.get_data_range("k", 3).read()
    finally:
        store.disconnect()


def test_one_error_vocabulary(recorded, tmp_path):
    recorder, store = recorded
    store.retries = 0
    recorder.fail = ["500 Internal Server Error"]
    with pytest.raises(HTTPStatusError) as caught:
        store.get_metadata("k")
    assert caught.value.status == 500 and "500" in str(caught.value)
    assert isinstance(caught.value, StoreError)
    with pytest.raises(KeyError):
        store.get_metadata("missing")
    closed = _closed_port()
    other = DynamicURLStore(closed, closed + "/query", retries=0)
    other.connect()
    with pytest.raises(ConnectionError) as caught:
        other.get_data("k")
    assert type(caught.value).__module__ == "builtins"
    other.disconnect()
    static = StaticURLStore(closed + "/", "data/", "index.json", poll=0)
    with pytest.raises(ConnectionError) as caught:
        static.connect()
    assert type(caught.value).__module__ == "builtins"


def test_bad_json_from_the_server_is_a_store_error():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "5")])
        return [b"{nope"]

    with StoreServer(app, "127.0.0.1", 0) as server:
        store = DynamicURLStore(server.url, server.query_url)
        store.connect()
        with pytest.raises(StoreError, match="invalid JSON"):
            store.get_metadata("k")
        store.disconnect()


def test_static_server_errors_are_store_errors(tmp_path):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/index.json":
            start_response("200 OK", [("Content-Length", "9")])
            return [b'{"k": {}}']
        start_response("502 Bad Gateway", [("Content-Length", "0")])
        return []

    with StoreServer(app, "127.0.0.1", 0) as server:
        store = StaticURLStore(server.url + "/", "data/", "index.json", poll=0)
        store.connect()
        with pytest.raises(HTTPStatusError) as caught:
            store.to_bytes("k")
        assert caught.value.status == 502
        store.disconnect()


def test_static_file_store_never_reads_outside_its_root(tmp_path):
    root = tmp_path / "site"
    (root / "data").mkdir(parents=True)
    (tmp_path / "secret").write_bytes(b"secret")
    (root / "data" / "ok").write_bytes(b"fine")
    os.symlink(tmp_path / "secret", root / "data" / "link")
    index = {"ok": {}, "../../secret": {}, "../index.json": {}, "link": {}}
    (root / "index.json").write_text(json.dumps(index))
    store = StaticURLStore(root.as_uri() + "/", "data/", "index.json", poll=0)
    store.connect()
    try:
        assert store.to_bytes("ok") == b"fine"
        for key in ("../../secret", "../index.json", "link"):
            with pytest.raises(KeyError):
                store.to_bytes(key)
            with pytest.raises(KeyError):
                store.get(key)
    finally:
        store.disconnect()


# -- requests and connections are not wasted ---------------------------------------

def test_idempotent_requests_are_retried(recorded):
    recorder, store = recorded
    recorder.fail = ["503 Service Unavailable", "502 Bad Gateway"]
    assert store.get_metadata("k") == {"a": 1}
    assert len(recorder.requests) == 3
    recorder.requests.clear()
    recorder.fail = ["503 Service Unavailable"]
    with pytest.raises(HTTPStatusError):
        store.update_metadata("k", {"b": 2})  # POST: never retried
    assert len(recorder.requests) == 1
    recorder.requests.clear()
    store.retries = 0
    recorder.fail = ["504 Gateway Timeout"]
    with pytest.raises(HTTPStatusError):
        store.get_metadata("k")
    assert len(recorder.requests) == 1


def test_connection_errors_are_retried_with_backoff():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    url = "http://127.0.0.1:{}".format(port)
    store = DynamicURLStore(url, url + "/query", retries=2, backoff=0.05)
    store.connect()
    waits = []
    store._wait = lambda attempt: waits.append(attempt)
    with pytest.raises(ConnectionError):
        store.get_metadata("k")
    assert waits == [0, 1]
    waits.clear()
    with pytest.raises(ConnectionError):
        store.delete("k")  # not idempotent enough to repeat blindly
    assert waits == []
    store.disconnect()


def test_connections_are_kept_alive(recorded):
    recorder, store = recorded
    for _ in range(1000):
        assert store.to_bytes("k") == b"0123456789"
    assert len(recorder.requests) == 1000
    assert len(recorder.ports) <= 2


def test_no_extra_request_per_write_when_nobody_listens(recorded):
    recorder, store = recorded
    for action in (lambda: store.set_data("k", io.BytesIO(b"new")),
                   lambda: store.update_metadata("k", {"b": 2}),
                   lambda: store.set_metadata("k", {"c": 3}),
                   lambda: store.delete("k")):
        recorder.requests.clear()
        action()
        assert len(recorder.requests) == 1, recorder.requests
    store.set("k", (io.BytesIO(b"x"), {"a": 1}))
    events = []
    store.event_manager.connect(StoreUpdateEvent, events.append)
    recorder.requests.clear()
    store.set_data("k", io.BytesIO(b"listened"))
    assert len(recorder.requests) == 2  # the listener needs the metadata
    assert events and events[-1].metadata == {"a": 1}


def test_small_writes_do_not_wait_for_a_large_upload(recorded, backing):
    recorder, store = recorded
    started = threading.Event()
    release = threading.Event()

    class Slow(object):
        def __init__(self):
            self.sent = 0

        def read(self, size):
            if self.sent == 0:
                self.sent = 1
                return b"first"
            started.set()
            if not release.wait(30):
                raise OSError("never released")
            if self.sent == 1:
                self.sent = 2
                return b"-last"
            return b""

    errors = []

    def upload():
        try:
            store.set_data("big", Slow())
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        assert started.wait(20)
        # The upload is in progress and blocked: other writes go through.
        store.set_data("small", io.BytesIO(b"s"))
        store.update_metadata("small", {"m": 1})
        assert backing.to_bytes("small") == b"s"
        assert not backing.exists("big")
    finally:
        release.set()
        thread.join(30)
    assert errors == []
    assert backing.to_bytes("big") == b"first-last"


def test_concurrent_sets_of_one_key_are_atomic(recorded, backing):
    recorder, store = recorded
    writers = 8
    barrier = threading.Barrier(writers)
    mixed = []

    def write(number):
        for round_number in range(25):
            barrier.wait(30)
            marker = "{}-{}".format(number, round_number)
            store.set("shared", (io.BytesIO(marker.encode()), {"marker": marker}))
            barrier.wait(30)
            if number == 0:
                value = backing.get("shared")
                if value.data.read().decode() != value.metadata["marker"]:
                    mixed.append(round_number)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert mixed == []
    puts = [path for method, path in recorder.requests if method == "PUT"]
    assert all(path.endswith("/data") for path in puts)  # one request per set


def test_old_servers_get_the_two_request_protocol(recorded, backing):
    recorder, store = recorded
    recorder.strip_protocol = True
    store._protocol = None
    store.set("old", (io.BytesIO(b"data"), {"m": 1}))
    assert [method for method, _ in recorder.requests] == ["OPTIONS", "PUT", "PUT"]
    assert backing.to_bytes("old") == b"data" and backing.get_metadata("old") == {"m": 1}


def test_static_store_retries_busy_servers():
    answers = []

    def app(environ, start_response):
        answers.append(environ["PATH_INFO"])
        if len(answers) in (1, 2, 4):
            start_response("503 Service Unavailable", [("Content-Length", "0")])
            return []
        body = b'{"k": {}}' if environ["PATH_INFO"] == "/index.json" else b"data"
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    with StoreServer(app, "127.0.0.1", 0) as server:
        store = StaticURLStore(server.url + "/", "data/", "index.json", poll=0, retries=2)
        store.connect()
        assert len(answers) == 3
        assert store.to_bytes("k") == b"data"  # one 503, then the data
        assert store.get("k").data.read() == b"data"
        store.disconnect()
        answers[:] = [None] * 3  # the next answer is a 503
        store = StaticURLStore(server.url + "/", "data/", "index.json", poll=0, retries=0)
        with pytest.raises(HTTPStatusError) as caught:
            store.connect()
        assert caught.value.status == 503


def test_static_store_keeps_connections_alive(backing):
    def app(environ, start_response):
        recorder_ports.add(environ["REMOTE_PORT"])
        body = b'{"k": {}}' if environ["PATH_INFO"] == "/index.json" else b"0123456789"
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    recorder_ports = set()
    with StoreServer(app, "127.0.0.1", 0) as server:
        store = StaticURLStore(server.url + "/", "data/", "index.json", poll=0)
        store.connect()
        for _ in range(1000):
            assert store.to_bytes("k") == b"0123456789"
        assert len(recorder_ports) <= 2
        # A body abandoned half-read drops its connection; the next opens one.
        stream = store.get_data("k")
        stream.read(3)
        stream.close()
        assert store.to_bytes("k") == b"0123456789"
        store.disconnect()
