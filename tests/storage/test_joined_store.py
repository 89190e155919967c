"""Tests of JoinedStore: the bundled conformance mixins over dict, sqlite and
filesystem children, and the joined store's own routing (shadowing,
copy-on-write, delete, transactions spanning the children, events)."""
import io
import shutil
import sys
import tempfile

import pytest

from .composite_support import CHILD_KINDS, data, make_child, make_mixin_classes

from encore.events.event_manager import EventManager
from encore.storage.abstract_store import (
    AbstractReadOnlyStore,
    AuthorizationError,
    StoreError,
)
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import (
    StoreDeleteEvent,
    StoreProgressEndEvent,
    StoreProgressEvent,
    StoreProgressStartEvent,
    StoreSetEvent,
    StoreTransactionEndEvent,
    StoreUpdateEvent,
)
from encore.storage.joined_store import JoinedStore
from encore.storage.tests.abstract_test import (
    EventRecorder,
    PatternFile,
    StoreLargeValueTestMixin,
    StoreReadTestMixin,
    StoreWriteTestMixin,
    pattern_digest,
    populate,
    read_fixture,
    write_fixture,
)

# ---------------------------------------------------------------------------
# Children of every available kind
# ---------------------------------------------------------------------------

class ReadOnlyView(AbstractReadOnlyStore):
    """A read-only store showing the content of another store."""

    def __init__(self, store, event_manager=None):
        super().__init__(event_manager=event_manager)
        self.inner = store

    def get(self, key):
        return self.inner.get(key)

    def query(self, select=None, **kwargs):
        return self.inner.query(select, **kwargs)


class NoRollbackStore(DictMemoryStore):
    """A dict store whose transactions cannot roll back."""

    _begin_transaction = None
    _commit_transaction = None
    _rollback_transaction = None


# ---------------------------------------------------------------------------
# The conformance mixins
# ---------------------------------------------------------------------------

class _JoinedCase(object):
    """setUp: three children of ``kind`` (filled by :meth:`fill`) joined,
    one event manager.  With ``shared_children`` the children are built and
    filled once per class (for mixins that only read)."""

    kind = "dict"
    n_children = 3
    shared_children = False

    @classmethod
    def _build_children(cls, target, add_cleanup):
        directory = tempfile.mkdtemp(prefix="encore_joined_")
        add_cleanup(shutil.rmtree, directory, True)
        target.event_manager = EventManager()
        target.children = [
            make_child(cls.kind, directory, "child%d" % i, target.event_manager)
            for i in range(cls.n_children)
        ]
        for child in target.children:
            add_cleanup(child.disconnect)
        cls.fill(target.children)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.shared_children:
            cls._build_children(cls, cls.addClassCleanup)

    def setUp(self):
        if not self.shared_children:
            self._build_children(self, self.addCleanup)
        self.store = JoinedStore(self.children, event_manager=self.event_manager)
        self.store.connect()
        self.addCleanup(self.store.disconnect)

    @classmethod
    def fill(cls, children):
        pass


class _JoinedRead(_JoinedCase, StoreReadTestMixin):
    """The read fixture spread over the children, with shadowed copies
    that must never show (built once per class: the tests only read)."""

    shared_children = True

    @classmethod
    def fill(cls, children):
        a, b, c = children
        items = {key: (value, metadata) for key, value, metadata in read_fixture()}
        for key in ("key0", "key1", "key2", "key3"):
            populate(a, [(key,) + items[key]])
        for key in ("key4", "key5", "key6"):
            populate(b, [(key,) + items[key]])
        for key in ("test1", "key7", "key8", "key9"):
            populate(c, [(key,) + items[key]])
        # Shadowed copies: different data, and metadata that would match
        # queries the visible copy does not match.
        populate(b, [("key0", b"shadowed", {"query_test1": "value", "query_test2": 0})])
        populate(c, [("key5", b"shadowed", {"query_test1": "value", "query_test2": 5,
                                           "optional": True})])
        populate(c, [("key1", b"shadowed", {"a_str": "test3"})])


