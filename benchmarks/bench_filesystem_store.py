"""Benchmark: FileSystemStore against raw file operations.

Run with ``python benchmarks/bench_filesystem_store.py [--quick]``.

Baselines are the least a durable file store has to do:

* set: write the bytes to a temporary file in the target directory, fsync
  it and rename it over the target (one file, no directory fsync);
* get + read: open the data file, read it whole, close it.

The store additionally escapes the key, writes and syncs a second file (the
JSON metadata), syncs the directory, stamps times and asks the event manager
whether anyone listens; ``get`` reads and parses the metadata and stats the
files.  Each scenario is timed for both in the same run (median of several
repeats, interleaved so that disk hiccups hit both); the table gives
milliseconds (set) or microseconds (get) per operation and the store/raw
ratio.  Targets: set within 2x, get + read within 2x.  Two informative rows
time LockingFileSystemStore, which also takes a file lock per operation and
appends to its change log.

Then a 256 MiB value goes through ``from_file`` and ``to_file`` in a child
process, which reports how much its peak resident memory grew (target: less
than 32 MiB, i.e. the value streams in buffers).  The peak is the process's
own high-water mark (``VmHWM`` in ``/proc/self/status``) where available,
else ``resource.getrusage().ru_maxrss`` (which on Linux starts at the
parent's peak and so can hide a small growth).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from encore.events.event_manager import EventManager
from encore.storage.filesystem_store import FileSystemStore, init_shared_store
from encore.storage.locking_filesystem_store import LockingFileSystemStore

METADATA = {"type": "egg", "name": "encore", "version": "0.9.0", "size": 100}


def _raw_set(directory, name, payload):
    fd, temporary = tempfile.mkstemp(dir=directory)
    with open(fd, "wb") as stream:
        stream.write(payload)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, os.path.join(directory, name))


def _raw_get(path):
    with open(path, "rb") as stream:
        return stream.read()


def _timed(function, number):
    started = time.perf_counter()
    for index in range(number):
        function(index)
    return (time.perf_counter() - started) / number


def _compare(store_op, raw_op, number, repeat):
    """Median seconds per call of each, measured in alternation."""
    store_times, raw_times = [], []
    for _ in range(repeat):
        raw_times.append(_timed(raw_op, number))
        store_times.append(_timed(store_op, number))
    return statistics.median(store_times), statistics.median(raw_times)


def bench_set_and_get(base, quick):
    rows = []
    sizes = [1024, 1 << 20] if quick else [1024, 64 << 10, 1 << 20]
    for size in sizes:
        payload = os.urandom(size)
        store_root = os.path.join(base, "store%d" % size)
        raw_root = os.path.join(base, "raw%d" % size)
        init_shared_store(store_root)
        os.makedirs(raw_root)
        store = FileSystemStore(store_root, event_manager=EventManager())
        keys = ["key%d" % i for i in range(20)]
        for key in keys:
            store.set(key, (io.BytesIO(payload), METADATA))
            _raw_set(raw_root, key, payload)
        number = 20 if size < (1 << 20) else 10
        if quick:
            number //= 2

        def store_set(index):
            store.set(keys[index % len(keys)], (io.BytesIO(payload), METADATA))

        def raw_set(index):
            _raw_set(raw_root, keys[index % len(keys)], payload)

        store_time, raw_time = _compare(store_set, raw_set, number, 5)
        rows.append(("set", size, store_time * 1e3, raw_time * 1e3, "ms"))

        def store_set_new_metadata(index):
            metadata = dict(METADATA, serial=index)
            store.set(keys[index % len(keys)], (io.BytesIO(payload), metadata))

        store_time, raw_time = _compare(store_set_new_metadata, raw_set, number, 5)
        rows.append(("set, new metadata", size, store_time * 1e3, raw_time * 1e3, "ms"))

        def store_get(index):
            with store.get(keys[index % len(keys)]) as stream:
                stream.read()

        def raw_get(index):
            _raw_get(os.path.join(raw_root, keys[index % len(keys)]))

        number = 2000 if size < (1 << 20) else 100
        if quick:
            number //= 4
        store_time, raw_time = _compare(store_get, raw_get, number, 7)
        rows.append(("get + read", size, store_time * 1e6, raw_time * 1e6, "us"))

        def store_get_data(index):
            with store.get_data(keys[index % len(keys)]) as stream:
                stream.read()

        store_time, raw_time = _compare(store_get_data, raw_get, number, 7)
        rows.append(("get_data + read", size, store_time * 1e6, raw_time * 1e6, "us"))
    return rows


def bench_locking(base, quick):
    """LockingFileSystemStore (per-key file locks and the change log) on 1 KiB values."""
    payload = os.urandom(1024)
    store_root, raw_root = os.path.join(base, "locking"), os.path.join(base, "locking_raw")
    init_shared_store(store_root)
    os.makedirs(raw_root)
    store = LockingFileSystemStore(store_root, remote_event_poll_interval=None,
                                   event_manager=EventManager())
    keys = ["key%d" % i for i in range(20)]
    for key in keys:
        store.set(key, (io.BytesIO(payload), METADATA))
        _raw_set(raw_root, key, payload)
    rows = []

    def store_set(index):
        store.set(keys[index % len(keys)], (io.BytesIO(payload), dict(METADATA, serial=index)))

    def raw_set(index):
        _raw_set(raw_root, keys[index % len(keys)], payload)

    store_time, raw_time = _compare(store_set, raw_set, 10 if quick else 20, 5)
    rows.append(("locking set", 1024, store_time * 1e3, raw_time * 1e3, "ms"))

    def store_get(index):
        with store.get(keys[index % len(keys)]) as stream:
            stream.read()

    def raw_get(index):
        _raw_get(os.path.join(raw_root, keys[index % len(keys)]))

    store_time, raw_time = _compare(store_get, raw_get, 500 if quick else 2000, 7)
    rows.append(("locking get + read", 1024, store_time * 1e6, raw_time * 1e6, "us"))
    store.disconnect()
    return rows


_CHILD = r"""
import json, os, resource, sys
from encore.events.event_manager import EventManager
from encore.storage.filesystem_store import FileSystemStore


