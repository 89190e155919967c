"""Tests of encore.storage.utils and the value classes."""
import hashlib
import http.server
import io
import os
import threading
import time

import pytest

from encore.events.event_manager import EventManager
from encore.storage.abstract_store import AuthorizationError
from encore.storage.events import (
    StoreProgressEndEvent,
    StoreProgressEvent,
    StoreProgressStartEvent,
    StoreProgressStepEvent,
)
from encore.storage.file_value import FileValue
from encore.storage.string_value import StringValue
from encore.storage.url_value import URLValue
from encore.storage.utils import (
    BufferIteratorIO,
    DummyTransactionContext,
    SimpleTransactionContext,
    StoreProgressManager,
    add_context_manager_support,
    buffer_iterator,
    copy_stream,
    hashing_file,
    range_stream,
    slice_offsets,
    store_progress,
    tee,
)


class TestBufferIterator:
    def test_chunks_and_progress(self):
        steps = []
        chunks = list(buffer_iterator(io.BytesIO(b"abcdefg"), 3, lambda step: steps.append(step)))
        assert chunks == [b"abc", b"def", b"g"]
        assert steps == [3, 6, 7]

    def test_max_bytes(self):
        assert b"".join(buffer_iterator(io.BytesIO(b"abcdefg"), 2, max_bytes=5)) == b"abcde"

    def test_empty_stream_reports_zero(self):
        steps = []
        assert list(buffer_iterator(io.BytesIO(b""), progress=lambda step: steps.append(step))) == []
        assert steps == [0]

    def test_text_stream_is_refused(self):
        with pytest.raises(TypeError, match="bytes"):
            list(buffer_iterator(io.StringIO("text")))

    def test_copy_stream(self):
        out = io.BytesIO()
        assert copy_stream(io.BytesIO(b"x" * 10), out.write, 3) == 10
        assert out.getvalue() == b"x" * 10


class TestBufferIteratorIO:
    def test_reads_across_chunks(self):
        stream = BufferIteratorIO(iter([b"ab", b"cde", b"", b"f"]))
        assert stream.read(1) == b"a"
        assert stream.read(3) == b"bcd"
        assert stream.read() == b"ef"
        assert stream.read(5) == b""

    def test_read_all_is_unbounded(self):
        chunks = [b"x" * 1048576] * 3
        assert len(BufferIteratorIO(iter(chunks)).read()) == 3 * 1048576
        assert len(BufferIteratorIO(iter(chunks)).read(-1)) == 3 * 1048576

    def test_read_accepts_encore_keyword(self):
        stream = BufferIteratorIO(iter([b"abc", b"def"]))
        assert stream.read(buffer_size=2) == b"ab"
        assert stream.read(size=2) == b"cd"
        assert stream.read(buffer_size=10) == b"ef"

    def test_read_takes_encores_buffer_size_by_position_and_name(self):
        import inspect

        stream = BufferIteratorIO(iter([b"abc", b"def", b"gh"]))
        assert list(inspect.signature(stream.read).parameters)[0] == "buffer_size"
        assert stream.read(2) == b"ab"
        assert stream.read(buffer_size=3) == b"cde"
        assert stream.read(None) == b"fgh"
        with pytest.raises(TypeError):
            stream.read(2, size=3)

    def test_readinto_and_buffered_wrapping(self):
        stream = io.BufferedReader(BufferIteratorIO(iter([b"hello ", b"world"])))
        assert stream.read() == b"hello world"

    def test_close_closes_generator(self):
        closed = []

        def generate():
            try:
                yield b"a"
                yield b"b"
            finally:
                closed.append(True)

        with BufferIteratorIO(generate()) as stream:
            assert stream.read(1) == b"a"
        assert closed == [True]
        with pytest.raises(ValueError):
            stream.read()


def test_tee():
    first, second = tee(io.BytesIO(b"0123456789"), 2, 3)
    assert first.read(4) == b"0123"
    assert second.read() == b"0123456789"
    assert first.read() == b"456789"


def test_hashing_file_read_takes_nbytes():
    import inspect

    data = b"0123456789"
    wrapped = hashing_file(io.BytesIO(data), hashlib.sha1())
    assert list(inspect.signature(wrapped.read).parameters)[0] == "nbytes"
    assert wrapped.read(nbytes=4) == b"0123"
    assert wrapped.read(3) == b"456"
    assert wrapped.read(size=2) == b"78"
    assert wrapped.read() == b"9"
    assert wrapped.len == 10
    assert wrapped.hash.hexdigest() == hashlib.sha1(data).hexdigest()
    with pytest.raises(TypeError):
        wrapped.read(1, size=1)


def test_hashing_file():
    with hashing_file(io.BytesIO(b"some data"), hashlib.sha256()) as wrapped:
        assert wrapped.read(4) + wrapped.read() == b"some data"
    assert wrapped.len == 9
    assert wrapped.hash.hexdigest() == hashlib.sha256(b"some data").hexdigest()
    assert wrapped.filelike.closed


def test_add_context_manager_support():
    stream = io.BytesIO(b"x")
    assert add_context_manager_support(stream) is stream

    class Bare(object):
        value = 3

    bare = Bare()
    wrapped = add_context_manager_support(bare)
    with wrapped as inner:
        assert inner is bare
    assert wrapped.value == 3


