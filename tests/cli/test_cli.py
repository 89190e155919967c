"""Tests of the ``encore`` command and of ``encore.storage.open_store``."""
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

import encore.cli
from encore.cli import main, parse_assignment, store_url
from encore.storage import open_store
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.filesystem_store import FileSystemStore
from encore.storage.sqlite_store import SqliteStore


class TerminalStream(io.StringIO):
    """A text stream that says it is a terminal (progress is animated)."""

    def isatty(self):
        return True


def run(*argv, stdin=None, stderr=None):
    out = io.BytesIO()
    err = io.StringIO() if stderr is None else stderr
    status = main(list(argv), stdout=out, stderr=err, stdin=stdin)
    return status, out.getvalue(), err.getvalue()


def command(*argv, **kwargs):
    """Run ``python -m encore`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "encore", *argv], capture_output=True, timeout=120, **kwargs)


def one_line_error(err):
    """The error output is one ``encore:`` line, without a traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("encore: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENCORE_STORE", raising=False)
    monkeypatch.delenv("ENCORE_DEBUG", raising=False)
    (tmp_path / "a.txt").write_bytes(b"hello world\n")
    return tmp_path


# -- the basic round trip ---------------------------------------------------


def test_put_ls_meta_query_get_rm_on_the_default_store(workdir):
    status, out, err = run("put", "docs/a", "a.txt", "--meta", "author=ann", "n:=3")
    assert status == 0, err
    assert (workdir / "encore.db").exists()
    assert run("ls") == (0, b"docs/a\n", "")
    status, out, _ = run("meta", "docs/a")
    assert json.loads(out) == {"author": "ann", "n": 3}
    assert run("query", "n:=3")[1] == b"docs/a\n"
    assert run("query", "n=3")[1] == b""  # the text "3" is not the number 3
    assert run("query", "author=ann", "n:=3")[1] == b"docs/a\n"
    assert run("get", "docs/a")[1] == b"hello world\n"
    assert run("get", "docs/a", "-o", "copy.txt")[0] == 0
    assert (workdir / "copy.txt").read_bytes() == b"hello world\n"
    assert run("ls", "docs/*")[1] == b"docs/a\n"
    assert run("ls", "other/*")[1] == b""
    assert run("rm", "docs/a")[0] == 0
    status, out, err = run("get", "docs/a")
    assert status == 1 and one_line_error(err) == "encore: no such key: docs/a"


def test_environment_variable_chooses_the_store(workdir, monkeypatch):
    monkeypatch.setenv("ENCORE_STORE", "sqlite:///./other.db")
    assert run("put", "k", "a.txt")[0] == 0
    assert (workdir / "other.db").exists() and not (workdir / "encore.db").exists()


def test_python_dash_m_encore(workdir):
    result = command("--version", cwd=str(workdir))
    assert result.returncode == 0
    assert result.stdout.decode().startswith("encore ")


# -- metadata: httpie's rule ----------------------------------------------


def test_parse_assignment_follows_httpie():
    assert parse_assignment("version=1.10") == ("version", "1.10")
    assert parse_assignment("n=3") == ("n", "3")
    assert parse_assignment("flag=true") == ("flag", "true")
    assert parse_assignment("n:=3") == ("n", 3)
    assert parse_assignment("flag:=true") == ("flag", True)
    assert parse_assignment('tags:=["a"]') == ("tags", ["a"])
    assert parse_assignment("text=a=b") == ("text", "a=b")
    assert parse_assignment("text=a:=b") == ("text", "a:=b")
    assert parse_assignment("empty=") == ("empty", "")
    for bad in ("novalue", "=x", ":=3", "n:=three", "n:={"):
        with pytest.raises(Exception) as info:
            parse_assignment(bad)
        assert type(info.value).__name__ == "ArgumentTypeError"


def test_put_stores_metadata_values_as_the_rule_says(workdir):
    status, _, err = run("put", "k", "a.txt", "--meta", "version=1.10", "n:=3", "flag:=true",
                         'tags:=["a"]', "nothing:=null")
    assert status == 0, err
    assert json.loads(run("meta", "k")[1]) == {
        "version": "1.10", "n": 3, "flag": True, "tags": ["a"], "nothing": None}


