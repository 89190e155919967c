"""Tests of S3Store against a real SeaweedFS started on 127.0.0.1: every
bundled conformance mixin, plus the behaviour specific to object storage
(layout, key mapping, all-or-nothing values, large metadata, streaming,
the metadata index, errors, two volume servers, two servers over a bucket)."""
import datetime
import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

obstore = pytest.importorskip("obstore", reason="S3Store tests need obstore (pip install '.[s3]')")

from encore.events.event_manager import EventManager  # noqa: E402
from encore.storage import _s3_codec as codec  # noqa: E402
from encore.storage import open_store  # noqa: E402
from encore.storage.abstract_store import AuthorizationError, StoreError  # noqa: E402
from encore.storage.events import StoreSetEvent, StoreUpdateEvent  # noqa: E402
from encore.storage.s3_store import PART_SIZE, UPLOAD_CONCURRENCY, S3Store  # noqa: E402
from encore.storage.tests.abstract_test import (  # noqa: E402
    EventRecorder,
    PatternFile,
    StoreReadTestMixin,
    StoreWriteTestMixin,
    metadata_type_samples,
    populate,
    read_fixture,
    store_test_cases,
    write_fixture,
)

from .seaweedfs_support import CREDENTIALS, free_ports, new_bucket, seaweedfs  # noqa: E402,F401

# One bucket for the conformance classes; each test gets its own prefix.
_SHARED = {}


def shared_bucket(server):
    bucket = _SHARED.get(server.endpoint)
    if bucket is None:
        bucket = new_bucket()
        store = S3Store(bucket, endpoint_url=server.endpoint, create_bucket=True)
        store.connect(CREDENTIALS)
        store.disconnect()
        _SHARED[server.endpoint] = bucket
    return bucket


def make_store(server, bucket=None, prefix=None, **options):
    store = S3Store(bucket or shared_bucket(server), prefix if prefix is not None else "t-" + uuid.uuid4().hex,
                    endpoint_url=server.endpoint, **options)
    store.connect(CREDENTIALS)
    return store


@pytest.fixture(scope="class")
def s3_class(request, seaweedfs):  # noqa: F811
    request.cls.server = seaweedfs


# ---------------------------------------------------------------------------
# The conformance mixins
# ---------------------------------------------------------------------------


@pytest.mark.usefixtures("s3_class")
class _S3Case(object):
    """``setUp``: a store under a fresh prefix of the shared bucket, filled
    as the mixin's fixture contract says (the read and write fixtures)."""

    def setUp(self):
        self.event_manager = EventManager()
        self.store = make_store(self.server, event_manager=self.event_manager)
        self.addCleanup(self.store.disconnect)
        if isinstance(self, StoreReadTestMixin):
            populate(self.store, read_fixture())
        elif isinstance(self, StoreWriteTestMixin):
            populate(self.store, write_fixture())


globals().update(store_test_cases(
    prefix="TestS3", base=_S3Case,
    attributes={
        # obstore keeps the Python buffers of the parts being uploaded until
        # they are sent: PART_SIZE * (UPLOAD_CONCURRENCY + 1) = 15 MiB at
        # most, for any size of value (64 MiB here; the benchmark measures
        # 256 MiB by RSS).
        "LargeValues": {"streaming_peak_limit": PART_SIZE * (UPLOAD_CONCURRENCY + 1) + (4 << 20)},
        "Concurrency": {"concurrency_rounds": 10},
    }))
# (TestS3MetadataTypes among them: metadata values beyond JSON, in headers and
# in the metadata index.)


# ---------------------------------------------------------------------------
# Specific tests
# ---------------------------------------------------------------------------


@pytest.fixture
def store(seaweedfs):  # noqa: F811
    manager = EventManager()
    store = make_store(seaweedfs, event_manager=manager)
    yield store
    store.disconnect()


def _raw_object(store, key):
    return bytes(obstore.get(store._client, store._name(key)).bytes())


def _object_names(store, area=""):
    root = (store.prefix + "/" if store.prefix else "") + area
    return sorted(meta["path"] for chunk in obstore.list(store._client, root.rstrip("/") or None)
                  for meta in chunk)


@pytest.mark.parametrize("key", [
    "", "plain", "a/b/c", "/", "//", ".", "..", "../x", ".hidden", "%", "%2F", "%+", "%=", "x" * 199 + "..",
    "é" * 300, "tab\tnewline\n", "back\\slash", "\U0001F600" * 70, "a%+/b",
])
def test_key_codec_round_trip(key):
    name = codec.encode_key(key)
    assert codec.decode_key(name) == key
    for segment in name.split("/"):
        assert segment not in ("", ".", "..")
        assert len(segment.encode("utf-8")) <= codec.SEGMENT_BYTES
    assert not name.endswith("/")


