"""Crash safety of the file system stores: writers killed with SIGKILL.

A writer process performs random writes on a few keys and reports on its
stdout when each call starts and when it returns; the test kills it at a
random moment, opens the store again (which completes or drops the
interrupted write) and checks every key: its data and metadata must come
from one write (none torn), and must be the value before or after the call
that was running when the process died (no committed value lost).

The writer slows ``os.replace`` down by a random fraction of a millisecond,
which widens the window between the renames of one write so that kills land
inside it often; it skips ``fsync`` (a killed process loses nothing the
kernel already has, and the test stays fast).
"""
from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from encore.storage.filesystem_store import (
    FileSystemStore,
    INTENT_SUFFIX,
    TEMP_PREFIX,
    init_shared_store,
    sweep,
)
from encore.storage.locking_filesystem_store import LockingFileSystemStore

pytestmark = pytest.mark.skipif(os.name == "nt", reason="needs SIGKILL and POSIX process ids")

KEYS = ["k0", "k1", "k2", "dir/k3", "dir/k4", "x" * 300]  # the last one is a hashed key

WRITER = r"""
import os, random, sys, time

root, kind, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
real_replace = os.replace

def slow_replace(source, target):
    time.sleep(rng.random() * 0.0005)
    real_replace(source, target)

os.replace = slow_replace
os.fsync = lambda fd: None

from encore.storage.filesystem_store import FileSystemStore
from encore.storage.locking_filesystem_store import LockingFileSystemStore
import io

KEYS = %(keys)r
if kind == "locking":
    # The killed writer's key locks stay until broken: break them soon.
    store = LockingFileSystemStore(root, force_lock_timeout=0.2, remote_event_poll_interval=0)
else:
    store = FileSystemStore(root)
store.connect()
out = sys.stdout

def data(token):
    reps = rng.choice([0, 1, 7, 3000, 40000])
    return ("%%s|%%d|" %% (token, reps)).encode() + b"." * reps + b"END"

def say(line):
    out.write(line + "\n")
    out.flush()

counter = 0
say("READY")
while True:
    counter += 1
    token = "%%d-%%d" %% (seed, counter)
    op = rng.choice(["set", "set", "set", "set_data", "set_metadata", "update_metadata",
                     "delete", "multiset", "transaction", "rollback"])
    key = rng.choice(KEYS)
    if op in ("multiset", "transaction", "rollback"):
        keys = rng.sample(KEYS, 3)
    else:
        keys = [key]
    say("S %%s %%s %%s" %% (op, token, "\t".join(keys)))
    try:
        if op == "set":
            store.set(key, (io.BytesIO(data(token)), {"m": token}))
        elif op == "set_data":
            store.set_data(key, io.BytesIO(data(token)))
        elif op == "set_metadata":
            store.set_metadata(key, {"m": token})
        elif op == "update_metadata":
            store.update_metadata(key, {"m": token, "u": 1})
        elif op == "delete":
            store.delete(key)
        elif op == "multiset":
            store.multiset(keys, [(io.BytesIO(data(token)), {"m": token}) for _ in keys])
        elif op == "transaction":
            with store.transaction("mixed"):
                store.set(keys[0], (io.BytesIO(data(token)), {"m": token}))
                store.set_metadata(keys[1], {"m": token})
                try:
                    store.delete(keys[2])
                except KeyError:
                    pass
        elif op == "rollback":
            try:
                with store.transaction("undone"):
                    for each in keys:
                        store.set(each, (io.BytesIO(data(token)), {"m": token}))
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
    except KeyError:
        say("F")
        continue
    say("D")
""" % {"keys": KEYS}


def read_state(store, key):
    """The (data token, metadata token) of a key, None if absent, or 'BAD'
    when its data or metadata is not something any write produced."""
    try:
        value = store.get(key)
    except KeyError:
        return None
    with value.data as stream:
        data = stream.read()
    metadata = value.metadata
    data_token = ""
    if data:
        try:
            token, reps, rest = data.split(b"|", 2)
            if rest != b"." * int(reps) + b"END":
                return "BAD"
        except ValueError:
            return "BAD"
        data_token = token.decode()
    if metadata == {}:
        return (data_token, None)
    if "m" not in metadata or not set(metadata) <= {"m", "u"}:
        return "BAD"
    return (data_token, metadata["m"])


