"""Tests of DynamicURLStore against a real server: the encore WSGI server
(encore.storage.server) over a DictMemoryStore, on 127.0.0.1."""
import base64
import io
import sys
import threading
import unittest

import pytest
import requests

from encore.events.event_manager import EventManager
from encore.storage.abstract_store import AuthorizationError
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.dynamic_url_store import DynamicURLStore
from encore.storage.events import StoreDeleteEvent, StoreModificationEvent, StoreSetEvent, StoreUpdateEvent
from encore.storage.server import make_app
from encore.storage.tests.abstract_test import (
    EventRecorder,
    StoreReadTestMixin,
    StoreWriteTestMixin,
    populate,
    read_fixture,
    store_test_cases,
    write_fixture,
)


class _Switch(object):
    """A WSGI app forwarding to a replaceable app, and recording requests."""

    def __init__(self):
        self.app = None
        self.requests = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            self.requests.append({
                "method": environ["REQUEST_METHOD"],
                "path": environ.get("PATH_INFO"),
                "range": environ.get("HTTP_RANGE"),
                "authorization": environ.get("HTTP_AUTHORIZATION"),
                "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING"),
            })
        return self.app(environ, start_response)


_SERVER = {}


def _server():
    """One server for the whole module; each test installs its own app."""
    if "server" not in _SERVER:
        switch = _Switch()
        _SERVER["switch"] = switch
        _SERVER["server"] = serve_app(switch)
    return _SERVER["server"], _SERVER["switch"]


def serve_app(app):
    from encore.storage.server import StoreServer

    return StoreServer(app, "127.0.0.1", 0)


def teardown_module(module):
    server = _SERVER.pop("server", None)
    if server is not None:
        server.shutdown()


class _RemoteStore(object):
    """setUp: ``self.backing`` (a DictMemoryStore) served over HTTP, and
    ``self.store``, a connected DynamicURLStore talking to it."""

    def setUp(self):
        self.server, self.switch = _server()
        self.backing = DictMemoryStore(event_manager=EventManager())
        self.backing.connect()
        self.switch.app = make_app(self.backing)
        self.switch.requests = []
        self.event_manager = EventManager()
        self.store = DynamicURLStore(self.server.base_url, self.server.query_url,
                                     event_manager=self.event_manager)
        self.store.connect()

    def tearDown(self):
        self.store.disconnect()


class _DynamicRead(_RemoteStore, StoreReadTestMixin):
    """The read fixture put in the backing store."""

    resolution = "second"

    def setUp(self):
        super().setUp()
        populate(self.backing, read_fixture())


class _DynamicWrite(_RemoteStore, StoreWriteTestMixin):
    """The write fixture put in the backing store."""

    resolution = "second"

    def setUp(self):
        super().setUp()
        populate(self.backing, write_fixture())


globals().update(store_test_cases(
    prefix="TestDynamic", base=_RemoteStore, exclude=["Transactions", "LargeValues"],
    overrides={"Read": _DynamicRead, "Write": _DynamicWrite}))


# ---------------------------------------------------------------------------
# Specific tests
# ---------------------------------------------------------------------------


class _NoRange(object):
    """Forward to an app with the Range header removed (a server that
    ignores ranges)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        environ.pop("HTTP_RANGE", None)
        return self.app(environ, start_response)


class _Guard(object):
    """Answer 401 without the right basic credentials, 403 for a forbidden key."""

    def __init__(self, app, user, password):
        self.app = app
        self.expected = "Basic " + base64.b64encode(
            "{}:{}".format(user, password).encode()).decode()

    def __call__(self, environ, start_response):
        if environ.get("HTTP_AUTHORIZATION") != self.expected:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="test"'),
                                                ("Content-Length", "0")])
            return []
        if "forbidden" in environ.get("PATH_INFO", ""):
            start_response("403 Forbidden", [("Content-Length", "0")])
            return []
        return self.app(environ, start_response)


class _PermissionStore(DictMemoryStore):
    """A dictionary store with per-key permissions, for the auth URL."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.permissions = {}

    def info(self):
        info = super().info()
        info["authorizing"] = True
        return info

    def get_permissions(self, key):
        if key not in self._store:
            raise KeyError(key)
        if key == "not_mine":
            raise AuthorizationError(key)
        return {name: set(tags) for name, tags in self.permissions.get(key, {"owned": {"me"}}).items()}

    def set_permissions(self, key, permissions):
        self.get_permissions(key)
        self.permissions[key] = {name: set(tags) for name, tags in permissions.items()}

    def update_permissions(self, key, permissions):
        current = self.get_permissions(key)
        for name, tags in permissions.items():
            current.setdefault(name, set()).update(tags)
        self.permissions[key] = current