def test_bad_values_are_refused_before_anything_is_written(workdir):
    status, out, err = run("put", "k", "a.txt", "--meta", "good=1", "bad:=[1")
    assert status == 2 and out == b""
    assert "bad:= expects JSON" in one_line_error(err)
    assert not (workdir / "encore.db").exists()
    assert run("put", "k", "a.txt")[0] == 0
    status, _, err = run("meta", "k", "--set", "x:=nope")
    assert status == 2 and "x:= expects JSON" in one_line_error(err)
    assert json.loads(run("meta", "k")[1]) == {}


def test_put_replaces_the_metadata_and_merge_keeps_old_names(workdir):
    assert run("put", "k", "a.txt", "--meta", "a=1", "b=2")[0] == 0
    assert run("put", "k", "a.txt", "--meta", "b=3")[0] == 0
    assert json.loads(run("meta", "k")[1]) == {"b": "3"}
    assert run("put", "k", "a.txt", "--meta", "a=1", "c=4")[0] == 0
    assert run("put", "k", "a.txt", "--merge", "--meta", "c=5")[0] == 0
    assert json.loads(run("meta", "k")[1]) == {"a": "1", "c": "5"}
    assert run("put", "k", "a.txt")[0] == 0
    assert json.loads(run("meta", "k")[1]) == {}


def test_meta_set_unset_replace(workdir):
    assert run("put", "k", "a.txt", "--meta", "a=1", "b=2")[0] == 0
    status, out, _ = run("meta", "k", "--set", "c:=[1, 2]", "a=one")
    assert status == 0 and json.loads(out) == {"a": "one", "b": "2", "c": [1, 2]}
    status, out, _ = run("meta", "k", "--unset", "b", "missing")
    assert status == 0 and json.loads(out) == {"a": "one", "c": [1, 2]}
    status, out, _ = run("meta", "k", "--replace", "--set", "only=this")
    assert status == 0 and json.loads(out) == {"only": "this"}
    assert json.loads(run("meta", "k")[1]) == {"only": "this"}
    status, _, err = run("meta", "absent", "--set", "a=1")
    assert status == 1 and one_line_error(err) == "encore: no such key: absent"


def test_meta_prints_utf8_and_can_add_size_and_dates(workdir):
    assert run("put", "k", "a.txt", "--meta", "name=café ☕")[0] == 0
    status, out, _ = run("meta", "k")
    assert status == 0 and "café ☕".encode("utf-8") in out and b"\\u" not in out
    status, out, _ = run("meta", "-l", "k")
    document = json.loads(out.decode("utf-8"))
    assert document["key"] == "k" and document["size"] == 12
    assert document["metadata"] == {"name": "café ☕"}
    for name in ("created", "modified"):
        assert document[name].endswith("Z") and document[name][:2] == "20"


# -- arguments ----------------------------------------------------------------


def test_options_before_or_after_the_command(workdir):
    target = str(workdir / "other.db")
    assert run("put", "k", "a.txt", "--store", target, "-q") == (0, b"", "")
    assert run("--store", target, "ls") == (0, b"k\n", "")
    assert run("ls", "--store", target) == (0, b"k\n", "")
    status, _, err = run("cp", "-q", target, str(workdir / "copy.db"))
    assert status == 0 and err == ""
    assert run("-q", "--store", str(workdir / "copy.db"), "ls")[1] == b"k\n"


def test_usage_errors_are_one_line(workdir):
    for argv in ([], ["frobnicate"], ["query", "no-equals-sign"], ["ls", "--bogus"],
                 ["serve", "--port", "99999"], ["serve", "--port", "http"]):
        status, out, err = run(*argv)
        assert status == 2 and out == b"", argv
        assert one_line_error(err).endswith("(see encore --help)"), argv
    status, _, err = run("serve", "--port", "99999")
    assert "between 0 and 65535" in err
    assert not (workdir / "encore.db").exists()


def test_port_out_of_range_in_a_real_process(workdir):
    result = command("serve", "--port", "99999", cwd=str(workdir))
    assert result.returncode == 2 and result.stdout == b""
    assert "between 0 and 65535" in one_line_error(result.stderr.decode())


def test_help_documents_the_glob_rule(capsys):
    assert main(["ls", "--help"]) == 0
    assert "'*' also matches '/'" in " ".join(capsys.readouterr().out.split())
    assert "*including* ``/``" in encore.cli.__doc__


# -- get and put: standard streams, files, trees ------------------------------


