"""Tests of StaticURLStore against a real static HTTP server (http.server)
serving a fixture directory on 127.0.0.1."""
import base64
import json
import os
import re
import shutil
import tempfile
import threading
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from encore.events.event_manager import EventManager
from encore.storage.abstract_store import AuthorizationError, StoreError
from encore.storage.events import StoreDeleteEvent, StoreModificationEvent, StoreSetEvent, StoreUpdateEvent
from encore.storage.static_url_store import StaticURLStore, basic_auth_factory
from encore.storage.tests.abstract_test import LARGE_SIZE, PatternFile, read_fixture, store_test_cases

NO_PROXY = urllib.request.ProxyHandler({})


class _Handler(SimpleHTTPRequestHandler):
    """Serves the fixture directory; optionally honours single byte ranges
    and requires basic authentication.  Records the headers it receives."""

    ranges = False
    credentials = None  # "user:password" when authentication is required
    seen = []

    def log_message(self, format, *args):
        pass

    def _authorized(self):
        type(self).seen.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                                "range": self.headers.get("Range")})
        if self.credentials is None:
            return True
        expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
        if self.headers.get("Authorization") == expected:
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="encore.storage"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_HEAD(self):
        if self._authorized():
            super().do_HEAD()

    def do_GET(self):
        if not self._authorized():
            return
        header = self.headers.get("Range")
        path = self.translate_path(self.path)
        match = re.match(r"bytes=(\d+)-(\d*)$", header or "")
        if not (self.ranges and match and os.path.isfile(path)):
            return super().do_GET()
        with open(path, "rb") as stream:
            data = stream.read()
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else len(data) - 1
        part = data[first:last + 1]
        self.send_response(206)
        self.send_header("Content-Range", "bytes {}-{}/{}".format(first, first + len(part) - 1, len(data)))
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        self.wfile.write(part)


def _write_json(path, document):
    temporary = path + ".tmp"
    with open(temporary, "w") as stream:
        json.dump(document, stream)
    os.replace(temporary, path)


class _Site(object):
    """A directory with data/ and index.json, served over HTTP."""

    def __init__(self, items, ranges=False, credentials=None):
        self.directory = tempfile.mkdtemp(prefix="encore-static-")
        os.mkdir(os.path.join(self.directory, "data"))
        self.write(items)
        handler = type("Handler", (_Handler,), {"ranges": ranges, "credentials": credentials, "seen": []})
        self.handler = handler

        def factory(*args, **kwargs):
            return handler(*args, directory=self.directory, **kwargs)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), factory)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:{}/".format(self.server.server_address[1])

    def write(self, items):
        index = {}
        for key, data, metadata in items:
            with open(os.path.join(self.directory, "data", key), "wb") as stream:
                stream.write(data)
            index[key] = metadata
        _write_json(os.path.join(self.directory, "index.json"), index)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
        shutil.rmtree(self.directory, ignore_errors=True)