def test_key_codec_is_injective():
    keys = ["a/b", "a%2Fb", "a%b", "a%25b", "a\\b", "", "%", "x" * 300, "x" * 198 + "%+x"]
    assert len({codec.encode_key(key) for key in keys}) == len(keys)


def test_one_object_per_value_with_header(store):
    store.set("doc", (io.BytesIO(b"payload"), {"title": "résumé", "n": [1, 2]}))
    assert _object_names(store) == [store.prefix + "/.v/doc"]
    raw = _raw_object(store, "doc")
    offset = codec.header_length(raw[:codec.PREFIX_SIZE])
    metadata, created, modified, key = codec.parse_header(raw[:offset])
    assert raw[offset:] == b"payload"
    assert metadata == {"title": "résumé", "n": [1, 2]}
    assert created == modified and key is None


def test_large_and_non_ascii_metadata_round_trip(store):
    metadata = {"text": "日本語 ü \U0001F600" * 2000, "nested": {"list": list(range(5000))}, "none": None}
    assert len(json.dumps(metadata).encode("utf-8")) > 100_000  # far over AWS's 2 KB
    store.set("big-meta", (io.BytesIO(b"x"), metadata))
    assert store.get_metadata("big-meta") == metadata
    assert store.get("big-meta").metadata == metadata
    assert list(store.query(none=None, select=["none"])) == [("big-meta", {"none": None})]
    store.update_metadata("big-meta", {"more": "ß"})
    assert store.get_metadata("big-meta", ["more", "none"]) == {"more": "ß", "none": None}
    assert store.to_bytes("big-meta") == b"x"


def test_created_is_kept_and_modified_advances(store):
    store.set("t", (io.BytesIO(b"1"), {}))
    first = store.get("t")
    store.set("t", (io.BytesIO(b"2"), {"a": 1}))
    store.set_metadata("t", {"b": 2})
    second = store.get("t")
    assert second.created == first.created
    assert second.modified >= first.modified


def test_prefixes_are_isolated_even_when_nested(seaweedfs):  # noqa: F811
    bucket = shared_bucket(seaweedfs)
    base = "iso-" + uuid.uuid4().hex
    outer = make_store(seaweedfs, bucket, base)
    inner = make_store(seaweedfs, bucket, base + "/inner")
    try:
        outer.set("k", (io.BytesIO(b"outer"), {"who": "outer"}))
        inner.set("k", (io.BytesIO(b"inner"), {"who": "inner"}))
        inner.set("inner/k", (io.BytesIO(b"x"), {}))
        assert sorted(outer.query_keys()) == ["k"]
        assert sorted(inner.query_keys()) == ["inner/k", "k"]
        assert outer.to_bytes("k") == b"outer" and inner.to_bytes("k") == b"inner"
    finally:
        outer.disconnect()
        inner.disconnect()


def test_bad_prefix_and_bucket_are_refused():
    with pytest.raises(ValueError):
        S3Store("bucket", "a/.hidden")
    with pytest.raises(ValueError):
        S3Store("bucket", "a//b")
    with pytest.raises(ValueError):
        S3Store("ab")
    with pytest.raises(TypeError):
        S3Store(b"bucket")


def test_range_reads_of_a_large_value(store):
    size = 3 * (1 << 20) + 17
    store.set("big", (PatternFile(size), {"k": 1}))
    expected = PatternFile(size).read()
    for start, end in [(0, 10), (size - 5, None), (1 << 20, (1 << 20) + 100), (-100, None), (5, 5)]:
        assert store.get_data_range("big", start, end).read() == expected[start:end]
        assert store.get("big").range(start, end).read() == expected[start:end]


def test_value_never_mixes_versions(store):
    size = 2 * (1 << 20)
    store.set("v", (PatternFile(size), {"version": 1}))
    value = store.get("v")
    store.set("v", (io.BytesIO(b"new"), {"version": 2}))
    # The first stream is the body of the GET that read the metadata.
    assert len(value.data.read()) == size
    # Later reads of the old version refuse rather than mix versions.
    with pytest.raises(StoreError, match="rewritten"):
        value.range(0, 10)


