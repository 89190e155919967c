"""Tests of FileSystemStore: every bundled conformance mixin, plus the on-disk
layout, the key encoding, atomic writes and the behaviour specific to the
file system store."""
import io
import json
import os
import re
import shutil
import tempfile
import threading

import pytest

from encore.events.event_manager import EventManager
from encore.storage.abstract_store import StoreError
from encore.storage.events import StoreDeleteEvent, StoreSetEvent, StoreUpdateEvent
from encore.storage.file_value import FileValue
from encore.storage.filesystem_store import (
    FileSystemStore,
    FileSystemStoreError,
    decode_key,
    encode_key,
    init_shared_store,
)
from encore.storage.tests.abstract_test import store_test_cases


def _make_directory_store(test):
    """A store in ``<private dir>/store`` with a private event manager (the
    directory is ``test.store_directory``, for the key mixin's checks)."""
    parent = tempfile.mkdtemp(prefix="encore_fs_test_")
    test.addCleanup(shutil.rmtree, parent, True)
    test.store_directory = os.path.join(parent, "store")
    init_shared_store(test.store_directory)
    return FileSystemStore(test.store_directory, event_manager=EventManager())


globals().update(store_test_cases(
    _make_directory_store,
    "TestFileSystemStore",
    attributes={
        # Big enough to span many buffers, small enough to keep fsync cheap.
        "LargeValues": {"large_value_size": 16 << 20},
        "Concurrency": {"concurrency_rounds": 15},
    },
))


# ---------------------------------------------------------------------------
# Fixtures for the specific tests
# ---------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "store"
    init_shared_store(path)
    return str(path)


@pytest.fixture
def store(root, event_manager):
    store = FileSystemStore(root, event_manager=event_manager)
    store.connect()
    yield store
    store.disconnect()


def files_under(root):
    """Every file below ``root`` as a sorted list of '/'-separated paths
    (writer markers aside: they stay while their writer runs)."""
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            if name.startswith(".~") and name.endswith(".writer"):
                continue
            found.append(os.path.relpath(os.path.join(directory, name), root).replace(os.sep, "/"))
    return sorted(found)


def read_json(path):
    with open(path, "rb") as stream:
        return json.loads(stream.read().decode("utf-8"))


# ---------------------------------------------------------------------------
# Opening a store
# ---------------------------------------------------------------------------


def test_init_shared_store_writes_the_magic_file(tmp_path):
    path = tmp_path / "a" / "b"
    init_shared_store(path)
    with open(path / ".FSStore", "rb") as stream:
        assert stream.read() == b"__version__ = 0\n"
    init_shared_store(path, magic_fname="MAGIC")
    assert sorted(os.listdir(path)) == [".FSStore", "MAGIC"]


def test_missing_directory_or_magic_file(tmp_path):
    with pytest.raises(FileSystemStoreError):
        FileSystemStore(str(tmp_path / "missing"))
    with pytest.raises(FileSystemStoreError, match="init_shared_store"):
        FileSystemStore(str(tmp_path))
    init_shared_store(tmp_path, magic_fname="other")
    with pytest.raises(FileSystemStoreError):
        FileSystemStore(str(tmp_path))
    assert FileSystemStore(str(tmp_path), magic_fname="other").path == str(tmp_path)
    assert issubclass(FileSystemStoreError, StoreError)


def test_connect_checks_the_magic_file_again(root):
    store = FileSystemStore(root)
    os.remove(os.path.join(root, ".FSStore"))
    with pytest.raises(FileSystemStoreError):
        store.connect()
    assert not store.is_connected()


def test_relative_path_is_made_absolute(root, monkeypatch):
    monkeypatch.chdir(os.path.dirname(root))
    store = FileSystemStore("store")
    assert store.path == root
    monkeypatch.chdir("/")
    store.from_bytes("k", b"v")
    assert os.path.exists(os.path.join(root, "k.data"))


def test_info(store, root):
    assert store.info() == {
        "readonly": False,
        "authorizing": False,
        "type": "FileSystemStore",
        "version": 0,
        "path": root,
    }


def test_event_manager_argument(root, event_manager):
    assert FileSystemStore(root, event_manager=event_manager).event_manager is event_manager
    assert FileSystemStore(root, ".FSStore", event_manager).event_manager is event_manager


