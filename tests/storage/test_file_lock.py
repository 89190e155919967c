"""Tests of the file locks: exclusive and shared, within a process, across
threads and across processes."""
import multiprocessing
import os
import socket
import threading
import time

import pytest

from encore.storage.file_lock import FileLock, LockError, SharedFileLock


@pytest.fixture
def name(tmp_path):
    return str(tmp_path / "resource")


def fork_context():
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("the 'fork' start method is not available on this platform")
    return multiprocessing.get_context("fork")


# ---------------------------------------------------------------------------
# FileLock
# ---------------------------------------------------------------------------


def test_paths(tmp_path):
    assert FileLock("/a/b").path == "/a/b.lock"
    assert FileLock("/x/y", dir=str(tmp_path)).path == os.path.join(str(tmp_path), "x/y.lock")
    assert FileLock("\\x", dir=str(tmp_path)).path == os.path.join(str(tmp_path), "x.lock")
    assert SharedFileLock("k", dir=str(tmp_path)).path == os.path.join(str(tmp_path), "k.lock")


def test_file_lock_has_encores_attributes(tmp_path):
    lock = FileLock("res", dir=str(tmp_path), poll_interval=0.5, timeout=3, force_timeout=7, uid="me")
    assert lock.name == "res"
    assert lock.full_path == os.path.join(str(tmp_path), "res.lock")
    assert (lock.poll_interval, lock.timeout, lock.force_timeout, lock.uid) == (0.5, 3, 7, "me")
    beside = FileLock(str(tmp_path / "other"))
    assert beside.full_path == str(tmp_path / "other") + ".lock"
    assert beside.uid == id(beside)
    assert not os.path.exists(lock.full_path)
    with lock:
        assert os.path.isfile(lock.full_path)
    assert not os.path.exists(lock.full_path)


def test_shared_file_lock_has_encores_attributes(tmp_path):
    lock = SharedFileLock("res", dir=str(tmp_path), poll_interval=0.5, timeout=3, force_timeout=7, uid=42)
    assert lock.name == "res"
    assert (lock.poll_interval, lock.timeout, lock.force_timeout, lock.uid) == (0.5, 3, 7, 42)
    assert lock.dir_path == os.path.join(str(tmp_path), "res.lock")
    assert lock.file_name.endswith("__42.lock")
    parts = lock.file_name[: -len(".lock")].split("__")
    assert len(parts) >= 4 and str(os.getpid()) in parts  # host__pid__user__uid
    assert lock.full_path == os.path.join(lock.dir_path, lock.file_name)
    assert not os.path.exists(lock.full_path)
    assert lock.acquire()
    try:
        assert os.path.isdir(lock.dir_path)
        assert os.path.isfile(lock.full_path)
        assert os.listdir(lock.dir_path) == [lock.file_name]
    finally:
        lock.release()
    assert not os.path.exists(lock.full_path)


def test_default_data_names_the_holder(name):
    lock = FileLock(name, uid="a string uid")  # Encore 0.8 formatted uid with %i
    expected = "{}\n{}\n".format(socket.gethostname(), os.getpid()).encode()
    assert lock.data.startswith(expected)
    assert lock.data.endswith(b"\na string uid\nLOCK")
    lock2 = FileLock(name)
    assert lock2.data.endswith(("\n%d\nLOCK" % id(lock2)).encode())
    assert FileLock(name, data="custom").data == b"custom"


def test_acquire_release(name):
    lock = FileLock(name)
    assert not lock.locked() and not lock.acquired() and lock.get_data() is None
    assert lock.acquire() is True
    assert lock.locked() and lock.acquired()
    assert lock.get_data() == lock.data
    with open(name + ".lock", "rb") as stream:
        assert stream.read() == lock.data
    lock.release()
    assert not os.path.exists(name + ".lock")
    assert not lock.locked()


def test_release_errors(name):
    lock, other = FileLock(name), FileLock(name)
    with pytest.raises(LockError, match="not held"):
        lock.release()
    assert other.acquire()
    with pytest.raises(LockError, match="someone else"):
        lock.release()
    assert other.acquired() and not lock.acquired()
    other.release()


