"""Encore's stand-alone ``RequestsURLValue(session, base_url, key, ...)``,
against the encore WSGI server over a DictMemoryStore on 127.0.0.1."""
import io
import threading

import pytest

requests = pytest.importorskip("requests", reason="RequestsURLValue needs requests")

from encore.events.event_manager import EventManager  # noqa: E402
from encore.storage.abstract_store import AuthorizationError  # noqa: E402
from encore.storage.dict_memory_store import DictMemoryStore  # noqa: E402
from encore.storage.dynamic_url_store import (  # noqa: E402
    DEFAULT_PARTS,
    DynamicURLStore,
    RequestsURLValue,
)
from encore.storage.server import StoreServer, make_app  # noqa: E402


class Recording(object):
    """Forwards to a WSGI app and records (method, path) of each request."""

    def __init__(self, app):
        self.app = app
        self.requests = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            self.requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO")))
        return self.app(environ, start_response)


@pytest.fixture
def served():
    backing = DictMemoryStore(event_manager=EventManager())
    backing.connect()
    backing.set("a key", (io.BytesIO(b"0123456789"), {"colour": "red", "n": 1}))
    app = Recording(make_app(backing))
    server = StoreServer(app, "127.0.0.1", 0)
    session = requests.Session()
    try:
        yield server, app, session
    finally:
        session.close()
        server.shutdown()


def test_encore_form_reads_one_key_without_a_store(served):
    server, app, session = served
    value = RequestsURLValue(session, server.base_url, "a key")
    assert app.requests == [("HEAD", "/a key/data")]
    assert value.size == 10
    assert isinstance(value.modified, float)
    assert value.mimetype == "application/octet-stream"
    assert value.created is None
    assert value.metadata == {"colour": "red", "n": 1}
    stream = value.open()
    try:
        assert stream.read() == b"0123456789"
    finally:
        stream.close()
    with value as data:
        assert data.read() == b"0123456789"
    range_stream = value.range(2, 5)
    try:
        assert range_stream.read() == b"234"
    finally:
        range_stream.close()
    assert value.session is session and value.key == "a key"
    assert ("GET", "/a key/data") in app.requests


def test_encore_form_with_explicit_format_and_parts(served):
    server, app, session = served
    parts = dict(DEFAULT_PARTS)
    value = RequestsURLValue(session, server.base_url, "a key", "{base}/{key}/{part}", parts)
    assert value.metadata["colour"] == "red"
    assert value.parts == DEFAULT_PARTS


def test_encore_form_missing_key_and_bad_input(served):
    server, app, session = served
    with pytest.raises(KeyError):
        RequestsURLValue(session, server.base_url, "missing")
    with pytest.raises(TypeError):
        RequestsURLValue(session, server.base_url, b"a key")


def test_encore_form_refused_access(served):
    server, app, session = served

    def refuse(environ, start_response):
        start_response("403 Forbidden", [("Content-Length", "0")])
        return [b""]

    app.app = refuse
    with pytest.raises(AuthorizationError):
        RequestsURLValue(session, server.base_url, "a key")


def test_the_store_still_makes_its_values(served):
    server, app, session = served
    store = DynamicURLStore(server.base_url, server.query_url, event_manager=EventManager())
    store.connect((None, session))
    value = store.get("a key")
    assert type(value) is RequestsURLValue
    assert value.size == 10
    stream = value.open()
    try:
        assert stream.read() == b"0123456789"
    finally:
        stream.close()