def after(op, token, keys, before):
    """The states of ``keys`` once the call returned, given those before."""
    result = dict(before)
    first = keys[0]
    state = before[first]
    if op == "set":
        result[first] = (token, token)
    elif op == "set_data":
        result[first] = (token, None if state is None else state[1])
    elif op == "set_metadata":
        result[first] = ("" if state is None else state[0], token)
    elif op == "update_metadata":
        if state is not None:
            result[first] = (state[0], token)
    elif op == "delete":
        result[first] = None
    elif op == "multiset":
        for key in keys:
            result[key] = (token, token)
    elif op == "transaction":
        result[keys[0]] = (token, token)
        second = before[keys[1]]
        result[keys[1]] = ("" if second is None else second[0], token)
        result[keys[2]] = None
    return result


def temporary_files(root):
    found = []
    for directory, _, names in os.walk(root):
        found.extend(os.path.join(directory, name) for name in names if name.startswith(TEMP_PREFIX))
    return found


def run_rounds(root, kind, rounds, seed):
    """Kill ``rounds`` writers; return the counts of what was found."""
    rng = random.Random(seed)
    model = {key: None for key in KEYS}
    counts = {"kills": 0, "interrupted": 0, "calls": 0, "torn": 0, "lost": 0, "bad": 0,
              "leftovers": 0}
    for round_number in range(rounds):
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER, root, kind, str(seed * 1000 + round_number)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []
        try:
            first = process.stdout.readline()
            assert first.strip() == "READY", first + process.stderr.read()
            # Let it start a random number of calls, then kill it at a random
            # instant (not a synchronisation: the moment itself is the test).
            for _ in range(rng.randint(1, 12)):
                line = process.stdout.readline()
                if not line:
                    break
                lines.append(line)
            time.sleep(rng.random() * 0.003)
        finally:
            process.send_signal(signal.SIGKILL)
            # Read what is buffered too (communicate() would skip it).
            rest = process.stdout.read()
            errors = process.stderr.read()
            process.wait()
            process.stdout.close()
            process.stderr.close()
        assert "Traceback" not in errors, errors
        counts["kills"] += 1
        lines.extend(rest.splitlines(keepends=True))
        running = None
        for line in lines:
            if not line.endswith("\n"):
                break  # cut off by the kill
            fields = line.rstrip("\n").split(" ", 3)
            if fields[0] == "S":
                running = (fields[1], fields[2], fields[3].split("\t"))
            elif fields[0] == "D":
                model = after(*running, model)
                counts["calls"] += 1
                running = None
            elif fields[0] == "F":
                running = None
        possible = after(*running, model) if running is not None else model
        counts["interrupted"] += running is not None
        # A new process opens the store: it completes or drops what the
        # killed writer left, and sweeps its temporary files.
        store = LockingFileSystemStore(root, force_lock_timeout=0.2, remote_event_poll_interval=0) \
            if kind == "locking" else FileSystemStore(root)
        store.connect()
        try:
            for key in KEYS:
                state = read_state(store, key)
                if state == model[key] or state == possible[key]:
                    model[key] = state
                    continue
                if state == "BAD":
                    counts["bad"] += 1
                elif isinstance(state, tuple) and any(
                        isinstance(candidate, tuple) and state[0] == candidate[0]
                        for candidate in (model[key], possible[key])):
                    counts["torn"] += 1  # data of one write, metadata of another
                else:
                    counts["lost"] += 1
                print("unexpected state of", key[:8], state, model[key], possible[key], running)
                model[key] = state
        finally:
            store.disconnect()
        counts["leftovers"] += len(temporary_files(root))
    return counts


@pytest.mark.parametrize("kind", ["plain", "locking"])
def test_killed_writers_never_tear_or_lose_a_value(tmp_path, kind):
    root = str(tmp_path / "store")
    init_shared_store(root)
    counts = run_rounds(root, kind, rounds=20 if kind == "plain" else 12, seed=7)
    print(kind, counts)
    assert counts["kills"] > 0 and counts["calls"] > 0
    assert counts["interrupted"] > 0  # most kills land inside a call
    assert (counts["torn"], counts["lost"], counts["bad"]) == (0, 0, 0), counts
    assert counts["leftovers"] == 0, counts


# ---------------------------------------------------------------------------
# Recovery and sweeping, step by step
# ---------------------------------------------------------------------------

