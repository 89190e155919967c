"""Benchmark: the local stores with large values and metadata scans (issue 10).

Run with ``python benchmarks/bench_local_stores.py`` (``--quick`` for a
smaller run, ``--dir`` for the scratch directory, by default ``/dev/shm``
when it exists so that the medium is memory and the figures show the
library's own cost).  Every row is measured side by side with its floor or
peer in the same run; the output gives times and ratios.

1. **Large values** (256 MiB by default), each operation in a fresh
   subprocess, best of a few repeats, with the growth of the peak resident
   memory above the memory just before the first repeat (``VmHWM``, reset
   through ``/proc/self/clear_refs``):

   * ``SqliteStore.to_file`` against ``sqlite3`` ``blobopen`` reads written
     to a file, and ``diskcache`` (``get(read=True)`` copied to a file);
   * ``SqliteStore.from_file`` against ``blobopen`` writes into a
     ``zeroblob`` row of a database in the same mode as the store (WAL,
     ``synchronous=FULL``) and, for information, in SQLite's default
     rollback-journal mode, and ``diskcache`` (``set(read=True)``);
   * ``DictMemoryStore.from_file`` against a plain ``dict`` of ``read()``,
     also with a progress listener (the data is then read in buffers) and
     ``set_data`` from a stream that cannot tell its length (as an upload
     through the server): each at most one copy of the value;
   * ``FileSystemStore`` and ``LockingFileSystemStore`` ``from_file`` and
     ``to_file`` against :func:`shutil.copyfileobj` between two files.

2. **Unindexed SQLite queries** -- ``query_keys`` and ``query`` on a name
   without an index (10 matches in 50 000 keys) against a raw ``sqlite3``
   scan filtering with ``json_extract`` and confirming the matches with
   :func:`json.loads`, and the same scan decoding every row in Python (what
   the store did before).

3. **File system scans** -- ``query_keys`` and ``query`` over 5 000 keys
   (a new store object each time, so its metadata cache is cold) against
   reading and parsing the same metadata files raw; ``get`` + ``read``
   against opening and reading both files raw.

4. **Connecting to a file system store** -- ``connect()`` on 5 000 keys
   spread over 350 directories, against one ``os.scandir`` of the root (the
   floor: the root must be read for intent and transaction records) and a
   walk of the whole tree (what every ``connect`` did before writers left
   markers); and ``connect()`` when a marker of an ended writer asks for
   the walk (once per ended writer).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from encore.storage.filesystem_store import FileSystemStore, init_shared_store  # noqa: E402
from encore.storage.sqlite_store import SqliteStore  # noqa: E402

try:
    import diskcache
except ImportError:  # pragma: no cover - optional peer
    diskcache = None

MIB = 1 << 20


def best(function, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved(functions, repeat):
    """Best time of each function, their runs interleaved (fairer on a busy
    machine than measuring one after the other)."""
    results = [float("inf")] * len(functions)
    for _ in range(repeat):
        for index, function in enumerate(functions):
            start = time.perf_counter()
            function()
            results[index] = min(results[index], time.perf_counter() - start)
    return results


def remove_database(path):
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------------------
# 1. Large values, one subprocess per row
# ---------------------------------------------------------------------------

CHILD = r"""
import io, json, os, shutil, sqlite3, sys, time
sys.path.insert(0, ROOT)
operation, scratch, source, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def status(field):
    with open("/proc/self/status") as stream:
        for line in stream:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0

out = os.path.join(scratch, "out.bin")
db = os.path.join(scratch, "store.db")
raw_db = os.path.join(scratch, "raw_blob_read.db" if operation == "raw.blob_read"
                      else "raw_write_" + operation.split(":")[-1] + ".db")