class _JoinedWrite(_JoinedCase, StoreWriteTestMixin):
    """The write fixture spread over the children: writes to keys held by
    later children go through copy-on-write."""

    @classmethod
    def fill(cls, children):
        a, b, c = children
        items = write_fixture()
        populate(a, items[:1])
        populate(b, items[1:6])
        populate(c, items[6:])
        populate(c, [("existing_key0", b"shadowed", {"meta": True, "meta1": 100})])


class _JoinedLarge(_JoinedCase, StoreLargeValueTestMixin):
    # Twice the allowed allocation peak: holding a value whole is caught.
    large_value_size = 16 << 20


def _joined_extra(kind, label):
    # Two children keep the file-system key tests within their time.
    return {"n_children": 2} if kind == "filesystem" and label == "Keys" else {}


globals().update(make_mixin_classes(
    "TestJoined", _JoinedCase, _JoinedRead, _JoinedWrite, _JoinedLarge, extra=_joined_extra))


# ---------------------------------------------------------------------------
# Behaviour specific to the joined store
# ---------------------------------------------------------------------------

def put(store, key, value, metadata):
    store.set(key, (io.BytesIO(value), metadata))


@pytest.fixture(params=CHILD_KINDS)
def kind(request):
    return request.param


@pytest.fixture
def children(kind, tmp_path, event_manager):
    stores = [make_child(kind, str(tmp_path), "c%d" % i, event_manager) for i in range(3)]
    yield stores
    for store in stores:
        store.disconnect()


@pytest.fixture
def joined(children, event_manager):
    store = JoinedStore(children, event_manager=event_manager)
    store.connect()
    yield store
    store.disconnect()


def test_reads_come_from_the_first_holder(joined, children):
    a, b, c = children
    put(b, "k", b"from b", {"who": "b"})
    put(c, "k", b"from c", {"who": "c"})
    put(c, "only_c", b"c only", {"who": "c"})
    assert data(joined.get("k").data) == b"from b"
    assert joined.get("k").metadata == {"who": "b"}
    assert data(joined.get_data("k")) == b"from b"
    assert data(joined.get_data_range("k", 5, 6)) == b"b"
    assert joined.get_metadata("k", ["who", "missing"]) == {"who": "b"}
    assert joined.exists("only_c") and not joined.exists("nowhere")
    assert data(joined.get_data("only_c")) == b"c only"
    for method in (joined.get, joined.get_data, joined.get_metadata, joined.to_bytes):
        with pytest.raises(KeyError):
            method("nowhere")


def test_queries_and_glob_report_each_key_once_without_shadowed_copies(joined, children):
    a, b, c = children
    put(a, "k1", b"a", {"x": 1})
    put(b, "k1", b"b", {"x": 2, "shadow": True})   # shadowed, matches shadow=True
    put(b, "k2", b"b", {"x": 1})
    put(c, "k2", b"c", {"x": 1})
    put(c, "k3", b"c", {"x": 3})
    assert sorted(joined.query_keys()) == ["k1", "k2", "k3"]
    assert sorted(joined.query()) == [("k1", {"x": 1}), ("k2", {"x": 1}), ("k3", {"x": 3})]
    assert sorted(key for key, _ in joined.query(select=["x"], x=1)) == ["k1", "k2"]
    assert list(joined.query(shadow=True)) == []
    assert list(joined.query_keys(x=2)) == []
    assert sorted(joined.query_keys(x=1)) == ["k1", "k2"]
    assert dict(joined.query(select=["x"], x=3)) == {"k3": {"x": 3}}
    assert sorted(joined.glob("k*")) == ["k1", "k2", "k3"]
    assert list(joined.glob("k[2]")) == ["k2"]


def test_set_writes_the_first_store_and_leaves_shadowed_copies(joined, children, record_events):
    a, b, c = children
    put(c, "k", b"old", {"v": 0})
    with record_events(joined) as recorder:
        joined.set("k", (io.BytesIO(b"new"), {"v": 1}))
    assert a.get_metadata("k") == {"v": 1} and data(a.get_data("k")) == b"new"
    assert c.get_metadata("k") == {"v": 0}
    events = recorder.modifications()
    assert [(type(e), e.key, e.metadata) for e in events] == [(StoreUpdateEvent, "k", {"v": 1})]