def test_timeout_and_context_manager(name):
    holder = FileLock(name)
    waiter = FileLock(name, timeout=0.05, poll_interval=0.005)
    with holder:
        started = time.monotonic()
        assert waiter.acquire() is False
        assert time.monotonic() - started >= 0.05
        with pytest.raises(LockError, match="timed out"):
            with waiter:
                pass  # pragma: no cover - never reached
        # Not re-entrant: the holder waits for itself too.
        holder.timeout = 0.02
        assert holder.acquire() is False
    assert not holder.locked()
    with waiter:
        assert waiter.acquired()
    assert not waiter.locked()


def test_missing_directory_is_an_error(tmp_path):
    with pytest.raises(LockError, match="cannot create"):
        FileLock(str(tmp_path / "missing" / "x")).acquire()


def test_unwritable_directory_is_an_error_not_a_busy_loop(name, monkeypatch):
    # (Simulated: the tests may run as root, which may write anywhere.)
    real_open = os.open

    def refusing_open(path, *args, **kwargs):
        if path == name + ".lock":
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(LockError, match="cannot create"):
        FileLock(name, timeout=5).acquire()


def test_transient_permission_errors_are_waited_out(name, monkeypatch):
    # A Windows "delete pending" lock file refuses creation for a moment.
    real_open = os.open
    refusals = []

    def refusing_twice(path, *args, **kwargs):
        if path == name + ".lock" and len(refusals) < 2:
            refusals.append(path)
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_twice)
    lock = FileLock(name, timeout=5, poll_interval=0.001)
    assert lock.acquire()
    assert len(refusals) == 2
    lock.release()


def test_wait(name):
    holder = FileLock(name)
    holder.acquire()
    assert FileLock(name, timeout=0.03, poll_interval=0.005).wait() is False
    release = threading.Event()

    def release_later():
        release.wait(10)
        holder.release()

    thread = threading.Thread(target=release_later)
    thread.start()
    waiter = FileLock(name, timeout=10, poll_interval=0.002)
    release.set()
    assert waiter.wait() is True
    thread.join(10)
    assert not thread.is_alive()
    assert not waiter.locked() and not waiter.acquired()  # wait does not acquire


def test_force_break(name, tmp_path):
    lock = FileLock(name)
    assert lock.force_break() is False  # nothing to break (Encore 0.8 said True)
    FileLock(name).acquire()
    assert lock.force_break() is True
    assert not lock.locked()
    shared = SharedFileLock(name)
    shared.acquire()
    assert lock.force_break() is True  # a shared lock's directory goes too
    assert not os.path.exists(lock.path)
    with pytest.raises(LockError, match="broken"):
        shared.release()


def test_force_timeout_breaks_a_stale_lock(name):
    with open(name + ".lock", "wb") as stream:
        stream.write(b"dead host\n1\nnobody\n1\nLOCK")
    lock = FileLock(name, force_timeout=0.05, poll_interval=0.005, timeout=5)
    started = time.monotonic()
    assert lock.acquire() is True
    assert time.monotonic() - started >= 0.05
    assert lock.acquired()
    lock.release()


def test_no_force_timeout_never_breaks(name):
    with open(name + ".lock", "wb") as stream:
        stream.write(b"holder")
    assert FileLock(name, timeout=0.05, poll_interval=0.005).acquire() is False
    with open(name + ".lock", "rb") as stream:
        assert stream.read() == b"holder"


def test_breaking_spares_a_lock_taken_meanwhile(name):
    stale = FileLock(name, data=b"stale")
    stale.acquire()
    observer = FileLock(name)
    signature = observer._signature()
    stale.release()
    fresh = FileLock(name, data=b"fresh")
    fresh.acquire()
    assert observer._break_if_unchanged(signature) is False
    assert fresh.acquired()
    assert sorted(os.listdir(os.path.dirname(name))) == ["resource.lock"]
    fresh.release()