def test_failed_large_upload_leaves_the_old_value_and_no_upload(store, seaweedfs):  # noqa: F811
    store.set("keep", (io.BytesIO(b"old"), {"v": 1}))

    class Failing(io.RawIOBase):
        def __init__(self):
            self.sent = 0

        def readable(self):
            return True

        def read(self, size=-1):
            if self.sent >= 12 << 20:
                raise OSError("disk went away")
            self.sent += size
            return b"z" * size

    with pytest.raises(OSError, match="disk went away"):
        store.set("keep", (Failing(), {"v": 2}))
    assert store.to_bytes("keep") == b"old"
    assert store.get_metadata("keep") == {"v": 1}
    assert store._name("keep") not in _uploads(seaweedfs, store.bucket)


def test_rollback_restores_and_leaves_no_copies(store):
    store.set("a", (io.BytesIO(b"A"), {"a": 1}))
    with pytest.raises(RuntimeError):
        with store.transaction("t"):
            store.set("a", (io.BytesIO(b"changed"), {}))
            store.set("new", (io.BytesIO(b"N"), {}))
            raise RuntimeError("undo")
    assert store.to_bytes("a") == b"A" and store.get_metadata("a") == {"a": 1}
    assert not store.exists("new")
    assert [name for name in _object_names(store) if "/.tx/" in name] == []
    with store.transaction("t"):
        store.delete("a")
    assert _object_names(store) == []


def test_metadata_index_saves_requests(seaweedfs):  # noqa: F811
    bucket = shared_bucket(seaweedfs)
    prefix = "index-" + uuid.uuid4().hex
    writer = make_store(seaweedfs, bucket, prefix)
    for i in range(40):
        writer.set("k%d" % i, (io.BytesIO(b"d"), {"i": i, "even": i % 2 == 0}))
    writer.disconnect()

    def counting(store):
        calls = []
        original = store._read_header

        def read_header(name, key):
            calls.append(name)
            return original(name, key)

        store._read_header = read_header
        return calls

    first = make_store(seaweedfs, bucket, prefix)
    calls = counting(first)
    assert len(list(first.query_keys(even=True))) == 20
    assert len(calls) == 40  # no index yet: every header read once (concurrently)
    assert len(list(first.query_keys(even=False))) == 20
    assert len(calls) == 40  # the in-memory cache answers
    first.disconnect()

    second = make_store(seaweedfs, bucket, prefix)
    calls = counting(second)
    second.set("k3", (io.BytesIO(b"d"), {"i": 3, "even": True}))  # changes one ETag
    other = make_store(seaweedfs, bucket, prefix)
    other.set("k5", (io.BytesIO(b"d"), {"i": 5, "even": True}))  # unknown to `second`
    other.disconnect()
    del calls[:]  # (the overwrite read k3's old header)
    assert len(list(second.query_keys(even=True))) == 22
    assert calls == [second._name("k5")]  # only the changed key not written here
    second.disconnect()

    unindexed = make_store(seaweedfs, bucket, prefix, metadata_index=False)
    calls = counting(unindexed)
    assert len(list(unindexed.query_keys(even=True))) == 22
    assert len(calls) == 40
    unindexed.disconnect()


def test_metadata_types_in_the_header_and_the_index(seaweedfs):  # noqa: F811
    bucket = shared_bucket(seaweedfs)
    prefix = "types-" + uuid.uuid4().hex
    samples = metadata_type_samples()
    writer = make_store(seaweedfs, bucket, prefix)
    writer.set("typed", (io.BytesIO(b"data"), samples))
    writer.set("other", (io.BytesIO(b""), {"when": datetime.date(2000, 1, 1)}))
    header = _raw_object(writer, "typed")
    assert b'{"$encore:decimal":"19.990"}' in header  # the tagged JSON form
    writer.disconnect()

    def typed_equal(found):
        assert found == samples
        assert {name: type(value) for name, value in found.items()} == \
            {name: type(value) for name, value in samples.items()}

    builder = make_store(seaweedfs, bucket, prefix)  # reads the headers, writes the index
    assert dict(builder.query(price=samples["price"])).keys() == {"typed"}
    builder.disconnect()
    reader = make_store(seaweedfs, bucket, prefix)
    reads = []
    original = reader._read_header
    reader._read_header = lambda name, key: reads.append(name) or original(name, key)
    found = dict(reader.query(id=samples["id"]))
    assert reads == []  # answered by the index alone
    typed_equal(found["typed"])
    assert list(reader.query_keys(when=datetime.date(2000, 1, 1))) == ["other"]
    typed_equal(reader.get_metadata("typed"))
    reader.disconnect()


