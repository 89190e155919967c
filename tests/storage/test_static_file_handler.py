"""StaticURLStore over ``file:`` URLs: its own handler opens a data file
first and describes the open file, and the file it opened must be the one
it checked to be inside the data directory, whatever is swapped on disk
between the check and the opening."""
import json
import os
import sys
import urllib.request

import pytest

from encore.events.event_manager import EventManager
from encore.storage.static_url_store import StaticURLStore, _descriptor_path


def _site(tmp_path, files, index=None):
    """A static site under tmp_path/site with data files ``files``."""
    root = tmp_path / "site"
    (root / "data").mkdir(parents=True)
    for name, content in files.items():
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    if index is None:
        index = {name: {} for name in files}
    (root / "index.json").write_text(json.dumps(index))
    return root


def _store(root, **options):
    store = StaticURLStore(root.as_uri() + "/", "data/", "index.json", poll=0,
                           event_manager=EventManager(), **options)
    store.connect()
    return store


def _on_stat_of(monkeypatch, path, action, times=1):
    """Run ``action`` right after the first ``times`` os.stat calls on
    ``path`` (resolved): the moment between the store's check of a data
    file and its opening."""
    real_stat = os.stat
    target = os.path.realpath(str(path))
    calls = []

    def stat(name, *args, **kwargs):
        status = real_stat(name, *args, **kwargs)
        if len(calls) < times and isinstance(name, str) and os.path.realpath(name) == target:
            calls.append(name)
            action()
        return status

    monkeypatch.setattr(os, "stat", stat)
    return calls


def test_size_and_date_describe_the_opened_file(tmp_path):
    root = _site(tmp_path, {"k": b"0123456789"})
    store = _store(root)
    try:
        value = store.get("k")
        assert value.size == 10
        assert abs(value.modified - os.stat(str(root / "data" / "k")).st_mtime) < 1.0
        stream = store.get_data("k")
        try:
            assert stream.headers["Content-Length"] == "10"
            assert stream.read() == b"0123456789"
        finally:
            stream.close()
    finally:
        store.disconnect()


def test_a_file_swapped_for_a_symlink_after_the_check_is_refused(tmp_path, monkeypatch):
    """Between the check and the opening, the data file becomes a link to a
    file outside the store: the link is never followed."""
    root = _site(tmp_path, {"k": b"public"})
    secret = tmp_path / "secret"
    secret.write_bytes(b"secret")
    data_file = root / "data" / "k"
    store = _store(root, retries=0)

    def swap():
        data_file.unlink()
        os.symlink(str(secret), str(data_file))

    calls = _on_stat_of(monkeypatch, data_file, swap)
    try:
        with pytest.raises(KeyError) as raised:
            store.to_bytes("k")
    finally:
        monkeypatch.undo()
        store.disconnect()
    assert calls
    assert raised.value.args == ("k",)


def test_a_directory_swapped_for_a_symlink_after_the_check_is_refused(tmp_path, monkeypatch):
    """Between the check and the opening, a directory on the path becomes a
    link to a directory outside the store holding a file of the same name:
    the file opened is not the file checked, and on a new check the key
    resolves outside: refused."""
    root = _site(tmp_path, {"sub/k": b"public"})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "k").write_bytes(b"secret")
    sub = root / "data" / "sub"
    store = _store(root, retries=0)

    def swap():
        (sub / "k").unlink()
        sub.rmdir()
        os.symlink(str(outside), str(sub))

    calls = _on_stat_of(monkeypatch, sub / "k", swap)
    try:
        with pytest.raises(KeyError):
            store.to_bytes("sub/k")
    finally:
        monkeypatch.undo()
        store.disconnect()
    assert calls


@pytest.mark.skipif(not sys.platform.startswith(("linux", "darwin")),
                    reason="the platform cannot tell the path of an open file")