def dead_pid():
    """The pid of a process that has ended (and was reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def owned_name(pid, counter, suffix):
    from encore.storage.filesystem_store import _HOST_TOKEN

    return "{}{:x}-{}beef-{}{}".format(TEMP_PREFIX, pid, _HOST_TOKEN, counter, suffix)


def test_connect_sweeps_only_temporary_files_of_ended_writers(tmp_path):
    root = tmp_path / "store"
    init_shared_store(root)
    store = FileSystemStore(root)
    store.set("a/b", (io.BytesIO(b"data"), {"m": 1}))
    gone = dead_pid()
    directory = root / "a"
    dead = [directory / owned_name(gone, 0, ".tmp"), root / owned_name(gone, 1, ".bak")]
    from encore.storage.filesystem_store import _HOST_TOKEN

    other_host = "ffff" if _HOST_TOKEN != "ffff" else "eeee"
    alive = [directory / owned_name(os.getpid(), 5, ".tmp"),  # this process
             directory / owned_name(os.getppid(), 5, ".tmp"),  # a live process
             directory / ".~unparsable.tmp",
             # the same dead pid, but on another host: kept
             directory / "{}{:x}-{}beef-2.tmp".format(TEMP_PREFIX, gone, other_host)]
    for path in dead + alive:
        path.write_bytes(b"partial")
    # The dead writer marked the store before making its first temporary
    # file below the root.
    marker = root / owned_name(gone, 9, ".writer")
    marker.write_bytes(b"")
    assert sweep(root) == len(dead)
    for path in dead:
        assert not path.exists()
    for path in alive:
        assert path.exists()
    assert not marker.exists()  # one walk per ended writer
    store.connect()  # sweeps too, and keeps the key
    assert store.get_data("a/b").read() == b"data"


def test_connect_walks_the_tree_only_for_an_ended_writers_marker(tmp_path, monkeypatch):
    from encore.storage import filesystem_store

    root = tmp_path / "store"
    init_shared_store(root)
    store = FileSystemStore(root)
    store.set("a/b", (io.BytesIO(b"data"), {"m": 1}))
    # This process marked the store when it first wrote below the root.
    markers = [name for name in os.listdir(root) if name.endswith(".writer")]
    assert len(markers) == 1 and filesystem_store._OWNER.match(markers[0])
    walks = []
    real_walk = filesystem_store._sweep_below
    monkeypatch.setattr(filesystem_store, "_sweep_below",
                        lambda path: walks.append(path) or real_walk(path))
    gone = dead_pid()
    unmarked = root / "a" / owned_name(gone, 0, ".tmp")  # no marker of its writer
    unmarked.write_bytes(b"partial")
    in_root = root / owned_name(gone, 1, ".tmp")  # the root is always read
    in_root.write_bytes(b"partial")
    store.connect()  # a live writer's marker (ours) asks for no walk
    assert walks == [] and unmarked.exists() and not in_root.exists()
    assert sweep(root, full=True) == 1  # an explicit full sweep walks anyway
    assert not unmarked.exists()
    assert len(walks) == 1
    (root / "a" / owned_name(gone, 2, ".tmp")).write_bytes(b"partial")
    (root / owned_name(gone, 3, ".writer")).write_bytes(b"")
    store.connect()  # an ended writer's marker: one walk, then the marker goes
    assert len(walks) == 2
    assert not (root / "a" / owned_name(gone, 2, ".tmp")).exists()
    assert not (root / owned_name(gone, 3, ".writer")).exists()
    assert [name for name in os.listdir(root) if name.endswith(".writer")] == markers
    store.connect()
    assert len(walks) == 2


def test_a_killed_writer_marks_the_store_before_its_first_temporary_file(tmp_path):
    """A writer killed while staging a value below the root: its marker is
    there, so the next connect sweeps the staged file."""
    root = str(tmp_path / "store")
    init_shared_store(root)
    script = STAGING_WRITER
    process = subprocess.Popen([sys.executable, "-c", script, root], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "STAGING"
        staged = [path for path in temporary_files(root) if path.endswith(".tmp")]
        assert len(staged) == 1 and os.path.dirname(staged[0]) == os.path.join(root, "deep", "er")
        assert any(name.endswith(".writer") for name in os.listdir(root))
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
    FileSystemStore(root).connect()
    assert temporary_files(root) == []


STAGING_WRITER = r"""
import sys, threading
from encore.storage.filesystem_store import FileSystemStore

class Stalled:
    def __init__(self):
        self.sent = False
    def read(self, size=-1):
        if not self.sent:
            self.sent = True
            return b"first part"
        print("STAGING", flush=True)
        threading.Event().wait()