def test_small_writes_cost_one_request(store):
    requests = []
    put, read_header = store._put, store._read_header
    store._put = lambda name, key, body, mode=None: requests.append(("PUT", mode)) or put(name, key, body, mode)
    store._read_header = lambda name, key: requests.append(("header", None)) or read_header(name, key)
    store.set("one", (io.BytesIO(b"1"), {"v": 1}))
    assert requests == [("PUT", "create")]  # a new key: If-None-Match
    etag = store.get("one").etag
    del requests[:]
    store.set("one", (io.BytesIO(b"2"), {"v": 2}))
    store.set_data("one", io.BytesIO(b"3"))
    store.from_bytes("one", b"4")
    assert [kind for kind, _ in requests] == ["PUT"] * 3  # If-Match on the ETag known
    assert requests[0][1] == {"e_tag": etag}
    assert store.get_metadata("one") == {"v": 2} and store.to_bytes("one") == b"4"


def test_events_of_writes(store, record_events):
    with record_events(store) as recorder:
        store.set("e", (io.BytesIO(b"1"), {"a": 1}))
        store.set("e", (io.BytesIO(b"2"), {"a": 2}))
        store.set_data("f", io.BytesIO(b"3"))
    kinds = [type(event) for event in recorder.modifications()]
    assert kinds == [StoreSetEvent, StoreUpdateEvent, StoreSetEvent]


@pytest.fixture
def record_events():
    def factory(store):
        return EventRecorder(store.event_manager, store)
    return factory


def test_missing_key_errors(store):
    for call in (lambda: store.get("nope"), lambda: store.get_metadata("nope"),
                 lambda: store.delete("nope"), lambda: store.update_metadata("nope", {"a": 1}),
                 lambda: store.get_data_range("nope", 0, 1), lambda: store.to_bytes("nope")):
        with pytest.raises(KeyError):
            call()
    assert not store.exists("nope")


def test_missing_bucket_is_reported(seaweedfs):  # noqa: F811
    store = S3Store("no-such-" + uuid.uuid4().hex[:12], endpoint_url=seaweedfs.endpoint)
    with pytest.raises(StoreError, match="does not exist.*create_bucket=True"):
        store.connect(CREDENTIALS)


def test_create_bucket_with_a_signed_request(seaweedfs):  # noqa: F811
    bucket = new_bucket()
    store = S3Store(bucket, endpoint_url=seaweedfs.endpoint, create_bucket=True)
    store.connect(CREDENTIALS)
    store.set("k", (io.BytesIO(b"v"), {}))
    assert store.to_bytes("k") == b"v"
    store.disconnect()


def test_unreachable_endpoint_is_reported():
    (port,) = free_ports(1)
    retry = {"max_retries": 1, "backoff": {"init_backoff": datetime.timedelta(milliseconds=10)}}
    store = S3Store("bucket", endpoint_url="http://127.0.0.1:%d" % port, retry_config=retry)
    with pytest.raises(StoreError, match="cannot reach"):
        store.connect(CREDENTIALS)


def test_credentials_are_checked_for_type():
    store = S3Store("bucket", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(TypeError):
        store.connect(["key", "secret"])
    with pytest.raises(ValueError):
        store.connect({"password": "x"})


class _FakeS3(object):
    """A tiny HTTP server on 127.0.0.1 answering with scripted statuses."""

    def __init__(self, responses):
        import http.server

        self.responses = list(responses)
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                fake.requests.append((self.command, self.path))
                status, body = fake.responses.pop(0) if len(fake.responses) > 1 else fake.responses[0]
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = "http://127.0.0.1:%d" % self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


_EMPTY_LISTING = ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'
                  '<Name>bucket</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>')


def test_bad_credentials_are_reported():
    fake = _FakeS3([(403, "<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id "
                          "you provided does not exist in our records.</Message></Error>")])
    try:
        store = S3Store("bucket", endpoint_url=fake.endpoint)
        with pytest.raises(AuthorizationError, match="check the credentials"):
            store.connect({"access_key_id": "wrong", "secret_access_key": "wrong"})
    finally:
        fake.close()


def test_throttling_is_retried_with_backoff():
    slow_down = (503, "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>")
    fake = _FakeS3([slow_down, slow_down, (200, _EMPTY_LISTING)])
    try:
        store = S3Store("bucket", endpoint_url=fake.endpoint)
        store.connect(CREDENTIALS)
        assert store.is_connected()
        assert len(fake.requests) == 3
        assert list(store.query_keys()) == []
    finally:
        fake.close()


def test_open_store_s3_url(seaweedfs, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["secret_access_key"])
    bucket = new_bucket()
    store = open_store("s3://%s/some/prefix?endpoint_url=%s&create_bucket=true" % (bucket, seaweedfs.endpoint))
    try:
        assert isinstance(store, S3Store) and store.prefix == "some/prefix" and store.is_connected()
        store.set("k", (io.BytesIO(b"v"), {"m": 1}))
        again = open_store("s3://%s/some/prefix?endpoint_url=%s" % (bucket, seaweedfs.endpoint))
        assert list(again.query(m=1)) == [("k", {"m": 1})]
        again.disconnect()
    finally:
        store.disconnect()