@pytest.mark.parametrize("holder", [1, 2])
def test_copy_on_write(joined, children, holder, record_events, event_manager):
    held = children[holder]
    put(held, "cow", b"original data", {"a": 1, "b": 2})
    joined.update_metadata("cow", {"b": 3})
    assert children[0].get_metadata("cow") == {"a": 1, "b": 3}
    assert data(children[0].get_data("cow")) == b"original data"
    assert held.get_metadata("cow") == {"a": 1, "b": 2}          # untouched
    children[0].delete("cow")
    joined.set_metadata("cow", {"c": 4})
    assert children[0].get_metadata("cow") == {"c": 4}
    assert data(children[0].get_data("cow")) == b"original data"
    children[0].delete("cow")
    with EventRecorder(event_manager, children[0]) as child_events:
        with record_events(joined) as recorder:
            joined.set_data("cow", io.BytesIO(b"new data"))
    assert children[0].get_metadata("cow") == {"a": 1, "b": 2}
    assert data(children[0].get_data("cow")) == b"new data"
    assert data(held.get_data("cow")) == b"original data"
    # Listeners on the joined store see one event; the child reports its own.
    assert [(type(e), e.metadata) for e in recorder.modifications()] == [
        (StoreUpdateEvent, {"a": 1, "b": 2})]
    assert [type(e) for e in child_events.modifications()] == [StoreSetEvent]


def test_copy_on_write_of_a_large_value_streams(joined, children):
    size = 8 << 20
    children[2].set("big", (PatternFile(size), {"n": 1}))
    joined.update_metadata("big", {"n": 2})
    stream = children[0].get_data("big")
    import hashlib
    digest = hashlib.sha1()
    try:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    finally:
        stream.close()
    assert digest.hexdigest() == pattern_digest(size)
    assert children[0].get_metadata("big") == {"n": 2}


def test_delete_removes_every_copy(joined, children, record_events):
    a, b, c = children
    put(a, "k", b"a", {"who": "a"})
    put(c, "k", b"c", {"who": "c"})
    put(b, "only_b", b"b", {})
    with record_events(joined) as recorder:
        joined.delete("k")
        joined.delete("only_b")
    assert not any(child.exists("k") for child in children)
    assert not b.exists("only_b")
    assert not joined.exists("k")
    assert [(type(e), e.key, e.metadata) for e in recorder.modifications()] == [
        (StoreDeleteEvent, "k", {"who": "a"}), (StoreDeleteEvent, "only_b", {})]
    with pytest.raises(KeyError):
        joined.delete("k")


def test_update_metadata_missing_raises(joined):
    with pytest.raises(KeyError):
        joined.update_metadata("nowhere", {"a": 1})
    assert not joined.exists("nowhere")


def test_new_keys_go_to_the_first_store(joined, children):
    joined.set_data("d", io.BytesIO(b"data"))
    joined.set_metadata("m", {"a": 1})
    joined.from_bytes("f", b"bytes")
    for key in ("d", "m", "f"):
        assert children[0].exists(key)
        assert not children[1].exists(key) and not children[2].exists(key)
    assert children[0].get_metadata("d") == {}
    assert data(children[0].get_data("m")) == b""


def test_rollback_spans_the_children(event_manager):
    a, b = DictMemoryStore(event_manager=event_manager), DictMemoryStore(event_manager=event_manager)
    put(a, "in_a", b"a", {"x": 1})
    put(b, "in_b", b"b", {"y": 1})
    put(b, "in_both", b"b", {"z": 1})
    put(a, "in_both", b"a", {"z": 0})
    joined = JoinedStore([a, b], event_manager=event_manager)
    before = ({k: a.get_metadata(k) for k in a.query_keys()},
              {k: b.get_metadata(k) for k in b.query_keys()})
    with EventRecorder(event_manager, joined) as recorder:
        with pytest.raises(RuntimeError):
            with joined.transaction("failing"):
                joined.update_metadata("in_b", {"y": 2})     # copy-on-write into a
                joined.delete("in_both")                     # from a and b
                joined.set("new", (io.BytesIO(b"n"), {}))
                assert joined.get_metadata("in_b") == {"y": 2}
                raise RuntimeError("boom")
    after = ({k: a.get_metadata(k) for k in a.query_keys()},
             {k: b.get_metadata(k) for k in b.query_keys()})
    assert after == before
    assert recorder.modifications() == []
    assert [e.state for e in recorder.of_type(StoreTransactionEndEvent)] == ["failed"]


