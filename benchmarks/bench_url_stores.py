"""Benchmark: the store server and DynamicURLStore against their floors.

Run with ``python benchmarks/bench_url_stores.py`` (``--quick`` for a smaller
run; needs ``requests``).  Everything is measured side by side in one run,
on 127.0.0.1, best of a few repeats.

1. **Small values, requests per second** -- a 100-byte value:

   * ``DynamicURLStore.to_bytes`` / ``set_data`` / ``set`` / ``get_metadata``
     against ``encore.storage.server.serve`` over a ``DictMemoryStore``;
   * the floor: a ``requests.Session`` making the same ``GET`` / ``PUT``
     calls to the same server (what the client adds is the difference);
   * a plain ``http.server`` (``ThreadingHTTPServer`` with
     ``SimpleHTTPRequestHandler``) serving the same bytes from a file, read
     with the same ``requests.Session`` (what the server adds).

2. **A 256 MiB value up and down** -- ``set_data`` from a file and
   ``to_file``, through the server over a file system store, an SQLite
   store and a dictionary store.  The server runs in its own process, and
   each client operation in a fresh process; each reports how far its peak
   resident memory (``VmHWM``, reset just before the operation) rose above
   its resident memory just before.  Target, for every backend that
   streams: both rises under 32 MiB.  (A dictionary store holds its values
   in memory by definition: its server rise is the value.)
"""
from __future__ import annotations

import argparse
import functools
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import requests  # noqa: E402

from encore.events.event_manager import EventManager  # noqa: E402
from encore.storage.dict_memory_store import DictMemoryStore  # noqa: E402
from encore.storage.dynamic_url_store import DynamicURLStore  # noqa: E402
from encore.storage.server import serve  # noqa: E402

SMALL = b"x" * 100


def best_rate(operation, count, repeats=5):
    """Requests per second of the best of ``repeats`` runs of ``count``
    (after a warm-up of ``count // 4``)."""
    for _ in range(count // 4):
        operation()
    best = None
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(count):
            operation()
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return count / best


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def bench_small(count, scratch):
    backing = DictMemoryStore(event_manager=EventManager())
    backing.connect()
    backing.set("k", (io.BytesIO(SMALL), {"a": 1}))
    results = []
    with serve(backing) as server:
        store = DynamicURLStore(server.url, server.query_url, event_manager=EventManager())
        store.connect()
        session = requests.Session()
        data_url = server.url + "/k/data"
        metadata_url = server.url + "/k/metadata"
        store.to_bytes("k")
        session.get(data_url).content
        results.append(("GET data", best_rate(lambda: store.to_bytes("k"), count),
                        best_rate(lambda: session.get(data_url).content, count)))
        results.append(("GET metadata", best_rate(lambda: store.get_metadata("k"), count),
                        best_rate(lambda: session.get(metadata_url).json(), count)))
        results.append(("PUT data", best_rate(lambda: store.set_data("k", io.BytesIO(SMALL)), count),
                        best_rate(lambda: session.put(data_url, data=SMALL).content, count)))
        def raw_set():
            # The one-request protocol: metadata then data in one body.
            session.put(data_url, data=b'{"a": 1}' + SMALL,
                        headers={"Encore-Metadata-Length": "8"}).content
        results.append(("set (data+metadata)",
                        best_rate(lambda: store.set("k", (io.BytesIO(SMALL), {"a": 1})), count),
                        best_rate(raw_set, count)))
        store.disconnect()
        session.close()
    # A plain http.server with the same bytes in a file.
    directory = os.path.join(scratch, "plain")
    os.makedirs(directory)
    with open(os.path.join(directory, "k"), "wb") as stream:
        stream.write(SMALL)
    plain = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=directory))
    thread = threading.Thread(target=plain.serve_forever, daemon=True)
    thread.start()
    try:
        session = requests.Session()
        url = "http://127.0.0.1:{}/k".format(plain.server_address[1])
        assert session.get(url).content == SMALL
        plain_rate = best_rate(lambda: session.get(url).content, count)
        session.close()
    finally:
        plain.shutdown()
        plain.server_close()
    return results, plain_rate


SERVER_CHILD = r"""
import io, os, sys
sys.path.insert(0, {root!r})
from encore.events.event_manager import EventManager
from encore.storage.server import serve

def status(name):
    with open('/proc/self/status') as stream:
        for line in stream:
            if line.startswith(name + ':'):
                return int(line.split()[1]) * 1024

kind, location = sys.argv[1], sys.argv[2]
if kind == 'filesystem':
    from encore.storage.filesystem_store import FileSystemStore, init_shared_store
    init_shared_store(location)
    store = FileSystemStore(location, event_manager=EventManager())
elif kind == 'sqlite':
    from encore.storage.sqlite_store import SqliteStore
    store = SqliteStore(location, event_manager=EventManager())
else:
    from encore.storage.dict_memory_store import DictMemoryStore
    store = DictMemoryStore(event_manager=EventManager())
store.connect()
server = serve(store)
print(server.url, flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == 'reset':
        with open('/proc/self/clear_refs', 'w') as stream:
            stream.write('5')
        baseline = status('VmRSS')
        print('ok', flush=True)
    elif command == 'report':
        print(status('VmHWM') - baseline, flush=True)
    elif command == 'delete':
        store.delete('big')
        print('ok', flush=True)
server.shutdown()
"""

