"""Tests of the ``encore`` command and of ``encore.storage.open_store``."""
import io
import json
import subprocess
import sys

import pytest

from encore.cli import main, parse_assignment
from encore.storage import open_store
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.filesystem_store import FileSystemStore
from encore.storage.sqlite_store import SqliteStore


def run(*argv):
    out, err = io.BytesIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENCORE_STORE", raising=False)
    (tmp_path / "a.txt").write_bytes(b"hello world\n")
    return tmp_path


def test_put_ls_meta_query_get_rm_on_the_default_store(workdir):
    status, out, err = run("put", "docs/a", "a.txt", "--meta", "author=ann", "--meta", "n=3")
    assert status == 0, err
    assert (workdir / "encore.db").exists()
    assert run("ls") == (0, b"docs/a\n", "")
    status, out, _ = run("meta", "docs/a")
    assert json.loads(out) == {"author": "ann", "n": 3}
    assert run("query", "n=3")[1] == b"docs/a\n"
    assert run("query", "n=4")[1] == b""
    assert run("get", "docs/a")[1] == b"hello world\n"
    assert run("get", "docs/a", "-o", "copy.txt")[0] == 0
    assert (workdir / "copy.txt").read_bytes() == b"hello world\n"
    assert run("ls", "docs/*")[1] == b"docs/a\n"
    assert run("ls", "other/*")[1] == b""
    assert run("rm", "docs/a")[0] == 0
    status, out, err = run("get", "docs/a")
    assert status == 1 and "no such key: docs/a" in err


def test_progress_goes_to_stderr_unless_quiet(workdir):
    status, out, err = run("put", "k", "a.txt")
    assert status == 0 and "Done." in err and out == b""
    status, out, err = run("--quiet", "put", "k2", "a.txt")
    assert status == 0 and err == ""


def test_cp_between_stores_with_a_pattern(workdir):
    for key in ("x/1", "x/2", "y/1"):
        assert run("put", key, "a.txt", "--meta", "key=" + json.dumps(key))[0] == 0
    target = "file://" + str(workdir / "files")
    status, _, err = run("cp", "sqlite:///./encore.db", target, "x/*")
    assert status == 0 and "copied 2 keys" in err
    assert run("--store", target, "ls")[1] == b"x/1\nx/2\n"
    status, out, _ = run("--store", target, "meta", "x/2")
    assert json.loads(out) == {"key": "x/2"}
    assert (workdir / "files" / "x" / "2.data").read_bytes() == b"hello world\n"


def test_environment_variable_chooses_the_store(workdir, monkeypatch):
    monkeypatch.setenv("ENCORE_STORE", "sqlite:///./other.db")
    assert run("put", "k", "a.txt")[0] == 0
    assert (workdir / "other.db").exists() and not (workdir / "encore.db").exists()


def test_bad_usage_and_bad_urls(workdir):
    status, _, err = run("--store", "ftp://example", "ls")
    assert status == 1 and "unsupported store URL" in err
    assert run("query", "no-equals-sign")[0] == 2
    assert run()[0] == 2
    status, _, err = run("put", "k", "missing-file.txt")
    assert status == 1 and "missing-file.txt" in err


def test_parse_assignment():
    assert parse_assignment("n=3") == ("n", 3)
    assert parse_assignment("flag=true") == ("flag", True)
    assert parse_assignment("name=ann") == ("name", "ann")
    assert parse_assignment("tags=[\"a\"]") == ("tags", ["a"])
    assert parse_assignment("text=a=b") == ("text", "a=b")


def test_open_store_schemes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    memory = open_store("memory://")
    assert isinstance(memory, DictMemoryStore) and memory.is_connected()
    sqlite = open_store("sqlite://")
    assert isinstance(sqlite, SqliteStore) and sqlite.info()["location"] == ":memory:"
    relative = open_store("sqlite:///./rel.db")
    assert relative.info()["location"] == "./rel.db" and (tmp_path / "rel.db").exists()
    relative.disconnect()
    absolute = open_store("sqlite://" + str(tmp_path / "abs.db"))
    assert absolute.info()["location"] == str(tmp_path / "abs.db")
    absolute.disconnect()
    with pytest.raises(Exception):
        open_store("file://" + str(tmp_path / "nowhere"))
    files = open_store("file://" + str(tmp_path / "fs"), create=True)
    assert isinstance(files, FileSystemStore)
    with pytest.raises(ValueError):
        open_store("gopher://x")
    with pytest.raises(TypeError):
        open_store(None)


def test_python_dash_m_encore(workdir):
    result = subprocess.run(
        [sys.executable, "-m", "encore", "--version"],
        capture_output=True, timeout=60, cwd=str(workdir))
    assert result.returncode == 0
    assert result.stdout.decode().startswith("encore ")


def test_read_commands_never_create_a_store(workdir):
    for argv in (["ls"], ["get", "k"], ["meta", "k"], ["query", "a=1"], ["rm", "k"]):
        status, _, err = run(*argv)
        assert status == 1 and "no store at" in err, argv
    assert not (workdir / "encore.db").exists()
    status, _, err = run("--store", "file://" + str(workdir / "typo"), "ls")
    assert status == 1 and not (workdir / "typo").exists()
    status, _, err = run("cp", "sqlite:///./missing.db", "memory://")
    assert status == 1 and not (workdir / "missing.db").exists()


def test_serve_then_use_the_store_over_http(workdir):
    """``encore serve`` in a subprocess, used through an http:// store URL."""
    pytest.importorskip("requests", reason="the http extra (requests) is not installed")
    process = subprocess.Popen(
        [sys.executable, "-m", "encore", "--store", "sqlite:///./served.db", "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(workdir))
    try:
        url = process.stdout.readline().decode().strip()
        assert url.startswith("http://127.0.0.1:")
        assert run("--store", url, "put", "remote/key", "a.txt", "--meta", "n=1")[0] == 0
        assert run("--store", url, "ls")[1] == b"remote/key\n"
        assert run("--store", url, "get", "remote/key")[1] == b"hello world\n"
        assert json.loads(run("--store", url, "meta", "remote/key")[1]) == {"n": 1}
    finally:
        process.terminate()
        process.wait(30)
    local = open_store("sqlite:///./served.db")
    assert local.to_bytes("remote/key") == b"hello world\n"
    local.disconnect()


def test_static_url_scheme(workdir):
    (workdir / "site" / "data").mkdir(parents=True)
    (workdir / "site" / "data" / "k").write_bytes(b"static data")
    (workdir / "site" / "index.json").write_text(json.dumps({"k": {"m": 1}}))
    url = "static+" + (workdir / "site").as_uri()
    assert run("--store", url, "ls")[1] == b"k\n"
    assert run("--store", url, "get", "k")[1] == b"static data"