def test_commit_emits_the_composite_events_after_the_transaction(event_manager):
    a, b = DictMemoryStore(event_manager=event_manager), DictMemoryStore(event_manager=event_manager)
    put(b, "k", b"b", {"y": 1})
    joined = JoinedStore([a, b], event_manager=event_manager)
    with EventRecorder(event_manager, joined) as recorder:
        with joined.transaction("ok"):
            joined.update_metadata("k", {"y": 2})
            joined.delete("k")
            assert recorder.modifications() == []
    kinds = [type(e) for e in recorder.events]
    assert kinds[-3:] == [StoreTransactionEndEvent, StoreUpdateEvent, StoreDeleteEvent]
    assert not a.exists("k") and not b.exists("k")


def test_failed_transaction_over_a_child_without_rollback_reports_the_writes(event_manager):
    a = NoRollbackStore(event_manager=event_manager)
    joined = JoinedStore([a, DictMemoryStore(event_manager=event_manager)],
                         event_manager=event_manager)
    with EventRecorder(event_manager, joined) as recorder:
        with pytest.raises(RuntimeError):
            with joined.transaction("failing"):
                joined.set("k", (io.BytesIO(b"x"), {"a": 1}))
                raise RuntimeError("boom")
    assert a.exists("k")   # the write persisted, so its event is reported
    assert [(type(e), e.key) for e in recorder.modifications()] == [(StoreSetEvent, "k")]


def test_read_only_lower_store(event_manager):
    top = DictMemoryStore(event_manager=event_manager)
    inner = DictMemoryStore(event_manager=event_manager)
    put(inner, "remote", b"remote data", {"r": 1})
    joined = JoinedStore([top, ReadOnlyView(inner)], event_manager=event_manager)
    joined.update_metadata("remote", {"local": True})
    assert top.get_metadata("remote") == {"r": 1, "local": True}
    put(inner, "remote_only", b"x", {})
    with pytest.raises(StoreError):
        joined.delete("remote")           # held by the read-only store too
    assert top.exists("remote") and inner.exists("remote")
    with pytest.raises(StoreError):
        JoinedStore([ReadOnlyView(inner), top]).set("k", (io.BytesIO(b""), {}))
    assert JoinedStore([ReadOnlyView(inner), top]).info()["readonly"] is True


def test_empty_joined_store():
    joined = JoinedStore([])
    assert not joined.exists("k")
    assert list(joined.query()) == []
    with pytest.raises(KeyError):
        joined.get("k")
    with pytest.raises(StoreError):
        joined.set("k", (io.BytesIO(b""), {}))


def test_connect_reaches_the_children_it_needs_and_disconnect_keeps_stores(event_manager):
    already = DictMemoryStore(event_manager=event_manager)
    already.connect()
    fresh = DictMemoryStore(event_manager=event_manager)
    joined = JoinedStore([already, fresh], event_manager=event_manager)
    assert not joined.is_connected()
    joined.connect()
    assert joined.is_connected() and fresh.is_connected()
    joined.disconnect()
    assert not joined.is_connected()
    assert not fresh.is_connected()     # connected by the joined store
    assert already.is_connected()       # connected by its owner
    assert joined.stores == [already, fresh]
    joined.connect()
    assert fresh.is_connected()