store = FileSystemStore(sys.argv[1])
store.set("deep/er/key", (Stalled(), {}))
"""


def write_pair(root, key, data, metadata_text):
    """Stage a new data and metadata file for an existing key as a writer
    would, returning the temporary paths and the targets."""
    stem = os.path.join(root, key)
    gone = dead_pid()
    data_temporary = os.path.join(root, owned_name(gone, 0, ".tmp"))
    metadata_temporary = os.path.join(root, owned_name(gone, 1, ".tmp"))
    with open(data_temporary, "wb") as stream:
        stream.write(data)
    with open(metadata_temporary, "wb") as stream:
        stream.write(metadata_text)
    return gone, [(data_temporary, stem + ".data"), (metadata_temporary, stem + ".metadata")]


def make_intent(root, gone, renames, identities):
    import json

    record = {"version": 1, "renames": [
        [os.path.relpath(temporary, root), os.path.relpath(target, root), identity]
        for (temporary, target), identity in zip(renames, identities)]}
    path = os.path.join(root, owned_name(gone, 9, INTENT_SUFFIX))
    with open(path, "w") as stream:
        json.dump(record, stream)
    return path


def identity(path):
    from encore.storage.filesystem_store import _identity

    return _identity(path)


def test_opening_a_store_completes_a_write_cut_between_its_renames(tmp_path):
    root = str(tmp_path)
    init_shared_store(root)
    store = FileSystemStore(root)
    store.set("k", (io.BytesIO(b"old"), {"v": "old"}))
    gone, renames = write_pair(root, "k", b"new", b'{"v":"new"}')
    intent = make_intent(root, gone, renames, [identity(target) for _, target in renames])
    os.replace(*renames[0])  # the writer died after renaming the data only
    # Torn for now (the store object was opened before the crash) ...
    assert store.get_data("k").read() == b"new" and store.get_metadata("k") == {"v": "old"}
    # ... whole for the next process opening the store.
    reopened = FileSystemStore(root)
    assert reopened.get_data("k").read() == b"new"
    assert reopened.get_metadata("k") == {"v": "new"}
    assert not os.path.exists(intent) and temporary_files(root) == []


def test_recovery_never_undoes_a_later_write(tmp_path):
    root = str(tmp_path)
    init_shared_store(root)
    store = FileSystemStore(root)
    store.set("k", (io.BytesIO(b"old"), {"v": "old"}))
    gone, renames = write_pair(root, "k", b"dead", b'{"v":"dead"}')
    make_intent(root, gone, renames, [identity(target) for _, target in renames])
    os.replace(*renames[0])
    # Another (live) writer wrote the key whole after the crash.
    store.set("k", (io.BytesIO(b"later"), {"v": "later"}))
    reopened = FileSystemStore(root)
    assert reopened.get_data("k").read() == b"later"
    assert reopened.get_metadata("k") == {"v": "later"}
    assert temporary_files(root) == []


def test_an_unreadable_intent_record_is_dropped_and_the_old_value_kept(tmp_path):
    root = str(tmp_path)
    init_shared_store(root)
    store = FileSystemStore(root)
    store.set("k", (io.BytesIO(b"old"), {"v": "old"}))
    gone, renames = write_pair(root, "k", b"new", b'{"v":"new"}')
    intent = os.path.join(root, owned_name(gone, 9, INTENT_SUFFIX))
    with open(intent, "w") as stream:
        stream.write('{"version": 1, "renames": [["')  # cut short by the crash
    reopened = FileSystemStore(root)
    reopened.connect()
    assert reopened.get_data("k").read() == b"old"
    assert reopened.get_metadata("k") == {"v": "old"}
    assert temporary_files(root) == []


def test_an_intent_record_of_a_live_writer_is_left_alone(tmp_path):
    root = str(tmp_path)
    init_shared_store(root)
    store = FileSystemStore(root)
    store.set("k", (io.BytesIO(b"old"), {"v": "old"}))
    intent = os.path.join(root, owned_name(os.getpid(), 9, INTENT_SUFFIX))
    with open(intent, "w") as stream:
        stream.write('{"version": 1, "renames": []}')
    FileSystemStore(root).connect()
    assert os.path.exists(intent)


# ---------------------------------------------------------------------------
# A stalled upload locks nothing
# ---------------------------------------------------------------------------

class StalledSource(object):
    """A stream that gives some bytes, then blocks until released."""

    def __init__(self):
        self.reading = threading.Event()
        self.release = threading.Event()
        self.sent = False

    def read(self, size=-1):
        if not self.sent:
            self.sent = True
            return b"first part "
        self.reading.set()
        assert self.release.wait(60), "the test never released the source"
        return b""


@pytest.mark.parametrize("kind", ["plain", "locking"])
@pytest.mark.parametrize("method", ["set", "set_data"])
def test_a_stalled_upload_does_not_block_writers_of_other_keys(tmp_path, kind, method):
    root = str(tmp_path)
    init_shared_store(root)
    store = LockingFileSystemStore(root, remote_event_poll_interval=0) if kind == "locking" \
        else FileSystemStore(root)
    store.set("slow", (io.BytesIO(b"before"), {"v": 0}))
    source = StalledSource()
    errors = []

    def upload():
        try:
            if method == "set":
                store.set("slow", (source, {"v": 1}))
            else:
                store.set_data("slow", source)
        except BaseException as error:  # reported below
            errors.append(error)

    uploader = threading.Thread(target=upload)
    uploader.start()
    try:
        assert source.reading.wait(30)
        finished = threading.Event()
        written = []

        def others():
            # Enough keys to use every lock stripe, the stalled key included.
            for index in range(100):
                key = "other%d" % index
                store.set(key, (io.BytesIO(b"x"), {"i": index}))
                written.append(key)
            store.update_metadata("slow", {"touched": True})
            written.append("slow")
            finished.set()

        writer = threading.Thread(target=others)
        writer.start()
        # Not a timing assertion: a bound so that a regression fails
        # instead of hanging (the writes need no lock the upload holds).
        assert finished.wait(60), "writers were blocked by the stalled upload: %d done" % len(written)
        writer.join()
        assert store.get_data("slow").read() == b"before"
    finally:
        source.release.set()
        uploader.join()
    assert errors == []
    assert store.get_data("slow").read() == b"first part "
    assert store.get_metadata("slow")["v"] == (1 if method == "set" else 0)
    assert store.get_metadata("other99") == {"i": 99}


TRANSACTION_WRITER = r"""
import io, sys
from encore.storage.filesystem_store import FileSystemStore
store = FileSystemStore(sys.argv[1])
with store.transaction("cut short"):
    store.set("old", (io.BytesIO(b"new data"), {"v": "new"}))
    store.set("fresh", (io.BytesIO(b"fresh"), {"v": "fresh"}))
    store.set_metadata("meta", {"v": "new"})
    store.delete("gone")
    print("inside", flush=True)
    sys.stdin.read()  # wait here until killed