# ---------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------


def test_safe_keys_use_encore_file_names(store, root):
    keys = ["plain", "with space", ".hidden", "dots.in.name", "v1.2/file.txt", "a/b/c",
            "Mixed-Case_key+=,@~!#$&'()[]{};^`"]
    for key in keys:
        store.set(key, (io.BytesIO(key.encode()), {"key": key}))
    expected = sorted(
        name for key in keys for name in (key + ".data", key + ".metadata")
    )
    assert files_under(root) == sorted(expected + [".FSStore"])
    for key in keys:
        with open(os.path.join(root, key + ".data"), "rb") as stream:
            assert stream.read() == key.encode()
        assert read_json(os.path.join(root, key + ".metadata")) == {"key": key}


def test_metadata_file_is_plain_utf8_json(store, root):
    metadata = {"text": "ünï 中文", "n": 1, "f": 2.5, "b": True, "none": None,
                "list": [1, "two"], "dict": {"x": [1.0]}}
    store.set("k", (io.BytesIO(b""), metadata))
    with open(os.path.join(root, "k.metadata"), "rb") as stream:
        raw = stream.read()
    assert "ünï 中文".encode("utf-8") in raw  # not \u-escaped
    assert json.loads(raw.decode("utf-8")) == metadata


def test_reads_a_layout_written_by_another_program(store, root):
    os.makedirs(os.path.join(root, "dir"))
    for name, data, metadata in (("one", b"1", {"n": 1}), ("dir/two", b"22", {"n": 2})):
        with open(os.path.join(root, name + ".data"), "wb") as stream:
            stream.write(data)
        with open(os.path.join(root, name + ".metadata"), "w", encoding="utf-8") as stream:
            json.dump(metadata, stream)
    assert sorted(store.query_keys()) == ["dir/two", "one"]
    assert store.to_bytes("dir/two") == b"22"
    assert store.get("one").metadata == {"n": 1}
    assert list(store.query_keys(n=2)) == ["dir/two"]


def test_unsafe_characters_are_escaped(store, root):
    # Only what cannot be in a name (here) or would read as an escape is
    # escaped; the rest is the key itself, as Encore 0.8 named its files.
    on_windows = os.name == "nt"
    cases = {
        "percent%": "percent%",
        "percent%41": "percent%2541",
        "percent%4a": "percent%4a",
        "colon:key": "colon%3Akey" if on_windows else "colon:key",
        "back\\slash": "back%5Cslash" if on_windows else "back\\slash",
        "tab\t": "tab%09" if on_windows else "tab\t",
        "ünï": "ünï",
        "nul\x00": "nul%00",
        "%%long/x": "%25%long/x",
        "%%long": "%25%long",
        "/leading": "%2Fleading",
        "trailing/": "trailing%2F",
        "a//b": "a%2F%2Fb",
        "..": "..",
        "../x": "%2E%2E/x",
        "a/./b": "a/%2E/b",
        "x.data/y": "x%2Edata/y",
        "x.lock/y": "x%2Elock/y",
        ".FSStore/y": "%2EFSStore/y",
        "__log__.txt.3/y": "%5F_log__.txt.3/y",
        "": "",
    }
    for key, stem in cases.items():
        store.set(key, (io.BytesIO(b"x"), {}))
        assert os.path.isfile(os.path.join(root, stem + ".data")), key
        assert os.path.isfile(os.path.join(root, stem + ".metadata")), key
    assert sorted(store.query_keys()) == sorted(cases)


def test_encoding_round_trips_and_is_injective():
    import random

    rng = random.Random(1234)
    alphabet = "aA/.%\\:_ -\x00\n\u00e9\u00c94F\u4e2d\U0001F600"
    seen = {}
    for _ in range(3000):
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        for fold in (False, True):
            parts = encode_key(key, fold)
            assert decode_key(parts) == key
            for part in parts:
                assert part not in ("", ".", "..") or part == parts[-1]
                assert "/" not in part and "\x00" not in part
                if fold:  # no upper-case letter outside escapes
                    assert not re.search("[A-Z\u00c9]", re.sub("%[0-9A-F]{2}", "", part))
            if fold:  # distinct even where the file system folds case
                parts = [part.lower() for part in parts]
            previous = seen.setdefault((tuple(parts), fold), key)
            assert previous == key


