"""Benchmark: SqliteStore against raw sqlite3, sqlitedict and diskcache.

Run with ``python benchmarks/bench_sqlite_store.py`` (``--quick`` for a
smaller run).  Every scenario is measured side by side in the same run, on
database files in one temporary directory, best of a few repeats; the output
gives times and ratios.

1. **Bulk write** -- ``multiset`` of 20 000 small keys (100 bytes of data and
   three metadata names each) against, each in one transaction:

   * raw ``sqlite3``: ``executemany`` of ``INSERT`` into a table of the same
     layout, the metadata encoded with :func:`json.dumps` (target: the store
     within 2x, with and without its dynamic index), and the same plus
     filling by hand an index table like the one the dynamic index keeps
     (what the index costs SQLite itself);
   * ``sqlitedict``: ``update()`` (one ``executemany``) of pickled
     ``(data, metadata)`` pairs (target: the store faster);
   * ``diskcache``: ``set`` of each pair inside ``cache.transact()``.

2. **Read** -- ``get`` then reading the data (and decoding the metadata)
   against a raw ``SELECT`` of the same row and :func:`json.loads` (target:
   within 2x); also ``get_data``, ``get_metadata`` and ``exists``.

3. **Indexed query** -- ``query_keys(group=g)`` (10 matches) in stores of
   10 000 and 100 000 keys: with the index the time barely grows with the
   store; without it (``index=None``) it grows ~10x.

4. **Large value** -- 256 MiB through ``from_file`` and ``to_file`` (and a few
   other paths), each in a fresh subprocess measuring how far its peak
   resident memory rises above its resident memory just before the
   operation (target: < 32 MiB).  On Linux the peak is ``VmHWM``, reset just
   before the operation; ``ru_maxrss`` is shown too, but a child inherits
   its parent's peak across ``exec``, which hides smaller increases.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from encore.events.event_manager import EventManager  # noqa: E402
from encore.storage.sqlite_store import SqliteStore  # noqa: E402

try:
    from sqlitedict import SqliteDict
except ImportError:  # pragma: no cover - optional peer
    SqliteDict = None
try:
    import diskcache
except ImportError:  # pragma: no cover - optional peer
    diskcache = None

PAYLOAD = bytes(range(100))


def small_items(count):
    return [
        ("key%06d" % i, PAYLOAD, {"i": i, "kind": "small", "group": i // 10})
        for i in range(count)
    ]


def best(function, repeat):
    """Best wall time of ``function()`` over ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


class Scratch(object):
    """Fresh paths in one temporary directory."""

    def __init__(self, root):
        self.root = root
        self.count = 0

    def path(self, name):
        self.count += 1
        return os.path.join(self.root, "%s_%d" % (name, self.count))


# ---------------------------------------------------------------------------
# 1. Bulk write
# ---------------------------------------------------------------------------

def raw_create(path):
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE store (key text primary key, metadata dict, "
                       "created float, modified float, data blob)")
    return connection


def bench_bulk_write(scratch, count, repeat):
    items = small_items(count)
    results = {}

    def run_store(index):
        def prepare():
            store = SqliteStore(scratch.path("store.db"), index=index,
                                event_manager=EventManager())
            store.connect()
            return store

        def run(store):
            store.multiset([key for key, _, _ in items],
                           [(io.BytesIO(data), metadata) for _, data, metadata in items])
        return prepare, run

    def raw():
        def prepare():
            return raw_create(scratch.path("raw.db"))

        def run(connection):
            now = time.time()
            connection.execute("BEGIN")
            connection.executemany(
                "INSERT INTO store VALUES (?, ?, ?, ?, ?)",
                [(key, json.dumps(metadata), now, now, io.BytesIO(data).read())
                 for key, data, metadata in items])
            connection.execute("COMMIT")
        return prepare, run

    def raw_indexed():
        # What the dynamic index costs SQLite itself: the same companion table
        # and partial indexes SqliteStore creates, filled by hand.
        def prepare():
            connection = raw_create(scratch.path("raw_indexed.db"))
            connection.execute("CREATE TABLE ix (key text PRIMARY KEY NOT NULL, md_i text, "
                               "md_kind text, md_group text) WITHOUT ROWID")
            for column in ("md_i", "md_kind", "md_group"):
                connection.execute("CREATE INDEX ix_{0} ON ix ({0}) WHERE {0} IS NOT NULL".format(
                    column))
            return connection

        def run(connection):
            now = time.time()
            connection.execute("BEGIN")
            connection.executemany(
                "INSERT INTO store VALUES (?, ?, ?, ?, ?)",
                [(key, json.dumps(metadata), now, now, io.BytesIO(data).read())
                 for key, data, metadata in items])
            connection.executemany(
                "INSERT OR REPLACE INTO ix VALUES (?, ?, ?, ?)",
                [(key, str(metadata["i"]), json.dumps(metadata["kind"]), str(metadata["group"]))
                 for key, _, metadata in items])
            connection.execute("COMMIT")
        return prepare, run

    def sqlitedict():
        def prepare():
            return SqliteDict(scratch.path("sqlitedict.db"), autocommit=False)

        def run(mapping):
            mapping.update((key, (io.BytesIO(data).read(), metadata))
                           for key, data, metadata in items)
            mapping.commit()
        return prepare, run

    def cache():
        def prepare():
            return diskcache.Cache(scratch.path("diskcache"))

        def run(store):
            with store.transact():
                for key, data, metadata in items:
                    store.set(key, (io.BytesIO(data).read(), metadata))
        return prepare, run

    contenders = [("SqliteStore (index=None)", run_store(None)),
                  ("SqliteStore (dynamic index)", run_store("dynamic")),
                  ("raw sqlite3 executemany", raw()),
                  ("raw sqlite3 + same index", raw_indexed())]
    if SqliteDict is not None:
        contenders.append(("sqlitedict update", sqlitedict()))
    if diskcache is not None:
        contenders.append(("diskcache set in transact", cache()))
    for name, (prepare, run) in contenders:
        times = []
        for _ in range(repeat):
            target = prepare()
            start = time.perf_counter()
            run(target)
            times.append(time.perf_counter() - start)
            close = getattr(target, "close", None) or getattr(target, "disconnect")
            close()
        results[name] = min(times)
    return results


