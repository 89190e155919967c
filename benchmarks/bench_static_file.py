"""Benchmark: StaticURLStore over ``file:`` URLs, its own handler against
:mod:`urllib`'s.

Run with ``python benchmarks/bench_static_file.py`` (``--quick`` for a
smaller run).  Side by side in one run, best of a few repeats:

* ``to_bytes`` of a 100-byte value and of a 16 MiB value through the
  store's ``file:`` handler (open, fstat, confinement check of the opened
  descriptor);
* the same store with its opener rebuilt on :mod:`urllib`'s stock
  ``FileHandler`` (stat, then open: the racy path it replaces);
* the floor: ``open(path, 'rb').read()``.

Reported as operations per second and as ratios to the stock handler.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from encore.events.event_manager import EventManager  # noqa: E402
from encore.storage.static_url_store import KeepAliveHTTPHandler, StaticURLStore  # noqa: E402


def best_rate(operation, count, repeats=5):
    """Operations per second of the best of ``repeats`` runs of ``count``."""
    for _ in range(max(1, count // 4)):
        operation()
    best = None
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(count):
            operation()
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return count / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    arguments = parser.parse_args()
    small_count, large_count = (500, 5) if arguments.quick else (3000, 20)
    scratch = tempfile.mkdtemp(prefix="encore-bench-static-")
    try:
        os.mkdir(os.path.join(scratch, "data"))
        sizes = {"small": 100, "large": 16 << 20}
        for name, size in sizes.items():
            with open(os.path.join(scratch, "data", name), "wb") as stream:
                stream.write(os.urandom(size))
        with open(os.path.join(scratch, "index.json"), "w") as stream:
            json.dump({name: {} for name in sizes}, stream)
        root = urllib.request.pathname2url(scratch) + "/"
        own = StaticURLStore("file://" + root, "data/", "index.json", poll=0, event_manager=EventManager())
        own.connect()
        stock = StaticURLStore("file://" + root, "data/", "index.json", poll=0, event_manager=EventManager())
        stock.connect()
        stock._opener = urllib.request.build_opener(KeepAliveHTTPHandler())  # urllib's FileHandler
        print("StaticURLStore.to_bytes over file: (operations per second, best of 5)")
        for name, count in (("small", small_count), ("large", large_count)):
            path = os.path.join(scratch, "data", name)

            def floor(path=path):
                with open(path, "rb") as stream:
                    return stream.read()

            rates = {
                "own handler": best_rate(lambda name=name: own.to_bytes(name), count),
                "urllib FileHandler": best_rate(lambda name=name: stock.to_bytes(name), count),
                "open().read() floor": best_rate(floor, count),
            }
            reference = rates["urllib FileHandler"]
            print("  {} ({} bytes):".format(name, sizes[name]))
            for label, rate in rates.items():
                print("    {:<22} {:>10.0f}/s  x{:.2f} of urllib's".format(label, rate, rate / reference))
        own.disconnect()
        stock.disconnect()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