def test_client_option_uses_a_ready_obstore_client(seaweedfs):  # noqa: F811
    from obstore.store import S3Store as ObstoreS3Store

    bucket = shared_bucket(seaweedfs)
    client = ObstoreS3Store(bucket, endpoint=seaweedfs.endpoint, region="us-east-1",
                            client_options={"allow_http": True}, **CREDENTIALS)
    store = S3Store(bucket, "client-" + uuid.uuid4().hex, client=client)
    store.connect()
    store.from_bytes("k", b"v")
    assert store.to_bytes("k") == b"v"
    store.disconnect()


def test_two_volume_servers_share_the_data():
    from .seaweedfs_support import running_seaweedfs

    with running_seaweedfs() as server:
        extra = server.add_volume_server()
        deadline = time.monotonic() + 60
        import urllib.request
        while True:
            with urllib.request.urlopen("http://127.0.0.1:%d/dir/status" % server.master_port, timeout=5) as answer:
                if ":%d" % extra in answer.read().decode():
                    break
            assert time.monotonic() < deadline, "the second volume server did not join"
            time.sleep(0.2)  # polling another process's registration
        store = S3Store(new_bucket(), endpoint_url=server.endpoint, create_bucket=True)
        store.connect(CREDENTIALS)
        for i in range(60):
            store.set("spread%d" % i, (io.BytesIO(os.urandom(64 << 10)), {"i": i}))
        for i in range(60):
            assert store.get_metadata("spread%d" % i) == {"i": i}
        store.disconnect()

        def stored_bytes(directory):
            return sum(os.path.getsize(os.path.join(root, name))
                       for root, _, names in os.walk(directory) for name in names if name.endswith(".dat"))

        first = stored_bytes(os.path.join(server.directory, "data"))
        second = stored_bytes(os.path.join(server.directory, "volume%d" % extra))
        # Each node holds at least one whole value (volumes are assigned at
        # random, so the split varies from run to run).
        assert first >= (64 << 10) and second >= (64 << 10), (first, second)


def _start_serve(url, env):
    process = subprocess.Popen(
        [sys.executable, "-m", "encore", "--store", url, "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, stdin=subprocess.DEVNULL)
    line = process.stdout.readline().decode().strip()
    if not line.startswith("http"):
        process.kill()
        raise AssertionError("encore serve did not start: %r %s" % (line, process.stderr.read().decode()))
    return process, line


def test_two_servers_over_one_bucket_agree(seaweedfs):  # noqa: F811
    pytest.importorskip("requests", reason="the dynamic URL store needs requests")
    bucket = shared_bucket(seaweedfs)
    url = "s3://%s/served-%s?endpoint_url=%s" % (bucket, uuid.uuid4().hex, seaweedfs.endpoint)
    env = dict(os.environ, AWS_ACCESS_KEY_ID=CREDENTIALS["access_key_id"],
               AWS_SECRET_ACCESS_KEY=CREDENTIALS["secret_access_key"])
    processes = []
    try:
        first, first_url = _start_serve(url, env)
        processes.append(first)
        second, second_url = _start_serve(url, env)
        processes.append(second)
        one = open_store(first_url)
        two = open_store(second_url)
        for i in range(5):
            (one if i % 2 else two).set("k%d" % i, (io.BytesIO(b"v%d" % i), {"i": i, "odd": bool(i % 2)}))
        for store in (one, two):
            assert sorted(store.query_keys()) == ["k%d" % i for i in range(5)]
            assert sorted(store.query_keys(odd=True)) == ["k1", "k3"]
            assert store.to_bytes("k4") == b"v4"
            assert store.get_metadata("k3") == {"i": 3, "odd": True}
        one.update_metadata("k0", {"seen": True})
        assert two.get_metadata("k0") == {"i": 0, "odd": False, "seen": True}
        two.delete("k1")
        assert not one.exists("k1")
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_writes_of_other_clients_are_not_hidden_by_the_cache(seaweedfs):  # noqa: F811
    bucket = shared_bucket(seaweedfs)
    prefix = "stale-" + uuid.uuid4().hex
    mine = make_store(seaweedfs, bucket, prefix, event_manager=EventManager())
    theirs = make_store(seaweedfs, bucket, prefix)
    try:
        mine.set("k", (io.BytesIO(b"1"), {"v": 1}))
        theirs.delete("k")
        with EventRecorder(mine.event_manager, mine) as recorder:
            mine.set("k", (io.BytesIO(b"2"), {"v": 2}))  # the cached version is gone
        assert [type(event) for event in recorder.modifications()] == [StoreSetEvent]
        theirs.set("k", (io.BytesIO(b"3"), {"v": 3}))
        created = theirs.get("k").created
        with EventRecorder(mine.event_manager, mine) as recorder:
            mine.set("k", (io.BytesIO(b"4"), {"v": 4}))  # the cached version is outdated
        assert [type(event) for event in recorder.modifications()] == [StoreUpdateEvent]
        assert theirs.get("k").created == created
        assert theirs.to_bytes("k") == b"4" and theirs.get_metadata("k") == {"v": 4}
        theirs.set_metadata("k", {"v": 5})
        mine.set_data("k", io.BytesIO(b"6"))  # keeps the metadata written elsewhere
        assert theirs.get_metadata("k") == {"v": 5} and theirs.to_bytes("k") == b"6"
    finally:
        mine.disconnect()
        theirs.disconnect()


def test_encore_command_with_an_s3_store(seaweedfs, tmp_path, monkeypatch):  # noqa: F811
    from encore.cli import main

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["secret_access_key"])
    url = "s3://%s/cli-%s?endpoint_url=%s" % (shared_bucket(seaweedfs), uuid.uuid4().hex, seaweedfs.endpoint)
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(3 << 20))

    def run(*args):
        out, err = io.BytesIO(), io.StringIO()
        status = main(list(args), stdout=out, stderr=err)
        return status, out.getvalue(), err.getvalue()

    assert run("--store", url, "put", "dir/file.bin", str(source), "--meta", "kind=blob")[0] == 0
    assert run("--store", url, "ls")[1] == b"dir/file.bin\n"
    assert json.loads(run("--store", url, "meta", "dir/file.bin")[1]) == {"kind": "blob"}
    target = tmp_path / "out.bin"
    assert run("--store", url, "get", "dir/file.bin", "-o", str(target))[0] == 0
    assert target.read_bytes() == source.read_bytes()
    copy = "sqlite:///" + str(tmp_path / "copy.db")
    status, _, err = run("cp", url, copy)
    assert status == 0 and "copied 1 key" in err
    assert run("--store", copy, "get", "dir/file.bin")[1] == source.read_bytes()