CLIENT_CHILD = r"""
import io, os, sys, time
sys.path.insert(0, {root!r})
from encore.events.event_manager import EventManager
from encore.storage.dynamic_url_store import DynamicURLStore

def status(name):
    with open('/proc/self/status') as stream:
        for line in stream:
            if line.startswith(name + ':'):
                return int(line.split()[1]) * 1024

operation, url, path = sys.argv[1], sys.argv[2], sys.argv[3]
store = DynamicURLStore(url, url + '/query', event_manager=EventManager())
store.connect()
store.set_data('warm-up', io.BytesIO(b'x'))
store.to_bytes('warm-up')
with open('/proc/self/clear_refs', 'w') as stream:
    stream.write('5')
baseline = status('VmRSS')
started = time.perf_counter()
if operation == 'upload':
    with open(path, 'rb') as stream:
        store.set_data('big', stream)
else:
    store.to_file('big', path)
elapsed = time.perf_counter() - started
print(status('VmHWM') - baseline, elapsed)
"""


def bench_large(scratch, size):
    source = os.path.join(scratch, "source.bin")
    with open(source, "wb") as stream:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            stream.write(block)
    results = []
    for kind in ("filesystem", "sqlite", "dict"):
        location = os.path.join(scratch, kind + ("" if kind != "sqlite" else ".db"))
        if kind == "filesystem":
            os.makedirs(location)  # the child marks it as a store
        server = subprocess.Popen([sys.executable, "-c", SERVER_CHILD.format(root=ROOT), kind, location],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            url = server.stdout.readline().strip()
            for operation, path in (("upload", source), ("download", os.path.join(scratch, "copy.bin"))):
                server.stdin.write("reset\n")
                server.stdin.flush()
                server.stdout.readline()
                output = subprocess.run([sys.executable, "-c", CLIENT_CHILD.format(root=ROOT),
                                         operation, url, path],
                                        check=True, capture_output=True, text=True)
                client_rise, seconds = output.stdout.split()
                server.stdin.write("report\n")
                server.stdin.flush()
                server_rise = int(server.stdout.readline())
                results.append((kind, operation, float(seconds), int(client_rise), server_rise))
            with open(os.path.join(scratch, "copy.bin"), "rb") as copy, open(source, "rb") as original:
                while True:
                    left, right = copy.read(1 << 20), original.read(1 << 20)
                    if left != right:
                        raise AssertionError("the downloaded copy differs")
                    if not left:
                        break
            os.unlink(os.path.join(scratch, "copy.bin"))
        finally:
            server.stdin.close()
            server.wait(60)
        if os.path.isdir(location):
            shutil.rmtree(location, ignore_errors=True)
        elif os.path.exists(location):
            os.unlink(location)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, a 32 MiB value")
    arguments = parser.parse_args()
    count = 300 if arguments.quick else 2000
    size = (32 if arguments.quick else 256) << 20
    scratch = tempfile.mkdtemp(prefix="bench-url-")
    try:
        print("1. Small values (100 bytes), requests per second, best of 5 x {}".format(count))
        results, plain_rate = bench_small(count, scratch)
        print("   {:<22} {:>12} {:>14} {:>8}".format("operation", "DynamicURL", "raw requests", "ratio"))
        for name, store_rate, raw_rate in results:
            print("   {:<22} {:>10.0f}/s {:>12.0f}/s {:>7.2f}x".format(
                name, store_rate, raw_rate, raw_rate / store_rate))
        get_rate = results[0][2]
        print("   plain http.server GET of the same bytes (requests.Session): {:.0f}/s "
              "({:.2f}x our server's raw GET rate)".format(plain_rate, plain_rate / get_rate))
        print()
        print("2. A {} MiB value, up (set_data from a file) and down (to_file)".format(size >> 20))
        print("   {:<11} {:<9} {:>8} {:>14} {:>14}".format("backend", "direction", "seconds",
                                                         "client rise", "server rise"))
        for kind, operation, seconds, client_rise, server_rise in bench_large(scratch, size):
            print("   {:<11} {:<9} {:>8.2f} {:>10.1f} MiB {:>10.1f} MiB".format(
                kind, operation, seconds, client_rise / 2 ** 20, server_rise / 2 ** 20))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
