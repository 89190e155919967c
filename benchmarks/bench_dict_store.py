"""Benchmark: DictMemoryStore against a plain dictionary of (bytes, dict).

Run with ``python benchmarks/bench_dict_store.py``.  The baseline is the
least any in-memory store must do for the same operation:

* set: read the caller's stream (``BytesIO.read()``) and store the bytes with
  a copy of the metadata dict (the caller may change it afterwards);
* get + read: look the key up, read a fresh ``BytesIO`` over the bytes and
  copy the metadata (the caller may change it).

The store additionally checks its arguments (key type, stream, JSON
metadata, deep copy), stamps times, locks, supports rollback and asks the
event manager whether anyone listens.  Every scenario is timed for both in
the same run (best of several repeats); the table gives microseconds per
operation and the store/baseline ratio.  Targets: set within 10x, get + read
within 3x.
"""
from __future__ import annotations

import argparse
import io
import timeit

from encore.events.event_manager import EventManager
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import StoreSetEvent, StoreUpdateEvent

FLAT_METADATA = {"type": "egg", "name": "encore", "version": "0.9.0", "size": 100}
NESTED_METADATA = {"name": "encore", "tags": ["a", "b"], "deps": {"python": ">=3.10"}}
KEYS = ["key%d" % i for i in range(100)]


def _measure(statement, number, repeat):
    """Best time per call in microseconds."""
    timer = timeit.Timer(statement)
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def _scenarios(size, metadata, listened):
    manager = EventManager()
    if listened:
        manager.connect(StoreSetEvent, lambda event: None)
        manager.connect(StoreUpdateEvent, lambda event: None)
    store = DictMemoryStore(event_manager=manager)
    store.connect()
    plain = {}
    payload = b"x" * size
    for key in KEYS:
        store.set(key, (io.BytesIO(payload), metadata))
        plain[key] = (payload, dict(metadata))
    counter = [0]
    BytesIO = io.BytesIO

    def next_key():
        counter[0] = (counter[0] + 1) % len(KEYS)
        return KEYS[counter[0]]

    def store_set():
        store.set(next_key(), (BytesIO(payload), metadata))

    def plain_set():
        plain[next_key()] = (BytesIO(payload).read(), dict(metadata))

    def store_get_read():
        value = store.get(next_key())
        value.data.read()
        value.metadata

    def plain_get_read():
        data, md = plain[next_key()]
        BytesIO(data).read()
        dict(md)

    def store_get_read_data():
        store.get(next_key()).data.read()

    def plain_get_read_data():
        data, md = plain[next_key()]
        BytesIO(data).read()
        dict(md)

    def store_get_data():
        store.get_data(next_key()).read()

    def plain_get_data():
        BytesIO(plain[next_key()][0]).read()

    def store_get_metadata():
        store.get_metadata(next_key())

    def plain_get_metadata():
        dict(plain[next_key()][1])

    return [
        ("set", store_set, plain_set, 10.0),
        ("get + read data + metadata", store_get_read, plain_get_read, 3.0),
        ("get + read data", store_get_read_data, plain_get_read_data, None),
        ("get_data + read", store_get_data, plain_get_data, None),
        ("get_metadata", store_get_metadata, plain_get_metadata, None),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per repeat")
    parser.add_argument("--repeat", type=int, default=5, help="repeats (best is kept)")
    args = parser.parse_args(argv)

    # (name, data size, metadata, listener connected, targets apply).  With
    # nested metadata the baseline's shallow copy would share the nested
    # lists and dicts with the store, which a store must not do, so the
    # targets are only checked on flat metadata without listeners.
    configurations = [
        ("100 B, flat metadata", 100, FLAT_METADATA, False, True),
        ("64 KiB, flat metadata", 65536, FLAT_METADATA, False, True),
        ("100 B, nested metadata (shallow baseline)", 100, NESTED_METADATA, False, False),
        ("100 B, flat metadata, listener connected", 100, FLAT_METADATA, True, False),
    ]
    print("{:<42} {:>27} {:>10} {:>10} {:>7} {:>7}".format(
        "configuration", "operation", "store us", "dict us", "ratio", "target"))
    missed = []
    for name, size, metadata, listened, checked in configurations:
        number = args.number if size < 65536 else max(1, args.number // 10)
        for operation, store_call, plain_call, target in _scenarios(size, metadata, listened):
            store_time = _measure(store_call, number, args.repeat)
            plain_time = _measure(plain_call, number, args.repeat)
            ratio = store_time / plain_time
            if not checked:
                target = None
            target_text = "" if target is None else "{:.0f}x".format(target)
            if target is not None and ratio > target:
                missed.append((name, operation, ratio, target))
                target_text += " MISS"
            print("{:<42} {:>27} {:>10.2f} {:>10.2f} {:>6.1f}x {:>7}".format(
                name, operation, store_time, plain_time, ratio, target_text))
    if missed:
        print("\nTargets missed:")
        for name, operation, ratio, target in missed:
            print("  {} / {}: {:.1f}x > {:.0f}x".format(name, operation, ratio, target))
    else:
        print("\nAll targets met.")


if __name__ == "__main__":
    main()
