"""The store browser behind the real store server (encore.storage.server).

The browser's own pages are tested in test_browser.py; here the server
routes browsers to it, authenticates them first, and hands it the store and
the user: a signed-in user uploads and deletes through the pages, an
anonymous request is refused, and Chromium renders the key list that the
server itself sends.
"""
import base64
import urllib.parse

from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.server import PasswordFile, serve

from .test_browser import EVIL_KEY, browse, fetch, make_store, multipart, token_of


def _users(tmp_path):
    path = str(tmp_path / "users")
    users = PasswordFile(path)
    users.add_user("ann", "ann's password", iterations=1000)
    users.save()
    return path


def _basic(name, password):
    return "Basic " + base64.b64encode("{}:{}".format(name, password).encode()).decode()


def test_a_browser_gets_pages_only_after_signing_in(tmp_path):
    store = make_store()
    with serve(store, users=_users(tmp_path)) as server:
        html = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}
        status, headers, _ = fetch(server.url + "/_browse", headers=html)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        signed_in = dict(html, Authorization=_basic("ann", "ann's password"))
        status, headers, page = fetch(server.url + "/_browse?glob=docs/*", headers=signed_in)
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert b"docs/a.txt" in page and b"bulk/000" not in page and b"signed in as ann" in page
        # The protocol keeps answering programs at the same address.
        status, _, data = fetch(server.url + "/docs%2Fa.txt/data",
                                headers={"Authorization": _basic("ann", "ann's password")})
        assert status == 200 and data == b"hello browser\n"


def test_a_signed_in_user_uploads_and_deletes_through_the_server(tmp_path):
    store = DictMemoryStore()
    store.from_bytes("old", b"old data")
    with serve(store, users=_users(tmp_path)) as server:
        auth = {"Authorization": _basic("ann", "ann's password"), "Accept": "text/html"}
        status, _, page = fetch(server.url + "/_browse/key?key=old", headers=auth)
        assert status == 200
        token = token_of(page)
        body, headers = multipart({"key": "new/ü.txt", "csrf": token, "metadata": '{"n": 1}'},
                                  "u.txt", b"uploaded")
        headers.update(auth, Origin=server.url)
        status, _, _ = fetch(server.url + "/_browse/upload", body, headers)
        assert status in (200, 303)
        assert store.get_data("new/ü.txt").read() == b"uploaded"
        assert store.get_metadata("new/ü.txt") == {"n": 1}
        # A page from another site cannot make the same request.
        headers["Origin"] = "http://evil.example"
        body, _ = multipart({"key": "evil", "csrf": token, "metadata": "{}"}, "e.txt", b"x")
        assert fetch(server.url + "/_browse/upload", body, headers)[0] == 403
        assert not store.exists("evil")
        form = urllib.parse.urlencode({"key": "old", "csrf": token}).encode()
        headers = dict(auth, Origin=server.url)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, _, _ = fetch(server.url + "/_browse/delete", form, headers)
        assert status in (200, 303) and not store.exists("old")


def test_a_read_only_server_offers_no_forms(tmp_path):
    with serve(make_store(), users=_users(tmp_path), read_only=True) as server:
        auth = {"Authorization": _basic("ann", "ann's password"), "Accept": "text/html"}
        status, _, page = fetch(server.url + "/_browse/key?key=docs/a.txt", headers=auth)
        assert status == 200 and b"docs/a.txt" in page
        assert b'id="upload"' not in page and b'id="delete"' not in page


def test_chromium_renders_the_servers_key_list():
    with serve(make_store()) as server:  # loopback, no users: no sign-in needed
        dom = browse(server.url + "/", "--dump-dom")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and "<script" not in dom.lower()
        assert "123 keys" in dom and EVIL_KEY not in dom
