"""The metadata value types beyond JSON (datetime, date, time, Decimal,
bytes, set, frozenset, UUID) through the store server and DynamicURLStore,
through a published StaticURLStore, and through the composite stores.

Servers are real, on 127.0.0.1 with ephemeral ports."""
import datetime
import decimal
import functools
import io
import json
import shutil
import tempfile
import threading
import unittest
import urllib.parse
import urllib.request
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from encore.events.event_manager import EventManager
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.dynamic_url_store import DynamicURLStore
from encore.storage.joined_store import JoinedStore
from encore.storage.mounted_store import MountedStore
from encore.storage.publish import publish
from encore.storage.server import StoreServer, make_app
from encore.storage.simple_auth_store import SimpleAuthStore, create_user_record, make_pbkdf2_encoder
from encore.storage.static_url_store import StaticURLStore
from encore.storage.tests.abstract_test import StoreMetadataTypesTestMixin, store_test_cases
from encore.storage.tests.mixins.metadata_types import metadata_type_samples

from .composite_support import CHILD_KINDS, make_child

NO_PROXY = urllib.request.ProxyHandler({})


# ---------------------------------------------------------------------------
# One server for the module; each test installs its own application
# ---------------------------------------------------------------------------

class _Switch(object):
    """A WSGI app forwarding to a replaceable app, recording the requests;
    with ``protocol`` 1 it hides ``Encore-Protocol`` (an Encore 0.8 server)."""

    def __init__(self):
        self.app = None
        self.protocol = 2
        self.requests = []
        self.lock = threading.Lock()

    def install(self, app, protocol=2):
        self.app = app
        self.protocol = protocol
        self.requests = []

    def __call__(self, environ, start_response):
        with self.lock:
            self.requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO")))
        if self.protocol >= 2:
            return self.app(environ, start_response)

        def old_start_response(status, headers, exc_info=None):
            headers = [(name, value) for name, value in headers if name.lower() != "encore-protocol"]
            return start_response(status, headers, exc_info)
        return self.app(environ, old_start_response)


_SERVER = {}


def _server():
    if "server" not in _SERVER:
        _SERVER["switch"] = _Switch()
        _SERVER["server"] = StoreServer(_SERVER["switch"], "127.0.0.1", 0)
    return _SERVER["server"], _SERVER["switch"]


def teardown_module(module):
    server = _SERVER.pop("server", None)
    if server is not None:
        server.shutdown()


class _SameTypes(object):
    """The mixin's check: equal, with the same types all the way down."""

    _assert_same = StoreMetadataTypesTestMixin._assert_same
    _about = StoreMetadataTypesTestMixin._about
    _expect = StoreMetadataTypesTestMixin._expect


def _assert_same(test, actual, expected):
    test._assert_same(actual, expected, "(this test)", "metadata")


class _ValueLike(object):
    """A Value-like object (``set`` accepts these) whose data must not be read."""

    def __init__(self, metadata):
        self._metadata = metadata
        self.data_read = False

    @property
    def data(self):
        self.data_read = True
        return io.BytesIO(b"should not be sent")

    @property
    def metadata(self):
        return self._metadata


# ---------------------------------------------------------------------------
# DynamicURLStore through the server, over every kind of served store
# ---------------------------------------------------------------------------

class _Remote(object):
    """setUp: a store of ``kind`` served over HTTP (``self.backing``) and
    ``self.store``, a connected DynamicURLStore talking to it through a
    server speaking ``protocol``."""

    kind = "dict"
    protocol = 2

    def setUp(self):
        self.server, self.switch = _server()
        directory = tempfile.mkdtemp(prefix="encore_net_types_")
        self.addCleanup(shutil.rmtree, directory, True)
        self.backing = make_child(self.kind, directory, "served", EventManager())
        self.addCleanup(self.backing.disconnect)
        self.switch.install(make_app(self.backing), self.protocol)
        self.store = DynamicURLStore(self.server.base_url, self.server.query_url,
                                     event_manager=EventManager(), retries=0)
        self.store.connect()
        self.addCleanup(self.store.disconnect)