"""


def test_a_transaction_cut_short_by_a_crash_is_rolled_back(tmp_path):
    root = str(tmp_path)
    init_shared_store(root)
    store = FileSystemStore(root)
    store.set("old", (io.BytesIO(b"old data"), {"v": "old"}))
    store.set("meta", (io.BytesIO(b"kept"), {"v": "old"}))
    store.set("gone", (io.BytesIO(b"still here"), {"v": "old"}))
    process = subprocess.Popen([sys.executable, "-c", TRANSACTION_WRITER, root],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "inside"
        # The transaction's writes are visible while it runs ...
        assert store.get_metadata("old") == {"v": "new"} and not store.exists("gone")
    finally:
        process.kill()
        process.wait()
        process.stdin.close()
        process.stdout.close()
    # ... and undone for the next process opening the store.
    reopened = FileSystemStore(root)
    reopened.connect()
    assert reopened.get_data("old").read() == b"old data"
    assert reopened.get_metadata("old") == {"v": "old"}
    assert not reopened.exists("fresh")
    assert reopened.get_metadata("meta") == {"v": "old"}
    assert reopened.get_data("meta").read() == b"kept"
    assert reopened.get_data("gone").read() == b"still here"
    assert temporary_files(root) == []


def test_rolling_back_a_dead_transaction_keeps_later_writes(tmp_path):
    root = str(tmp_path)
    init_shared_store(root)
    store = FileSystemStore(root)
    store.set("old", (io.BytesIO(b"old data"), {"v": "old"}))
    store.set("meta", (io.BytesIO(b"kept"), {"v": "old"}))
    store.set("gone", (io.BytesIO(b"still here"), {"v": "old"}))
    process = subprocess.Popen([sys.executable, "-c", TRANSACTION_WRITER, root],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "inside"
    finally:
        process.kill()
        process.wait()
        process.stdin.close()
        process.stdout.close()
    # A process that had the store open before the crash writes a key the
    # dead transaction touched; recovery must not undo that write.
    store.set("old", (io.BytesIO(b"later"), {"v": "later"}))
    reopened = FileSystemStore(root)
    assert reopened.get_data("old").read() == b"later"
    assert reopened.get_metadata("old") == {"v": "later"}
    assert not reopened.exists("fresh")
    assert reopened.get_metadata("meta") == {"v": "old"}
