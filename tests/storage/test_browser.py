"""Tests of the store browser (encore.storage.browser.StoreBrowser).

The pages are checked twice: as HTML over HTTP, and as a real browser sees
them, in headless Chromium (``--dump-dom`` and ``--screenshot``) pointed at
a wsgiref server started here on 127.0.0.1.
"""
import io
import os
import re
import shutil
import socketserver
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import setup_testing_defaults

import pytest

from encore.storage.browser import StoreBrowser
from encore.storage.dict_memory_store import DictMemoryStore

EVIL_KEY = "<script>alert(1)</script>"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


RAW = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())


def make_store():
    store = DictMemoryStore()
    store.from_bytes(EVIL_KEY, b"evil", buffer_size=1024)
    store.set_metadata(EVIL_KEY, {"<img src=x onerror=alert(2)>": "<b>bold</b>"})
    store.from_bytes("docs/a.txt", b"hello browser\n")
    store.set_metadata("docs/a.txt", {"author": "ann", "n": 3, "title": "Café ☕"})
    store.from_bytes("docs/sub/b.bin", b"x" * 3000)
    store.set_metadata("docs/sub/b.bin", {"author": "bob"})
    for number in range(120):
        store.from_bytes("bulk/%03d" % number, b"")
    return store


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


def as_user(app, user, **extra):
    """WSGI middleware standing in for the server's authentication."""
    def wrapped(environ, start_response):
        if user is not None:
            environ["REMOTE_USER"] = user
        environ.update(extra)
        return app(environ, start_response)
    return wrapped