# ---------------------------------------------------------------------------
# 2. Reads
# ---------------------------------------------------------------------------

def bench_reads(scratch, count, reads, repeat):
    path = scratch.path("read.db")
    store = SqliteStore(path, event_manager=EventManager())
    store.connect()
    items = small_items(count)
    store.multiset([key for key, _, _ in items],
                   [(io.BytesIO(data), metadata) for _, data, metadata in items])
    raw = sqlite3.connect(path, isolation_level=None)
    rng = random.Random(1)
    keys = [rng.choice(items)[0] for _ in range(reads)]
    loads = json.loads

    def store_get_read():
        for key in keys:
            value = store.get(key)
            value.data.read()
            value.metadata

    def raw_get_read():
        for key in keys:
            data, metadata = raw.execute(
                "SELECT data, metadata FROM store WHERE key = ?", (key,)).fetchone()
            io.BytesIO(data).read()
            loads(metadata)

    def store_get_data():
        for key in keys:
            store.get_data(key).read()

    def raw_data():
        for key in keys:
            data = raw.execute("SELECT data FROM store WHERE key = ?", (key,)).fetchone()[0]
            io.BytesIO(data).read()

    def store_get_metadata():
        for key in keys:
            store.get_metadata(key)

    def raw_metadata():
        for key in keys:
            loads(raw.execute("SELECT metadata FROM store WHERE key = ?", (key,)).fetchone()[0])

    def store_exists():
        for key in keys:
            store.exists(key)

    def raw_exists():
        for key in keys:
            raw.execute("SELECT 1 FROM store WHERE key = ?", (key,)).fetchone()

    rows = []
    for name, mine, theirs in (("get + read data + metadata", store_get_read, raw_get_read),
                               ("get_data + read", store_get_data, raw_data),
                               ("get_metadata", store_get_metadata, raw_metadata),
                               ("exists", store_exists, raw_exists)):
        rows.append((name, best(mine, repeat) / reads, best(theirs, repeat) / reads))
    raw.close()
    store.disconnect()
    return rows


# ---------------------------------------------------------------------------
# 3. Indexed queries
# ---------------------------------------------------------------------------

