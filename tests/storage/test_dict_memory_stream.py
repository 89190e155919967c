"""DictMemoryStore reads streams of unknown length into one growing buffer."""
import io

import pytest

from encore.events.api import EventManager
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import StoreProgressEvent, StoreProgressStepEvent


class Chunks(object):
    """A stream that cannot tell its length, yielding given chunks in turn
    (whatever ``read``'s size), as a socket or a pipe may."""

    def __init__(self, chunks):
        self._chunks = list(chunks)
        self.reads = 0

    def read(self, size=-1):
        self.reads += 1
        return self._chunks.pop(0) if self._chunks else b""


@pytest.fixture
def store():
    store = DictMemoryStore(event_manager=EventManager())
    store.connect()
    yield store
    store.disconnect()


@pytest.mark.parametrize("chunks", [
    [],
    [b"only"],
    [b"a", b"bc", b"", b"never read"],
    [b"x" * 1000, bytearray(b"y" * 7), memoryview(b"z" * 3000), b"w"],
    [bytes([i]) * (1 << 16) for i in range(40)],
])
def test_set_data_of_unsized_stream(store, chunks):
    expected = b""
    for chunk in chunks:
        if not chunk:
            break
        expected += bytes(chunk)
    store.set_data("k", Chunks(chunks))
    assert store.to_bytes("k") == expected
    assert type(store.get("k").data.read()) is bytes


def test_set_of_unsized_stream_with_progress(store):
    steps = []
    store.event_manager.connect(StoreProgressEvent, lambda e: steps.append(e))
    chunks = [b"a" * 10, b"b" * 20, b"c" * 30]
    store.set("k", (Chunks(chunks), {"m": 1}))
    assert store.to_bytes("k") == b"a" * 10 + b"b" * 20 + b"c" * 30
    assert [e.step for e in steps if isinstance(e, StoreProgressStepEvent)] == [10, 30, 60]
    assert steps[0].steps == -1  # the stream cannot tell its length


def test_text_chunks_are_refused_before_writing(store):
    store.set("k", (io.BytesIO(b"old"), {}))
    with pytest.raises(TypeError):
        store.set_data("k", Chunks([b"bytes first", "then text"]))
    assert store.to_bytes("k") == b"old"