class TestDynamicSpecific(_RemoteStore, unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.backing.set("k", (io.BytesIO(b"0123456789"), {"a": 1, "name": "k"}))
        self.backing.set("other", (io.BytesIO(b"x"), {"a": 2}))

    @staticmethod
    def _read(stream):
        try:
            return stream.read()
        finally:
            stream.close()

    def test_missing_key_raises_key_error(self):
        for call in (
            lambda: self.store.get("missing"),
            lambda: self.store.get_data("missing"),
            lambda: self.store.get_metadata("missing"),
            lambda: self.store.get_data_range("missing", 1, 3),
            lambda: self.store.get_data_range("missing", 3, 1),
            lambda: self.store.delete("missing"),
            lambda: self.store.update_metadata("missing", {"a": 1}),
            lambda: self.store.to_bytes("missing"),
        ):
            with self.assertRaises(KeyError):
                call()
        self.assertFalse(self.store.exists("missing"))
        self.assertTrue(self.store.exists("k"))

    def test_query_keys_yields_str_and_glob_works(self):
        keys = list(self.store.query_keys())
        self.assertEqual(sorted(keys), ["k", "other"])
        self.assertTrue(all(type(key) is str for key in keys))
        self.assertEqual(list(self.store.query_keys(a=1)), ["k"])
        self.assertEqual(list(self.store.query_keys(a="1")), [])
        self.assertEqual(list(self.store.glob("o*")), ["other"])
        self.assertEqual(dict(self.store.query(select=["name"], a=1)), {"k": {"name": "k"}})

    def test_plain_text_query_answers_are_understood(self):
        """A server answering text/plain (Encore's protocol) works too."""
        response = requests.get(self.server.query_url, params={"a": "1"})
        self.assertTrue(response.headers["Content-Type"].startswith("text/plain"))
        self.assertEqual(response.text, "k\n")
        self.assertEqual(list(DynamicURLStore._keys(
            requests.get(self.server.query_url, stream=True))), ["k", "other"])

    def test_range_uses_server_ranges(self):
        self.assertEqual(self._read(self.store.get_data_range("k", 2, 5)), b"234")
        ranges = [request["range"] for request in self.switch.requests if request["range"]]
        self.assertEqual(ranges, ["bytes=2-4"])
        self.assertEqual(self._read(self.store.get_data_range("k", 7)), b"789")
        self.assertEqual(self._read(self.store.get_data_range("k", None, 3)), b"012")
        self.assertEqual(self._read(self.store.get_data_range("k", -3, -1)), b"78")
        self.assertEqual(self._read(self.store.get_data_range("k", 20, 30)), b"")
        self.assertEqual(self._read(self.store.get_data_range("k", 5, 2)), b"")
        self.assertEqual(self._read(self.store.get("k").range(1, 4)), b"123")

    def test_range_without_server_support(self):
        self.switch.app = _NoRange(make_app(self.backing))
        self.assertEqual(self._read(self.store.get_data_range("k", 2, 5)), b"234")
        self.assertEqual(self._read(self.store.get_data_range("k", 7)), b"789")
        self.assertEqual(self._read(self.store.get_data_range("k", -3, -1)), b"78")
        self.assertEqual(self._read(self.store.get_data_range("k", 20, 30)), b"")
        self.assertEqual(self._read(self.store.get("k").range(8, 100)), b"89")

    def test_value_attributes(self):
        value = self.store.get("k")
        self.assertEqual(value.size, 10)
        self.assertIsInstance(value.modified, float)
        self.assertEqual(value.mimetype, "application/octet-stream")
        self.assertIsNone(value.created)
        self.assertEqual(value.metadata, {"a": 1, "name": "k"})
        with value as data:
            self.assertEqual(data.read(), b"0123456789")

    def test_upload_is_streamed(self):
        self.store.set_data("big", io.BytesIO(b"y" * 300000), buffer_size=65536)
        self.assertEqual(self.backing.to_bytes("big"), b"y" * 300000)
        puts = [request for request in self.switch.requests if request["method"] == "PUT"]
        self.assertEqual(puts[-1]["transfer_encoding"], "chunked")

    def test_events_after_writes(self):
        with EventRecorder(self.event_manager, self.store, StoreModificationEvent) as recorder:
            self.store.set("new", (io.BytesIO(b"n"), {"v": 1}))
            self.store.set_data("k", io.BytesIO(b"changed"))
            self.store.update_metadata("k", {"b": 2})
            self.store.delete("other")
        events = [(type(event), event.key, event.metadata, event.source) for event in recorder.events]
        self.assertEqual(events, [
            (StoreSetEvent, "new", {"v": 1}, self.store),
            (StoreUpdateEvent, "k", {"a": 1, "name": "k"}, self.store),
            (StoreUpdateEvent, "k", {"a": 1, "name": "k", "b": 2}, self.store),
            (StoreDeleteEvent, "other", {"a": 2}, self.store),
        ])

    def test_failed_write_emits_nothing(self):
        with EventRecorder(self.event_manager, self.store, StoreModificationEvent) as recorder:
            with self.assertRaises(KeyError):
                self.store.delete("missing")
            with self.assertRaises(KeyError):
                self.store.update_metadata("missing", {})
        self.assertEqual(recorder.events, [])

    def test_user_tag_property_and_callable(self):
        self.assertEqual(self.store.user_tag, "")
        self.store.connect(("alice", requests.Session()))
        self.assertEqual(self.store.user_tag, "alice")
        self.assertEqual(self.store.user_tag(), "alice")
        self.assertTrue(self.store.info()["authorizing"])

    def test_credentials_reach_the_server(self):
        self.switch.app = _Guard(make_app(self.backing), "alibaba", "Open Sesame")
        with self.assertRaises(AuthorizationError):
            self.store.get_metadata("k")
        self.store.connect({"username": "alibaba", "password": "Open Sesame"})
        self.assertEqual(self.store.get_metadata("k"), {"a": 1, "name": "k"})
        self.assertEqual(self.store.user_tag, "alibaba")
        self.assertTrue(self.switch.requests[-1]["authorization"].startswith("Basic "))
        session = requests.Session()
        session.auth = ("alibaba", "Open Sesame")
        self.store.connect(("tag", session))
        self.assertEqual(self.store.to_bytes("k"), b"0123456789")
        with self.assertRaises(AuthorizationError):
            self.store.get("forbidden")
        with self.assertRaises(AuthorizationError):
            self.store.set_data("forbidden", io.BytesIO(b"x"))
        self.store.connect({"user": "alibaba", "passwd": "wrong"})
        with self.assertRaises(AuthorizationError):
            self.store.exists("k")

    def test_permissions_of_a_non_authorizing_store(self):
        with self.assertRaises(AuthorizationError):
            self.store.get_permissions("k")
        with self.assertRaises(KeyError):
            self.store.get_permissions("missing")

    def test_permissions_round_trip(self):
        backing = _PermissionStore(event_manager=EventManager())
        backing.connect()
        backing.set("mine", (io.BytesIO(b"m"), {}))
        backing.set("not_mine", (io.BytesIO(b"n"), {}))
        self.switch.app = make_app(backing)
        self.assertEqual(self.store.get_permissions("mine"), {"owned": {"me"}})
        self.assertEqual(self.store.get("mine").permissions, {"owned": {"me"}})
        self.store.set_permissions("mine", {"owned": {"me", "you"}, "read": {"all"}})
        self.assertEqual(backing.permissions["mine"], {"owned": {"me", "you"}, "read": {"all"}})
        self.store.update_permissions("mine", {"read": {"them"}})
        self.assertEqual(self.store.get_permissions("mine")["read"], {"all", "them"})
        with self.assertRaises(AuthorizationError):
            self.store.get_permissions("not_mine")
        with self.assertRaises(KeyError):
            self.store.set_permissions("missing", {"owned": {"me"}})

    def test_not_connected(self):
        self.store.disconnect()
        self.assertFalse(self.store.is_connected())
        from encore.storage.abstract_store import StoreError

        with self.assertRaises(StoreError):
            self.store.get("k")


def test_missing_requests_gives_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "requests", None)
    with pytest.raises(ImportError, match=r"pip install \"\.\[http\]\"  in the encore checkout"):
        DynamicURLStore("http://127.0.0.1:1", "http://127.0.0.1:1/query")