def setup():
    global run
    kind = operation
    if kind == "sqlite.to_file":
        from encore.storage.sqlite_store import SqliteStore
        store = SqliteStore(db); store.connect()
        run = lambda: store.to_file("big", out)
    elif kind == "sqlite.from_file":
        from encore.storage.sqlite_store import SqliteStore
        store = SqliteStore(db); store.connect()
        run = lambda: store.from_file("big", source)
    elif kind.startswith("raw.blob_read"):
        connection = sqlite3.connect(raw_db)
        def run():
            with connection.blobopen("t", "data", 1, readonly=True) as blob, open(out, "wb") as target:
                while True:
                    chunk = blob.read(1 << 20)
                    if not chunk:
                        break
                    target.write(chunk)
    elif kind.startswith("raw.blob_write"):
        mode = kind.split(":")[1]
        connection = sqlite3.connect(raw_db, isolation_level=None)
        connection.execute("PRAGMA journal_mode=" + mode)
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("CREATE TABLE IF NOT EXISTS t (key text PRIMARY KEY, data blob)")
        size = os.path.getsize(source)
        def run():
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT OR REPLACE INTO t (key, data) VALUES ('big', zeroblob(?))", (size,))
            rowid = connection.execute("SELECT rowid FROM t WHERE key = 'big'").fetchone()[0]
            with connection.blobopen("t", "data", rowid) as blob, open(source, "rb") as stream:
                while True:
                    chunk = stream.read(1 << 20)
                    if not chunk:
                        break
                    blob.write(chunk)
            connection.execute("COMMIT")
    elif kind == "diskcache.get":
        import diskcache
        cache = diskcache.Cache(os.path.join(scratch, "cache"))
        def run():
            with cache.get("big", read=True) as stream, open(out, "wb") as target:
                shutil.copyfileobj(stream, target, 1 << 20)
    elif kind == "diskcache.set":
        import diskcache
        cache = diskcache.Cache(os.path.join(scratch, "cache"))
        def run():
            with open(source, "rb") as stream:
                cache.set("big", stream, read=True)
    elif kind == "dict.from_file":
        from encore.storage.dict_memory_store import DictMemoryStore
        store = DictMemoryStore(); store.connect()
        def run():
            store.delete("big") if store.exists("big") else None
            store.from_file("big", source)
    elif kind in ("dict.set_data_unsized", "dict.from_file_listened"):
        from encore.storage.dict_memory_store import DictMemoryStore
        from encore.events.api import EventManager
        from encore.storage.events import StoreProgressEvent
        manager = EventManager()
        store = DictMemoryStore(event_manager=manager); store.connect()
        if kind == "dict.from_file_listened":
            manager.connect(StoreProgressEvent, lambda event: None)
            def run():
                store.delete("big") if store.exists("big") else None
                store.from_file("big", source)
        else:
            class Unsized(io.RawIOBase):
                # A stream that cannot tell its length (as a socket or an
                # upload through the server): read in buffers to its end.
                def __init__(self, stream):
                    self._stream = stream
                def readable(self):
                    return True
                def readinto(self, buffer):
                    return self._stream.readinto(buffer)
            def run():
                store.delete("big") if store.exists("big") else None
                with open(source, "rb", buffering=0) as stream:
                    store.set_data("big", Unsized(stream))
    elif kind == "plain.dict":
        mapping = {}
        def run():
            mapping.pop("big", None)
            with open(source, "rb") as stream:
                mapping["big"] = stream.read()
    elif kind in ("fs.from_file", "fs.to_file", "locking.from_file", "locking.to_file"):
        from encore.storage.filesystem_store import FileSystemStore
        from encore.storage.locking_filesystem_store import LockingFileSystemStore
        path = os.path.join(scratch, "fs")
        store = FileSystemStore(path) if kind.startswith("fs") else \
            LockingFileSystemStore(path, remote_event_poll_interval=0)
        store.connect()
        if kind.endswith("from_file"):
            run = lambda: store.from_file("big", source)
        else:
            run = lambda: store.to_file("big", out)
    elif kind == "raw.copy":
        def run():
            with open(source, "rb") as stream, open(out, "wb") as target:
                shutil.copyfileobj(stream, target, 1 << 20)
    else:
        raise SystemExit("unknown operation " + kind)