def test_an_empty_shared_directory_does_not_block(name):
    os.mkdir(name + ".lock")
    lock = FileLock(name, timeout=1)
    assert lock.acquire()
    assert os.path.isfile(name + ".lock")
    lock.release()


def test_threads_exclude_each_other(name):
    counter = {"value": 0, "inside": 0, "overlaps": 0}

    def work():
        lock = FileLock(name, poll_interval=0.001)
        for _ in range(30):
            with lock:
                counter["inside"] += 1
                if counter["inside"] > 1:
                    counter["overlaps"] += 1
                value = counter["value"]
                time.sleep(0)
                counter["value"] = value + 1
                counter["inside"] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert counter["value"] == 120 and counter["overlaps"] == 0


# ---------------------------------------------------------------------------
# SharedFileLock
# ---------------------------------------------------------------------------


def test_shared_locks_are_shared(name):
    first, second = SharedFileLock(name), SharedFileLock(name)
    assert first.acquire() and second.acquire()
    assert first.acquired() and second.acquired()
    assert len(os.listdir(name + ".lock")) == 2
    assert not first.locked()  # no exclusive holder
    first.release()
    assert not first.acquired() and second.acquired()
    second.release()
    assert os.listdir(name + ".lock") == []  # an empty directory stays...
    writer = FileLock(name, timeout=1)
    assert writer.acquire()  # ...and does not stop a writer, who removes it
    assert os.path.isfile(name + ".lock")
    writer.release()
    assert not os.path.exists(name + ".lock")


def test_shared_excludes_exclusive_and_back(name):
    reader = SharedFileLock(name, timeout=0.05, poll_interval=0.005)
    writer = FileLock(name, timeout=0.05, poll_interval=0.005)
    with reader:
        assert writer.locked()
        assert writer.acquire() is False
        assert writer.get_data() is None
    with writer:
        assert reader.locked()
        assert reader.get_data() == writer.data
        assert reader.acquire() is False
        with pytest.raises(LockError, match="timed out"):
            with reader:
                pass  # pragma: no cover
        assert reader.wait() is False
    assert reader.wait() is True
    assert writer.acquire()
    writer.release()


def test_shared_lock_is_reentrant(name):
    lock = SharedFileLock(name)
    with lock:
        with lock:
            assert lock.acquired()
        assert lock.acquired()
    assert not lock.acquired()
    with pytest.raises(LockError, match="not held"):
        lock.release()


def test_shared_waits_for_the_writer(name):
    writer = FileLock(name)
    writer.acquire()
    reader = SharedFileLock(name, timeout=10, poll_interval=0.002)
    acquired = threading.Event()

    def read():
        if reader.acquire():
            acquired.set()

    thread = threading.Thread(target=read)
    thread.start()
    assert not acquired.wait(0.05)  # a window for the reader to (wrongly) get in
    writer.release()
    assert acquired.wait(10)
    thread.join(10)
    assert reader.acquired()
    reader.release()


def test_shared_force_timeout_breaks_a_stale_writer(name):
    with open(name + ".lock", "wb") as stream:
        stream.write(b"dead")
    reader = SharedFileLock(name, force_timeout=0.03, poll_interval=0.005, timeout=5)
    assert reader.acquire()
    reader.release()


def test_writer_breaks_stale_readers_only_after_force_timeout(name):
    os.mkdir(name + ".lock")
    with open(os.path.join(name + ".lock", "deadhost__1__x__1.lock"), "wb"):
        pass
    assert FileLock(name, timeout=0.03, poll_interval=0.005).acquire() is False
    writer = FileLock(name, force_timeout=0.03, poll_interval=0.005, timeout=5)
    assert writer.acquire()
    writer.release()


# ---------------------------------------------------------------------------
# Across processes
# ---------------------------------------------------------------------------


def _increment(name, path, rounds):
    lock = FileLock(name, poll_interval=0.001)
    for _ in range(rounds):
        with lock:
            with open(path, "rb") as stream:
                value = int(stream.read())
            # Truncate then write: an unlocked reader could see it empty,
            # an unlocked writer would lose updates.
            with open(path, "wb") as stream:
                stream.write(str(value + 1).encode())