class _RemoteChecks(_Remote):
    """What the wire carries, and what is refused before any request."""

    def test_served_store_holds_the_values_themselves(self):
        samples = metadata_type_samples()
        self.store.set("types_k", (io.BytesIO(b"data"), samples))
        _assert_same(self, self.backing.get_metadata("types_k"), samples)
        self.store.update_metadata("types_k", {"day": datetime.date(2020, 2, 29)})
        _assert_same(self, self.backing.get_metadata("types_k"),
                     dict(samples, day=datetime.date(2020, 2, 29)))
        self.assertEqual(self.backing.get_data("types_k").read(), b"data")

    def test_unsupported_metadata_is_refused_before_any_request(self):
        old = {"when": datetime.datetime(2001, 1, 1), "n": 1}
        self.store.set("k", (io.BytesIO(b"old data"), old))
        self.switch.requests = []
        bad_values = [
            {"a": datetime.timedelta(days=1)},
            {"a": [1, {"b": object()}]},
            {"a": {1, (2, 3)}},
            {"a": float("nan")},
            {"a": decimal.Decimal("sNaN")},
            {1: "non-str name"},
        ]
        for bad in bad_values:
            with self.subTest(metadata=bad):
                with self.assertRaises((TypeError, ValueError)):
                    self.store.set("k", (io.BytesIO(b"new data"), bad))
                value = _ValueLike(bad)
                with self.assertRaises((TypeError, ValueError)):
                    self.store.set("k", value)
                self.assertFalse(value.data_read)
                with self.assertRaises((TypeError, ValueError)):
                    self.store.set_metadata("k", bad)
                with self.assertRaises((TypeError, ValueError)):
                    self.store.update_metadata("k", bad)
                with self.assertRaises((TypeError, ValueError)):
                    self.store.multiset(["k2", "k"], [(io.BytesIO(b"x"), {}), (io.BytesIO(b"y"), bad)])
        with self.assertRaises(TypeError):
            self.store.query_keys(a=object())
        self.assertEqual(self.switch.requests, [])
        _assert_same(self, self.backing.get_metadata("k"), old)
        self.assertEqual(self.backing.get_data("k").read(), b"old data")
        self.assertFalse(self.backing.exists("k2"))

    def test_queries_send_tagged_values(self):
        when = datetime.datetime(2011, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc)
        self.store.set_metadata("a", {"when": when, "price": decimal.Decimal("2.50")})
        self.store.set_metadata("b", {"when": when.replace(year=2012), "price": 2})
        self.switch.requests = []
        self.assertEqual(sorted(self.store.query_keys(when=when)), ["a"])
        # The same instant in another zone is == to it, as Python compares.
        other_zone = when.astimezone(datetime.timezone(datetime.timedelta(hours=3)))
        self.assertEqual(sorted(self.store.query_keys(when=other_zone)), ["a"])
        self.assertEqual(sorted(self.store.query_keys(price=decimal.Decimal("2"))), ["b"])
        self.assertEqual(sorted(self.store.query_keys(price=2.5)), ["a"])
        self.assertEqual([key for key, _ in self.store.query(select=["when"], when=when)], ["a"])
        self.assertTrue(all(path == "/query" for method, path in self.switch.requests
                            if method == "GET" and "metadata" not in path))


class _OldProtocolChecks(_RemoteChecks):
    """Against a server that does not announce protocol 2: ``set`` is two
    requests, the metadata encoded before the first."""

    protocol = 1

    def test_set_is_two_requests(self):
        self.store.set("two", (io.BytesIO(b"x"), {"day": datetime.date(2000, 1, 2)}))
        methods = [(method, path) for method, path in self.switch.requests if method == "PUT"]
        self.assertEqual(methods, [("PUT", "/two/data"), ("PUT", "/two/metadata")])
        _assert_same(self, self.backing.get_metadata("two"), {"day": datetime.date(2000, 1, 2)})