@pytest.fixture
def serve():
    servers = []

    def start(app):
        server = make_server("127.0.0.1", 0, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return "http://127.0.0.1:{}".format(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def fetch(url, data=None, headers=None, opener=NO_PROXY):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def multipart(fields, file_name, content):
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append("--{}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{}\r\n".format(
            boundary, name, value).encode("utf-8"))
    parts.append("--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n".format(boundary, file_name).encode("utf-8"))
    parts.append(content + b"\r\n--" + boundary.encode() + b"--\r\n")
    return b"".join(parts), {"Content-Type": "multipart/form-data; boundary=" + boundary}


def token_of(page):
    match = re.search(rb'name="csrf" value="([0-9a-f]+)"', page)
    assert match, page
    return match.group(1).decode()


def call(app, path, query="", method="GET", **environ):
    """Call the WSGI app directly."""
    env = {"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": method}
    env.update(environ)
    setup_testing_defaults(env)
    captured = {}

    def start_response(status, headers):
        captured["status"], captured["headers"] = status, dict(headers)

    body = app(env, start_response)
    data = b"".join(body)
    getattr(body, "close", lambda: None)()
    return captured["status"], captured["headers"], data


# -- HTTP-level behaviour -------------------------------------------------------


def test_root_redirects_to_the_key_list_under_the_script_name():
    app = StoreBrowser(make_store())
    status, headers, _ = call(app, "/", SCRIPT_NAME="/mount")
    assert status == "303 See Other" and headers["Location"] == "/mount/_browse"
    status, headers, page = call(app, "/_browse", "glob=docs/*", SCRIPT_NAME="/mount")
    assert status == "200 OK" and b'href="/mount/_browse/key?key=docs%2Fa.txt"' in page
    assert call(app, "/elsewhere")[0] == "404 Not Found"
    assert call(app, "/_browse", method="DELETE")[0] == "405 Method Not Allowed"


def test_pages_are_escaped_and_forbid_scripts():
    app = StoreBrowser(make_store())
    status, headers, page = call(app, "/_browse")
    assert "script-src" not in headers["Content-Security-Policy"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page and b"<script" not in page
    status, _, page = call(app, "/_browse/key", urllib.parse.urlencode({"key": EVIL_KEY}))
    assert status == "200 OK"
    assert b"&lt;img src=x onerror=alert(2)&gt;" in page and b"<img" not in page
    assert b"&quot;&lt;b&gt;bold&lt;/b&gt;&quot;" in page and b"<b>" not in page


def test_head_has_no_body():
    app = StoreBrowser(make_store())
    status, headers, body = call(app, "/_browse", method="HEAD")
    assert status == "200 OK" and body == b"" and int(headers["Content-Length"]) > 0


def test_key_list_is_paged_and_filtered():
    app = StoreBrowser(make_store(), page_size=50)
    _, _, page = call(app, "/_browse")
    assert b"123 keys &middot; page 1 of 3" in page and b'rel="next"' in page
    assert page.count(b"<tr><td>") == 50
    _, _, page = call(app, "/_browse", "page=3")
    assert page.count(b"<tr><td>") == 23 and b'rel="prev"' in page and b'rel="next"' not in page
    _, _, page = call(app, "/_browse", "page=99")  # clamped to the last page
    assert b"page 3 of 3" in page
    _, _, page = call(app, "/_browse", urllib.parse.urlencode({"glob": "docs/*"}))
    assert b"2 keys" in page and b"docs/sub/b.bin" in page and b"bulk/" not in page
    _, _, page = call(app, "/_browse", urllib.parse.urlencode({"where": "author=ann"}))
    assert b"1 key " in page and b"docs/a.txt" in page
    _, _, page = call(app, "/_browse", urllib.parse.urlencode({"where": "n=3"}))
    assert b"No keys match." in page  # text "3" is not the number 3
    _, _, page = call(app, "/_browse", urllib.parse.urlencode({"n": "3", "glob": "docs/*"}))
    assert b"1 key " in page and b"docs/a.txt" in page
    status, _, page = call(app, "/_browse", urllib.parse.urlencode({"where": "n:=[1"}))
    assert status == "400 Bad Request" and b"needs JSON" in page


def test_key_page_shows_metadata_size_dates_and_a_download_link():
    app = StoreBrowser(make_store())
    status, _, page = call(app, "/_browse/key", "key=docs/sub/b.bin")
    assert status == "200 OK"
    assert b"2.9 KiB (3000 bytes)" in page and b"UTC" in page
    assert b'href="/_browse/download?key=docs%2Fsub%2Fb.bin"' in page
    assert b"&quot;bob&quot;" in page
    status, _, page = call(app, "/_browse/key", "key=missing")
    assert status == "404 Not Found" and b"missing" in page
    assert call(app, "/_browse/key")[0] == "400 Bad Request"


def test_download_streams_the_data_as_an_attachment():
    app = StoreBrowser(make_store())
    status, headers, body = call(app, "/_browse/download", "key=docs/a.txt")
    assert status == "200 OK" and body == b"hello browser\n"
    assert headers["Content-Disposition"].startswith('attachment; filename="a.txt"')
    assert headers["Content-Length"] == "14" and headers["Content-Type"] == "application/octet-stream"
    status, headers, body = call(app, "/_browse/download", urllib.parse.urlencode({"key": EVIL_KEY}))
    assert body == b"evil"
    assert headers["Content-Disposition"] == "attachment; filename=\"script>\"; filename*=UTF-8''script%3E"
    app.store.from_bytes('odd/"quoted";\\name é', b"")
    _, headers, _ = call(app, "/_browse/download", urllib.parse.urlencode({"key": 'odd/"quoted";\\name é'}))
    assert headers["Content-Disposition"] == (
        "attachment; filename=\"_quoted___name _\"; filename*=UTF-8''%22quoted%22%3B%5Cname%20%C3%A9")


def test_the_store_in_the_environment_is_used():
    mine, other = DictMemoryStore(), DictMemoryStore()
    other.from_bytes("only/in/other", b"")
    app = StoreBrowser(mine)
    _, _, page = call(app, "/_browse", **{"encore.store": other})
    assert b"only/in/other" in page


def test_no_forms_without_a_user_or_for_a_read_only_store():
    store = make_store()
    for app, extra in ((StoreBrowser(store), {}),
                       (StoreBrowser(store, read_only=True), {"REMOTE_USER": "ann"}),
                       (StoreBrowser(store), {"REMOTE_USER": "ann", "encore.read_only": True})):
        _, _, page = call(app, "/_browse/key", "key=docs/a.txt", **extra)
        assert b'id="delete"' not in page and b'id="upload"' not in page
        status, _, _ = call(app, "/_browse/delete", method="POST", CONTENT_TYPE="application/x-www-form-urlencoded",
                            CONTENT_LENGTH="12", **{"wsgi.input": io.BytesIO(b"key=docs%2Fa"), **extra})
        assert status == "403 Forbidden"
    assert store.exists("docs/a.txt")


def test_constructor_checks():
    with pytest.raises(ValueError):
        StoreBrowser(DictMemoryStore(), page_size=0)
    with pytest.raises(TypeError):
        StoreBrowser(DictMemoryStore(), secret="text")


def test_upload_and_delete_with_the_csrf_token(serve):
    store = make_store()
    app = StoreBrowser(store)
    url = serve(as_user(app, "ann"))
    status, _, page = fetch(url + "/_browse")
    token = token_of(page)
    assert token == app.csrf_token("ann") != app.csrf_token("bob")
    content = os.urandom(200000) + b"\r\n--not-the-boundary\r\n"
    body, headers = multipart({"csrf": token, "key": "up/<new>", "metadata": '{"by": "ann", "n": 1}'},
                              "new.bin", content)
    status, headers_back, _ = fetch(url + "/_browse/upload", body, headers, opener=RAW)
    assert status == 303 and headers_back["Location"] == "/_browse/key?key=up%2F%3Cnew%3E"
    assert store.to_bytes("up/<new>") == content
    assert store.get_metadata("up/<new>") == {"by": "ann", "n": 1}
    # A forged token changes nothing.
    body, headers = multipart({"csrf": "0" * 64, "key": "forged"}, "x", b"x")
    status, _, page = fetch(url + "/_browse/upload", body, headers)
    assert status == 403 and b"CSRF" in page and not store.exists("forged")
    # Bad metadata is refused before anything is stored.
    body, headers = multipart({"csrf": token, "key": "bad", "metadata": "[1]"}, "x", b"x")
    assert fetch(url + "/_browse/upload", body, headers)[0] == 400 and not store.exists("bad")
    # Delete.
    form = urllib.parse.urlencode({"csrf": "f" * 64, "key": "up/<new>"}).encode()
    assert fetch(url + "/_browse/delete", form)[0] == 403 and store.exists("up/<new>")
    form = urllib.parse.urlencode({"csrf": token, "key": "up/<new>"}).encode()
    status, headers_back, _ = fetch(url + "/_browse/delete", form, opener=RAW)
    assert status == 303 and not store.exists("up/<new>")


def test_uploads_are_bounded(serve):
    store = make_store()
    app = StoreBrowser(store, max_upload=1000)
    url = serve(as_user(app, "ann"))
    body, headers = multipart({"csrf": app.csrf_token("ann"), "key": "big"}, "big", b"y" * 5000)
    status, _, page = fetch(url + "/_browse/upload", body, headers)
    assert status == 413 and not store.exists("big")


def test_a_user_without_a_writable_store_cannot_post(serve):
    store = make_store()
    url = serve(StoreBrowser(store))  # no authentication
    body, headers = multipart({"csrf": "x", "key": "k"}, "k", b"k")
    assert fetch(url + "/_browse/upload", body, headers)[0] == 403 and not store.exists("k")


# -- in a real browser --------------------------------------------------------------


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    reason = "no Chromium found (install Debian's chromium package): the real-browser tests are skipped"
    print(reason)
    pytest.skip(reason)


def browse(url, *extra):
    profile = tempfile.mkdtemp(prefix="encore-chromium-")
    try:
        result = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--user-data-dir=" + profile, *extra, url],
            capture_output=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result.stdout.decode("utf-8")


def test_chromium_shows_the_key_list_with_keys_as_text(serve):
    url = serve(StoreBrowser(make_store(), page_size=50))
    dom = browse(url + "/", "--dump-dom")  # follows the redirect to /_browse
    assert "123 keys · page 1 of 3" in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # the key, as text
    assert "<script" not in dom.lower()  # and no element was injected
    assert 'href="/_browse/key?key=bulk%2F000"' in dom
    assert dom.count("<tr><td>") == 50
    dom = browse(url + "/_browse?" + urllib.parse.urlencode({"glob": "docs/*", "where": "author=bob"}), "--dump-dom")
    assert "docs/sub/b.bin" in dom and "docs/a.txt" not in dom and "1 key ·" in dom


def test_chromium_shows_a_key_page_with_forms_for_a_signed_in_user(serve):
    url = serve(as_user(StoreBrowser(make_store()), "ann"))
    dom = browse(url + "/_browse/key?" + urllib.parse.urlencode({"key": EVIL_KEY}), "--dump-dom")
    assert '<h2 id="key"><code>&lt;script&gt;alert(1)&lt;/script&gt;</code></h2>' in dom
    assert "&lt;img src=x onerror=alert(2)&gt;" in dom and "<img" not in dom
    assert "&lt;b&gt;bold&lt;/b&gt;" in dom and "<b>" not in dom and "<script" not in dom.lower()
    assert 'id="delete"' in dom and 'id="upload"' in dom and "signed in as ann" in dom
    # The replace form starts from the current metadata, as text.
    assert '{"&lt;img src=x onerror=alert(2)&gt;": "&lt;b&gt;bold&lt;/b&gt;"}</textarea>' in dom
    dom = browse(url + "/_browse/key?key=docs/a.txt", "--dump-dom")
    assert "Café ☕" in dom and "<td>14 B</td>" in dom


def test_chromium_screenshot_of_the_key_list(serve, tmp_path):
    url = serve(as_user(StoreBrowser(make_store()), "ann"))
    target = tmp_path / "keys.png"
    browse(url + "/_browse", "--screenshot=" + str(target), "--window-size=1000,800", "--hide-scrollbars")
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