def test_processes_lose_no_update(tmp_path):
    context = fork_context()
    name, path = str(tmp_path / "counter"), str(tmp_path / "counter.txt")
    with open(path, "wb") as stream:
        stream.write(b"0")
    processes = [context.Process(target=_increment, args=(name, path, 40)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    with open(path, "rb") as stream:
        assert int(stream.read()) == 160
    assert not os.path.exists(name + ".lock")


def _write_pairs(name, directory, rounds):
    lock = FileLock(name, poll_interval=0.001)
    for round_ in range(rounds):
        with lock:
            for part in ("a", "b"):
                with open(os.path.join(directory, part), "wb") as stream:
                    stream.write(b"%d:%d" % (os.getpid(), round_))


def _read_pairs(name, directory, stop, errors):
    lock = SharedFileLock(name, poll_interval=0.001)
    reads = 0
    while not stop.is_set() or reads < 5:
        with lock:
            contents = []
            for part in ("a", "b"):
                with open(os.path.join(directory, part), "rb") as stream:
                    contents.append(stream.read())
            if contents[0] != contents[1]:
                errors.put(contents)
        reads += 1


def test_processes_readers_never_see_a_half_write(tmp_path):
    context = fork_context()
    name, directory = str(tmp_path / "pair"), str(tmp_path)
    _write_pairs(name, directory, 1)
    stop, errors = context.Event(), context.Queue()
    readers = [context.Process(target=_read_pairs, args=(name, directory, stop, errors)) for _ in range(2)]
    writers = [context.Process(target=_write_pairs, args=(name, directory, 25)) for _ in range(2)]
    for process in readers + writers:
        process.start()
    for process in writers:
        process.join(60)
    stop.set()
    for process in readers:
        process.join(60)
    assert [process.exitcode for process in readers + writers] == [0, 0, 0, 0]
    assert errors.empty()


def test_shared_lock_entries_as_hard_links(name, tmp_path):
    source = str(tmp_path / "source")
    with open(source, "wb") as stream:
        stream.write(b"anything")
    first = SharedFileLock(name, link_source=source)
    second = SharedFileLock(name, link_source=source, uid="other")
    with first, second:
        assert os.stat(source).st_nlink == 3
        assert len(os.listdir(name + ".lock")) == 2
        assert FileLock(name, timeout=0.02, poll_interval=0.005).acquire() is False
    assert os.stat(source).st_nlink == 1
    with FileLock(name):
        assert SharedFileLock(name, link_source=source, timeout=0.02,
                              poll_interval=0.005).acquire() is False


def test_shared_lock_without_its_link_source_creates_files(name, tmp_path):
    lock = SharedFileLock(name, link_source=str(tmp_path / "missing"))
    with lock:
        assert lock.acquired()
        entry = os.path.join(name + ".lock", os.listdir(name + ".lock")[0])
        with open(entry, "rb") as stream:
            assert stream.read().endswith(b"SHARED")
    assert lock.link_source is None


# ---------------------------------------------------------------------------
# Holders that died on this host are broken at once
# ---------------------------------------------------------------------------


def _ended_pid():
    """The pid of a process of this host that has ended (and was reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _holder_content(host, pid):
    return "{}\n{}\nsomeone\n7\nLOCK".format(host, pid).encode("utf-8")


def _reader_entry(host, pid):
    from encore.storage.file_lock import _clean_part

    return "{}__{}__someone__7.lock".format(_clean_part(host), pid)


@pytest.fixture
def live_child():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    yield child
    child.stdin.close()
    child.wait()


def test_a_lock_of_an_ended_process_of_this_host_is_broken_at_once(name):
    with open(name + ".lock", "wb") as stream:
        stream.write(_holder_content(socket.gethostname(), _ended_pid()))
    # force_timeout far beyond timeout: only the dead-holder check can win.
    lock = FileLock(name, force_timeout=3600, poll_interval=0.005, timeout=10)
    assert lock.acquire() is True
    assert lock.acquired()
    lock.release()


def test_a_zombie_holder_counts_as_ended(name):
    import signal
    import subprocess
    import sys

    if not os.path.exists("/proc/self/stat"):
        pytest.skip("no /proc here to tell a zombie from a live process")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        os.kill(child.pid, signal.SIGKILL)
        # Not reaped yet: the pid still answers kill(pid, 0).
        with open(name + ".lock", "wb") as stream:
            stream.write(_holder_content(socket.gethostname(), child.pid))
        lock = FileLock(name, force_timeout=3600, poll_interval=0.005, timeout=10)
        assert lock.acquire() is True
        lock.release()
    finally:
        child.wait()


def test_a_live_holder_is_not_broken_before_force_timeout(name, live_child):
    content = _holder_content(socket.gethostname(), live_child.pid)
    with open(name + ".lock", "wb") as stream:
        stream.write(content)
    lock = FileLock(name, force_timeout=3600, poll_interval=0.005, timeout=0.2)
    assert lock.acquire() is False
    with open(name + ".lock", "rb") as stream:
        assert stream.read() == content


def test_an_ended_pid_of_another_host_is_not_broken(name):
    content = _holder_content(socket.gethostname() + "-elsewhere", _ended_pid())
    with open(name + ".lock", "wb") as stream:
        stream.write(content)
    assert FileLock(name, force_timeout=3600, poll_interval=0.005, timeout=0.2).acquire() is False
    assert SharedFileLock(name, force_timeout=3600, poll_interval=0.005, timeout=0.2).acquire() is False
    with open(name + ".lock", "rb") as stream:
        assert stream.read() == content


def test_without_force_timeout_an_ended_holder_is_not_broken(name):
    with open(name + ".lock", "wb") as stream:
        stream.write(_holder_content(socket.gethostname(), _ended_pid()))
    assert FileLock(name, poll_interval=0.005, timeout=0.2).acquire() is False


def test_a_reader_waits_only_for_a_live_writer(name):
    with open(name + ".lock", "wb") as stream:
        stream.write(_holder_content(socket.gethostname(), _ended_pid()))
    reader = SharedFileLock(name, force_timeout=3600, poll_interval=0.005, timeout=10)
    assert reader.acquire() is True
    reader.release()


def test_a_writer_removes_ended_readers_and_waits_for_live_ones(name, live_child):
    host = socket.gethostname()
    os.mkdir(name + ".lock")
    dead = _reader_entry(host, _ended_pid())
    live = _reader_entry(host, live_child.pid)
    for entry in (dead, live):
        open(os.path.join(name + ".lock", entry), "wb").close()
    writer = FileLock(name, force_timeout=3600, poll_interval=0.005, timeout=0.2)
    assert writer.acquire() is False
    assert os.listdir(name + ".lock") == [live]
    os.unlink(os.path.join(name + ".lock", live))
    assert writer.acquire() is True
    writer.release()


def _hold_until_killed(name, ready, shared):
    lock = (SharedFileLock if shared else FileLock)(name, uid="victim")
    lock.acquire()
    ready.set()
    time.sleep(600)


@pytest.mark.parametrize("shared", [False, True], ids=["exclusive", "shared"])
def test_a_holder_killed_while_others_wait_is_broken_at_once(name, shared):
    import signal

    context = fork_context()
    ready = context.Event()
    holder = context.Process(target=_hold_until_killed, args=(name, ready, shared), daemon=True)
    holder.start()
    try:
        assert ready.wait(30)
        waiter = FileLock(name, force_timeout=3600, poll_interval=0.005, timeout=10)
        outcome = []
        thread = threading.Thread(target=lambda: outcome.append(waiter.acquire()))
        thread.start()
        # The waiter is waiting on a live holder when the holder dies.
        assert waiter.locked()
        os.kill(holder.pid, signal.SIGKILL)
        thread.join(30)
        assert outcome == [True]
        waiter.release()
    finally:
        holder.kill()
        holder.join()
