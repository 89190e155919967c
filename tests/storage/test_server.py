"""Tests of encore.storage.server at the HTTP level (raw requests)."""
import email.utils
import io
import json
import socket

import pytest
import requests

from encore.events.event_manager import EventManager
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.server import make_app, serve


@pytest.fixture
def backing():
    store = DictMemoryStore(event_manager=EventManager())
    store.connect()
    store.set("k", (io.BytesIO(b"0123456789"), {"a": 1}))
    store.set("a/b", (io.BytesIO(b"slash"), {"a": 2}))
    store.set("line\nbreak", (io.BytesIO(b""), {"a": 3}))
    return store


@pytest.fixture
def server(backing):
    server = serve(backing)
    yield server
    server.shutdown()


def test_head_and_get_headers(server, backing):
    response = requests.head(server.url + "/k/data")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "10"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Accept-Ranges"] == "bytes"
    modified = email.utils.parsedate_to_datetime(response.headers["Last-Modified"]).timestamp()
    assert abs(modified - backing.get("k").modified) < 1.5
    assert response.content == b""
    response = requests.get(server.url + "/k/data")
    assert response.content == b"0123456789"
    assert requests.get(server.url + "/a%2Fb/data").content == b"slash"
    assert requests.get(server.url + "/a/b/data").content == b"slash"