def test_case_folding_file_systems_escape_upper_case(store, root):
    # Simulate a case-insensitive file system on this one.
    store._fold_case = True
    assert encode_key("CaseKey", True) == ["%43ase%4Bey"]
    for key in ("CaseKey", "casekey", "CASEKEY"):
        store.set(key, (io.BytesIO(key.encode()), {}))
    names = [name for name in files_under(root) if name.endswith(".data")]
    assert all(name == name.lower() or "%" in name for name in names)
    assert len(set(name.lower() for name in names)) == 3  # distinct even when case folds
    for key in ("CaseKey", "casekey", "CASEKEY"):
        assert store.to_bytes(key) == key.encode()
    assert sorted(store.query_keys()) == sorted(["CaseKey", "casekey", "CASEKEY"])


def test_case_detection_on_this_file_system(root):
    store = FileSystemStore(root)
    upper = os.path.join(root, ".FSSTORE")
    expected = os.path.exists(upper) and os.path.samefile(upper, os.path.join(root, ".FSStore"))
    assert store.folds_case is expected


def test_no_key_escapes_the_root(tmp_path):
    root = tmp_path / "deep" / "store"
    init_shared_store(root)
    store = FileSystemStore(str(root))
    keys = ["..", "../x", "../../x", "a/../../../x", "/etc/passwd", "\\..\\x",
            "C:\\x", "x/../..", "\x00", "~/x", "a/" + "../" * 20 + "x"]
    for key in keys:
        store.set(key, (io.BytesIO(b"x"), {}))
        store.set_metadata(key, {"m": 1})
    assert os.listdir(tmp_path) == ["deep"]
    assert os.listdir(tmp_path / "deep") == ["store"]
    real_root = os.path.realpath(str(root))
    for name in files_under(str(root)):
        assert os.path.realpath(os.path.join(str(root), name)).startswith(real_root + os.sep)
    assert sorted(store.query_keys()) == sorted(keys)


def test_long_keys_are_split_into_short_names(store, root):
    keys = ["x" * 1000, "é" * 700, "\U0001F600" * 1000, "a/" + "b" * 5000, "y" * 1000 + "/z",
            "d/" * 300, "z" * 200, "z" * 201]
    for key in keys:
        store.set(key, (io.BytesIO(key[:10].encode()), {"len": len(key)}))
    names = files_under(root)
    for name in names:
        assert all(len(part.encode()) <= 255 for part in name.split("/"))
        assert len(os.path.join(root, name)) < 4096
    assert os.path.isfile(os.path.join(root, "z" * 200 + ".data"))  # still Encore's name
    hashed = encode_key("z" * 201)
    assert hashed[0] == "%%long" and len(hashed[2]) == 64
    with open(os.path.join(root, *hashed) + ".key", "rb") as stream:
        assert stream.read() == b"z" * 201
    assert sorted(store.query_keys()) == sorted(keys)
    for key in keys:
        assert store.get_metadata(key) == {"len": len(key)}
        store.delete(key)
    assert files_under(root) == [".FSStore"]


def test_a_key_and_its_subkeys_coexist(store, root):
    store.from_bytes("a", b"1")
    store.from_bytes("a/b", b"2")
    assert sorted(files_under(root)) == [".FSStore", "a.data", "a.metadata", "a/b.data", "a/b.metadata"]
    store.delete("a/b")
    assert files_under(root) == [".FSStore", "a.data", "a.metadata"]
    assert not os.path.exists(os.path.join(root, "a"))  # emptied directories go
    assert store.to_bytes("a") == b"1"


def test_stray_files_are_not_keys(store, root):
    store.from_bytes("real", b"1")
    # ("%61" is not how any key is written: "a" is "a", "%61" is "%2561".)
    for name in ("orphan.data", ".~abc.tmp", "real.lock", "%61.metadata", "%C3.metadata",
                 "notes.txt"):
        with open(os.path.join(root, name), "wb") as stream:
            stream.write(b"{}")
    os.makedirs(os.path.join(root, "shared.lock"))
    with open(os.path.join(root, "shared.lock", "reader.metadata"), "wb") as stream:
        stream.write(b"{}")
    assert list(store.query_keys()) == ["real"]
    assert [key for key, _ in store.query()] == ["real"]
    assert not store.exists("orphan")
    with pytest.raises(KeyError):
        store.get("orphan")
    with pytest.raises(KeyError):
        store.get_data("orphan")


