"""Who may come in, and what a client can hold: authentication, Host/Origin
checks, limits and the embedded HTTP server's connection handling."""
import base64
import io
import json
import os
import socket
import stat
import sys
import types
import warnings

import pytest
import requests

from encore.events.event_manager import EventManager
from encore.storage import _server_auth
from encore.storage.abstract_store import AuthorizationError
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.dynamic_url_store import DynamicURLStore
from encore.storage.server import PasswordFile, make_app, serve, verify_password
from encore.storage.simple_auth_store import (
    SimpleAuthStore,
    create_user_record,
    make_pbkdf2_encoder,
)

# Few iterations keep the tests fast; the format is the production one.
FAST = 1000


@pytest.fixture
def backing():
    store = DictMemoryStore(event_manager=EventManager())
    store.connect()
    store.set("k", (io.BytesIO(b"0123456789"), {"a": 1}))
    return store


@pytest.fixture
def users_file(tmp_path):
    users = PasswordFile(tmp_path / "users")
    users.add_user("alice", "wonderland", iterations=FAST)
    users.add_user("bob", "builder", iterations=FAST)
    token = users.add_token("robot", "t" * 40)
    users.save()
    return tmp_path / "users", token


def _raw(server, data, timeout=10):
    """Send raw bytes, return everything the server answers before closing."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as connection:
        connection.sendall(data)
        try:
            connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        chunks = []
        while True:
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


# -- the users file -----------------------------------------------------------

def test_users_file_holds_hashes_only_and_is_private(users_file):
    path, token = users_file
    text = path.read_text()
    assert "wonderland" not in text and "builder" not in text and token not in text
    assert "alice:pbkdf2_sha256$1000$" in text
    assert "robot:token_sha256$" in text
    if os.name == "posix":
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    users = PasswordFile(path)
    assert list(users.names()) == ["alice", "bob", "robot"]
    assert verify_password(users.records["alice"], "wonderland")
    assert not verify_password(users.records["alice"], "wonderlanD")
    users.remove("bob")
    users.save()
    assert list(PasswordFile(path).names()) == ["alice", "robot"]
    with pytest.raises(KeyError):
        users.remove("nobody")


def test_users_file_rejects_bad_names_and_lines(tmp_path):
    users = PasswordFile(tmp_path / "users")
    with pytest.raises(ValueError):
        users.add_user("a:b", "pw", iterations=FAST)
    with pytest.raises(TypeError):
        users.add_user(3, "pw", iterations=FAST)
    with pytest.raises(ValueError):
        users.add_user("carol", "", iterations=FAST)
    (tmp_path / "bad").write_text("alice:plaintext-password\n")
    with pytest.raises(ValueError, match="line 1"):
        PasswordFile(tmp_path / "bad")
    with pytest.raises(FileNotFoundError):
        make_app(DictMemoryStore(), users=tmp_path / "missing")


# -- authentication -------------------------------------------------------------

def test_requests_need_valid_credentials(backing, users_file):
    path, token = users_file
    with serve(backing, users=path) as server:
        url = server.url + "/k/data"
        response = requests.get(url)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="encore"')
        assert "Bearer" in response.headers["WWW-Authenticate"]
        assert requests.get(url, auth=("alice", "wrong")).status_code == 401
        assert requests.get(url, auth=("nobody", "wonderland")).status_code == 401
        assert requests.get(url, headers={"Authorization": "Basic !!!"}).status_code == 401
        assert requests.get(url, headers={"Authorization": "Digest x"}).status_code == 401
        assert requests.get(url, auth=("alice", "wonderland")).content == b"0123456789"
        assert requests.get(url, headers={"Authorization": "Bearer " + token}).status_code == 200
        assert requests.get(url, headers={"Authorization": "Bearer " + "u" * 40}).status_code == 401
        # Writes need credentials too, and nothing is written without them.
        assert requests.put(url, data=b"intruder").status_code == 401
        assert backing.to_bytes("k") == b"0123456789"
        # The users file is re-read: a removed user is refused at once.
        users = PasswordFile(path)
        users.remove("alice")
        users.save()
        assert requests.get(url, auth=("alice", "wonderland")).status_code == 401
        assert requests.get(url, auth=("bob", "builder")).status_code == 200


def test_refused_uploads_reach_the_client_as_refusals(backing, users_file):
    path, _ = users_file
    with serve(backing, users=path) as server:
        store = DynamicURLStore(server.url, server.query_url, event_manager=EventManager())
        store.connect({"username": "alice", "password": "wrong"})
        for size in (10, 900000, 3 << 20):
            with pytest.raises(AuthorizationError):
                store.set_data("k", io.BytesIO(b"x" * size))
        store.disconnect()
    assert backing.to_bytes("k") == b"0123456789"


def test_tokens_given_by_a_program(backing):
    with serve(backing, tokens={"s" * 32: "ci"}) as server:
        store = DynamicURLStore(server.url, server.query_url, event_manager=EventManager())
        store.connect({"token": "s" * 32})
        assert store.to_bytes("k") == b"0123456789"
        store.disconnect()
        store.connect({"token": "x" * 32})
        with pytest.raises(AuthorizationError):
            store.to_bytes("k")
        store.disconnect()
    with pytest.raises(ValueError):
        make_app(backing, tokens={"short": "ci"})


def test_unknown_users_cost_a_full_password_check(backing, users_file, monkeypatch):
    path, _ = users_file
    checks = []
    original = _server_auth.verify_password

    def counting(record, password):
        checks.append(record.split("$")[1])
        return original(record, password)

    monkeypatch.setattr(_server_auth, "verify_password", counting)
    app = make_app(backing, users=path)
    authenticator = app.authenticator
    header = "Basic " + base64.b64encode(b"nobody:pw").decode()
    assert authenticator.authenticate(header) is None
    # The dummy check uses the iteration count of the real records.
    assert checks == ["1000"]
    header = "Basic " + base64.b64encode(b"alice:wonderland").decode()
    assert authenticator.authenticate(header) == "alice"
    assert authenticator.authenticate(header) == "alice"
    assert len(checks) == 2  # the second request is remembered


class _OwnPrefixStore(SimpleAuthStore):
    """Users may only see and write keys starting with their own name."""

    def check_permissions(self, key=None):
        permissions = super().check_permissions(key)
        if key is not None and not key.startswith(self.username + "/"):
            return set()
        return permissions


@pytest.fixture
def auth_store():
    backend = DictMemoryStore(event_manager=EventManager())
    backend.connect()
    encoder = make_pbkdf2_encoder(b"0123456789abcdef", FAST)
    create_user_record(backend, "alice", "wonderland", encoder)
    create_user_record(backend, "bob", "builder", encoder)
    backend.set("alice/x", (io.BytesIO(b"A"), {}))
    backend.set("bob/x", (io.BytesIO(b"B"), {}))
    store = _OwnPrefixStore(backend, encoder, event_manager=EventManager())
    store.connect({"username": "alice", "password": "wonderland"})  # the server's own user
    return backend, store


def _client(server, user, password):
    store = DynamicURLStore(server.url, server.query_url, event_manager=EventManager())
    store.connect({"username": user, "password": password})
    return store


def test_remote_users_get_their_own_permissions(auth_store):
    backend, store = auth_store
    with serve(store) as server:
        assert requests.get(server.url + "/bob/x/data").status_code == 401
        bob = _client(server, "bob", "builder")
        alice = _client(server, "alice", "wonderland")
        try:
            assert bob.to_bytes("bob/x") == b"B"
            with pytest.raises(KeyError):
                bob.to_bytes("alice/x")  # the server runs as alice, bob does not
            assert sorted(bob.query_keys()) == ["bob/x"]
            bob.set_data("bob/y", io.BytesIO(b"new"))
            with pytest.raises((KeyError, AuthorizationError)):
                bob.set_data("alice/y", io.BytesIO(b"no"))
            assert not backend.exists("alice/y")
            assert alice.to_bytes("alice/x") == b"A"
            with pytest.raises(AuthorizationError):
                _client(server, "bob", "wrong").to_bytes("bob/x")
            # The user records stay hidden from remote users.
            with pytest.raises(KeyError):
                bob.get_data(".user_bob")
        finally:
            bob.disconnect()
            alice.disconnect()
    assert backend.to_bytes("bob/y") == b"new"
    assert store.is_connected()  # the per-user views never disconnect the served store


def test_users_file_users_act_as_themselves_in_an_auth_store(auth_store, tmp_path):
    backend, store = auth_store
    users = PasswordFile(tmp_path / "users")
    token = users.add_token("bob", "b" * 40)
    users.save()
    with serve(store, users=tmp_path / "users") as server:
        headers = {"Authorization": "Bearer " + token}
        assert requests.get(server.url + "/bob/x/data", headers=headers).content == b"B"
        assert requests.get(server.url + "/alice/x/data", headers=headers).status_code == 404


def test_read_only_answers_writes_with_405(backing):
    with serve(backing, read_only=True) as server:
        assert requests.get(server.url + "/k/data").content == b"0123456789"
        assert requests.put(server.url + "/k/data", data=b"x").status_code == 405
        assert requests.put(server.url + "/k/metadata", json={}).status_code == 405
        assert requests.post(server.url + "/k/metadata", json={}).status_code == 405
        assert requests.delete(server.url + "/k").status_code == 405
    assert backing.to_bytes("k") == b"0123456789" and backing.get_metadata("k") == {"a": 1}


def test_no_unauthenticated_listening_beyond_loopback(backing, users_file):
    with pytest.raises(PermissionError, match="expose_without_auth"):
        serve(backing, host="0.0.0.0")
    with pytest.warns(UserWarning, match="without authentication"):
        server = serve(backing, host="0.0.0.0", expose_without_auth=True)
    server.shutdown()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        server = serve(backing, host="0.0.0.0", users=users_file[0])
    try:
        assert requests.get("http://127.0.0.1:{}/k/data".format(server.port)).status_code == 401
    finally:
        server.shutdown()


# -- browsers -----------------------------------------------------------------

def test_foreign_host_names_are_refused(backing):
    with serve(backing) as server:
        url = server.url + "/k/data"
        assert requests.get(url, headers={"Host": "evil.example"}).status_code == 421
        assert requests.get(url, headers={"Host": "evil.example:{}".format(server.port)}).status_code == 421
        assert requests.get(url, headers={"Host": "localhost:{}".format(server.port)}).status_code == 200
        assert requests.get(url, headers={"Host": "[::1]:{}".format(server.port)}).status_code == 200
        # An address names no attacker's domain: always accepted.
        assert requests.get(url, headers={"Host": "10.1.2.3"}).status_code == 200
    with serve(backing, allowed_hosts=["store.example"]) as server:
        url = server.url + "/k/data"
        assert requests.get(url, headers={"Host": "store.example"}).status_code == 200
        assert requests.get(url, headers={"Host": "localhost"}).status_code == 421


def test_writes_from_other_origins_and_form_types_are_refused(backing):
    with serve(backing, allowed_origins=["https://app.example"]) as server:
        url = server.url + "/k/metadata"
        own = "http://127.0.0.1:{}".format(server.port)
        for origin in ("http://evil.example", "null", own.replace("127.0.0.1", "localhost")):
            response = requests.post(url, json={"b": 1}, headers={"Origin": origin})
            assert response.status_code == 403, origin
        response = requests.post(url, json={"b": 1}, headers={"Sec-Fetch-Site": "cross-site"})
        assert response.status_code == 403
        assert requests.delete(server.url + "/k", headers={"Origin": "http://evil.example"}).status_code == 403
        for content_type in ("text/plain", "application/x-www-form-urlencoded",
                             "multipart/form-data; boundary=x", "Text/Plain; charset=utf-8"):
            response = requests.post(url, data='{"b": 1}', headers={"Content-Type": content_type})
            assert response.status_code == 415, content_type
        assert backing.get_metadata("k") == {"a": 1}
        # Reads from anywhere, same-origin and allowed origins, and plain clients work.
        assert requests.get(url, headers={"Origin": "http://evil.example"}).status_code == 200
        assert requests.post(url, json={"b": 1}, headers={"Origin": own}).status_code == 204
        assert requests.post(url, json={"c": 1}, headers={"Origin": "https://app.example"}).status_code == 204
        assert requests.post(url, data='{"d": 1}').status_code == 204
    assert backing.get_metadata("k") == {"a": 1, "b": 1, "c": 1, "d": 1}


class _FakeBrowser(object):
    def __init__(self):
        self.seen = []

    def __call__(self, environ, start_response):
        self.seen.append({name: environ.get(name) for name in (
            "PATH_INFO", "REQUEST_METHOD", "encore.store", "encore.read_only", "REMOTE_USER")})
        start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", "6")])
        return [b"<html>"]


def test_html_requests_go_to_the_browser(backing, users_file):
    path, token = users_file
    browser = _FakeBrowser()
    with serve(backing, browser=browser, users=path, read_only=True) as server:
        auth = ("alice", "wonderland")
        assert requests.get(server.url + "/", headers={"Accept": "text/html"}).status_code == 401
        assert browser.seen == []
        html = "text/html,application/xhtml+xml,*/*;q=0.8"
        response = requests.get(server.url + "/", headers={"Accept": html}, auth=auth)
        assert response.text == "<html>" and response.headers["Encore-Protocol"] == "2"
        assert browser.seen[-1]["REMOTE_USER"] == "alice"
        assert browser.seen[-1]["encore.store"] is backing
        assert browser.seen[-1]["encore.read_only"] is True
        count = len(browser.seen)
        for accept in ("*/*", "application/json", "text/html;q=0.5, application/json"):
            assert requests.get(server.url + "/", headers={"Accept": accept}, auth=auth).status_code == 404
        assert requests.get(server.url + "/_browse/key?key=k", auth=auth).text == "<html>"
        assert requests.get(server.url + "/_browse", auth=auth).text == "<html>"
        assert len(browser.seen) == count + 2
        # Read-only: the browser's writes are refused before reaching it.
        assert requests.post(server.url + "/_browse/upload", auth=auth).status_code == 405
        assert requests.delete(server.url + "/_browse/upload", auth=auth).status_code == 405
        # Protocol URLs of keys under _browse/ stay protocol URLs.
        backing.set("_browse/x", (io.BytesIO(b"proto"), {}))
        assert requests.get(server.url + "/_browse/x/data", auth=auth).content == b"proto"
        assert len(browser.seen) == count + 2


def test_browser_writes_skip_form_type_rule_but_not_origin(backing):
    browser = _FakeBrowser()
    with serve(backing, browser=browser) as server:
        form = {"Content-Type": "multipart/form-data; boundary=x"}
        assert requests.post(server.url + "/_browse/upload", data=b"--x--", headers=form).status_code == 200
        assert browser.seen[-1]["REMOTE_USER"] is None
        assert browser.seen[-1]["encore.read_only"] is False
        response = requests.post(server.url + "/_browse/upload", data=b"--x--",
                                 headers=dict(form, Origin="http://evil.example"))
        assert response.status_code == 403


def test_store_browser_is_used_when_its_module_exists(backing, monkeypatch):
    module = types.ModuleType("encore.storage.browser")

    class StoreBrowser(_FakeBrowser):
        def __init__(self, store, read_only=False, page_size=50):
            super().__init__()
            self.store, self.read_only = store, read_only

    module.StoreBrowser = StoreBrowser
    monkeypatch.setitem(sys.modules, "encore.storage.browser", module)
    app = make_app(backing, read_only=True)
    assert isinstance(app.browser, StoreBrowser)
    assert app.browser.store is backing and app.browser.read_only is True
    assert make_app(backing, browser=False).browser is None


# -- limits ---------------------------------------------------------------------

def test_json_limits_answer_4xx(backing):
    with serve(backing, max_metadata_bytes=1000, max_json_depth=5) as server:
        url = server.url + "/k/metadata"
        assert requests.put(url, data=json.dumps({"x": "y" * 2000})).status_code == 413
        assert requests.put(url, data=json.dumps({"x": [[[[[[1]]]]]]})).status_code == 400
        assert requests.put(url, data=json.dumps({"x": [[[["]]]]]]]][[[["]]]]})).status_code == 204
        assert requests.put(url, data=iter([b'{"x": "', b"y" * 2000, b'"}'])).status_code == 413
        response = requests.get(server.query_url, params={"x": "[" * 100 + "]" * 100})
        assert response.status_code == 400
    with serve(backing) as server:
        # Deep enough to break the JSON parser's recursion: still a 400.
        body = "[" * 200000 + "]" * 200000
        assert requests.post(server.url + "/k/metadata", data=body).status_code in (400, 413)
        assert requests.get(server.url + "/k/metadata").status_code == 200


def test_framing_errors_are_refused(backing):
    with serve(backing) as server:
        head = b"PUT /k/data HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        assert _raw(server, head + b"\r\n").startswith(b"HTTP/1.1 411")
        reply = _raw(server, head + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc")
        assert reply.startswith(b"HTTP/1.1 400")
        reply = _raw(server, head + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
        assert reply.startswith(b"HTTP/1.1 400")
        reply = _raw(server, head + b"Content-Length: 3, 3\r\n\r\nabc")
        assert reply.startswith(b"HTTP/1.1 400")
        reply = _raw(server, head + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 400")
        reply = _raw(server, head + b"Transfer-Encoding: gzip\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 501")
        reply = _raw(server, head + b"Content-Length: -3\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 400")
        reply = _raw(server, b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 414")
        reply = _raw(server, b"GET /k/data HTTP/1.1\r\n" + b"X-Big: " + b"b" * 20000 + b"\r\n"
                     + b"X-Big2: " + b"b" * 20000 + b"\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 431")
        # A chunked upload decoded correctly, never stored as empty.
        reply = _raw(server, head + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 204")
    assert backing.to_bytes("k") == b"abcde"


class _Exploding(DictMemoryStore):
    def get_metadata(self, key, select=None):
        raise RuntimeError("secret internal detail /etc/passwd")


def test_error_bodies_carry_no_internal_text():
    store = _Exploding(event_manager=EventManager())
    store.connect()
    store.set("k", (io.BytesIO(b""), {}))
    with serve(store) as server:
        response = requests.get(server.url + "/k/metadata")
        assert response.status_code == 500
        assert "secret" not in response.text and "RuntimeError" not in response.text


# -- connections ----------------------------------------------------------------

def test_keep_alive_and_chunked_answers(backing):
    with serve(backing) as server:
        request = b"GET /k/data HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        query = b"GET /query HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        reply = _raw(server, request + query + request)
        assert reply.count(b"HTTP/1.1 200 OK") == 3
        assert reply.count(b"0123456789") == 2
        assert b"Transfer-Encoding: chunked" in reply and b"2\r\nk\n\r\n0\r\n\r\n" in reply
        ports = set()
        app = server._server.app

        def recording(environ, start_response):
            ports.add(environ["REMOTE_PORT"])
            return app(environ, start_response)
        server._server.app = recording
        with requests.Session() as session:
            for _ in range(50):
                assert session.get(server.url + "/k/data").status_code == 200
        assert len(ports) == 1


def test_idle_connections_are_closed(backing):
    with serve(backing, idle_timeout=0.3) as server:
        with socket.create_connection((server.host, server.port), timeout=20) as connection:
            connection.sendall(b"GET /k/data HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            received = b""
            while b"0123456789" not in received:
                received += connection.recv(65536)
            # Then nothing is sent: the server ends the connection by itself.
            assert connection.recv(65536) == b""
        with socket.create_connection((server.host, server.port), timeout=20) as connection:
            connection.sendall(b"PUT /k/data HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nabc")
            reply = b""
            while True:  # a stalled upload is given up, and nothing is written
                chunk = connection.recv(65536)
                if not chunk:
                    break
                reply += chunk
    assert backing.to_bytes("k") == b"0123456789"


def test_worker_pool_is_bounded(backing):
    with serve(backing, workers=2, queue=0, idle_timeout=30) as server:
        held = []
        try:
            for _ in range(2):
                connection = socket.create_connection((server.host, server.port), timeout=20)
                held.append(connection)
                connection.sendall(b"GET /k/data HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                received = b""
                while b"0123456789" not in received:
                    received += connection.recv(65536)
            # Both workers now wait on their kept-alive connections.
            reply = _raw(server, b"GET /k/data HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert reply.startswith(b"HTTP/1.1 503")
        finally:
            for connection in held:
                connection.close()