class _StaticSite(object):
    """setUp: a store over the read fixture's directory, served by
    http.server (one site per class)."""

    resolution = "second"

    @classmethod
    def setUpClass(cls):
        cls.site = _Site(read_fixture())

    @classmethod
    def tearDownClass(cls):
        cls.site.close()

    def setUp(self):
        self.store = StaticURLStore(self.site.url, "data/", "index.json", poll=0,
                                    event_manager=EventManager())
        self.store.connect(proxy_handler=NO_PROXY)

    def tearDown(self):
        self.store.disconnect()

    def utils_large(self):
        """Put the large values ('test_large', and Encore's 'test3' for
        test_to_file_large) in the served directory and reload the index."""
        index_path = os.path.join(self.site.directory, "index.json")
        with open(index_path) as stream:
            index = json.load(stream)
        for key, source, metadata in (
                ("test_large", PatternFile(LARGE_SIZE), {"large": True}),
                ("test3", PatternFile(5 * 10 ** 7, b"test4"), {})):
            path = os.path.join(self.site.directory, "data", key)
            with open(path, "wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
            index[key] = metadata
        _write_json(index_path, index)
        try:
            self.store.update_index()
        finally:
            self.site.write(read_fixture())  # the other tests expect the plain fixture


globals().update(store_test_cases(prefix="TestStatic", base=_StaticSite, include=["Read"]))


@pytest.fixture
def site():
    site = _Site([("a", b"0123456789", {"n": 1}), ("b", b"bee", {"n": 2})])
    yield site
    site.close()


@pytest.fixture
def manager():
    return EventManager()


def _store(site, manager, poll=0, **connect):
    store = StaticURLStore(site.url, "data/", "index.json", poll=poll, event_manager=manager)
    connect.setdefault("proxy_handler", NO_PROXY)
    store.connect(**connect)
    return store


def _read(stream):
    try:
        return stream.read()
    finally:
        stream.close()


def test_reads_from_the_index_and_data(site, manager):
    store = _store(site, manager)
    try:
        assert store.is_connected()
        assert store.info()["readonly"] is True
        assert sorted(store.query_keys()) == ["a", "b"]
        assert all(type(key) is str for key in store.query_keys())
        assert list(store.glob("a*")) == ["a"]
        assert store.get_metadata("a") == {"n": 1}
        assert _read(store.get_data("b")) == b"bee"
        value = store.get("a")
        assert value.size == 10 and isinstance(value.modified, float)
        with pytest.raises(KeyError):
            store.get("missing")
        with pytest.raises(KeyError):
            store.get_data("missing")
    finally:
        store.disconnect()
    assert not store.is_connected()


def test_key_in_index_but_missing_on_server_is_key_error(site, manager):
    _write_json(os.path.join(site.directory, "index.json"), {"ghost": {}})
    store = _store(site, manager)
    try:
        assert store.exists("ghost")
        with pytest.raises(KeyError):
            store.get_data("ghost")
        with pytest.raises(KeyError):
            store.get("ghost").data
    finally:
        store.disconnect()


@pytest.mark.parametrize("ranges", [False, True])
def test_ranges_with_and_without_server_support(ranges, manager):
    site = _Site([("a", b"0123456789", {})], ranges=ranges)
    try:
        store = _store(site, manager)
        assert _read(store.get_data_range("a", 2, 5)) == b"234"
        assert _read(store.get_data_range("a", 7)) == b"789"
        assert _read(store.get_data_range("a", None, 3)) == b"012"
        assert _read(store.get_data_range("a", 4, 4)) == b""
        assert _read(store.get("a").range(8, 100)) == b"89"
        assert "bytes=2-4" in [seen["range"] for seen in site.handler.seen]
        store.disconnect()
    finally:
        site.close()


@pytest.mark.parametrize("credentials", [
    {"username": "alibaba", "password": "Open Sesame"},
    {"user": "alibaba", "passwd": "Open Sesame"},
    {"username": "alibaba", "password": "Open Sesame", "realm": "other realm"},
])
def test_credentials_reach_the_server(credentials, manager):
    site = _Site([("a", b"data", {"n": 1})], credentials="alibaba:Open Sesame")
    try:
        with pytest.raises(AuthorizationError):
            _store(site, manager)
        store = _store(site, manager, credentials=credentials)
        assert _read(store.get_data("a")) == b"data"
        expected = "Basic " + base64.b64encode(b"alibaba:Open Sesame").decode()
        assert site.handler.seen[-1]["authorization"] == expected
        store.disconnect()
        with pytest.raises(AuthorizationError):
            _store(site, manager, credentials={"username": "alibaba", "password": "wrong"})
    finally:
        site.close()


def test_custom_auth_handler_factory_receives_credentials(site, manager):
    received = []

    class Handler(urllib.request.BaseHandler):
        def add_password(self, **kwargs):
            received.append(kwargs)

    store = _store(site, manager, credentials={"username": "u", "password": "p"},
                   auth_handler_factory=Handler)
    store.disconnect()
    assert received == [{"uri": site.url, "realm": "encore.storage", "user": "u", "passwd": "p"}]


def test_basic_auth_factory_returns_a_handler():
    handler = basic_auth_factory()
    assert isinstance(handler, urllib.request.HTTPBasicAuthHandler)
    handler.add_password(realm="encore.storage", uri="http://example.invalid/", user="u", passwd="p")
    assert handler.passwd.find_user_password("any realm", "http://example.invalid/x") == ("u", "p")


def test_basic_auth_factory_registers_encores_keyword_credentials():
    handler = basic_auth_factory(realm="encore.storage", uri="http://example.invalid/", user="u",
                                 passwd="p")
    assert isinstance(handler, urllib.request.HTTPBasicAuthHandler)
    assert handler.passwd.find_user_password("encore.storage", "http://example.invalid/k") == ("u", "p")
    assert handler.passwd.find_user_password("other", "http://example.invalid/k") == ("u", "p")
    assert basic_auth_factory().passwd.find_user_password(None, "http://example.invalid/") == (None, None)
    with pytest.raises(TypeError):
        basic_auth_factory(colour="red")


def test_connect_with_proxy_handler_and_no_credentials(site, manager):
    store = StaticURLStore(site.url, "data/", "index.json", poll=0, event_manager=manager)
    store.connect(proxy_handler=urllib.request.ProxyHandler({}))
    try:
        assert store.exists("a")
    finally:
        store.disconnect()


def test_update_index_emits_events_without_holding_the_lock(site, manager):
    store = _store(site, manager)
    seen = []

    def listener(event):
        # Store calls from a listener must not deadlock.
        seen.append((type(event), event.key, event.metadata, store.exists(event.key)))

    manager.connect(StoreModificationEvent, listener)
    site.write([("a", b"changed", {"n": 10}), ("c", b"new", {"n": 3})])
    os.remove(os.path.join(site.directory, "data", "b"))
    _write_json(os.path.join(site.directory, "index.json"), {"a": {"n": 10}, "c": {"n": 3}})
    store.update_index()
    store.disconnect()
    assert sorted(seen, key=lambda item: item[1]) == [
        (StoreUpdateEvent, "a", {"n": 10}, True),
        (StoreDeleteEvent, "b", {"n": 2}, False),
        (StoreSetEvent, "c", {"n": 3}, True),
    ]


def test_polling_emits_events(site, manager):
    store = _store(site, manager, poll=0.05)
    arrived = threading.Event()
    events = []

    def listener(event):
        if event.source is store:
            events.append((type(event), event.key))
            if len(events) >= 3:
                arrived.set()

    manager.connect(StoreModificationEvent, listener)
    try:
        _write_json(os.path.join(site.directory, "index.json"), {"a": {"n": 5}, "z": {}})
        assert arrived.wait(10), events
    finally:
        store.disconnect()
    assert sorted(events, key=lambda item: item[1]) == [
        (StoreUpdateEvent, "a"), (StoreDeleteEvent, "b"), (StoreSetEvent, "z")]
    assert store.exists("z") and not store.exists("b")


def test_disconnect_stops_the_poll_thread_promptly(site, manager):
    store = _store(site, manager, poll=300)
    thread = store._poll_thread
    assert thread.is_alive() and thread.daemon
    done = threading.Event()
    worker = threading.Thread(target=lambda: (store.disconnect(), done.set()))
    worker.start()
    # disconnect waits for the thread, which wakes at once (not after 300 s).
    assert done.wait(10)
    worker.join(10)
    assert not thread.is_alive()
    assert not store.is_connected()


def test_store_used_inside_query_loops(site, manager):
    store = _store(site, manager)
    result = []

    def run():
        for key, metadata in store.query():
            result.append((key, store.get_metadata(key), store.exists(key)))
            store.update_index()
        for key in store.glob("*"):
            result.append((key, None, store.exists(key)))
        for key in store.query_keys(n=1):
            result.append((key, store.get_metadata(key, ["n"]), True))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    store.disconnect()
    assert not worker.is_alive(), "deadlock inside a query loop"
    assert len(result) == 5


def test_manual_calling_convention_with_event_manager_first(site, manager):
    store = StaticURLStore(manager, site.url, "data/", "index.json")
    assert store.event_manager is manager
    assert (store.root_url, store.data_path, store.query_path, store.poll) == (
        site.url, "data/", "index.json", 300)
    store = StaticURLStore(manager, site.url, "data/", "index.json", 0)
    assert store.poll == 0
    store.connect(proxy_handler=NO_PROXY)
    try:
        assert _read(store.get_data("a")) == b"0123456789"
    finally:
        store.disconnect()


def test_bad_index_raises_store_error(site, manager):
    with open(os.path.join(site.directory, "index.json"), "w") as stream:
        stream.write("[1, 2]")
    store = StaticURLStore(site.url, "data/", "index.json", poll=0, event_manager=manager)
    with pytest.raises(StoreError):
        store.connect(proxy_handler=NO_PROXY)
    assert not store.is_connected()
    with pytest.raises(StoreError):
        store.update_index()


def test_file_urls_work(manager):
    site_directory = tempfile.mkdtemp(prefix="encore-static-file-")
    try:
        os.mkdir(os.path.join(site_directory, "data"))
        with open(os.path.join(site_directory, "data", "k"), "wb") as stream:
            stream.write(b"file data")
        _write_json(os.path.join(site_directory, "index.json"), {"k": {"x": 1}})
        root = urllib.request.pathname2url(site_directory) + "/"
        store = StaticURLStore("file://" + root, "data/", "index.json", poll=0, event_manager=manager)
        store.connect()
        assert _read(store.get_data("k")) == b"file data"
        assert _read(store.get_data_range("k", 5)) == b"data"
        store.disconnect()
    finally:
        shutil.rmtree(site_directory, ignore_errors=True)