def test_hidden_keys_are_listed(store):
    store.from_bytes(".hidden", b"h")
    store.from_bytes("dir/.also", b"a")
    assert sorted(store.query_keys()) == [".hidden", "dir/.also"]
    assert sorted(store.glob(".*")) == [".hidden"]


def test_corrupt_metadata_file(store, root):
    store.from_bytes("k", b"1")
    with open(os.path.join(root, "k.metadata"), "wb") as stream:
        stream.write(b"{not json")
    with pytest.raises(FileSystemStoreError, match="not valid JSON"):
        store.get_metadata("k")
    with open(os.path.join(root, "k.metadata"), "wb") as stream:
        stream.write(b"[1, 2]")
    with pytest.raises(FileSystemStoreError, match="JSON object"):
        store.get("k")


# ---------------------------------------------------------------------------
# Writes
# ---------------------------------------------------------------------------


class FailingStream(object):
    """Yields ``good`` bytes in small reads, then raises."""

    def __init__(self, good):
        self.stream = io.BytesIO(good)

    def read(self, size=-1):
        chunk = self.stream.read(min(size, 1000) if size and size > 0 else 1000)
        if not chunk:
            raise OSError("source failed")
        return chunk


@pytest.mark.parametrize("write", ["set", "set_data", "set_new"])
def test_failing_stream_leaves_the_old_value(store, root, write, record_events):
    store.set("k", (io.BytesIO(b"old data"), {"old": True}))
    before = files_under(root)
    with record_events(store) as recorder:
        with pytest.raises(OSError, match="source failed"):
            if write == "set":
                store.set("k", (FailingStream(b"n" * 5000), {"new": True}), buffer_size=100)
            elif write == "set_data":
                store.set_data("k", FailingStream(b"n" * 5000), buffer_size=100)
            else:
                store.set("new/key", (FailingStream(b"n" * 5000), {}), buffer_size=100)
    assert files_under(root) == before  # no temporary file left behind
    assert store.to_bytes("k") == b"old data"
    assert store.get_metadata("k") == {"old": True}
    assert not store.exists("new/key")
    assert recorder.modifications() == []


def test_unserialisable_metadata_writes_nothing(store, root):
    store.set("k", (io.BytesIO(b"old"), {"a": 1}))
    with pytest.raises(ValueError):
        store.set("k", (io.BytesIO(b"new"), {"bad": "\ud800"}))
    assert store.to_bytes("k") == b"old"
    assert files_under(root) == [".FSStore", "k.data", "k.metadata"]


def test_writes_replace_files_atomically(store, root, monkeypatch):
    """A write renames a complete, synced temporary file over the old one."""
    store.from_bytes("k", b"old")
    calls = []
    real_replace, real_fsync = os.replace, os.fsync

    def replace(source, target):
        with open(source, "rb") as stream:
            calls.append(("replace", os.path.basename(target), stream.read(),
                          os.path.dirname(source) == os.path.dirname(target)))
        return real_replace(source, target)

    def fsync(fd):
        calls.append(("fsync",))
        return real_fsync(fd)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    store.set("k", (io.BytesIO(b"new"), {"m": 1}))
    replaces = [call for call in calls if call[0] == "replace"]
    assert replaces == [("replace", "k.data", b"new", True),
                        ("replace", "k.metadata", b'{"m": 1}', True)]
    # data synced, metadata synced, then the directory
    assert calls.index(replaces[0]) > 0 and calls[0] == ("fsync",)
    if os.name != "nt":
        assert calls[-1] == ("fsync",)


def test_set_data_and_set_metadata_create_keys(store, root):
    store.set_metadata("meta_only", {"a": 1})
    assert store.to_bytes("meta_only") == b""
    store.set_data("data_only", io.BytesIO(b"d"))
    assert store.get_metadata("data_only") == {}
    store.set_data("meta_only", io.BytesIO(b"x"))
    assert store.get_metadata("meta_only") == {"a": 1}
    store.set_metadata("data_only", {"b": 2})
    assert store.to_bytes("data_only") == b"d"