def bench_queries(scratch, sizes, queries, repeat):
    results = {}
    for index in ("dynamic", None):
        if index is None:
            queries = max(1, queries // 20)  # full scans: a few are enough
        for size in sizes:
            store = SqliteStore(scratch.path("query.db"), index=index,
                                event_manager=EventManager())
            store.connect()
            items = small_items(size)
            store.multiset([key for key, _, _ in items],
                           [(io.BytesIO(data), metadata) for _, data, metadata in items])
            rng = random.Random(2)
            groups = [rng.randrange(size // 10) for _ in range(queries)]

            def run():
                for group in groups:
                    found = list(store.query_keys(group=group))
                    assert len(found) == 10

            results[(index, size)] = best(run, repeat) / queries
            store.disconnect()
    return results


# ---------------------------------------------------------------------------
# 4. Large values, in subprocesses
# ---------------------------------------------------------------------------

CHILD = r"""
import io, os, resource, sys
sys.path.insert(0, {root!r})
from encore.events.event_manager import EventManager
from encore.storage.sqlite_store import SqliteStore
from encore.storage.tests.abstract_test import PatternFile

def status(field):
    try:
        with open('/proc/self/status') as stream:
            for line in stream:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None

def rusage_peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

def reset_peak():
    # Linux >= 4.0: writing 5 to clear_refs resets the peak (VmHWM).
    try:
        with open('/proc/self/clear_refs', 'w') as stream:
            stream.write('5')
        return True
    except OSError:
        return False

operation, db, path, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = SqliteStore(db, event_manager=EventManager())
store.connect()
store.set('warm-up', (io.BytesIO(b'x'), {{'n': 1}}))
store.to_bytes('warm-up')
baseline = status('VmRSS')
rusage_before = rusage_peak()
if baseline is None or not reset_peak():
    baseline = rusage_before
if operation == 'from_file':
    store.from_file('large', path)
elif operation == 'to_file':
    store.to_file('large', path)
elif operation == 'set_stream':
    store.set('streamed', (PatternFile(size), {{'kind': 'pattern'}}))
elif operation == 'set_metadata':
    store.set_metadata('large', {{'changed': True}})
elif operation == 'get_data':
    with store.get_data('large') as stream:
        while stream.read(1 << 20):
            pass
peak = status('VmHWM')
increase = (rusage_peak() if peak is None else peak) - baseline
rusage_increase = rusage_peak() - rusage_before
store.disconnect()
print(increase, rusage_increase)
"""


def run_child(operation, db, path, size):
    script = CHILD.format(root=ROOT)
    output = subprocess.run([sys.executable, "-c", script, operation, db, path, str(size)],
                            check=True, capture_output=True, text=True)
    increase, rusage_increase = output.stdout.strip().splitlines()[-1].split()
    return int(increase), int(rusage_increase)


def bench_large(scratch, size):
    from encore.storage.tests.abstract_test import PatternFile

    source = scratch.path("source.dat")
    with open(source, "wb") as stream:
        shutil.copyfileobj(PatternFile(size), stream, 1 << 20)
    db = scratch.path("large.db")
    results = []
    for operation, path in (("from_file", source), ("to_file", scratch.path("target.dat")),
                            ("get_data", ""), ("set_metadata", ""), ("set_stream", "")):
        start = time.perf_counter()
        increase = run_child(operation, db, path, size)
        results.append((operation, increase, time.perf_counter() - start))
    return results


# ---------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    arguments = parser.parse_args(argv)
    quick = arguments.quick
    keys = 2000 if quick else 20000
    repeat = 2 if quick else 3
    query_sizes = (1000, 10000) if quick else (10000, 100000)
    large = (32 << 20) if quick else (256 << 20)

    root = tempfile.mkdtemp(prefix="encore_bench_sqlite_")
    scratch = Scratch(root)
    try:
        print("SqliteStore benchmark (Python %s, SQLite %s)" % (
            sys.version.split()[0], sqlite3.sqlite_version))

        print("\n1. Bulk write: %d small keys, one transaction (best of %d)" % (keys, repeat))
        writes = bench_bulk_write(scratch, keys, repeat)
        raw = writes["raw sqlite3 executemany"]
        for name, seconds in writes.items():
            print("   %-30s %8.1f ms  %6.2fx raw sqlite3" % (name, seconds * 1e3, seconds / raw))
        print("   SqliteStore (dynamic index) is %.2fx raw sqlite3 filling the same index" % (
            writes["SqliteStore (dynamic index)"] / writes["raw sqlite3 + same index"]))
        for name in ("SqliteStore (index=None)", "SqliteStore (dynamic index)"):
            for peer in ("sqlitedict update", "diskcache set in transact"):
                if peer in writes:
                    print("   %s is %.2fx faster than %s" % (name, writes[peer] / writes[name], peer))

        reads = 20000 if not quick else 2000
        print("\n2. Reads of random keys among %d (per operation, best of %d)" % (keys, repeat))
        for name, mine, theirs in bench_reads(scratch, keys, reads, repeat):
            print("   %-28s store %6.2f us   raw select %6.2f us   ratio %5.2fx" % (
                name, mine * 1e6, theirs * 1e6, mine / theirs))

        print("\n3. query_keys(group=g), 10 matches (per query, best of %d)" % repeat)
        queries = bench_queries(scratch, query_sizes, 200 if not quick else 50, repeat)
        for index in ("dynamic", None):
            small, big = (queries[(index, size)] for size in query_sizes)
            print("   index=%-8s %6d keys %9.1f us   %6d keys %9.1f us   growth %6.2fx" % (
                index, query_sizes[0], small * 1e6, query_sizes[1], big * 1e6, big / small))

        print("\n4. A %d MiB value: peak RSS increase per operation (fresh process each)" % (
            large >> 20))
        print("   (VmHWM after a reset, minus VmRSS before; in brackets the rise of\n"
              "   ru_maxrss, which on Linux starts from the parent's peak inherited across exec)")
        for operation, (increase, rusage_increase), seconds in bench_large(scratch, large):
            print("   %-14s +%6.1f MiB  [ru_maxrss +%5.1f MiB]  (%.1f s)" % (
                operation, increase / 2 ** 20, rusage_increase / 2 ** 20, seconds))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
