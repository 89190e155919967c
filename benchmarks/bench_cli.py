"""Benchmark: the ``encore`` command against the same work done through the API.

Run with ``python benchmarks/bench_cli.py`` (``--quick`` for a smaller run).
Everything is measured side by side in one run, each pair alternating, the
best of several rounds reported with the ratio command / API.

1. **put** of a large file into an SQLite store: ``encore put KEY FILE``
   (with its progress display, standard error a pipe) against a Python
   process doing ``open_store(url).from_file(KEY, FILE)``.
2. **get -o** of that value: ``encore get KEY -o FILE`` (temporary file,
   fsync, rename) against ``store.to_file(KEY, FILE)`` in a Python process.
3. **cp** of many small keys between two SQLite stores: ``encore cp``
   against a Python process copying them with ``get``/``set`` in one
   transaction.
4. **Progress drawing**, in process: a ``ProgressManager`` stepping with a
   ``ProgressDisplay`` animating onto an in-memory stream, against the same
   steps with no display listening (cost per step).

Both sides of 1-3 start a Python interpreter, so start-up is in both.
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

from encore.events.api import EventManager, ProgressManager
from encore.storage import open_store
from encore.terminal.api import ProgressDisplay

PYTHON = sys.executable


def timed(argv, cwd):
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def best_pair(command, api, rounds, before=None):
    best_command = best_api = float("inf")
    for _ in range(rounds):
        if before:
            before()
        best_command = min(best_command, command())
        if before:
            before()
        best_api = min(best_api, api())
    return best_command, best_api


def report(name, command, api):
    print("{:<44} encore {:8.3f} s   API {:8.3f} s   ratio {:5.2f}".format(name, command, api, command / api))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    options = parser.parse_args()
    size = (32 if options.quick else 256) * 1024 * 1024
    keys = 300 if options.quick else 2000
    rounds = 3 if options.quick else 5
    work = tempfile.mkdtemp(prefix="encore-bench-cli-")
    try:
        big = os.path.join(work, "big.bin")
        with open(big, "wb") as stream:
            block = os.urandom(1024 * 1024)
            for _ in range(size // len(block)):
                stream.write(block)

        def fresh(name):
            def remove():
                for suffix in ("", "-wal", "-shm"):
                    try:
                        os.unlink(os.path.join(work, name + suffix))
                    except FileNotFoundError:
                        pass
            return remove

        cli = [PYTHON, "-m", "encore"]
        put = best_pair(
            lambda: timed(cli + ["--store", "put.db", "put", "big", "big.bin"], work),
            lambda: timed([PYTHON, "-c", "from encore.storage import open_store; "
                           "s = open_store('sqlite:///./put.db'); s.from_file('big', 'big.bin'); s.disconnect()"],
                          work),
            rounds, before=fresh("put.db"))
        report("put {} MiB file (sqlite)".format(size // 2 ** 20), *put)

        timed(cli + ["-q", "--store", "get.db", "put", "big", "big.bin"], work)
        get = best_pair(
            lambda: timed(cli + ["--store", "get.db", "get", "big", "-o", "out.bin"], work),
            lambda: timed([PYTHON, "-c", "from encore.storage import open_store; "
                           "s = open_store('sqlite:///./get.db'); s.to_file('big', 'out.bin'); s.disconnect()"],
                          work),
            rounds)
        report("get -o {} MiB value (sqlite)".format(size // 2 ** 20), *get)

        source = open_store("sqlite://" + os.path.join(work, "source.db"))
        with source.transaction("fill"):
            for number in range(keys):
                source.from_bytes("k/%05d" % number, os.urandom(1000))
        source.disconnect()
        copy_script = (
            "from encore.storage import open_store\n"
            "s = open_store('sqlite:///./source.db'); d = open_store('sqlite:///./copy.db')\n"
            "with d.transaction('cp'):\n"
            "    for key in sorted(s.glob('*')):\n"
            "        value = s.get(key); d.set(key, (value.data, value.metadata))\n"
            "s.disconnect(); d.disconnect()\n")
        copy = best_pair(
            lambda: timed(cli + ["cp", "source.db", "copy.db"], work),
            lambda: timed([PYTHON, "-c", copy_script], work),
            rounds, before=fresh("copy.db"))
        report("cp {} keys of 1000 B (sqlite -> sqlite)".format(keys), *copy)

        steps = 20000

        def stepping(with_display):
            events = EventManager()
            display = ProgressDisplay(events, io.StringIO(), animate=True) if with_display else None
            start = time.perf_counter()
            with ProgressManager(events, message="bench", steps=steps, units="bytes") as progress:
                for step in range(1, steps + 1):
                    progress.step(step=step)
            elapsed = time.perf_counter() - start
            if display is not None:
                display.disconnect()
            return elapsed / steps

        drawing = best_pair(lambda: stepping(True), lambda: stepping(False), rounds)
        print("{:<44} drawn {:7.2f} us  none {:7.2f} us  ratio {:5.2f}".format(
            "progress step (animated display vs none)", drawing[0] * 1e6, drawing[1] * 1e6,
            drawing[0] / drawing[1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