class TestRanges:
    def test_slice_offsets(self):
        assert slice_offsets(None, None, 10) == (0, 10)
        assert slice_offsets(-3, None, 10) == (7, 10)
        assert slice_offsets(5, 2, 10) == (5, 5)
        assert slice_offsets(2, None, None) == (2, None)
        with pytest.raises(ValueError):
            slice_offsets(-1, None, None)

    def test_range_stream_non_seekable(self):
        source = BufferIteratorIO(iter([b"0123", b"4567", b"89"]))
        assert range_stream(source, 3, 7, buffer_size=2).read() == b"3456"


class TestProgress:
    def test_store_progress_null_when_nobody_listens(self):
        class Store(object):
            event_manager = EventManager()
        progress = store_progress(Store(), "k", {}, "msg", 10)
        assert not isinstance(progress, StoreProgressManager)
        with progress:
            progress.step(step=5)

    def test_store_progress_events(self):
        manager = EventManager()
        events = []
        manager.connect(StoreProgressEvent, events.append)

        class Store(object):
            event_manager = manager
        store = Store()
        with store_progress(store, "k", {"m": 1}, "copying", 10) as progress:
            progress.step(step=10)
        assert [type(e) for e in events] == [
            StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent]
        assert all(e.key == "k" and e.metadata == {"m": 1} and e.source is store for e in events)
        assert events[0].steps == 10 and events[1].step == 10


def test_dummy_transaction_context_is_per_store():
    class Store(object):
        _transaction = None
    store = Store()
    context = DummyTransactionContext(store)
    assert DummyTransactionContext(store) is context
    with context as entered:
        assert entered is context


def test_simple_transaction_context_is_shared_while_active():
    class Store(object):
        _transaction = None
        event_manager = EventManager()
    store = Store()
    with SimpleTransactionContext(store) as outer:
        assert SimpleTransactionContext(store) is outer
        assert outer.active
    assert not outer.active and store._transaction is None


class TestValues:
    def test_string_value(self):
        value = StringValue(b"hello", {"a": [1]}, created=1.0, modified=2.0)
        assert (value.size, value.created, value.modified) == (5, 1.0, 2.0)
        assert value.data.read() == b"hello" and value.data.read() == b"hello"
        value.metadata["a"].append(2)
        assert value.metadata == {"a": [1]}
        assert value.range(1, 3).read() == b"el"
        with pytest.raises(TypeError):
            StringValue("text")

    def test_string_value_default_times(self):
        before = time.time()
        value = StringValue()
        assert before <= value.created == value.modified <= time.time()

    def test_file_value(self, tmp_path):
        path = tmp_path / "f.bin"
        path.write_bytes(b"0123456789")
        value = FileValue(str(path), {"m": 1})
        assert value.size == 10 and value.created is None
        assert value.modified == pytest.approx(os.stat(path).st_mtime)
        with value.data as stream:
            assert stream.read() == b"0123456789"
        assert value.range(2, 5).read() == b"234"
        assert value.range(7).read() == b"789"
        assert value.range(-3, -1).read() == b"78"
        assert value.metadata == {"m": 1}
        with pytest.raises(AuthorizationError):
            value.permissions
        with pytest.raises(FileNotFoundError):
            FileValue(str(tmp_path / "missing"))


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    body = b"0123456789"
    honour_range = True

    def do_GET(self):
        header = self.headers.get("Range")
        if header and self.honour_range:
            first, last = header.split("=")[1].split("-")
            first = int(first)
            last = int(last) if last else len(self.body) - 1
            part = self.body[first:last + 1]
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, len(self.body)))
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            self.wfile.write(part)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture(params=[True, False], ids=["range-server", "plain-server"])
def url(request):
    handler = type("Handler", (_RangeHandler,), {"honour_range": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d/value" % server.server_port
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_url_value(url):
    value = URLValue(url, {"m": 1})
    assert value.size == 10
    assert value.modified == 1445412480.0
    assert value.created is None
    assert value.data.read() == b"0123456789"
    assert value.data.read() == b"0123456789"
    assert value.range(2, 5).read() == b"234"
    assert value.range(7).read() == b"789"
    assert value.range(-2).read() == b"89"
    assert value.range(4, 4).read() == b""
    assert value.metadata == {"m": 1}


def test_url_value_file_scheme(tmp_path):
    path = tmp_path / "v.bin"
    path.write_bytes(b"abcdef")
    value = URLValue(path.as_uri())
    assert value.size == 6
    assert value.range(1, 3).read() == b"bc"


def test_progress_listened_through_a_subclass_listener():
    """A display listening to ProgressStartEvent must get store progress."""
    from encore.events.progress_events import ProgressStartEvent
    from encore.storage.utils import progress_is_listened

    manager = EventManager()
    assert not progress_is_listened(manager)
    starts = []
    manager.connect(ProgressStartEvent, starts.append)
    assert progress_is_listened(manager)

    class Store(object):
        event_manager = manager
    with store_progress(Store(), "k", {}, "copying", 3) as progress:
        progress.step(step=3)
    assert [type(e) for e in starts] == [StoreProgressStartEvent]