def test_get_dash_o_dash_writes_to_stdout_and_put_dash_reads_stdin(workdir):
    status, _, err = run("put", "piped", "-", "--meta", "from=stdin", stdin=io.BytesIO(b"from a pipe"))
    assert status == 0, err
    assert run("get", "piped", "-o", "-")[1] == b"from a pipe"
    assert json.loads(run("meta", "piped")[1]) == {"from": "stdin"}


def test_put_of_a_missing_file_or_a_directory(workdir):
    status, _, err = run("put", "k", "missing-file.txt")
    assert status == 1 and "missing-file.txt" in one_line_error(err)
    (workdir / "tree").mkdir()
    status, _, err = run("put", "k", "tree")
    assert status == 1 and "put -r" in one_line_error(err)
    assert not (workdir / "encore.db").exists()


def test_get_into_a_directory_uses_the_key_name(workdir):
    assert run("put", "dir/name.txt", "a.txt")[0] == 0
    (workdir / "out").mkdir()
    assert run("get", "dir/name.txt", "-o", "out")[0] == 0
    assert (workdir / "out" / "name.txt").read_bytes() == b"hello world\n"


def test_put_recursive_stores_a_tree(workdir):
    tree = workdir / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "one.txt").write_bytes(b"1")
    (tree / "sub" / "two.txt").write_bytes(b"22")
    (tree / "sub" / "deeper" / "three.bin").write_bytes(b"333")
    status, _, err = run("put", "-r", "tree", "backup", "--meta", "origin=tree")
    assert status == 0, err
    assert run("ls")[1] == b"backup/one.txt\nbackup/sub/deeper/three.bin\nbackup/sub/two.txt\n"
    assert run("get", "backup/sub/deeper/three.bin")[1] == b"333"
    assert json.loads(run("meta", "backup/sub/two.txt")[1]) == {"origin": "tree"}
    # One line of progress for the whole tree when not on a terminal.
    assert err.count("\n") == 1 and err.startswith("put 3 files into backup/: done, 6 B")
    status, _, err = run("put", "-r", "a.txt", "x")
    assert status == 1 and "not a directory" in one_line_error(err)


class ShortValue:
    """A value whose data stops before its announced size."""

    size = 1000
    created = modified = None
    metadata = {}

    def __init__(self, error=None):
        self.error = error

    @property
    def data(self):
        error = self.error

        class Stream(io.BytesIO):
            def read(self, size=-1):
                chunk = super().read(size)
                if not chunk and error is not None:
                    raise error
                return chunk

        return Stream(b"partial")


class OneValueStore:
    def __init__(self, value):
        self.value = value

    def get(self, key):
        return self.value

    def disconnect(self):
        pass


@pytest.mark.parametrize("error, status, message", [
    (None, 1, "encore: the transfer of k was cut short: got 7 of 1000 bytes"),
    (KeyboardInterrupt(), 130, "encore: interrupted"),
    (ConnectionResetError(104, "Connection reset by peer"), 1, "encore: Connection reset by peer"),
])
def test_get_o_replaces_the_file_only_when_the_whole_value_was_read(workdir, monkeypatch, error, status, message):
    (workdir / "dest.txt").write_bytes(b"old content")
    monkeypatch.setattr(encore.cli, "_open", lambda *args, **kwargs: OneValueStore(ShortValue(error)))
    code, _, err = run("get", "k", "-o", "dest.txt")
    assert code == status
    assert one_line_error(err) == message
    assert (workdir / "dest.txt").read_bytes() == b"old content"
    assert sorted(os.listdir(workdir)) == ["a.txt", "dest.txt"]  # no temporary file left


def test_get_to_stdout_of_a_truncated_value_fails(workdir, monkeypatch):
    monkeypatch.setattr(encore.cli, "_open", lambda *args, **kwargs: OneValueStore(ShortValue()))
    status, out, err = run("get", "k")
    assert status == 1 and out == b"partial" and "cut short" in one_line_error(err)


def test_get_o_keeps_the_mode_of_the_file_it_replaces(workdir):
    assert run("put", "k", "a.txt")[0] == 0
    target = workdir / "dest.txt"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    assert run("get", "k", "-o", "dest.txt")[0] == 0
    assert target.read_bytes() == b"hello world\n" and (os.stat(target).st_mode & 0o777) == 0o640


# -- choosing stores: paths, URLs and their parameters -------------------------


