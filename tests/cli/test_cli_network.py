"""The ``encore serve``, ``encore users`` and ``encore publish`` commands."""
import io
import json

import pytest
import requests

from encore import _cli_network
from encore.cli import _build_parser, main
from encore.storage import open_store
from encore.storage.server import PasswordFile, verify_password


class _Text(io.StringIO):
    def __init__(self, text="", tty=False):
        super().__init__(text)
        self._tty = tty

    def isatty(self):
        return self._tty


def _run(argv, stdin=None, ready=None):
    out, err = io.BytesIO(), io.StringIO()
    arguments = _build_parser().parse_args(argv)

    def open_(create):
        return open_store(arguments.store, create=create) if arguments.store.startswith("file:") \
            else open_store(arguments.store)
    status = _cli_network.run(arguments, open_, out, err, stdin=stdin, ready=ready)
    return status, out.getvalue().decode(), err.getvalue()


def test_users_add_list_token_remove(tmp_path):
    path = str(tmp_path / "users")
    status, _, err = _run(["users", "add", path, "alice", "--password-stdin", "--iterations", "1000"],
                          stdin=_Text("s3cret pw\n"))
    assert status == 0 and "alice" in err
    assert "s3cret" not in open(path).read()
    assert verify_password(PasswordFile(path).records["alice"], "s3cret pw")
    status, token, _ = _run(["users", "token", path, "robot"])
    assert status == 0 and len(token.strip()) >= 32
    assert token.strip() not in open(path).read()
    assert _run(["users", "list", path])[1] == "alice\nrobot\n"
    assert _run(["users", "remove", path, "robot"])[0] == 0
    assert _run(["users", "list", path])[1] == "alice\n"


def test_users_add_refuses_to_read_a_password_from_a_pipe_without_the_flag(tmp_path):
    path = str(tmp_path / "users")
    with pytest.raises(ValueError, match="--password-stdin"):
        _run(["users", "add", path, "alice"], stdin=_Text("pw\n"))
    with pytest.raises(ValueError, match="empty"):
        _run(["users", "add", path, "alice", "--password-stdin"], stdin=_Text("\n"))
    err = io.StringIO()
    assert main(["users", "remove", path, "nobody"], stdout=io.BytesIO(), stderr=err) == 1
    assert "nobody" in err.getvalue()


def test_users_add_asks_twice_on_a_terminal(tmp_path, monkeypatch):
    answers = iter(["one", "two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    with pytest.raises(ValueError, match="differ"):
        _run(["users", "add", str(tmp_path / "users"), "alice"], stdin=_Text(tty=True))


def test_serve_with_users_and_read_only(tmp_path):
    users = PasswordFile(tmp_path / "users")
    users.add_user("alice", "pw", iterations=1000)
    users.save()
    store_url = (tmp_path / "store").as_uri()
    seen = {}

    def ready(server):
        seen["anonymous"] = requests.get(server.url + "/k/data").status_code
        seen["put"] = requests.put(server.url + "/k/data", data=b"x", auth=("alice", "pw")).status_code
        seen["get"] = requests.get(server.url + "/k/data", auth=("alice", "pw")).status_code
    status, out, err = _run(["--store", store_url, "serve", "--port", "0", "--users",
                             str(tmp_path / "users"), "--read-only"], ready=ready)
    assert status == 0 and out.startswith("http://127.0.0.1:")
    assert "read-only" in err
    assert seen == {"anonymous": 401, "put": 405, "get": 404}


def test_serve_refuses_the_network_without_users(tmp_path):
    open_store((tmp_path / "store").as_uri(), create=True).disconnect()
    err = io.StringIO()
    status = main(["--store", (tmp_path / "store").as_uri(), "serve", "--host", "0.0.0.0", "--port", "0"],
                  stdout=io.BytesIO(), stderr=err)
    assert status == 1
    assert "--expose-without-auth" in err.getvalue()


def test_publish_command(tmp_path):
    store_url = (tmp_path / "store").as_uri()
    store = open_store(store_url, create=True)
    store.set("a/b", (io.BytesIO(b"ab"), {"n": 1}))
    store.set("c", (io.BytesIO(b"c"), {"n": 2}))
    store.disconnect()
    target = tmp_path / "site"
    status, _, err = _run(["--store", store_url, "publish", str(target), "a/*"])
    assert status == 0 and "published 1 key" in err
    assert json.loads((target / "index.json").read_text()) == {"a/b": {"n": 1}}
    assert (target / "data" / "a" / "b").read_bytes() == b"ab"