def test_update_metadata_merges_and_needs_the_key(store, root, record_events):
    store.set("k", (io.BytesIO(b"d"), {"a": 1, "b": 1}))
    with record_events(store) as recorder:
        store.update_metadata("k", {"b": 2, "c": 3})
        with pytest.raises(KeyError):
            store.update_metadata("missing", {"x": 1})
    assert read_json(os.path.join(root, "k.metadata")) == {"a": 1, "b": 2, "c": 3}
    assert [(type(e), e.key, e.metadata) for e in recorder.modifications()] == [
        (StoreUpdateEvent, "k", {"a": 1, "b": 2, "c": 3})]
    assert not store.exists("missing")


def test_every_write_emits_its_event(store, record_events):
    with record_events(store) as recorder:
        store.set_metadata("k", {"a": 1})
        store.set_metadata("k", {"a": 2})
        store.set_data("k", io.BytesIO(b"x"))
        store.delete("k")
        with pytest.raises(KeyError):
            store.delete("k")
    assert [(type(e), e.key, e.metadata) for e in recorder.modifications()] == [
        (StoreSetEvent, "k", {"a": 1}),
        (StoreUpdateEvent, "k", {"a": 2}),
        (StoreUpdateEvent, "k", {"a": 2}),
        (StoreDeleteEvent, "k", {"a": 2}),
    ]


def test_value_streams_are_closed_tuple_streams_are_not(store):
    store.from_bytes("src", b"source")
    given = io.BytesIO(b"data")
    store.set("a", (given, {}))
    assert not given.closed
    value = store.get("src")
    store.set("b", value)
    assert store.to_bytes("b") == b"source"


def test_get_returns_a_file_value_with_times(store):
    import time

    before = time.time()
    store.set("k", (io.BytesIO(b"12345"), {"m": 1}))
    value = store.get("k")
    after = time.time()
    assert isinstance(value, FileValue)
    assert value.size == 5
    assert before <= value.modified <= after
    with value as stream:
        assert stream.read() == b"12345"
    with value.data as stream:  # a second access reopens the file
        assert stream.read() == b"12345"
    assert value.range(1, 3).read() == b"23"
    before = time.time()
    store.update_metadata("k", {"n": 2})
    assert before <= store.get("k").modified <= time.time()


def test_get_data_is_a_snapshot(store):
    store.from_bytes("k", b"old")
    stream = store.get_data("k")
    value = store.get("k")
    store.from_bytes("k", b"new value")
    assert stream.read() == b"old"
    stream.close()
    assert value.size == 3
    with value as data:
        assert data.read() == b"old"
    assert store.to_bytes("k") == b"new value"


def test_get_data_range(store):
    store.from_bytes("k", b"0123456789")
    assert store.get_data_range("k", 2, 5).read() == b"234"
    assert store.get_data_range("k", -3).read() == b"789"
    assert store.get_data_range("k").read() == b"0123456789"
    with pytest.raises(KeyError):
        store.get_data_range("missing", 0, 1)


def test_query_keys_without_criteria_reads_no_metadata(store, monkeypatch):
    for i in range(5):
        store.set("k%d" % i, (io.BytesIO(b""), {"i": i}))

    def forbidden(*args):
        raise AssertionError("a metadata file was read")

    monkeypatch.setattr(store, "_read_metadata", forbidden)
    assert list(store.query_keys()) == ["k%d" % i for i in range(5)]
    assert list(store.glob("k[13]")) == ["k1", "k3"]
    assert dict(store.query(select=())) == {"k%d" % i: {} for i in range(5)}


def test_query_select_and_criteria(store):
    store.set("a", (io.BytesIO(b""), {"x": 1, "y": "a"}))
    store.set("b/c", (io.BytesIO(b""), {"x": 1, "y": "b"}))
    store.set("d", (io.BytesIO(b""), {"x": 2}))
    assert list(store.query(x=1)) == [("a", {"x": 1, "y": "a"}), ("b/c", {"x": 1, "y": "b"})]
    assert list(store.query(select=iter(["y"]), x=1)) == [("a", {"y": "a"}), ("b/c", {"y": "b"})]
    assert list(store.query_keys(y=None)) == ["d"]