def test_info_and_permissions(event_manager, joined, children):
    info = joined.info()
    assert info["readonly"] is False and info["authorizing"] is False
    assert joined.user_tag == "user"
    assert joined.user_tag() == "user"      # Encore 0.8 called it as a method
    assert type(joined.user_tag()) is str
    put(children[1], "k", b"x", {})
    with pytest.raises(AuthorizationError):
        joined.get_permissions("k")
    with pytest.raises(AuthorizationError):
        joined.set_permissions("k", {"owned": {"user"}})
    with pytest.raises(KeyError):
        joined.get_permissions("nowhere")


def test_user_tag_comes_from_the_first_child_with_one(event_manager):
    class PropertyTag(DictMemoryStore):
        user_tag = property(lambda self: "alice")

    class MethodTag(DictMemoryStore):
        def user_tag(self):   # as Encore 0.8's DynamicURLStore had it
            return "bob"

    plain = DictMemoryStore(event_manager=event_manager)
    joined = JoinedStore([plain, PropertyTag(event_manager=event_manager), MethodTag()],
                         event_manager=event_manager)
    assert joined.user_tag == "alice" and joined.user_tag() == "alice"
    joined = JoinedStore([MethodTag(event_manager=event_manager), PropertyTag()],
                         event_manager=event_manager)
    assert joined.user_tag == "bob" and joined.user_tag() == "bob"


def test_progress_events_have_the_joined_store_as_source(joined, record_events):
    size = 3 << 20
    with record_events(joined, StoreProgressEvent) as recorder:
        joined.set("big", (PatternFile(size), {}), buffer_size=1 << 20)
    events = recorder.events
    assert isinstance(events[0], StoreProgressStartEvent)
    assert isinstance(events[-1], StoreProgressEndEvent)
    assert events[-1].exit_state == "normal"
    steps = [e.step for e in events[1:-1]]
    assert steps and steps[-1] == size and len(steps) <= size // (64 << 10) + 2


def test_no_composite_events_without_listeners(joined, children, event_manager):
    # Nobody listens: writes work and no listener machinery is required.
    put(children[2], "k", b"x", {"a": 1})
    joined.update_metadata("k", {"b": 2})
    joined.delete("k")
    assert not joined.exists("k")


def test_joined_of_joined_stores(event_manager):
    inner_a, inner_b = DictMemoryStore(event_manager=event_manager), DictMemoryStore(event_manager=event_manager)
    put(inner_b, "deep", b"deep", {"level": 2})
    inner = JoinedStore([inner_a, inner_b], event_manager=event_manager)
    top = DictMemoryStore(event_manager=event_manager)
    outer = JoinedStore([top, inner], event_manager=event_manager)
    with EventRecorder(event_manager, outer) as recorder:
        outer.update_metadata("deep", {"seen": True})
        outer.delete("deep")
    assert [type(e) for e in recorder.modifications()] == [StoreUpdateEvent, StoreDeleteEvent]
    assert not any(s.exists("deep") for s in (top, inner_a, inner_b))


def test_nested_composites_sharing_a_child_do_not_deadlock(event_manager):
    import threading

    from encore.storage.mounted_store import MountedStore

    shared = DictMemoryStore(event_manager=event_manager)
    inner_joined = JoinedStore([shared, DictMemoryStore(event_manager=event_manager)],
                               event_manager=event_manager)
    mount = DictMemoryStore(event_manager=event_manager)
    inner_mounted = MountedStore("", mount, shared, event_manager=event_manager)
    outer = JoinedStore([inner_joined, inner_mounted], event_manager=event_manager)
    errors = []

    def through_outer(index):
        # A transaction that writes `shared` (through inner_joined), then
        # deletes a key only inner_mounted holds: it needs inner_mounted's
        # lock while `shared`'s is held.
        for round_ in range(60):
            own = "own%d_%d" % (index, round_)
            mount.set(own, (io.BytesIO(b"m"), {}))
            with outer.transaction("outer"):
                outer.set("k%d" % index, (io.BytesIO(b"%d" % round_), {"r": round_}))
                outer.delete(own)

    def through_mounted(index):
        # A delete of a key held by both of inner_mounted's stores: it holds
        # inner_mounted's lock and needs `shared`'s.
        for round_ in range(60):
            key = "both%d_%d" % (index, round_)
            mount.set(key, (io.BytesIO(b"m"), {}))
            shared.set(key, (io.BytesIO(b"s"), {}))
            inner_mounted.delete(key)

    def through_inner(index):
        for round_ in range(60):
            inner_joined.set("i%d" % index, (io.BytesIO(b"%d" % round_), {}))
            inner_joined.update_metadata("i%d" % index, {"r": round_})

    workers = [through_outer, through_mounted, through_outer, through_mounted, through_inner]
    barrier = threading.Barrier(len(workers), timeout=30)

    def run(index, work):
        try:
            barrier.wait()
            work(index)
        except BaseException as error:  # reported below
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i, w), daemon=True) for i, w in enumerate(workers)]
    # Switch threads often, to open the windows where lock orders could clash.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    finally:
        sys.setswitchinterval(interval)
    assert [t for t in threads if t.is_alive()] == [], "composite writers deadlocked"
    assert errors == []
    assert not any(key.startswith(("own", "both")) for key in outer.query_keys())


