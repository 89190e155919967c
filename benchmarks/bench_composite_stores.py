"""Benchmark: the composite stores against direct use of their children.

Run with ``python benchmarks/bench_composite_stores.py`` (``--quick`` for a
smaller run).  Everything is measured side by side in one run.

1. **Read overhead** -- ``get`` then reading the data (1 KiB) through a
   composite, against doing by hand what the composite has to do on its
   child stores, for dict, sqlite and filesystem children:

   * :class:`JoinedStore` of 3 stores, key in the last store: against
     ``exists`` on the first two stores plus ``get`` on the third (target:
     ratio at most 1.5); and, for information, a key in the first store
     against ``get`` on that store alone (what the ``exists`` probe costs);
   * :class:`MountedStore`, key under the mount point held only by the
     backing store: against ``exists`` on the mount store plus ``get`` on
     the backing store (target: at most 1.5); and a key held by the mount
     store, against ``exists`` plus ``get`` on the mount store;
   * :class:`SimpleAuthStore` (for information): against ``get`` on the
     wrapped store plus reading the user record, which the default
     ``check_permissions`` does on every call;
   * for information, writes of a 1 KiB value (``set``, ``update_metadata``)
     through each composite against the same write on the child that
     receives it.

   Batches of the composite and the baseline alternate (each batch at least
   20 ms); the best time per operation of each is reported with their ratio.

2. **Large values** -- a 256 MiB value through each composite over sqlite
   and filesystem children: ``set`` of a generated stream, ``get`` and
   reading it in 1 MiB buffers, and copy-on-write (``update_metadata`` of a
   key held by a lower store; for the authenticating store, ``set_data``
   over an existing key).  Each operation runs in a fresh subprocess that
   reports how far its peak resident memory rose above its resident memory
   just before the operation (target: < 32 MiB).  On Linux the peak is
   ``VmHWM``, reset just before the operation; otherwise
   ``resource.getrusage().ru_maxrss``.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from encore.events.event_manager import EventManager  # noqa: E402
from encore.storage.dict_memory_store import DictMemoryStore  # noqa: E402
from encore.storage.filesystem_store import FileSystemStore, init_shared_store  # noqa: E402
from encore.storage.joined_store import JoinedStore  # noqa: E402
from encore.storage.mounted_store import MountedStore  # noqa: E402
from encore.storage.simple_auth_store import (  # noqa: E402
    SimpleAuthStore,
    create_user_record,
    make_pbkdf2_encoder,
)
from encore.storage.sqlite_store import SqliteStore  # noqa: E402

KINDS = ("dict", "sqlite", "filesystem")
VALUE = bytes(range(256)) * 4      # 1 KiB
METADATA = {"kind": "bench", "n": 1, "tags": ["a", "b"]}


def make_child(kind, directory, name, event_manager):
    if kind == "dict":
        store = DictMemoryStore(event_manager=event_manager)
    elif kind == "sqlite":
        store = SqliteStore(os.path.join(directory, name + ".db"), event_manager=event_manager)
    else:
        path = os.path.join(directory, name)
        os.mkdir(path)
        init_shared_store(path)
        store = FileSystemStore(path, event_manager=event_manager)
    store.connect()
    return store


def read_value(value):
    stream = value.data
    try:
        while stream.read(1 << 20):
            pass
    finally:
        stream.close()


def compare(composite_op, baseline_op, number, repeat):
    """Best seconds per call of each over ``repeat`` alternating batches.

    A batch runs at least ``number`` calls and at least 20 ms, so that a
    sub-microsecond operation is not lost in timer and scheduling noise;
    the best batch is kept (as :mod:`timeit` advises on a busy machine).
    """
    sizes = []
    for op in (composite_op, baseline_op):
        calls = number
        while True:
            start = time.perf_counter()
            for _ in range(calls):
                op()
            if time.perf_counter() - start >= 0.02:
                break
            calls *= 2
        sizes.append(calls)
    timings = ([], [])
    for _ in range(repeat):
        for index, op in enumerate((composite_op, baseline_op)):
            calls = sizes[index]
            start = time.perf_counter()
            for _ in range(calls):
                op()
            timings[index].append((time.perf_counter() - start) / calls)
    return min(timings[0]), min(timings[1])


def report(label, composite, baseline, target=None):
    ratio = composite / baseline
    verdict = ""
    if target is not None:
        verdict = "  (target <= {:.1f}: {})".format(target, "ok" if ratio <= target else "MISSED")
    print("  {:<58} {:8.1f} us  vs {:8.1f} us   ratio {:5.2f}{}".format(
        label, composite * 1e6, baseline * 1e6, ratio, verdict))
    return ratio


def bench_reads(directory, number, repeat):
    print("1. get + read of a 1 KiB value: composite vs the child calls it needs "
          "(best of {} batches of >= {} calls and >= 20 ms)".format(repeat, number))
    ratios = {}
    for kind in KINDS:
        print(" children: {}".format(kind))
        root = os.path.join(directory, kind)
        os.mkdir(root)
        manager = EventManager()
        a, b, c = (make_child(kind, root, name, manager) for name in ("a", "b", "c"))
        c.set("k", (io.BytesIO(VALUE), METADATA))
        joined = JoinedStore([a, b, c], event_manager=manager)

        def joined_op():
            read_value(joined.get("k"))

        def joined_base():
            a.exists("k")
            b.exists("k")
            read_value(c.get("k"))

        ratios[("joined", kind)] = report(
            "JoinedStore(3), key in the last store", *compare(joined_op, joined_base, number, repeat), 1.5)

        a.set("first", (io.BytesIO(VALUE), METADATA))

        def joined_first():
            read_value(joined.get("first"))

        def first_get():
            read_value(a.get("first"))

        report("JoinedStore(3), key in the first store (vs get alone)",
               *compare(joined_first, first_get, number, repeat))

        mount, backing = make_child(kind, root, "mount", manager), make_child(kind, root, "backing", manager)
        backing.set("cache/k", (io.BytesIO(VALUE), METADATA))
        mount.set("m", (io.BytesIO(VALUE), METADATA))
        mounted = MountedStore("cache/", mount, backing, event_manager=manager)

        def mounted_op():
            read_value(mounted.get("cache/k"))

        def mounted_base():
            mount.exists("k")
            read_value(backing.get("cache/k"))

        ratios[("mounted", kind)] = report(
            "MountedStore, key only in the backing store", *compare(mounted_op, mounted_base, number, repeat), 1.5)

        def mounted_hit():
            read_value(mounted.get("cache/m"))

        def mount_get():
            mount.exists("m")
            read_value(mount.get("m"))

        ratios[("mounted-hit", kind)] = report(
            "MountedStore, key in the mount store", *compare(mounted_hit, mount_get, number, repeat), 1.5)

        inner = make_child(kind, root, "inner", manager)
        encoder = make_pbkdf2_encoder(b"benchmark salt!!", iterations=1000)
        create_user_record(inner, "user", "password", encoder)
        inner.set("k", (io.BytesIO(VALUE), METADATA))
        auth = SimpleAuthStore(inner, encoder, event_manager=manager)
        auth.connect({"username": "user", "password": "password"})

        def auth_op():
            read_value(auth.get("k"))

        def auth_base():
            inner.to_bytes(".user_user")
            read_value(inner.get("k"))

        report("SimpleAuthStore (record re-read per call)", *compare(auth_op, auth_base, number, repeat))

        def write(store, key):
            return lambda: store.set(key, (io.BytesIO(VALUE), METADATA))

        write_number = max(10, number // 20) if kind != "dict" else number
        report("write: JoinedStore(3).set vs set on stores[0]",
               *compare(write(joined, "w"), write(a, "w"), write_number, repeat))
        report("write: JoinedStore(3).update_metadata vs on stores[0]",
               *compare(lambda: joined.update_metadata("w", {"u": 1}),
                        lambda: a.update_metadata("w", {"u": 1}), write_number, repeat))
        report("write: MountedStore.set vs set on the mount store",
               *compare(write(mounted, "cache/w"), write(mount, "w"), write_number, repeat))
        report("write: SimpleAuthStore.set vs set on the wrapped store",
               *compare(write(auth, "w"), write(inner, "w"), write_number, repeat))
        for store in (auth, joined, mounted, a, b, c, mount, backing, inner):
            store.disconnect()
    return ratios


# ---------------------------------------------------------------------------
# 2. Large values, in subprocesses
# ---------------------------------------------------------------------------

CHILD = r"""
import io, os, resource, sys
sys.path.insert(0, {root!r})
from encore.events.event_manager import EventManager
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.filesystem_store import FileSystemStore, init_shared_store
from encore.storage.joined_store import JoinedStore
from encore.storage.mounted_store import MountedStore
from encore.storage.simple_auth_store import SimpleAuthStore, create_user_record, make_encoder
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
    scale = 1 if sys.platform == 'darwin' else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

