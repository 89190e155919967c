"""``to_file`` replaces its destination only with a complete value."""
from __future__ import annotations

import io
import os
import stat

import pytest

from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.filesystem_store import FileSystemStore, init_shared_store
from encore.storage.sqlite_store import SqliteStore


class Failing(io.RawIOBase):
    """Gives ``good`` bytes, then fails as a broken transfer would."""

    def __init__(self, good):
        self.good = good

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self.good:
            raise OSError("connection reset")
        count = min(len(buffer), len(self.good))
        buffer[:count] = self.good[:count]
        self.good = self.good[count:]
        return count


@pytest.fixture(params=["dict", "sqlite", "filesystem"])
def store(request, tmp_path):
    if request.param == "dict":
        store = DictMemoryStore()
    elif request.param == "sqlite":
        store = SqliteStore(str(tmp_path / "db.sqlite"))
    else:
        init_shared_store(tmp_path / "fs")
        store = FileSystemStore(tmp_path / "fs")
    store.connect()
    store.set("big", (io.BytesIO(b"n" * (3 << 20)), {"kind": "new"}))
    yield store
    store.disconnect()


def directory_names(path):
    return sorted(os.listdir(path))


def test_to_file_writes_the_whole_value(store, tmp_path):
    target = tmp_path / "out"
    target.write_bytes(b"old content")
    os.chmod(target, 0o640)
    store.to_file("big", target, buffer_size=1 << 16)
    assert target.read_bytes() == b"n" * (3 << 20)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640  # permissions kept
    assert [name for name in directory_names(tmp_path) if name.endswith(".part")] == []


def test_a_failed_transfer_leaves_the_destination_as_it_was(store, tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.write_bytes(b"old content")
    before = directory_names(tmp_path)
    monkeypatch.setattr(store, "get_data", lambda key: Failing(b"x" * 100000))
    with pytest.raises(OSError, match="connection reset"):
        store.to_file("big", target, buffer_size=4096)
    assert target.read_bytes() == b"old content"
    assert directory_names(tmp_path) == before  # no temporary file left


def test_a_missing_key_creates_no_file(store, tmp_path):
    target = tmp_path / "none"
    with pytest.raises(KeyError):
        store.to_file("missing", target)
    assert not target.exists()
    assert [name for name in directory_names(tmp_path) if name.endswith(".part")] == []


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_a_destination_that_is_not_a_regular_file_is_written_in_place(store):
    store.to_file("big", "/dev/null")
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
