"""Tests of LockingFileSystemStore: every bundled conformance mixin, plus
locks, the change log, remote events and the poll thread."""
import gc
import io
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import weakref
from datetime import datetime, timedelta, timezone

import pytest

from encore.events.event_manager import EventManager
from encore.storage.events import (
    StoreDeleteEvent,
    StoreKeyEvent,
    StoreModificationEvent,
    StoreSetEvent,
    StoreUpdateEvent,
)
from encore.storage.file_lock import FileLock, SharedFileLock
from encore.storage.filesystem_store import FileSystemStore, FileSystemStoreError, init_shared_store
from encore.storage.locking_filesystem_store import (
    LockingFileSystemStore,
    LogEntry,
    locking,
    transact,
    write_log,
)
from encore.storage.tests.abstract_test import store_test_cases


def _make_locking_store(test):
    """A store in ``<private dir>/store`` with a private event manager."""
    parent = tempfile.mkdtemp(prefix="encore_lfs_test_")
    test.addCleanup(shutil.rmtree, parent, True)
    test.store_directory = os.path.join(parent, "store")
    init_shared_store(test.store_directory)
    return LockingFileSystemStore(test.store_directory, event_manager=EventManager())


globals().update(store_test_cases(
    _make_locking_store,
    "TestLockingStore",
    attributes={
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
def stores(root, event_manager):
    """A factory of locking stores on ``root``, disconnected at the end."""
    made = []

    def make(**options):
        options.setdefault("event_manager", event_manager)
        options.setdefault("remote_event_poll_interval", None)
        store = LockingFileSystemStore(root, **options)
        store.connect()
        made.append(store)
        return store

    yield make
    for store in made:
        store.disconnect()


@pytest.fixture
def store(stores):
    return stores()


def store_files(root):
    """The sorted names in ``root``, writer markers aside (they stay while
    their writer runs)."""
    return sorted(name for name in os.listdir(root)
                  if not (name.startswith(".~") and name.endswith(".writer")))


def fork_context():
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("the 'fork' start method is not available on this platform")
    return multiprocessing.get_context("fork")


def run_in_thread(function):
    """Start ``function`` in a thread; return (thread, done event, result list)."""
    done = threading.Event()
    result = []

    def run():
        try:
            result.append(function())
        except BaseException as error:  # reported through ``result``
            result.append(error)
        finally:
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done, result


# ---------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------


def test_constructor_and_info(root, tmp_path, monkeypatch):
    monkeypatch.chdir(str(tmp_path))
    store = LockingFileSystemStore("store", remote_event_poll_interval=None)
    try:
        assert store.path == root  # made absolute (Encore 0.8 broke on relative roots)
        assert store.force_lock_timeout == 10.0
        assert store.max_time_delta == timedelta(minutes=1)
        assert os.path.isfile(os.path.join(root, "__log__.txt"))
        assert store.info()["type"] == "LockingFileSystemStore"
        assert store.info()["path"] == root
        monkeypatch.chdir("/")
        store.from_bytes("k", b"v")  # the log and locks still work from elsewhere
        assert [entry.key for entry in store.get_log()] == ["k"]
    finally:
        store.disconnect()
    with pytest.raises(FileSystemStoreError):
        LockingFileSystemStore(str(tmp_path / "nowhere"))


def test_shares_the_plain_layout(store, root):
    store.set("a/b", (io.BytesIO(b"data"), {"m": 1}))
    plain = FileSystemStore(root)
    assert plain.to_bytes("a/b") == b"data"
    assert list(plain.query_keys()) == ["a/b"]
    plain.from_bytes("c", b"c")
    assert sorted(store.query_keys()) == ["a/b", "c"]
    assert store_files(root) == [".FSStore", "__log__.txt", "a", "c.data", "c.metadata"]


# ---------------------------------------------------------------------------
# Locks
# ---------------------------------------------------------------------------


def test_writes_wait_for_an_exclusive_lock(store, root):
    store.from_bytes("k", b"old")
    outside = FileLock(os.path.join(root, "k"))
    outside.acquire()
    thread, done, result = run_in_thread(lambda: store.from_bytes("k", b"new"))
    assert not done.wait(0.1)  # a window in which the write would (wrongly) happen
    assert store.exists("k")
    with open(os.path.join(root, "k.data"), "rb") as stream:
        assert stream.read() == b"old"
    outside.release()
    assert done.wait(10)
    thread.join(10)
    assert result == [None]
    assert store.to_bytes("k") == b"new"


def test_reads_share_and_writes_wait_for_readers(store, root):
    store.set("k", (io.BytesIO(b"old"), {"v": 1}))
    readers = [SharedFileLock(os.path.join(root, "k"), uid=i) for i in range(2)]
    for reader in readers:
        assert reader.acquire()
    # Reads go ahead beside other readers (Encore 0.8's "shared" locks were exclusive).
    assert store.get_metadata("k") == {"v": 1}
    assert store.to_bytes("k") == b"old"
    thread, done, result = run_in_thread(lambda: store.set_metadata("k", {"v": 2}))
    assert not done.wait(0.1)
    readers[0].release()
    assert not done.wait(0.05)
    readers[1].release()
    assert done.wait(10)
    thread.join(10)
    assert store.get_metadata("k") == {"v": 2}


def test_reads_wait_for_a_writer(store, root):
    store.from_bytes("k", b"x")
    writer = FileLock(os.path.join(root, "k"))
    writer.acquire()
    thread, done, result = run_in_thread(lambda: store.get_metadata("k"))
    assert not done.wait(0.1)
    writer.release()
    assert done.wait(10)
    thread.join(10)
    assert result == [{}]


def test_no_lock_files_remain(store, root):
    store.set("a/b", (io.BytesIO(b"1"), {}))
    assert sorted(os.listdir(os.path.join(root, "a"))) == ["b.data", "b.metadata"]
    store.get("a/b").data.close()
    list(store.query(x=1))
    # Reads leave an empty shared-lock directory (cheaper than removing it)...
    assert os.listdir(os.path.join(root, "a", "b.lock")) == []
    assert list(store.query_keys()) == ["a/b"]
    # ... which the next write removes.
    store.update_metadata("a/b", {"x": 1})
    assert sorted(os.listdir(os.path.join(root, "a"))) == ["b.data", "b.metadata"]
    assert store_files(root) == [".FSStore", "__log__.txt", "a"]
    store.delete("a/b")
    assert store_files(root) == [".FSStore", "__log__.txt"]


def test_failed_writes_leave_no_directories(store, root):
    with pytest.raises(KeyError):
        store.update_metadata("x/y/z", {"a": 1})
    with pytest.raises(KeyError):
        store.delete("x/y")
    assert store_files(root) == [".FSStore", "__log__.txt"]
    store.from_bytes("x/y/z", b"1")  # a successful write keeps them
    assert store.to_bytes("x/y/z") == b"1"


def test_a_stale_lock_is_broken_after_force_lock_timeout(stores, root):
    store = stores(force_lock_timeout=0.05)
    with open(os.path.join(root, "k.lock"), "wb") as stream:
        stream.write(b"a dead process")
    started = time.monotonic()
    store.from_bytes("k", b"written")
    assert time.monotonic() - started >= 0.05
    assert not os.path.exists(os.path.join(root, "k.lock"))
    assert store.to_bytes("k") == b"written"


def _take_key_lock_and_hang(root, key, shared, ready):
    store = LockingFileSystemStore(root, remote_event_poll_interval=None)
    stem = store._stem(key)
    lock = SharedFileLock(stem, uid=1) if shared else FileLock(stem, uid=1)
    lock.acquire()
    ready.set()
    time.sleep(600)


@pytest.mark.parametrize("shared", [False, True], ids=["writer", "reader"])
def test_a_lock_of_a_killed_process_does_not_hold_up_the_next_writer(stores, root, shared):
    """A process SIGKILLed while holding a key's lock (as a writer or a
    reader) leaves the lock behind; the next writer on this host breaks it
    at once instead of waiting force_lock_timeout."""
    import signal

    store = stores(force_lock_timeout=3600)
    store.from_bytes("k", b"before")
    context = fork_context()
    ready = context.Event()
    victim = context.Process(target=_take_key_lock_and_hang, args=(root, "k", shared, ready), daemon=True)
    victim.start()
    try:
        assert ready.wait(30)
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(30)
        assert os.path.exists(os.path.join(root, "k.lock"))
        writer = threading.Thread(target=store.from_bytes, args=("k", b"after"), daemon=True)
        writer.start()
        writer.join(60)  # force_lock_timeout is an hour: only breaking the dead lock ends this
        assert not writer.is_alive()
        assert store.to_bytes("k") == b"after"
    finally:
        victim.kill()
        victim.join()


def _update_many(root, worker, rounds):
    store = LockingFileSystemStore(root, remote_event_poll_interval=None)
    for round_ in range(rounds):
        store.update_metadata("shared", {"w%d_%d" % (worker, round_): round_})
        store.set("own%d" % worker, (io.BytesIO(b"%d" % round_ * 1000), {"round": round_}))


def test_processes_lose_no_update(store, root):
    context = fork_context()
    store.set("shared", (io.BytesIO(b"x"), {}))
    processes = [context.Process(target=_update_many, args=(root, worker, 15)) for worker in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    expected = {"w%d_%d" % (worker, round_): round_ for worker in range(3) for round_ in range(15)}
    assert store.get_metadata("shared") == expected
    assert len([entry for entry in store.get_log() if entry.code == "u"]) == 45


def _write_consistent(root, worker, rounds):
    store = LockingFileSystemStore(root, remote_event_poll_interval=None)
    for round_ in range(rounds):
        token = "%d:%d" % (worker, round_)
        store.set("pair", (io.BytesIO(token.encode() * 2000), {"token": token}))


def test_processes_read_data_and_metadata_of_one_write(store, root):
    context = fork_context()
    store.set("pair", (io.BytesIO(b"0:0" * 2000), {"token": "0:0"}))
    processes = [context.Process(target=_write_consistent, args=(root, worker, 20)) for worker in range(2)]
    for process in processes:
        process.start()
    reads = 0
    deadline = time.monotonic() + 120  # a stuck child fails the test, not hangs it
    while (any(process.is_alive() for process in processes) or reads < 10) \
            and time.monotonic() < deadline:
        value = store.get("pair")
        with value as stream:
            data = stream.read()
        assert data == value.metadata["token"].encode() * 2000
        reads += 1
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0, 0]


# ---------------------------------------------------------------------------
# The change log
# ---------------------------------------------------------------------------


def test_log_lines(store, root):
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    store.set("k", (io.BytesIO(b"1"), {}))
    store.set_data("k", io.BytesIO(b"2"))
    store.set_metadata("k", {"a": 1})
    store.update_metadata("k", {"b": 2})
    store.set("odd key%\nline", (io.BytesIO(b""), {}))
    store.delete("k")
    after = datetime.now(timezone.utc).replace(tzinfo=None)
    entries = store.get_log()
    assert [(e.id, e.code, e.key) for e in entries] == [
        (1, "w", "k"), (2, "w", "k"), (3, "w", "k"), (4, "u", "k"),
        (5, "w", "odd key%\nline"), (6, "d", "k")]
    assert all(before <= e.timestamp <= after for e in entries)
    with open(os.path.join(root, "__log__.txt"), encoding="utf-8") as stream:
        lines = stream.read().splitlines()
    assert len(lines) == 6
    assert lines[0].startswith("1 w ") and lines[0].endswith(" k")
    assert lines[4].endswith(" odd key%25%0Aline")
    assert LogEntry.parse(lines[3]) == entries[3]
    assert LogEntry.parse("garbage") is None


def test_failed_and_read_operations_are_not_logged(store):
    store.from_bytes("k", b"1")
    store.get_metadata("k")
    store.to_bytes("k")
    list(store.query())
    with pytest.raises(KeyError):
        store.delete("missing")
    with pytest.raises(KeyError):
        store.update_metadata("missing", {})
    assert [entry.id for entry in store.get_log()] == [1]


def test_log_rotation(stores, root):
    store = stores()
    store.log_rotate_size = 8
    for i in range(60):
        store.from_bytes("k%d" % i, b"")
    rotated = sorted((name for name in os.listdir(root) if name.startswith("__log__.txt.")),
                     key=lambda name: int(name.rsplit(".", 1)[1]))
    assert len(rotated) == 5  # older rotated files are removed
    with open(os.path.join(root, "__log__.txt"), encoding="utf-8") as stream:
        current = [LogEntry.parse(line) for line in stream]
    assert len(current) < 8
    assert current[-1].id == 60
    ids = [entry.id for entry in store.get_log()]
    assert ids == list(range(ids[0], 61))  # contiguous across the files
    assert ids[0] > 1
    for name in rotated:
        with open(os.path.join(root, name), encoding="utf-8") as stream:
            assert LogEntry.parse(stream.readline()).id == int(name.rsplit(".", 1)[1])


def test_get_modified_keys(stores):
    store = stores(max_time_delta=timedelta(0))
    store.from_bytes("old", b"")
    entries = store.get_log()
    middle = entries[-1].timestamp
    store.from_bytes("new", b"")
    store.from_bytes("old", b"")
    assert store.get_modified_keys(middle) == ["new", "old"]
    assert store.get_modified_keys(middle.strftime("%Y-%m-%d %H:%M:%S.%f")) == ["new", "old"]
    aware = middle.replace(tzinfo=timezone.utc).astimezone(timezone(timedelta(hours=5)))
    assert store.get_modified_keys(aware) == ["new", "old"]
    assert store.get_modified_keys(middle - timedelta(seconds=1)) == ["old", "new", "old"]
    assert store.get_modified_keys(datetime(2999, 1, 1)) == []
    store.max_time_delta = timedelta(days=1)  # clock skew allowance looks further back
    assert store.get_modified_keys(middle) == ["old", "new", "old"]


# ---------------------------------------------------------------------------
# Transactions
# ---------------------------------------------------------------------------


def test_a_second_transaction_joins_the_first(store):
    with store.transaction("outer") as outer:
        store.from_bytes("a", b"1")
        inner = store.transaction("inner")
        assert inner is outer
        with inner:
            store.from_bytes("b", b"2")
        store.from_bytes("c", b"3")  # not lost by the second transaction() call
    assert [store.to_bytes(key) for key in "abc"] == [b"1", b"2", b"3"]
    assert [entry.key for entry in store.get_log()] == ["a", "b", "c"]


def test_transactions_lock_keys_and_log_on_commit(store, root):
    store.from_bytes("k", b"old")
    reader = SharedFileLock(os.path.join(root, "k"), timeout=0.05, poll_interval=0.005)
    with store.transaction("t"):
        store.from_bytes("k", b"new")
        assert store.to_bytes("k") == b"new"  # the transaction reads its writes
        assert reader.acquire() is False  # others must wait until it ends
        assert [entry.key for entry in store.get_log()] == ["k"]  # only the first write so far
    assert reader.acquire() is True
    reader.release()
    assert [entry.id for entry in store.get_log()] == [1, 2]


def test_rollback_logs_nothing_and_unlocks(store, root):
    store.from_bytes("k", b"old")
    with pytest.raises(RuntimeError):
        with store.transaction("t"):
            store.from_bytes("k", b"new")
            store.from_bytes("other", b"x")
            raise RuntimeError("boom")
    assert store.to_bytes("k") == b"old"
    assert not store.exists("other")
    assert [entry.id for entry in store.get_log()] == [1]
    lock = FileLock(os.path.join(root, "k"), timeout=1)
    assert lock.acquire()
    lock.release()
    assert store._guards == {}


def test_transaction_locks_exclude_other_threads(store):
    store.from_bytes("k", b"0")
    entered = threading.Event()
    release = threading.Event()

    def transaction():
        with store.transaction("t"):
            store.from_bytes("k", b"1")
            entered.set()
            release.wait(10)
            store.from_bytes("k", b"2")

    thread, done, _ = run_in_thread(transaction)
    assert entered.wait(10)
    writer_thread, writer_done, result = run_in_thread(lambda: store.from_bytes("k", b"3"))
    assert not writer_done.wait(0.05)
    release.set()
    assert done.wait(10) and writer_done.wait(10)
    thread.join(10)
    writer_thread.join(10)
    assert store.to_bytes("k") == b"3"


# ---------------------------------------------------------------------------
# Remote events and the poll thread
# ---------------------------------------------------------------------------


class Collector(object):
    """Records modification events of one store; sets ``seen`` when the
    event of ``sentinel`` arrives."""

    def __init__(self, store, sentinel):
        self.store = store
        self.sentinel = sentinel
        self.events = []
        self.seen = threading.Event()

    def __call__(self, event):
        if event.source is self.store:
            self.events.append(event)
            if event.key == self.sentinel and getattr(event, "remote", False):
                self.seen.set()


def test_remote_changes_are_emitted(stores, event_manager):
    watcher = stores(remote_event_poll_interval=0.01)
    other = stores()
    collector = Collector(watcher, "sentinel")
    event_manager.connect(StoreModificationEvent, collector)
    watcher.from_bytes("mine", b"1")  # not reported again by the poller
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    other.set("k", (io.BytesIO(b"1"), {"a": 1}))
    other.update_metadata("k", {"b": 2})
    other.delete("k")
    other.from_bytes("sentinel", b"")
    assert collector.seen.wait(10)
    remote = [e for e in collector.events if getattr(e, "remote", False)]
    assert [(type(e), e.key) for e in remote] == [
        (StoreSetEvent, "k"), (StoreUpdateEvent, "k"), (StoreDeleteEvent, "k"),
        (StoreSetEvent, "sentinel")]
    # The metadata is the key's when the poller read it (None once deleted).
    assert remote[0].metadata in (None, {"a": 1}, {"a": 1, "b": 2})
    assert remote[1].metadata in (None, {"a": 1, "b": 2})
    assert remote[2].metadata is None
    assert remote[3].metadata == {}
    local = [(type(e), e.key) for e in collector.events if not getattr(e, "remote", False)]
    assert local == [(StoreSetEvent, "mine")]
    for event in collector.events[1:]:
        assert isinstance(event.timestamp, datetime) and event.timestamp >= before
    # The poller remembers its position: nothing is emitted twice.
    collector.seen.clear()
    collector.sentinel = "sentinel2"
    other.from_bytes("sentinel2", b"")
    assert collector.seen.wait(10)
    keys = [e.key for e in collector.events if getattr(e, "remote", False)]
    assert keys == ["k", "k", "k", "sentinel", "sentinel2"]


def test_remote_events_carry_current_metadata(stores, event_manager):
    watcher = stores(remote_event_poll_interval=0.01)
    other = stores()
    collector = Collector(watcher, "k")
    event_manager.connect(StoreModificationEvent, collector)
    other.set("k", (io.BytesIO(b""), {"n": 1}))
    assert collector.seen.wait(10)
    assert collector.events[-1].metadata == {"n": 1}


def test_events_from_another_process(stores, event_manager, root):
    context = fork_context()
    watcher = stores(remote_event_poll_interval=0.01)
    collector = Collector(watcher, "pair")
    event_manager.connect(StoreModificationEvent, collector)
    process = context.Process(target=_write_consistent, args=(root, 7, 1))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert collector.seen.wait(10)
    assert [(type(e), e.key, e.metadata) for e in collector.events] == [
        (StoreSetEvent, "pair", {"token": "7:0"})]


def test_poll_thread_stops_on_disconnect_and_restarts(root):
    store = LockingFileSystemStore(root, remote_event_poll_interval=0.01)
    thread = store.poll_thread
    assert thread is not None and thread.is_alive() and thread.daemon
    store.disconnect()
    assert not thread.is_alive()  # disconnect joined it
    assert store.poll_thread is None
    store.connect()
    second = store.poll_thread
    assert second is not None and second is not thread and second.is_alive()
    store.disconnect()
    assert not second.is_alive()


def test_poll_thread_does_not_keep_the_store_alive(root):
    # A long interval: the thread is waiting, holding no reference, when
    # the store is dropped; collecting the store must wake and end it.
    store = LockingFileSystemStore(root, remote_event_poll_interval=60)
    thread = store.poll_thread
    reference = weakref.ref(store)
    del store
    gc.collect()
    assert reference() is None
    thread.join(10)
    assert not thread.is_alive()


def test_no_poll_thread_when_disabled(stores):
    assert stores(remote_event_poll_interval=0).poll_thread is None
    assert stores(remote_event_poll_interval=None).poll_thread is None


def test_disconnect_from_a_listener_in_the_poll_thread(stores, event_manager):
    watcher = stores(remote_event_poll_interval=0.01)
    other = stores()
    disconnected = threading.Event()

    def listener(event):
        if event.source is watcher and getattr(event, "remote", False):
            watcher.disconnect()  # must not try to join its own thread
            disconnected.set()

    event_manager.connect(StoreSetEvent, listener)
    thread = watcher.poll_thread
    other.from_bytes("k", b"")
    assert disconnected.wait(10)
    thread.join(10)
    assert not thread.is_alive()


def test_other_log_codes_give_key_events(stores, event_manager, root):
    watcher = stores(remote_event_poll_interval=0.01)
    received = []
    seen = threading.Event()

    def listener(event):
        if event.source is watcher and type(event) is StoreKeyEvent:
            received.append(event)
            seen.set()

    event_manager.connect(StoreKeyEvent, listener)
    with open(os.path.join(root, "__log__.txt"), "a", encoding="utf-8") as stream:
        stream.write("1 x 2020-01-02 03:04:05.000006 touched\n")
    assert seen.wait(10)
    assert [(e.key, e.timestamp, e.remote) for e in received] == [
        ("touched", datetime(2020, 1, 2, 3, 4, 5, 6), True)]


# ---------------------------------------------------------------------------
# The module-level decorators, for subclasses written for Encore 0.8
# ---------------------------------------------------------------------------


class _DecoratedStore(LockingFileSystemStore):
    """A subclass adding its own methods with the module's decorators."""

    @write_log("w")
    def append_data(self, key, more):
        data = self.to_bytes(key) if self.exists(key) else b""
        self.from_bytes(key, data + more)

    @write_log
    def mark(self, key):
        """Logs a write of the key without changing it."""

    @locking
    def lock_and_report(self, key, observed):
        observed.append(store_lock_exists(self, key))
        return "done"

    @transact
    def swap(self, first, second):
        a, b = self.to_bytes(first), self.to_bytes(second)
        self.from_bytes(first, b)
        if not b:
            raise ValueError("empty")
        self.from_bytes(second, a)


def store_lock_exists(store, key):
    return os.path.exists(os.path.join(store.path, key + ".lock"))


def test_decorators_for_subclasses(root, event_manager):
    store = _DecoratedStore(root, event_manager=event_manager, remote_event_poll_interval=None)
    store.connect()
    try:
        store.from_bytes("k", b"ab")
        store.append_data("k", b"cd")
        assert store.to_bytes("k") == b"abcd"
        # The decorated write and the store's own writes inside it are logged.
        assert [(e.code, e.key) for e in store.get_log()] == [("w", "k"), ("w", "k"), ("w", "k")]
        observed = []
        assert store.lock_and_report("k", observed) == "done"
        assert observed == [True] and not store_lock_exists(store, "k")
        store.mark("k")

        def update_metadata(self, key):
            pass

        write_log(update_metadata, "u")(store, "k")
        write_log(update_metadata, event="d")(store, "k")
        assert [(e.code, e.key) for e in store.get_log()[3:]] == [("w", "k"), ("u", "k"), ("d", "k")]
        store.from_bytes("x", b"1")
        store.from_bytes("y", b"")
        with pytest.raises(ValueError):
            store.swap("x", "y")
        assert (store.to_bytes("x"), store.to_bytes("y")) == (b"1", b"")  # rolled back
        store.from_bytes("y", b"2")
        store.swap("x", "y")
        assert (store.to_bytes("x"), store.to_bytes("y")) == (b"2", b"1")
        with pytest.raises(ValueError):
            write_log("two words")
        with pytest.raises(ValueError):
            write_log(update_metadata, event="")
        with pytest.raises(TypeError):
            write_log(42)
    finally:
        store.disconnect()


class _EncoreDecoratedStore(LockingFileSystemStore):
    """Methods decorated with the options Encore spelled out."""

    def _peek(self, key, observed):
        lock = os.path.join(self.path, key + ".lock")
        observed.append("dir" if os.path.isdir(lock) else "file" if os.path.isfile(lock) else None)
        return key

    shared_peek = locking(_peek, shared=True)
    exclusive_peek = locking(_peek, recurse=False)
    decorated_shared_peek = locking(shared=True)(_peek)

    def _touch(self, key):
        """Logged as an update, without changing anything."""

    touch = write_log(_touch, event="u")

    @transact(on_commit=False)
    def pair_without_transaction(self, first, second, fail=False):
        self.from_bytes(first, b"1")
        if fail:
            raise ValueError("stop")
        self.from_bytes(second, b"2")

    def _pair(self, first, second, fail=False):
        self.from_bytes(first, b"1")
        if fail:
            raise ValueError("stop")
        self.from_bytes(second, b"2")

    pair = transact(_pair, on_commit=True)


def test_decorators_with_encores_options(root, event_manager):
    store = _EncoreDecoratedStore(root, event_manager=event_manager, remote_event_poll_interval=None)
    store.connect()
    try:
        store.from_bytes("k", b"v")
        observed = []
        assert store.shared_peek("k", observed) == "k"
        assert store.exclusive_peek("k", observed) == "k"
        assert store.decorated_shared_peek("k", observed) == "k"
        assert observed == ["dir", "file", "dir"]
        assert not os.path.isfile(os.path.join(store.path, "k.lock"))

        store.touch("k")
        assert [(e.code, e.key) for e in store.get_log()][-1] == ("u", "k")

        with pytest.raises(ValueError):
            store.pair("a", "b", fail=True)
        assert not store.exists("a")  # rolled back with its transaction
        store.pair("a", "b")
        assert (store.to_bytes("a"), store.to_bytes("b")) == (b"1", b"2")

        with pytest.raises(ValueError):
            store.pair_without_transaction("c", "d", fail=True)
        assert store.to_bytes("c") == b"1" and not store.exists("d")  # no transaction of its own
        with pytest.raises(TypeError):
            locking(42)
        with pytest.raises(TypeError):
            transact("not a method")
    finally:
        store.disconnect()