def reset_peak():
    try:
        with open('/proc/self/clear_refs', 'w') as stream:
            stream.write('5')
        return True
    except OSError:
        return False

def child(kind, directory, name, manager):
    if kind == 'sqlite':
        store = SqliteStore(os.path.join(directory, name + '.db'), event_manager=manager)
    else:
        path = os.path.join(directory, name)
        os.mkdir(path)
        init_shared_store(path)
        store = FileSystemStore(path, event_manager=manager)
    store.connect()
    return store

composite, kind, operation, directory, size = sys.argv[1:6]
size = int(size)
manager = EventManager()
if composite == 'joined':
    lower = [child(kind, directory, n, manager) for n in ('a', 'b', 'c')]
    store = JoinedStore(lower, event_manager=manager)
    holder, key = lower[2], 'large'
elif composite == 'mounted':
    mount, backing = child(kind, directory, 'mount', manager), child(kind, directory, 'backing', manager)
    store = MountedStore('cache/', mount, backing, event_manager=manager)
    holder, key = backing, 'cache/large'
else:
    inner = child(kind, directory, 'inner', manager)
    encoder = make_encoder(b'salt')
    create_user_record(inner, 'user', 'pw', encoder)
    store = SimpleAuthStore(inner, encoder, event_manager=manager)
    store.connect({{'username': 'user', 'password': 'pw'}})
    holder, key = inner, 'large'