def test_bare_paths_name_stores(workdir):
    assert store_url("data.db") == "sqlite://" + str(workdir / "data.db")
    assert store_url("files/").startswith("file://") and store_url("files/").endswith("/files")
    (workdir / "existing").mkdir()
    assert store_url("existing").startswith("file://")
    assert store_url("memory://") == "memory://"
    assert store_url("odd name?.db").endswith("/odd%20name%3F.db")
    assert run("--store", "data.db", "put", "k", "a.txt")[0] == 0
    assert run("--store", "files/", "put", "k", "a.txt")[0] == 0
    assert run("--store", "odd name?.db", "put", "k", "a.txt")[0] == 0
    assert (workdir / "data.db").is_file() and (workdir / "odd name?.db").is_file()
    assert (workdir / "files" / ".FSStore").is_file()
    assert run("--store", "files", "ls")[1] == b"k\n"
    assert run("--store", str(workdir / "data.db"), "get", "k")[1] == b"hello world\n"


def test_url_parameters_are_honoured_or_refused(workdir):
    assert run("--store", "sqlite:///./t.db?table=first", "put", "one", "a.txt")[0] == 0
    assert run("--store", "sqlite:///./t.db?table=second", "put", "two", "a.txt")[0] == 0
    assert run("--store", "sqlite:///./t.db?table=first", "ls")[1] == b"one\n"
    assert run("--store", "sqlite:///./t.db?table=second", "ls")[1] == b"two\n"
    tables = sqlite3.connect(str(workdir / "t.db")).execute(
        "SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    assert {"first", "second"} <= {name for (name,) in tables}
    for url in ("sqlite:///./t.db?tabel=first", "memory://?x=1", "sqlite:///./t.db#frag",
                "sqlite:///./t.db?table=a&table=b"):
        status, _, err = run("--store", url, "ls")
        assert status == 1 and url.split("?")[0].split("#")[0] in one_line_error(err), url


def test_open_store_schemes_and_parameters(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    memory = open_store("memory://")
    assert isinstance(memory, DictMemoryStore) and memory.is_connected()
    sqlite = open_store("sqlite://")
    assert isinstance(sqlite, SqliteStore) and sqlite.info()["location"] == ":memory:"
    relative = open_store("sqlite:///./rel.db?table=mine&index=none&index_columns=a,b")
    assert relative.info()["location"] == "./rel.db" and (tmp_path / "rel.db").exists()
    assert relative.table == "mine" and relative.index is None
    relative.disconnect()
    absolute = open_store("sqlite://" + str(tmp_path / "abs.db"))
    assert absolute.info()["location"] == str(tmp_path / "abs.db")
    absolute.disconnect()
    with pytest.raises(Exception):
        open_store("file://" + str(tmp_path / "nowhere"))
    files = open_store("file://" + str(tmp_path / "fs"), create=True)
    assert isinstance(files, FileSystemStore)
    custom = open_store("file://" + str(tmp_path / "custom") + "?magic_fname=.Mine", create=True)
    assert (tmp_path / "custom" / ".Mine").is_file()
    custom.disconnect()
    with pytest.raises(ValueError, match="unknown parameter 'tabel'"):
        open_store("sqlite:///./rel.db?tabel=x")
    with pytest.raises(ValueError, match="both in the URL and as an option"):
        open_store("sqlite:///./rel.db?table=x", table="y")
    with pytest.raises(ValueError, match="poll"):
        open_store("static+file:///nowhere/?poll=soon")
    with pytest.raises(ValueError):
        open_store("gopher://x")
    with pytest.raises(TypeError):
        open_store(None)


def test_ls_long_shows_size_and_modified_time(workdir):
    (workdir / "big.bin").write_bytes(b"x" * 12345)
    assert run("put", "b/big", "big.bin")[0] == 0
    assert run("put", "a/small", "a.txt")[0] == 0
    before = time.strftime("%Y-%m-%dT", time.gmtime())
    status, out, _ = run("ls", "-l")
    lines = out.decode().splitlines()
    assert status == 0 and len(lines) == 2
    size, modified, key = lines[0].split()
    assert (size, key) == ("12", "a/small") and modified.startswith(before) and modified.endswith("Z")
    assert lines[1].split()[0::2] == ["12345", "b/big"]


# -- nothing is created by accident -------------------------------------------


def test_read_commands_never_create_a_store(workdir):
    for argv in (["ls"], ["get", "k"], ["meta", "k"], ["query", "a=1"], ["rm", "k"],
                 ["meta", "k", "--set", "a=1"]):
        status, _, err = run(*argv)
        assert status == 1 and "no store at" in one_line_error(err), argv
    assert not (workdir / "encore.db").exists()
    status, _, err = run("--store", "file://" + str(workdir / "typo"), "ls")
    assert status == 1 and not (workdir / "typo").exists()
    status, _, err = run("cp", "sqlite:///./missing.db", "memory://")
    assert status == 1 and not (workdir / "missing.db").exists()


def test_serve_of_a_mistyped_path_creates_nothing(workdir):
    result = command("--store", "mistyped.db", "serve", "--port", "0", cwd=str(workdir))
    assert result.returncode == 1
    assert "no store at" in one_line_error(result.stderr.decode())
    assert not (workdir / "mistyped.db").exists()


def test_put_into_a_directory_that_is_not_a_store(workdir):
    (workdir / "photos").mkdir()
    (workdir / "photos" / "cat.jpg").write_bytes(b"meow")
    status, _, err = run("--store", "photos", "put", "k", "a.txt")
    line = one_line_error(err)
    assert status == 1 and "not an encore store" in line and "new or empty directory" in line
    assert "init_shared_store" not in line and not (workdir / "photos" / ".FSStore").exists()
    status, _, err = run("--store", "file://" + str(workdir / "photos"), "ls")
    assert status == 1 and "not an encore store" in one_line_error(err)
    (workdir / "empty").mkdir()
    assert run("--store", "empty", "put", "k", "a.txt")[0] == 0
    status, _, err = run("--store", "nowhere/deeper/x.db", "put", "k", "a.txt")
    assert status == 1 and "does not exist" in one_line_error(err)
    assert not (workdir / "nowhere").exists()


# -- failures: one line, a status, never a traceback -----------------------------


def test_a_file_that_is_not_a_database(workdir):
    status, _, err = run("--store", "a.txt", "ls")
    assert status == 1 and "not an encore store (not an SQLite database)" in one_line_error(err)
    status, _, err = run("--store", "a.txt", "put", "k", "a.txt")
    assert status == 1 and "not an SQLite database" in one_line_error(err)
    assert (workdir / "a.txt").read_bytes() == b"hello world\n"


def without_file_capabilities(argv):
    """Wrap a command so that it runs without the capabilities that let root
    ignore file permissions (CAP_DAC_OVERRIDE, CAP_FOWNER, ...): it keeps
    uid 0, but a read-only file or directory then stops its writes as it
    stops any user's.  Skips the test when neither ``setpriv`` nor ``capsh``
    is installed."""
    import shlex
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        return [setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--", *argv]
    capsh = shutil.which("capsh")
    if capsh is not None:
        drop = "cap_dac_override,cap_dac_read_search,cap_fowner,cap_linux_immutable"
        return [capsh, "--drop=" + drop, "--", "-c", "exec " + shlex.join(argv)]
    print("running as root and neither setpriv nor capsh is installed: cannot drop the "
          "capabilities that let root write read-only files")
    pytest.skip("running as root without setpriv or capsh: file permissions do not stop writes")


def test_a_read_only_database_file(workdir):
    assert run("put", "k", "a.txt")[0] == 0
    os.chmod(workdir / "encore.db", 0o444)
    os.chmod(workdir, 0o555)
    try:
        if os.geteuid() == 0:
            # Root ignores file permissions: run the command in a process
            # without the capabilities that allow that.
            argv = without_file_capabilities([sys.executable, "-m", "encore", "put", "k2", "a.txt"])
            result = subprocess.run(argv, capture_output=True, timeout=120, cwd=str(workdir))
            status, err = result.returncode, result.stderr.decode("utf-8", "replace")
        else:
            status, _, err = run("put", "k2", "a.txt")
    finally:
        os.chmod(workdir, 0o755)
    assert status == 1 and "read-only" in one_line_error(err)
    assert run("ls") == (0, b"k\n", "")  # nothing was written


def test_sqlite_errors_are_explained(workdir, monkeypatch):
    assert run("put", "k", "a.txt")[0] == 0

    def refuse(*args, **kwargs):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(SqliteStore, "set", refuse)
    status, _, err = run("put", "k", "a.txt")
    assert status == 1 and "read-only; check its permissions" in one_line_error(err)


def test_a_read_only_directory_for_get(workdir):
    assert run("put", "k", "a.txt")[0] == 0
    status, _, err = run("get", "k", "-o", "no/such/dir/file")
    assert status == 1 and "does not exist" in one_line_error(err)


@pytest.fixture
def static_site(tmp_path):
    root = tmp_path / "site"
    (root / "data").mkdir(parents=True)
    (root / "index.json").write_text(json.dumps({"k": {"a": 1}}))
    (root / "data" / "k").write_bytes(b"static data")

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "static+http://127.0.0.1:{}/".format(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_writing_to_a_read_only_store(workdir, static_site):
    assert run("--store", static_site, "get", "k")[1] == b"static data"
    for argv in (["put", "x", "a.txt"], ["rm", "k"], ["meta", "k", "--set", "a=2"]):
        status, _, err = run("--store", static_site, *argv)
        assert status == 1 and "read-only store" in one_line_error(err), argv
    status, _, err = run("cp", "-q", static_site, static_site)
    assert status == 1 and "read-only store" in one_line_error(err)
    # Copying out of it works.
    assert run("cp", "-q", static_site, "copy.db")[0] == 0
    assert run("--store", "copy.db", "get", "k")[1] == b"static data"


class Refusing(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _refuse(self):
        body = b"no"
        self.send_response(405)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _refuse


def test_http_errors_are_explained(workdir):
    pytest.importorskip("requests", reason="the http extra (requests) is not installed")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:{}".format(server.server_address[1])
        status, _, err = run("--store", url, "ls")
        line = one_line_error(err)
        assert status == 1 and "HTTP 405" in line and "Client Error" not in line
        assert "does not allow" in line
    finally:
        server.shutdown()
        server.server_close()
    status, _, err = run("--store", url, "ls")  # nobody listens any more
    assert status == 1 and "cannot connect" in one_line_error(err)


def test_a_missing_optional_dependency_names_the_extra(workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "requests", None)
    status, _, err = run("--store", "http://127.0.0.1:9", "ls")
    line = one_line_error(err)
    assert status == 1 and "'requests'" in line and '".[http]"' in line


def test_unexpected_errors_are_one_line_unless_debugging(workdir, monkeypatch):
    def explode(context):
        raise ZeroDivisionError("boom")

    monkeypatch.setitem(encore.cli._COMMANDS, "ls", explode)
    status, _, err = run("ls")
    assert status == 1 and one_line_error(err) == "encore: ZeroDivisionError: boom (set ENCORE_DEBUG=1 to see where)"
    monkeypatch.setenv("ENCORE_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        run("ls")


def test_broken_pipe_exits_quietly(workdir):
    store = SqliteStore(str(workdir / "many.db"))
    store.connect()
    with store.transaction("fill"):
        for number in range(20000):
            store.from_bytes("key/%05d" % number, b"")
    store.disconnect()
    script = '"$0" -m encore --store many.db ls | head -n 1; echo "status=${PIPESTATUS[0]}" >&2'
    result = subprocess.run(["bash", "-c", script, sys.executable], capture_output=True, timeout=120,
                            cwd=str(workdir))
    assert result.stdout == b"key/00000\n"
    assert result.stderr.decode() == "status=141\n"


def test_ctrl_c_rolls_the_write_back_and_exits_130(workdir):
    assert run("put", "k", "a.txt")[0] == 0
    process = subprocess.Popen([sys.executable, "-m", "encore", "put", "k", "-", "--meta", "new=1"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=str(workdir))
    try:
        # A pipe holds far less than 4 MiB: when this write returns, the
        # command has read most of it, so it is inside the put.
        process.stdin.write(b"x" * (4 * 1024 * 1024))
        process.stdin.flush()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert one_line_error(err.decode()) == "encore: interrupted"
    assert run("get", "k")[1] == b"hello world\n"
    assert json.loads(run("meta", "k")[1]) == {}


# -- progress -------------------------------------------------------------------


def test_progress_is_one_line_per_operation_unless_on_a_terminal(workdir):
    status, out, err = run("put", "k", "a.txt")
    assert status == 0 and out == b""
    assert err.startswith("put k: done, 12 B in ") and err.count("\n") == 1 and "\r" not in err
    status, out, err = run("--quiet", "put", "k2", "a.txt")
    assert status == 0 and err == ""
    status, out, err = run("get", "k", "-o", "copy.txt")
    assert status == 0 and err.startswith("get k: done, 12 B")


def test_put_of_a_file_draws_a_size_aware_bar_on_a_terminal(workdir):
    (workdir / "big.bin").write_bytes(b"z" * (3 * 1024 * 1024 + 17))
    terminal = TerminalStream()
    status, _, err = run("put", "big", "big.bin", stderr=terminal)
    assert status == 0
    assert err.startswith("put big:\n\r")
    assert "100% [" in err and "3.0 MiB/3.0 MiB" in err and err.endswith("Done.\n")
    assert " 33% [" in err or " 66% [" in err  # drawn while it went, not only at the end


def test_cp_of_many_keys_shows_one_overall_bar(workdir):
    store = SqliteStore(str(workdir / "many.db"))
    store.connect()
    for number in range(120):
        store.from_bytes("k/%03d" % number, b"x" * 1000)
    store.disconnect()
    status, _, err = run("cp", "many.db", "copy.db")
    assert status == 0
    lines = err.splitlines()
    assert lines[0].startswith("cp 120 keys: done, 120 keys in ")
    assert lines[1] == "copied 120 keys (117 KiB)" and len(lines) == 2
    terminal = TerminalStream()
    status, _, err = run("cp", "many.db", "copy2.db", "k/00*", stderr=terminal)
    assert status == 0
    assert err.startswith("cp 10 keys:\n") and "10/10 keys" in err and "9.8 KiB copied" in err
    assert err.count("Done.") == 1
    assert run("--store", "copy2.db", "ls")[1].count(b"\n") == 10


def test_cp_between_stores_with_a_pattern(workdir):
    for key in ("x/1", "x/2", "y/1"):
        assert run("put", key, "a.txt", "--meta", "key=" + key)[0] == 0
    target = "file://" + str(workdir / "files")
    status, _, err = run("cp", "sqlite:///./encore.db", target, "x/*")
    assert status == 0 and "copied 2 keys" in err
    assert run("--store", target, "ls")[1] == b"x/1\nx/2\n"
    status, out, _ = run("--store", target, "meta", "x/2")
    assert json.loads(out) == {"key": "x/2"}
    assert (workdir / "files" / "x" / "2.data").read_bytes() == b"hello world\n"


# -- serve ----------------------------------------------------------------------


def test_serve_then_use_the_store_over_http(workdir):
    """``encore serve`` in a subprocess, used through an http:// store URL."""
    pytest.importorskip("requests", reason="the http extra (requests) is not installed")
    assert run("--store", "served.db", "put", "first", "a.txt")[0] == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "encore", "--store", "sqlite:///./served.db", "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(workdir))
    try:
        url = process.stdout.readline().decode().strip()
        assert url.startswith("http://127.0.0.1:")
        assert run("--store", url, "put", "remote/key", "a.txt", "--meta", "n:=1")[0] == 0
        assert run("--store", url, "ls")[1] == b"first\nremote/key\n"
        assert run("--store", url, "get", "remote/key")[1] == b"hello world\n"
        assert json.loads(run("--store", url, "meta", "remote/key")[1]) == {"n": 1}
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert "Traceback" not in err.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    local = open_store("sqlite:///./served.db")
    assert local.to_bytes("remote/key") == b"hello world\n"
    local.disconnect()


def test_the_counting_reader_keeps_streams_seekable_and_counts_only_reads():
    reports = []
    reader = encore.cli._CountingReader(io.BytesIO(b"0123456789"), reports.append, start=100)
    assert reader.seekable() and reader.tell() == 0
    assert reader.seek(0, io.SEEK_END) == 10 and reader.seek(0) == 0  # how a store learns the size
    assert reports == [] and reader.count == 0
    assert reader.read(4) == b"0123" and reader.read(100) == b"456789"
    assert reports == [104, 110] and reader.count == 10
    reader.seek(0)
    assert reader.read(3) == b"012" and reader.count == 10  # a re-read does not count twice

    class Pipe(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buffer):
            buffer[:2] = b"ab"
            return 2

    piped = encore.cli._CountingReader(Pipe(), reports.append)
    assert not piped.seekable()
    with pytest.raises(io.UnsupportedOperation):
        piped.tell()
    assert piped.read(2) == b"ab" and piped.read(2) == b"ab" and piped.count == 4