def test_ranges(server):
    response = requests.get(server.url + "/k/data", headers={"Range": "bytes=2-4"})
    assert response.status_code == 206
    assert response.content == b"234"
    assert response.headers["Content-Range"] == "bytes 2-4/10"
    assert response.headers["Content-Length"] == "3"
    response = requests.get(server.url + "/k/data", headers={"Range": "bytes=7-"})
    assert (response.status_code, response.content) == (206, b"789")
    response = requests.get(server.url + "/k/data", headers={"Range": "bytes=-2"})
    assert (response.status_code, response.content) == (206, b"89")
    response = requests.get(server.url + "/k/data", headers={"Range": "bytes=5-100"})
    assert (response.status_code, response.content) == (206, b"56789")
    response = requests.get(server.url + "/k/data", headers={"Range": "bytes=10-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */10"
    response = requests.get(server.url + "/k/data", headers={"Range": "bytes=1-2,4-5"})
    assert (response.status_code, response.content) == (200, b"0123456789")


def test_metadata_put_post_and_status(server, backing):
    assert requests.get(server.url + "/k/metadata").json() == {"a": 1}
    response = requests.put(server.url + "/new/metadata", data=json.dumps({"x": 1}))
    assert response.status_code == 201
    assert backing.get_metadata("new") == {"x": 1}
    assert backing.to_bytes("new") == b""
    assert requests.put(server.url + "/new/metadata", data=json.dumps({"y": 2})).status_code == 204
    assert requests.post(server.url + "/new/metadata", data=json.dumps({"z": 3})).status_code == 204
    assert backing.get_metadata("new") == {"y": 2, "z": 3}
    assert requests.post(server.url + "/missing/metadata", data="{}").status_code == 404
    assert requests.put(server.url + "/new/metadata", data="not json").status_code == 400
    assert requests.put(server.url + "/new/metadata", data="[1]").status_code == 400
    assert backing.get_metadata("new") == {"y": 2, "z": 3}


def test_data_put_and_delete(server, backing):
    response = requests.put(server.url + "/fresh/data", data=b"abc")
    assert response.status_code == 201
    assert backing.to_bytes("fresh") == b"abc" and backing.get_metadata("fresh") == {}
    response = requests.put(server.url + "/fresh/data", data=iter([b"de", b"f"]))  # chunked
    assert response.status_code == 204
    assert backing.to_bytes("fresh") == b"def"
    assert requests.delete(server.url + "/fresh").status_code == 204
    assert not backing.exists("fresh")
    assert requests.delete(server.url + "/fresh").status_code == 404
    assert requests.delete(server.url + "/a%2Fb").status_code == 204
    assert not backing.exists("a/b")


def test_truncated_upload_writes_nothing(server, backing):
    host, port = server.host, server.port
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(b"PUT /k/data HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nshort")
        connection.shutdown(socket.SHUT_WR)
        reply = connection.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 400")
    assert backing.to_bytes("k") == b"0123456789"
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(b"PUT /k/data HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"3\r\nabc\r\n")
        connection.shutdown(socket.SHUT_WR)
        reply = connection.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 400")
    assert backing.to_bytes("k") == b"0123456789"


def test_query(server):
    # Plain text cannot keep a key holding a line break in one piece ...
    assert sorted(requests.get(server.query_url).text.split("\n")) == ["", "a/b", "break", "k", "line"]
    response = requests.get(server.query_url, params={"a": json.dumps(1)})
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text == "k\n"
    # ... JSON lines can.
    response = requests.get(server.query_url, headers={"Accept": "application/x-ndjson"})
    assert response.headers["Content-Type"] == "application/x-ndjson"
    keys = sorted(json.loads(line) for line in response.text.splitlines())
    assert keys == ["a/b", "k", "line\nbreak"]
    assert requests.get(server.query_url, params={"a": "not json"}).status_code == 400
    assert requests.put(server.query_url, data=b"").status_code == 405


def test_errors(server):
    assert requests.get(server.url + "/missing/data").status_code == 404
    assert requests.head(server.url + "/missing/data").status_code == 404
    assert requests.get(server.url + "/k/unknown").status_code == 404
    assert requests.get(server.url + "/k/auth").status_code == 403
    assert requests.get(server.url + "/missing/auth").status_code == 404
    assert requests.post(server.url + "/k/data", data=b"").status_code == 405


def test_custom_parts_and_query_path(backing):
    app = make_app(backing, parts={"data": "bytes"}, query_path="search")
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/k/bytes", "wsgi.input": io.BytesIO()}
    statuses = []
    body = b"".join(app(environ, lambda status, headers: statuses.append(status)))
    assert (statuses, body) == (["200 OK"], b"0123456789")
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/search", "QUERY_STRING": "a=2",
               "wsgi.input": io.BytesIO()}
    assert b"".join(app(environ, lambda status, headers: None)) == b"a/b\n"


def test_shutdown_stops_serving(backing):
    server = serve(backing)
    with server:
        assert requests.get(server.url + "/k/data").status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/k/data", timeout=5)


def test_read_only_store_refuses_writes(tmp_path, backing):
    from encore.storage.static_url_store import StaticURLStore

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "k").write_bytes(b"static")
    (tmp_path / "index.json").write_text(json.dumps({"k": {"s": 1}}))
    static = StaticURLStore(tmp_path.as_uri() + "/", "data/", "index.json", poll=0,
                            event_manager=EventManager())
    static.connect()
    with serve(static) as server:
        assert requests.get(server.url + "/k/data").content == b"static"
        assert requests.get(server.url + "/k/metadata").json() == {"s": 1}
        assert requests.put(server.url + "/k/data", data=b"x").status_code == 405
        assert requests.post(server.url + "/k/metadata", data="{}").status_code == 405
        assert requests.delete(server.url + "/k").status_code == 405
        assert requests.get(server.query_url, params={"s": "1"}).text == "k\n"
    static.disconnect()


def test_requests_as_encore_08_client_made_them(server, backing):
    """Encore 0.8's DynamicURLStore: file-like bodies, JSON without a
    Content-Type, ``Accept-Encoding: ''``, a lower-case ``range`` header,
    plain-text query answers, two requests per ``set``."""
    base = server.url
    with requests.Session() as session:
        assert session.put(base + "/new/data", data=io.BytesIO(b"payload")).status_code == 201
        assert session.put(base + "/new/metadata", data=json.dumps({"m": 1})).status_code == 204
        assert session.head(base + "/new/data").headers["Content-Length"] == "7"
        response = session.get(base + "/new/data", stream=True, headers={"Accept-Encoding": ""})
        assert response.raw.read() == b"payload"
        response = session.get(base + "/new/data", headers={"range": "bytes=1-3"})
        assert (response.status_code, response.content) == (206, b"ayl")
        response = session.get(base + "/new/metadata", headers={"Accept": "application/json"})
        assert response.json() == {"m": 1}
        assert session.post(base + "/new/metadata", data=json.dumps({"n": 2})).status_code == 204
        assert session.get(server.query_url, params={"m": json.dumps(1)}).text == "new\n"
        assert session.delete(base + "/new").status_code == 204
    assert not backing.exists("new")