def test_single_writes_leave_untouched_children_alone(event_manager):
    from encore.storage.events import StoreTransactionStartEvent

    a, b, c = (DictMemoryStore(event_manager=event_manager) for _ in range(3))
    put(c, "low", b"low", {"x": 1})
    joined = JoinedStore([a, b, c], event_manager=event_manager)
    recorders = [EventRecorder(event_manager, store, StoreTransactionStartEvent)
                 for store in (joined, a, b, c)]
    for recorder in recorders:
        recorder.__enter__()
    try:
        joined.set("k", (io.BytesIO(b"x"), {}))
        joined.update_metadata("low", {"y": 2})       # copy-on-write: one write of a
        joined.delete("k")
        # Outside a transaction nobody opened one.
        assert [len(r.events) for r in recorders] == [0, 0, 0, 0]
        with joined.transaction("explicit"):
            joined.set("k2", (io.BytesIO(b"x"), {}))
        # Only the child written joined the explicit transaction.
        assert [len(r.events) for r in recorders] == [1, 1, 0, 0]
        joined.delete("low")                          # two copies: a and c
        assert [len(r.events) for r in recorders] == [2, 2, 0, 1]
    finally:
        for recorder in recorders:
            recorder.__exit__(None, None, None)


def test_events_are_emitted_after_the_lock_is_released(event_manager):
    import threading

    joined = JoinedStore([DictMemoryStore(event_manager=event_manager)],
                         event_manager=event_manager)
    finished = []

    def listener(event):
        # (The child's own event is emitted during the write, under the lock.)
        if event.source is not joined or event.key != "first":
            return
        # Another thread writing through the store must not wait for us.
        thread = threading.Thread(
            target=lambda: (joined.set("second", (io.BytesIO(b"2"), {})), finished.append(1)),
            daemon=True)
        thread.start()
        thread.join(10)

    event_manager.connect(StoreSetEvent, listener)
    joined.set("first", (io.BytesIO(b"1"), {}))
    assert finished == [1]
    assert joined.exists("second")


def test_concurrent_copy_on_write_loses_no_update(kind, tmp_path, event_manager):
    import threading

    children = [make_child(kind, str(tmp_path), "c%d" % i, event_manager) for i in range(2)]
    joined = JoinedStore(children, event_manager=event_manager)
    threads_count = 4
    for round_ in range(5):
        key = "low%d" % round_
        put(children[1], key, b"low", {"base": True})
        barrier = threading.Barrier(threads_count, timeout=30)
        errors = []

        def update(index):
            try:
                barrier.wait()
                joined.update_metadata(key, {"t%d" % index: index})
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=update, args=(i,), daemon=True) for i in range(threads_count)]
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)   # interleave the read-then-write steps
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        finally:
            sys.setswitchinterval(interval)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        expected = {"base": True}
        expected.update({"t%d" % i: i for i in range(threads_count)})
        assert children[0].get_metadata(key) == expected
        assert children[1].get_metadata(key) == {"base": True}
    for child in children:
        child.disconnect()