def test_updates_from_separate_clients_lose_nothing(seaweedfs):  # noqa: F811
    bucket = shared_bucket(seaweedfs)
    prefix = "race-" + uuid.uuid4().hex
    stores = [make_store(seaweedfs, bucket, prefix) for _ in range(3)]
    try:
        stores[0].set("counter", (io.BytesIO(b"payload"), {}))
        barrier = threading.Barrier(len(stores))

        def work(index):
            barrier.wait()
            for round_ in range(8):
                stores[index].update_metadata("counter", {"client%d" % index: round_})

        with ThreadPoolExecutor(len(stores)) as pool:
            list(pool.map(work, range(len(stores))))
        assert stores[1].get_metadata("counter") == {"client%d" % i: 7 for i in range(len(stores))}
        assert stores[2].to_bytes("counter") == b"payload"
    finally:
        for store in stores:
            store.disconnect()


_DYING_WRITER = r"""
import io, sys
from encore.storage.s3_store import S3Store
store = S3Store(sys.argv[1], sys.argv[2], endpoint_url=sys.argv[3])
store.connect({"access_key_id": sys.argv[4], "secret_access_key": sys.argv[5]})

class Stream(io.RawIOBase):
    sent = 0
    def readable(self):
        return True
    def read(self, size=-1):
        if self.sent >= 16 << 20:
            print("uploading", flush=True)
            sys.stdin.readline()  # blocks until the parent kills this process
        self.sent += 1 << 20
        return b"n" * (1 << 20)

store.set("victim", (Stream(), {"version": "new"}))
"""