# Over a dictionary store, protocol 2 (data and metadata in one request), and
# protocol 1; then over the other kinds of served store.
globals().update(store_test_cases(prefix="TestDynamicDict", base=_RemoteChecks, include=["MetadataTypes"]))
globals().update(store_test_cases(prefix="TestDynamicDictOldProtocol", base=_OldProtocolChecks,
                                  include=["MetadataTypes"]))
for _kind in ("sqlite", "filesystem"):
    globals().update(store_test_cases(prefix="TestDynamic" + _kind.capitalize(), base=_Remote,
                                      include=["MetadataTypes"],
                                      attributes={"MetadataTypes": {"kind": _kind}}))


class TestWireForm(_Remote, _SameTypes, unittest.TestCase):
    """The HTTP protocol as other clients (Encore 0.8's included) see it."""

    def url(self, key, part="metadata"):
        return "{}/{}/{}".format(self.server.base_url, urllib.parse.quote(key, safe=""), part)

    def test_get_metadata_is_tagged_json(self):
        self.backing.set_metadata("k", {"day": datetime.date(2024, 5, 1), "tags": {"b", "a"},
                                        "plain": [1, "x"], "$encore:date": "lookalike"})
        response = requests.get(self.url("k"), timeout=30)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.headers["Content-Type"], "application/json")
        self.assertEqual(response.json(), {
            "day": {"$encore:date": "2024-05-01"}, "tags": {"$encore:set": ["a", "b"]},
            "plain": [1, "x"], "$encore:date": "lookalike"})
        self.backing.set_metadata("lone", {"$encore:date": "lookalike"})
        self.assertEqual(requests.get(self.url("lone"), timeout=30).json(),
                         {"$encore:dict": ["$encore:date", "lookalike"]})

    def test_plain_json_clients_work_unchanged(self):
        # An Encore 0.8 client: plain JSON bodies, two requests.
        self.assertEqual(requests.put(self.url("k", "data"), data=b"abc", timeout=30).status_code, 201)
        body = json.dumps({"a": 1, "b": {"c": [True, None]}})
        self.assertEqual(requests.put(self.url("k"), data=body, timeout=30,
                                      headers={"Content-Type": "application/json"}).status_code, 204)
        self.assertEqual(self.backing.get_metadata("k"), {"a": 1, "b": {"c": [True, None]}})
        self.assertEqual(requests.get(self.url("k"), timeout=30).json(), {"a": 1, "b": {"c": [True, None]}})
        answer = requests.get(self.server.query_url, params={"a": "1"}, timeout=30)
        self.assertEqual(answer.text, "k\n")

    def test_tagged_bodies_and_query_values_are_decoded(self):
        self.backing.set_metadata("k", {})
        body = json.dumps({"day": {"$encore:date": "2024-05-01"},
                           "id": {"$encore:uuid": "12345678-1234-5678-1234-567812345678"}})
        response = requests.post(self.url("k"), data=body, timeout=30,
                                 headers={"Content-Type": "application/json"})
        self.assertEqual(response.status_code, 204)
        _assert_same(self, self.backing.get_metadata("k"), {
            "day": datetime.date(2024, 5, 1), "id": uuid.UUID("12345678-1234-5678-1234-567812345678")})
        answer = requests.get(self.server.query_url, params={"day": '{"$encore:date": "2024-05-01"}'},
                              timeout=30)
        self.assertEqual(answer.text, "k\n")
        answer = requests.get(self.server.query_url, params={"day": '"2024-05-01"'}, timeout=30)
        self.assertEqual(answer.text, "")  # the text is not the date

    def test_malformed_tagged_values_are_400_and_change_nothing(self):
        self.backing.set_metadata("k", {"n": 1})
        for body in ('{"day": {"$encore:date": "not a date"}}', '{"x": {"$encore:nonsense": 1}}',
                     '{"$encore:date": "2024-05-01"}'):
            with self.subTest(body=body):
                response = requests.put(self.url("k"), data=body, timeout=30,
                                        headers={"Content-Type": "application/json"})
                self.assertEqual(response.status_code, 400)
                self.assertNotIn("Traceback", response.text)
        response = requests.get(self.server.query_url, params={"day": '{"$encore:date": 5}'}, timeout=30)
        self.assertEqual(response.status_code, 400)
        self.assertIn("tagged value", response.text)
        self.assertEqual(self.backing.get_metadata("k"), {"n": 1})