def test_the_opened_file_must_lie_inside_even_when_the_check_is_fooled(tmp_path, monkeypatch):
    """The swap lands between the path's resolution and its stat, so the
    stat and the opening agree on the outside file: only the path of the
    opened descriptor (``/proc/self/fd``, ``F_GETPATH``) shows it."""
    root = _site(tmp_path, {"sub/k": b"public"})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "k").write_bytes(b"secret")
    sub = root / "data" / "sub"
    store = _store(root, retries=0)
    real_stat = os.stat
    target = os.path.realpath(str(sub / "k"))
    swapped = []

    def stat(name, *args, **kwargs):
        if not swapped and isinstance(name, str) and name == target:
            swapped.append(name)
            (sub / "k").unlink()
            sub.rmdir()
            os.symlink(str(outside), str(sub))
        return real_stat(name, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    try:
        with pytest.raises(KeyError):
            store.to_bytes("sub/k")
    finally:
        monkeypatch.undo()
        store.disconnect()
    assert swapped


def test_a_file_that_keeps_changing_is_a_connection_error(tmp_path, monkeypatch):
    root = _site(tmp_path, {"k": b"first"})
    data_file = root / "data" / "k"
    store = _store(root, retries=0)
    generation = []

    def replace():
        generation.append(1)
        fresh = root / "data" / "k.new"
        fresh.write_bytes(b"version %d" % len(generation))
        os.replace(str(fresh), str(data_file))

    calls = _on_stat_of(monkeypatch, data_file, replace, times=1000)
    try:
        with pytest.raises(ConnectionError, match="kept changing"):
            store.to_bytes("k")
    finally:
        monkeypatch.undo()
        store.disconnect()
    assert 1 < len(calls) < 1000  # checked again, a bounded number of times


def test_a_file_replaced_once_is_read_whole_after_a_new_check(tmp_path, monkeypatch):
    root = _site(tmp_path, {"k": b"old" * 1000})
    data_file = root / "data" / "k"
    store = _store(root, retries=0)

    def replace():
        fresh = root / "data" / "k.new"
        fresh.write_bytes(b"new")
        os.replace(str(fresh), str(data_file))

    calls = _on_stat_of(monkeypatch, data_file, replace)
    try:
        value = store.get("k")
        stream = value.data
        try:
            assert stream.read() == b"new"
        finally:
            stream.close()
        assert value.size == 3
    finally:
        monkeypatch.undo()
        store.disconnect()
    assert calls


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_fifo_or_a_directory_is_not_a_value(tmp_path):
    """Neither blocks nor reads: a data path that is not a regular file is
    a missing key."""
    root = _site(tmp_path, {"k": b"fine"}, index={"k": {}, "pipe": {}, "folder": {}})
    os.mkfifo(str(root / "data" / "pipe"))
    (root / "data" / "folder").mkdir()
    store = _store(root, retries=0)
    try:
        assert store.to_bytes("k") == b"fine"
        for key in ("pipe", "folder"):
            with pytest.raises(KeyError):
                store.to_bytes(key)
            with pytest.raises(KeyError):
                store.get(key).data
    finally:
        store.disconnect()


def test_a_missing_index_file_is_still_an_os_error(tmp_path):
    """Only data files are keys: a missing index fails the connection as
    before, with the OS's error."""
    root = tmp_path / "site"
    (root / "data").mkdir(parents=True)
    store = StaticURLStore(root.as_uri() + "/", "data/", "index.json", poll=0,
                           event_manager=EventManager(), retries=0)
    with pytest.raises(FileNotFoundError):
        store.connect()
    assert not store.is_connected()


def test_file_urls_on_another_host_are_refused(tmp_path, monkeypatch):
    # The local names are fixed and the host is an address: no lookup at all.
    monkeypatch.setattr(urllib.request.FileHandler, "names", ("127.0.0.1",))
    root = _site(tmp_path, {"k": b"fine"})
    store = StaticURLStore("file://192.0.2.1" + root.as_uri()[len("file://"):] + "/", "data/",
                           "index.json", poll=0, event_manager=EventManager(), retries=0)
    with pytest.raises(OSError):
        store.connect()
    assert not store.is_connected()


def test_localhost_file_urls_work(tmp_path):
    root = _site(tmp_path, {"k": b"fine"})
    store = StaticURLStore("file://localhost" + root.as_uri()[len("file://"):] + "/", "data/",
                           "index.json", poll=0, event_manager=EventManager(), retries=0)
    store.connect()
    try:
        assert store.to_bytes("k") == b"fine"
    finally:
        store.disconnect()


def test_descriptor_path_names_the_open_file(tmp_path):
    path = tmp_path / "named"
    path.write_bytes(b"x")
    descriptor = os.open(str(path), os.O_RDONLY)
    try:
        where = _descriptor_path(descriptor)
    finally:
        os.close(descriptor)
    if where is None:
        pytest.skip("the platform cannot tell the path of an open file")
    assert os.path.realpath(where) == os.path.realpath(str(path))