def test_a_writer_killed_midway_leaves_the_old_value(seaweedfs):  # noqa: F811
    bucket = shared_bucket(seaweedfs)
    prefix = "killed-" + uuid.uuid4().hex
    store = make_store(seaweedfs, bucket, prefix)
    try:
        store.set("victim", (io.BytesIO(b"old"), {"version": "old"}))
        child = subprocess.Popen(
            [sys.executable, "-c", _DYING_WRITER, bucket, prefix, seaweedfs.endpoint,
             CREDENTIALS["access_key_id"], CREDENTIALS["secret_access_key"]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = child.stdout.readline()
            assert line.strip() == b"uploading", child.stderr.read().decode()
            # Parts have been uploaded: the value must still be the old one.
            assert store.to_bytes("victim") == b"old"
        finally:
            child.kill()
            child.wait(30)
            child.stdin.close()
            child.stdout.close()
            child.stderr.close()
        value = store.get("victim")
        assert (value.data.read(), value.metadata) == (b"old", {"version": "old"})
        assert list(store.query_keys()) == ["victim"]
        # The dead writer's upload is left behind, invisible; it can be aborted.
        assert store._name("victim") in _uploads(seaweedfs, store.bucket)
        assert store.abort_abandoned_uploads(older_than=3600) == 0  # too recent
        assert store.abort_abandoned_uploads(older_than=0) >= 1
        assert store._name("victim") not in _uploads(seaweedfs, store.bucket)
        assert store.to_bytes("victim") == b"old"
    finally:
        store.disconnect()


def _uploads(server, bucket):
    import http.client
    port = int(server.endpoint.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/%s?uploads" % bucket)
        listing = connection.getresponse().read().decode()
    finally:
        connection.close()
    assert "ListMultipartUploadsResult" in listing
    return listing


def test_connect_with_a_boto3_session(seaweedfs):  # noqa: F811
    boto3 = pytest.importorskip("boto3", reason="boto3 sessions need boto3 (pip install '.[bench]')")
    session = boto3.session.Session(aws_access_key_id=CREDENTIALS["access_key_id"],
                                    aws_secret_access_key=CREDENTIALS["secret_access_key"],
                                    region_name="us-east-1")
    store = S3Store(new_bucket(), endpoint_url=seaweedfs.endpoint, create_bucket=True)
    store.connect(session)  # the bucket is created through boto3 here
    store.set("k", (io.BytesIO(b"v"), {"via": "boto3"}))
    assert store.get_metadata("k") == {"via": "boto3"}
    assert store.info()["bucket"] == store.bucket
    store.disconnect()


def test_store_at_the_top_of_a_bucket(seaweedfs):  # noqa: F811
    store = S3Store(new_bucket(), endpoint_url=seaweedfs.endpoint, create_bucket=True)
    store.connect(CREDENTIALS)
    try:
        for key in ("top", "a/b", ".."):
            store.set(key, (io.BytesIO(key.encode()), {"key": key}))
        assert sorted(store.query_keys()) == ["..", "a/b", "top"]
        assert list(store.query_keys(key="a/b")) == ["a/b"]
        assert {name.split("/")[0] for name in _object_names(store)} == {".v", ".index"}
        assert store.info() == {"type": "S3Store", "readonly": False, "authorizing": False,
                                "bucket": store.bucket, "prefix": "", "endpoint_url": seaweedfs.endpoint}
        store.disconnect()
        store.connect(CREDENTIALS)  # reconnects
        store.delete("..")
        assert sorted(store.query_keys()) == ["a/b", "top"]
    finally:
        store.disconnect()


_WSGI_MODULE = """
import os
from encore.storage import open_store
from encore.storage.server import make_app

application = make_app(open_store(os.environ["ENCORE_TEST_STORE"]))
"""


def test_gunicorn_workers_over_one_bucket_agree(seaweedfs, tmp_path):  # noqa: F811
    pytest.importorskip("requests", reason="the dynamic URL store needs requests")
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        print("SKIPPING: gunicorn is not installed")
        pytest.skip("gunicorn is not installed")
    import socket

    (tmp_path / "s3app.py").write_text(_WSGI_MODULE)
    url = "s3://%s/gunicorn-%s?endpoint_url=%s" % (shared_bucket(seaweedfs), uuid.uuid4().hex, seaweedfs.endpoint)
    env = dict(os.environ, ENCORE_TEST_STORE=url, AWS_ACCESS_KEY_ID=CREDENTIALS["access_key_id"],
               AWS_SECRET_ACCESS_KEY=CREDENTIALS["secret_access_key"])
    ports = free_ports(2)
    servers = [subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:%d" % port, "--workers", "2",
         "--chdir", str(tmp_path), "s3app:application"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        for port in ports]
    try:
        deadline = time.monotonic() + 60
        for server, port in zip(servers, ports):
            while True:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "gunicorn did not listen"
                    time.sleep(0.1)  # polling another process's listening socket
        clients = [open_store("http://127.0.0.1:%d" % port) for port in ports]
        # Uploads through both servers; the state lives in the bucket only.
        for i in range(8):
            clients[i % 2].set("k%d" % i, (io.BytesIO(b"v%d" % i), {"i": i, "low": i < 4}))
        large = os.urandom(3 << 20)  # more than one upload buffer of the client
        clients[0].set_data("large", io.BytesIO(large))
        clients[1].from_bytes("small", b"s")
        direct = S3Store(shared_bucket(seaweedfs), url.split("/", 3)[3].split("?")[0],
                         endpoint_url=seaweedfs.endpoint)
        direct.connect(CREDENTIALS)
        assert direct.to_bytes("large") == large and direct.to_bytes("k3") == b"v3"
        assert direct.get_metadata("k6") == {"i": 6, "low": False}
        direct.disconnect()
        assert clients[1].to_bytes("large") == large
        for _ in range(3):  # several requests, so both workers of each server answer
            for client in clients:
                assert sorted(client.query_keys(low=True)) == ["k0", "k1", "k2", "k3"]
                assert client.get_metadata("k6") == {"i": 6, "low": False}
                assert client.to_bytes("k5") == b"v5"
        clients[0].update_metadata("k7", {"seen": 1})
        assert clients[1].get_metadata("k7") == {"i": 7, "low": False, "seen": 1}
    finally:
        for server in servers:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            server.stderr.close()


def test_a_server_that_checks_signatures():
    """Against a SeaweedFS with identities: wrong keys are refused clearly;
    the right ones work, including the store's own signed requests
    (bucket creation, listing and aborting uploads)."""
    from .seaweedfs_support import running_seaweedfs

    identities = {"identities": [{
        "name": "tester", "credentials": [{"accessKey": "AKIDTESTER", "secretKey": "tester-secret"}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
    good = {"access_key_id": "AKIDTESTER", "secret_access_key": "tester-secret"}
    with running_seaweedfs(identities) as server:
        bucket = new_bucket()
        store = S3Store(bucket, "signed", endpoint_url=server.endpoint, create_bucket=True)
        deadline = time.monotonic() + 30
        while True:  # identities load a moment after the port opens
            try:
                store.connect(good)
                break
            except AuthorizationError:
                assert time.monotonic() < deadline
                time.sleep(0.2)  # polling another process's start-up
        store.set("k", (io.BytesIO(b"v"), {"signed": True}))
        assert store.get_metadata("k") == {"signed": True}
        assert store.abort_abandoned_uploads(older_than=0) == 0  # signed list accepted
        store.disconnect()

        intruder = S3Store(bucket, "signed", endpoint_url=server.endpoint)
        with pytest.raises(AuthorizationError, match="check the credentials"):
            intruder.connect({"access_key_id": "AKIDTESTER", "secret_access_key": "wrong"})
        stranger = S3Store(bucket, "signed", endpoint_url=server.endpoint)
        with pytest.raises(AuthorizationError):
            stranger.connect({"access_key_id": "NOBODY", "secret_access_key": "x"})
        bad_create = S3Store(new_bucket(), endpoint_url=server.endpoint, create_bucket=True)
        with pytest.raises((AuthorizationError, StoreError)):
            bad_create.connect({"access_key_id": "AKIDTESTER", "secret_access_key": "wrong"})


def _header_bytes(length, body):
    return codec.MAGIC + length.to_bytes(4, "big") + body


@pytest.mark.parametrize("label, body", [
    # The header claims more bytes than the object has (small, then over
    # INLINE_LIMIT and SINGLE_PUT_LIMIT so the streamed paths read it).
    ("overlong", _header_bytes(1000, b'{"metadata": {}}')),
    ("overlong-large", _header_bytes(5 << 20, b"x" * (4 << 20) + b"y" * 200)),
    ("undecodable", _header_bytes(6, b"\xff\xfe{{{{") + b"data"),
    ("not-json", _header_bytes(5, b"{oops") + b"data"),
    ("no-metadata", _header_bytes(8, b'{"x": 1}') + b"data"),
    ("not-an-object", _header_bytes(2, b"[]") + b"data"),
])
def test_a_corrupted_header_gives_a_store_error_naming_the_key(store, label, body):
    key = "damaged-" + label
    obstore.put(store._client, store._name(key), body)  # put directly, past the store
    operations = {
        "get": lambda: store.get(key).data.read(),
        "get_metadata": lambda: store.get_metadata(key),
        "get_data_range": lambda: store.get_data_range(key, 0, 2).read(),
        "set_metadata": lambda: store.set_metadata(key, {"a": 1}),
        "update_metadata": lambda: store.update_metadata(key, {"a": 1}),
    }
    for operation, call in operations.items():
        with pytest.raises(StoreError) as caught:
            call()
        message = str(caught.value)
        assert not isinstance(caught.value, KeyError), operation
        assert repr(key) in message and "not a valid value" in message, (operation, message)
    # The store still works for other keys.
    store.set("fine", (io.BytesIO(b"ok"), {"b": 2}))
    assert store.get_metadata("fine") == {"b": 2}