def peak_rss():
    # ru_maxrss survives exec on Linux (it starts at the parent's peak), so
    # prefer this process's own high-water mark where /proc has it.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


root, source, target = sys.argv[1:4]
store = FileSystemStore(root, event_manager=EventManager())
store.from_bytes("warm-up", b"x" * 4096)
store.to_file("warm-up", target)
before = peak_rss()
store.from_file("large", source)
after_write = peak_rss()
store.to_file("large", target)
after_read = peak_rss()
print(json.dumps({"before": before, "after_write": after_write, "after_read": after_read}))
"""


def bench_large(base, size):
    root = os.path.join(base, "large_store")
    init_shared_store(root)
    source = os.path.join(base, "source.bin")
    target = os.path.join(base, "target.bin")
    block = os.urandom(1 << 20)
    with open(source, "wb") as stream:
        for _ in range(size >> 20):
            stream.write(block)
    started = time.perf_counter()
    output = subprocess.run([sys.executable, "-c", _CHILD, root, source, target],
                            check=True, capture_output=True, text=True).stdout
    elapsed = time.perf_counter() - started
    figures = json.loads(output)
    if os.path.getsize(target) != size:
        raise SystemExit("to_file wrote {} bytes, expected {}".format(os.path.getsize(target), size))
    return figures, elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 64 MiB large value")
    parser.add_argument("--dir", help="where to write (default: a temporary directory)")
    options = parser.parse_args()
    base = tempfile.mkdtemp(prefix="bench_fs_", dir=options.dir)
    try:
        print("FileSystemStore vs raw file operations ({})".format(base))
        print("{:<19} {:>9} {:>12} {:>12} {:>8}".format("operation", "size", "store", "raw", "ratio"))
        rows = bench_set_and_get(base, options.quick) + bench_locking(base, options.quick)
        for name, size, store_value, raw_value, unit in rows:
            print("{:<19} {:>9} {:>9.3f} {:<2} {:>9.3f} {:<2} {:>7.2f}x".format(
                name, size, store_value, unit, raw_value, unit, store_value / raw_value))
        size = (64 if options.quick else 256) << 20
        figures, elapsed = bench_large(base, size)
        growth = max(figures["after_write"], figures["after_read"]) - figures["before"]
        print("{} MiB through from_file + to_file in {:.2f} s: peak RSS {:.2f} MiB before, "
              "grew by {:.2f} MiB (target < 32 MiB)".format(
                  size >> 20, elapsed, figures["before"] / 2**20, growth / 2**20))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