setup()
before = status("VmRSS")
try:
    with open("/proc/self/clear_refs", "w") as stream:
        stream.write("5")
except OSError:
    pass
times = []
for _ in range(repeat):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
print(json.dumps({"seconds": min(times), "peak": status("VmHWM") - before}))
"""


def run_child(operation, scratch, source, repeat):
    code = "ROOT = {!r}\n".format(ROOT) + CHILD
    result = subprocess.run([sys.executable, "-c", code, operation, scratch, source, str(repeat)],
                            capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError("{} failed:\n{}".format(operation, result.stderr))
    return json.loads(result.stdout)


def prepare_large(scratch, size):
    source = os.path.join(scratch, "source.bin")
    with open(source, "wb") as stream:
        block = os.urandom(MIB)
        for _ in range(size // MIB):
            stream.write(block)
    store = SqliteStore(os.path.join(scratch, "store.db"))
    store.connect()
    store.from_file("big", source)
    store.disconnect()
    raw = sqlite3.connect(os.path.join(scratch, "raw_blob_read.db"), isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("CREATE TABLE t (key text PRIMARY KEY, data blob)")
    raw.execute("INSERT INTO t (key, data) VALUES ('big', zeroblob(?))", (size,))
    with raw.blobopen("t", "data", 1) as blob, open(source, "rb") as stream:
        while True:
            chunk = stream.read(MIB)
            if not chunk:
                break
            blob.write(chunk)
    raw.close()
    init_shared_store(os.path.join(scratch, "fs"))
    fs = FileSystemStore(os.path.join(scratch, "fs"))
    fs.from_file("big", source)
    if diskcache is not None:
        cache = diskcache.Cache(os.path.join(scratch, "cache"))
        with open(source, "rb") as stream:
            cache.set("big", stream, read=True)
        cache.close()
    return source


def bench_large(scratch, size, repeat, only_dict=False):
    print("\n== Large values: {} MiB (best of {}, peak memory growth) ==".format(size // MIB, repeat))
    source = prepare_large(scratch, size)
    groups = [
        ("SqliteStore.to_file", "sqlite.to_file",
         [("sqlite3 blobopen read -> file", "raw.blob_read"), ("diskcache get(read=True)", "diskcache.get")]),
        ("SqliteStore.from_file", "sqlite.from_file",
         [("sqlite3 blobopen write (WAL, as the store)", "raw.blob_write:WAL"),
          ("sqlite3 blobopen write (rollback journal)", "raw.blob_write:DELETE"),
          ("diskcache set(read=True)", "diskcache.set")]),
        ("DictMemoryStore.from_file", "dict.from_file", [("plain dict of read()", "plain.dict")]),
        ("DictMemoryStore.from_file (listened)", "dict.from_file_listened",
         [("plain dict of read()", "plain.dict")]),
        ("DictMemoryStore.set_data (no length)", "dict.set_data_unsized",
         [("plain dict of read()", "plain.dict")]),
        ("FileSystemStore.from_file", "fs.from_file", [("shutil.copyfileobj", "raw.copy")]),
        ("FileSystemStore.to_file", "fs.to_file", [("shutil.copyfileobj", "raw.copy")]),
        ("LockingFileSystemStore.from_file", "locking.from_file", [("shutil.copyfileobj", "raw.copy")]),
        ("LockingFileSystemStore.to_file", "locking.to_file", [("shutil.copyfileobj", "raw.copy")]),
    ]
    if only_dict:
        groups = [group for group in groups if group[1].startswith("dict.")]
    rows = []
    for label, operation, peers in groups:
        measured = run_child(operation, scratch, source, repeat)
        print("{:<36} {:8.3f} s   peak +{:6.1f} MiB".format(label, measured["seconds"], measured["peak"] / MIB))
        for peer_label, peer in peers:
            if peer.startswith("diskcache") and diskcache is None:
                print("    {:<44} (diskcache not installed)".format(peer_label))
                continue
            other = run_child(peer, scratch, source, repeat)
            ratio = measured["seconds"] / other["seconds"]
            print("    {:<44} {:8.3f} s   peak +{:6.1f} MiB   store/peer {:5.2f}x".format(
                peer_label, other["seconds"], other["peak"] / MIB, ratio))
            rows.append((label, peer_label, ratio, measured["peak"] / MIB))
    return rows


# ---------------------------------------------------------------------------
# 2. Unindexed SQLite queries
# ---------------------------------------------------------------------------

def bench_sqlite_scan(scratch, count, repeat):
    print("\n== Unindexed SqliteStore queries: {} keys, 10 matches (best of {}) ==".format(count, repeat))
    path = os.path.join(scratch, "scan.db")
    remove_database(path)
    store = SqliteStore(path, index=None)
    store.connect()
    keys = ["key%06d" % index for index in range(count)]
    store.multiset(keys, [(io.BytesIO(b"x" * 100), {"i": index, "kind": "small", "group": index // 10,
                                                     "name": "n%d" % (index // 10)})
                          for index in range(count)])
    raw = sqlite3.connect(path)
    group = count // 20

    def raw_scan(name, value):
        sql = "SELECT key, metadata FROM store WHERE json_extract(metadata, '$.{}') = ?".format(name)
        return [key for key, text in raw.execute(sql, (value,)) if json.loads(text).get(name) == value]

    def raw_python(name, value):
        return [key for key, text in raw.execute("SELECT key, metadata FROM store")
                if json.loads(text).get(name) == value]

    rows = []
    for name, value in (("group", group), ("name", "n%d" % group)):
        assert sorted(store.query_keys(**{name: value})) == sorted(raw_scan(name, value))
        times = interleaved([
            lambda: list(store.query_keys(**{name: value})),
            lambda: list(store.query(**{name: value})),
            lambda: raw_scan(name, value),
            lambda: raw_python(name, value),
        ], repeat)
        keys_time, query_time, raw_time, python_time = times
        print("{}={!r}: query_keys {:.4f} s ({:.2f}x raw), query {:.4f} s ({:.2f}x raw); "
              "raw json_extract scan {:.4f} s; raw scan decoding in Python {:.4f} s".format(
                  name, value, keys_time, keys_time / raw_time, query_time, query_time / raw_time,
                  raw_time, python_time))
        rows.append(("query_keys({}=...)".format(name), keys_time / raw_time))
        rows.append(("query({}=...)".format(name), query_time / raw_time))
    raw.close()
    store.disconnect()
    return rows


# ---------------------------------------------------------------------------
# 3. File system scans
# ---------------------------------------------------------------------------

def bench_filesystem_scan(scratch, count, repeat):
    print("\n== FileSystemStore scans: {} keys (best of {}) ==".format(count, repeat))
    root = os.path.join(scratch, "scan_fs")
    shutil.rmtree(root, ignore_errors=True)
    init_shared_store(root)
    store = FileSystemStore(root)
    for index in range(count):
        store.set("key%05d" % index, (io.BytesIO(b"x" * 100),
                                      {"type": "egg", "name": "encore", "i": index, "group": index % 100}))

    def raw_scan(select_all):
        found = []
        with os.scandir(root) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        for entry in entries:
            if entry.name.endswith(".metadata"):
                with open(entry.path, "rb") as stream:
                    metadata = json.loads(stream.read())
                if select_all or metadata.get("group") == 7:
                    found.append((entry.name[:-9], metadata))
        return found

    def store_scan_keys():
        return list(FileSystemStore(root).query_keys(group=7))

    def store_scan_all():
        return list(FileSystemStore(root).query())

    sample = ["key%05d" % index for index in range(0, count, 7)]

    def store_get_read():
        for key in sample:
            value = store.get(key)
            with value.data as stream:
                stream.read()
            value.metadata

    def raw_get_read():
        for key in sample:
            with open(os.path.join(root, key + ".metadata"), "rb") as stream:
                json.loads(stream.read())
            with open(os.path.join(root, key + ".data"), "rb") as stream:
                stream.read()

    keys_time, raw_keys_time, all_time, raw_all_time, get_time, raw_get_time = interleaved([
        store_scan_keys, lambda: raw_scan(False), store_scan_all, lambda: raw_scan(True),
        store_get_read, raw_get_read], repeat)
    rows = [("query_keys(group=7), cold cache", keys_time / raw_keys_time),
            ("query(), cold cache", all_time / raw_all_time),
            ("get + read ({} keys)".format(len(sample)), get_time / raw_get_time)]
    print("query_keys(group=7) {:.4f} s, raw {:.4f} s: {:.2f}x".format(keys_time, raw_keys_time, rows[0][1]))
    print("query() {:.4f} s, raw {:.4f} s: {:.2f}x".format(all_time, raw_all_time, rows[1][1]))
    print("get + read {:.4f} s, raw {:.4f} s: {:.2f}x".format(get_time, raw_get_time, rows[2][1]))
    return rows


def bench_filesystem_connect(scratch, count, repeat):
    print("\n== FileSystemStore.connect: {} keys in nested directories (best of {}) ==".format(
        count, repeat))
    from encore.storage import filesystem_store

    root = os.path.join(scratch, "connect_fs")
    shutil.rmtree(root, ignore_errors=True)
    init_shared_store(root)
    store = FileSystemStore(root)
    for index in range(count):
        key = "d%02d/e%d/key%05d" % (index % 50, index % 7, index)
        store.set(key, (io.BytesIO(b"x" * 100), {"i": index}))
    # An ended writer's marker, as a killed process leaves it.
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    marker = os.path.join(root, "{}{:x}-{}beef-0{}".format(
        filesystem_store.TEMP_PREFIX, ended.pid, filesystem_store._HOST_TOKEN,
        filesystem_store.WRITER_SUFFIX))

    def connect():
        FileSystemStore(root).connect()

    def connect_after_ended_writer():
        with open(marker, "wb"):
            pass
        FileSystemStore(root).connect()

    def scan_root():
        with os.scandir(root) as scan:
            return [entry.name for entry in scan]

    def walk_tree():
        return [names for _, _, names in os.walk(root)]

    connect_time, ended_time, scan_time, walk_time = interleaved(
        [connect, connect_after_ended_writer, scan_root, walk_tree], repeat)
    print("connect {:.2f} ms; one scandir of the root {:.2f} ms ({:.2f}x); "
          "a walk of the tree {:.2f} ms".format(connect_time * 1e3, scan_time * 1e3,
                                                connect_time / scan_time, walk_time * 1e3))
    print("connect after an ended writer {:.2f} ms ({:.2f}x the walk)".format(
        ended_time * 1e3, ended_time / walk_time))
    return [("connect", connect_time / scan_time), ("connect, ended writer", ended_time / walk_time)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="where the scratch directory is made")
    parser.add_argument("--only", choices=["large", "dict-large", "sqlite-scan", "fs-scan", "fs-connect"],
                        help="one section (dict-large: the DictMemoryStore rows of the large values)")
    arguments = parser.parse_args(argv)
    size = (64 if arguments.quick else 256) * MIB
    scratch = tempfile.mkdtemp(prefix="encore-bench-local-", dir=arguments.dir)
    print("scratch directory: {} (Python {}, SQLite {})".format(
        scratch, sys.version.split()[0], sqlite3.sqlite_version))
    try:
        if arguments.only in (None, "large", "dict-large"):
            bench_large(scratch, size, 2 if arguments.quick else 3, arguments.only == "dict-large")
        if arguments.only in (None, "sqlite-scan"):
            bench_sqlite_scan(scratch, 10000 if arguments.quick else 50000, 5 if arguments.quick else 9)
        if arguments.only in (None, "fs-scan"):
            bench_filesystem_scan(scratch, 1000 if arguments.quick else 5000, 5 if arguments.quick else 9)
        if arguments.only in (None, "fs-connect"):
            bench_filesystem_connect(scratch, 1000 if arguments.quick else 5000, 5 if arguments.quick else 9)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