# ---------------------------------------------------------------------------
# Transactions
# ---------------------------------------------------------------------------


def test_transactions_leave_no_backup_files(store, root):
    store.from_bytes("k", b"1")
    with store.transaction("commit"):
        store.from_bytes("k", b"2")
        store.from_bytes("sub/new", b"3")
    assert files_under(root) == [".FSStore", "k.data", "k.metadata", "sub/new.data", "sub/new.metadata"]
    with pytest.raises(RuntimeError):
        with store.transaction("fail"):
            store.from_bytes("k", b"4")
            store.delete("sub/new")
            store.from_bytes("other/deep/key", b"5")
            store.from_bytes("long" * 100, b"6")
            raise RuntimeError("boom")
    assert files_under(root) == [".FSStore", "k.data", "k.metadata", "sub/new.data", "sub/new.metadata"]
    assert store.to_bytes("k") == b"2"
    assert store.to_bytes("sub/new") == b"3"


def test_writes_of_other_threads_are_not_journaled(store):
    store.from_bytes("mine", b"1")
    done = threading.Event()

    def other():
        store.from_bytes("theirs", b"t")
        done.set()

    with pytest.raises(RuntimeError):
        with store.transaction("fail"):
            store.from_bytes("mine", b"2")
            thread = threading.Thread(target=other)
            thread.start()
            assert done.wait(10)
            thread.join(10)
            raise RuntimeError("boom")
    assert store.to_bytes("mine") == b"1"
    assert store.to_bytes("theirs") == b"t"


def test_two_stores_share_a_directory(root):
    first, second = FileSystemStore(root), FileSystemStore(root)
    first.set("k", (io.BytesIO(b"v"), {"m": 1}))
    assert second.to_bytes("k") == b"v"
    second.delete("k")
    assert not first.exists("k")


def test_metadata_cache_sees_writes_of_other_stores(root):
    first, second = FileSystemStore(root), FileSystemStore(root)
    first.set("k", (io.BytesIO(b"v"), {"n": 1}))
    assert first.get_metadata("k") == {"n": 1}  # now cached
    second.set_metadata("k", {"n": 2})
    assert first.get_metadata("k") == {"n": 2}
    second.update_metadata("k", {"m": 3})
    assert first.get("k").metadata == {"n": 2, "m": 3}
    returned = first.get_metadata("k")
    returned["n"] = "changed"  # the cache hands out copies
    assert first.get_metadata("k") == {"n": 2, "m": 3}


def test_unchanged_metadata_is_not_rewritten(store, root):
    import time

    store.set("k", (io.BytesIO(b"1"), {"same": True}))
    path = os.path.join(root, "k.metadata")
    inode = os.stat(path).st_ino
    before = time.time()
    store.set("k", (io.BytesIO(b"2"), {"same": True}))
    assert os.stat(path).st_ino == inode
    assert store.get("k").modified >= before
    store.set("k", (io.BytesIO(b"3"), {"same": False}))
    assert os.stat(path).st_ino != inode
    assert store.get_metadata("k") == {"same": False}


def test_new_files_follow_the_umask(store, root):
    old = os.umask(0o022)
    try:
        store.set("k", (io.BytesIO(b"1"), {}))
    finally:
        os.umask(old)
    for name in ("k.data", "k.metadata"):
        assert os.stat(os.path.join(root, name)).st_mode & 0o777 == 0o644


def test_a_rollback_does_not_undo_another_threads_write_of_the_same_key(store):
    store.set("k", (io.BytesIO(b"original"), {"v": 0}))
    started, finished = threading.Event(), threading.Event()

    def other():
        started.wait(10)
        store.set("k", (io.BytesIO(b"theirs"), {"v": "B"}))
        finished.set()

    thread = threading.Thread(target=other)
    thread.start()
    with pytest.raises(RuntimeError):
        with store.transaction("fail"):
            store.set("k", (io.BytesIO(b"mine"), {"v": "A"}))
            started.set()
            # A window for the other write to (wrongly) complete now; it must
            # wait for this transaction instead.
            assert not finished.wait(0.3)
            raise RuntimeError("boom")
    thread.join(10)
    assert not thread.is_alive()
    assert store.to_bytes("k") == b"theirs"
    assert store.get_metadata("k") == {"v": "B"}