if operation != 'set':
    holder.set(key, (PatternFile(size), {{'big': True}}))
warm = 'cache/warm' if composite == 'mounted' else 'warm'
store.set(warm, (io.BytesIO(b'x'), {{'n': 1}}))
store.to_bytes(warm)
store.update_metadata(warm, {{'m': 2}})
baseline = status('VmRSS')
rusage_before = rusage_peak()
if baseline is None or not reset_peak():
    baseline = rusage_before
if operation == 'set':
    store.set(key, (PatternFile(size), {{'big': True}}))
elif operation == 'get':
    value = store.get(key)
    with value.data as stream:
        total = 0
        while True:
            chunk = stream.read(1 << 20)
            if not chunk:
                break
            total += len(chunk)
    assert total == size, total
elif operation == 'cow':
    if composite == 'auth':
        store.set_data(key, PatternFile(size))
    else:
        store.update_metadata(key, {{'copied': True}})
peak = status('VmHWM')
increase = (rusage_peak() if peak is None else peak) - baseline
print(increase)
"""

OPERATIONS = (("set", "set (streamed)"), ("get", "get + read"), ("cow", "copy-on-write"))


def run_child(composite, kind, operation, directory, size):
    script = CHILD.format(root=ROOT)
    output = subprocess.run(
        [sys.executable, "-c", script, composite, kind, operation, directory, str(size)],
        check=True, capture_output=True, text=True)
    return int(output.stdout.strip().splitlines()[-1])


def bench_large(directory, size):
    print("2. {} MiB through each composite: rise of peak RSS above RSS before the "
          "operation (target < 32 MiB)".format(size >> 20))
    worst = 0
    for composite in ("joined", "mounted", "auth"):
        for kind in ("sqlite", "filesystem"):
            cells = []
            for operation, label in OPERATIONS:
                scratch = tempfile.mkdtemp(dir=directory)
                try:
                    start = time.perf_counter()
                    increase = run_child(composite, kind, operation, scratch, size)
                    elapsed = time.perf_counter() - start
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
                worst = max(worst, increase)
                if operation == "cow" and composite == "auth":
                    label = "set_data"
                cells.append("{} {:5.1f} MiB ({:4.1f} s)".format(label, increase / 2**20, elapsed))
            print("  {:<8} over {:<10}: {}".format(composite, kind, ";  ".join(cells)))
    verdict = "ok" if worst < (32 << 20) else "MISSED"
    print("  worst rise: {:.1f} MiB ({})".format(worst / 2**20, verdict))
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations, 64 MiB values")
    args = parser.parse_args(argv)
    number, repeat, size = (500, 5, 64 << 20) if args.quick else (2000, 9, 256 << 20)
    directory = tempfile.mkdtemp(prefix="encore_bench_composite_")
    try:
        print("Python {} on {}".format(sys.version.split()[0], sys.platform))
        bench_reads(directory, number, repeat)
        print()
        bench_large(directory, size)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