# ---------------------------------------------------------------------------
# A published StaticURLStore (the read side)
# ---------------------------------------------------------------------------

class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class TestPublishedTypes(_SameTypes, unittest.TestCase):
    """publish() writes the tagged form; StaticURLStore reads the values back."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.directory = tempfile.mkdtemp(prefix="encore_published_types_")
        cls.addClassCleanup(shutil.rmtree, cls.directory, True)
        cls.samples = metadata_type_samples()
        source = DictMemoryStore()
        source.connect()
        source.set("types_a", (io.BytesIO(b"alpha"), cls.samples))
        source.set("types_b", (io.BytesIO(b"beta"), {"when": datetime.datetime(2000, 1, 1),
                                                      "tags": frozenset({1, 2})}))
        source.set("lone", (io.BytesIO(b""), {"$encore:set": [1]}))
        source.set("plain", (io.BytesIO(b"p"), {"n": 1, "s": "café"}))
        cls.source = source
        cls.count = publish(source, cls.directory)
        handler = functools.partial(_Quiet, directory=cls.directory)
        cls.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=cls.httpd.serve_forever, daemon=True)
        thread.start()
        cls.addClassCleanup(cls.httpd.server_close)
        cls.addClassCleanup(cls.httpd.shutdown)
        cls.url = "http://127.0.0.1:{}/".format(cls.httpd.server_address[1])

    def setUp(self):
        self.store = StaticURLStore(self.url, "data/", "index.json", poll=0, event_manager=EventManager())
        self.store.connect(proxy_handler=NO_PROXY)
        self.addCleanup(self.store.disconnect)

    def test_index_is_tagged_json(self):
        with open(self.directory + "/index.json", "rb") as stream:
            raw = stream.read()
        index = json.loads(raw.decode("utf-8"))
        self.assertEqual(index["types_a"]["day"], {"$encore:date": "1970-01-01"})
        self.assertEqual(index["types_a"]["id"], {"$encore:uuid": "12345678-1234-5678-1234-567812345678"})
        self.assertEqual(index["types_b"]["tags"], {"$encore:frozenset": [1, 2]})
        self.assertEqual(index["lone"], {"$encore:dict": ["$encore:set", [1]]})
        self.assertEqual(index["plain"], {"n": 1, "s": "café"})
        self.assertIn("café".encode("utf-8"), raw)
        # Publishing an unchanged store writes the same bytes.
        self.assertEqual(publish(self.source, self.directory), self.count)
        with open(self.directory + "/index.json", "rb") as stream:
            self.assertEqual(stream.read(), raw)

    def test_metadata_reads_back_exactly(self):
        _assert_same(self, self.store.get_metadata("types_a"), self.samples)
        _assert_same(self, self.store.get("types_a").metadata, self.samples)
        _assert_same(self, self.store.get_metadata("lone"), {"$encore:set": [1]})
        _assert_same(self, self.store.get_metadata("types_a", select=["price", "tags"]),
                     {"price": self.samples["price"], "tags": self.samples["tags"]})
        self.assertEqual(self.store.get_data("types_b").read(), b"beta")

    def test_queries_compare_values(self):
        self.assertEqual(sorted(self.store.query_keys(when=self.samples["when"])), ["types_a"])
        self.assertEqual(sorted(self.store.query_keys(tags={1, 2})), ["types_b"])
        self.assertEqual(sorted(self.store.query_keys(when=datetime.datetime(2000, 1, 1))), ["types_b"])
        found = dict(self.store.query(id=self.samples["id"]))
        _assert_same(self, found["types_a"], self.samples)

    def test_publish_refuses_unencodable_metadata_before_writing(self):
        class Odd(DictMemoryStore):
            def get_metadata(self, key, select=None):
                return {"a": datetime.timedelta(1)}  # a store that does not check
        odd = Odd()
        odd.connect()
        odd.set("x", (io.BytesIO(b"x"), {}))
        target = tempfile.mkdtemp(prefix="encore_published_odd_")
        self.addCleanup(shutil.rmtree, target, True)
        with self.assertRaisesRegex(TypeError, "timedelta"):
            publish(odd, target)
        import os
        self.assertEqual(os.listdir(target), [])


# ---------------------------------------------------------------------------
# The composite stores, over every kind of child
# ---------------------------------------------------------------------------

ENCODER = make_pbkdf2_encoder(b"test salt 123456", iterations=1000)


class _Children(object):
    kind = "dict"

    def children(self, *names):
        directory = tempfile.mkdtemp(prefix="encore_composite_types_")
        self.addCleanup(shutil.rmtree, directory, True)
        self.event_manager = EventManager()
        made = []
        for name in names:
            child = make_child(self.kind, directory, name, self.event_manager)
            self.addCleanup(child.disconnect)
            made.append(child)
        return made


class _Joined(_Children):
    def setUp(self):
        self.store = JoinedStore(self.children("a", "b", "c"), event_manager=self.event_manager)
        self.store.connect()
        self.addCleanup(self.store.disconnect)


class _Mounted(_Children):
    def setUp(self):
        mount, backing = self.children("mount", "backing")
        # Every key the mixin writes is under the mount point.
        self.store = MountedStore("types_", mount, backing, event_manager=self.event_manager)
        self.store.connect()
        self.addCleanup(self.store.disconnect)


class _Auth(_Children):
    def setUp(self):
        inner, = self.children("inner")
        create_user_record(inner, "alice", "correct horse", ENCODER)
        self.store = SimpleAuthStore(inner, ENCODER, event_manager=self.event_manager)
        self.store.connect({"username": "alice", "password": "correct horse"})
        self.addCleanup(self.store.disconnect)


for _kind in CHILD_KINDS:
    for _label, _case in (("Joined", _Joined), ("Mounted", _Mounted), ("SimpleAuth", _Auth)):
        globals().update(store_test_cases(
            prefix="Test{}{}".format(_label, _kind.capitalize()), base=_case, include=["MetadataTypes"],
            attributes={"MetadataTypes": {"kind": _kind}}))
del _kind, _label, _case



# ---------------------------------------------------------------------------
# The store browser behind the server
# ---------------------------------------------------------------------------

class TestBrowserShowsTypes(_Remote, unittest.TestCase):
    """The browser pages the server routes show tagged values, and read them
    in filters (they used to fail on any value beyond JSON)."""

    def test_key_page_and_filters(self):
        self.backing.set_metadata("k", {"day": datetime.date(2024, 5, 1), "title": "café"})
        self.backing.set_metadata("other", {"day": datetime.date(2024, 5, 2)})
        page = requests.get(self.server.base_url + "/_browse/key", params={"key": "k"}, timeout=30)
        self.assertEqual(page.status_code, 200)
        self.assertIn("$encore:date", page.text)
        self.assertIn("2024-05-01", page.text)
        listing = requests.get(self.server.base_url + "/_browse/",
                               params={"day": '{"$encore:date": "2024-05-01"}'}, timeout=30)
        self.assertEqual(listing.status_code, 200)
        self.assertIn("key=k", listing.text)
        self.assertNotIn("key=other", listing.text)
