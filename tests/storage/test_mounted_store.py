"""Tests of MountedStore: the bundled conformance mixins over dict, sqlite and
filesystem children, and the mounted store's own routing (prefix mapping,
shadowing, copy-on-write, delete, push, transactions, events)."""
import io
import shutil
import tempfile

import pytest

from .composite_support import CHILD_KINDS, data, make_child, make_mixin_classes

from encore.events.event_manager import EventManager
from encore.storage.abstract_store import AbstractReadOnlyStore, StoreError
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import (
    StoreDeleteEvent,
    StoreSetEvent,
    StoreTransactionEndEvent,
    StoreUpdateEvent,
)
from encore.storage.mounted_store import MountedStore
from encore.storage.tests.abstract_test import (
    LARGE_SIZE,
    EventRecorder,
    PatternFile,
    StoreLargeValueTestMixin,
    StoreReadTestMixin,
    StoreWriteTestMixin,
    populate,
    read_fixture,
    write_fixture,
)

def put(store, key, value, metadata):
    store.set(key, (io.BytesIO(value), metadata))


class ReadOnlyView(AbstractReadOnlyStore):
    """A read-only store showing the content of another store."""

    def __init__(self, store, event_manager=None):
        super().__init__(event_manager=event_manager)
        self.inner = store

    def get(self, key):
        return self.inner.get(key)

    def query(self, select=None, **kwargs):
        return self.inner.query(select, **kwargs)


# ---------------------------------------------------------------------------
# The conformance mixins
# ---------------------------------------------------------------------------

class _MountedCase(object):
    """setUp: a mount store and a backing store of ``kind`` (filled by
    :meth:`fill`), mounted at ``mount_point``.  With ``shared_children`` the
    children are built and filled once per class (for mixins that only
    read)."""

    kind = "dict"
    mount_point = ""
    shared_children = False

    @classmethod
    def _build_children(cls, target, add_cleanup):
        directory = tempfile.mkdtemp(prefix="encore_mounted_")
        add_cleanup(shutil.rmtree, directory, True)
        target.event_manager = EventManager()
        target.mount = make_child(cls.kind, directory, "mount", target.event_manager)
        target.backing = make_child(cls.kind, directory, "backing", target.event_manager)
        add_cleanup(target.mount.disconnect)
        add_cleanup(target.backing.disconnect)
        cls.fill(target.mount, target.backing)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.shared_children:
            cls._build_children(cls, cls.addClassCleanup)

    def setUp(self):
        if not self.shared_children:
            self._build_children(self, self.addCleanup)
        self.store = MountedStore(self.mount_point, self.mount, self.backing,
                                  event_manager=self.event_manager)
        self.store.connect()
        self.addCleanup(self.store.disconnect)

    @classmethod
    def fill(cls, mount, backing):
        pass


class _MountedRead(_MountedCase, StoreReadTestMixin):
    """Mounted at ``'key'``: key0..key4 come from the mount store (as
    ``'0'``..``'4'``), the rest from the backing store, which also holds
    shadowed copies that must never show."""

    mount_point = "key"
    shared_children = True

    @classmethod
    def fill(cls, mount, backing):
        items = {key: (value, metadata) for key, value, metadata in read_fixture()}
        for i in range(5):
            populate(mount, [(str(i),) + items["key%d" % i]])
        for key in ("test1", "key5", "key6", "key7", "key8", "key9"):
            populate(backing, [(key,) + items[key]])
        # Shadowed backing copies, matching queries the mount copies do not.
        populate(backing, [("key1", b"shadowed", {"query_test1": "value",
                                                        "query_test2": 1, "optional": True})])
        populate(backing, [("key3", b"shadowed", {"a_str": "test3"})])

    def utils_large(self):
        # 'test_large' is outside the mount point: put it in the backing store.
        self.backing.set("test_large", (PatternFile(LARGE_SIZE), {"large": True}))
        # Encore's large key for test_to_file_large, outside the mount point too.
        self.backing.set("test3", (PatternFile(5 * 10 ** 7, b"test4"), {}))


class _MountedWrite(_MountedCase, StoreWriteTestMixin):
    """Mounted over the whole key space: existing_key5..9 are only in the
    backing store, so writing them goes through copy-on-write."""

    @classmethod
    def fill(cls, mount, backing):
        items = write_fixture()
        populate(mount, items[:6])
        populate(backing, items[6:])
        populate(backing, [("existing_key0", b"shadowed", {"meta": True, "meta1": 50})])


class _MountedLarge(_MountedCase, StoreLargeValueTestMixin):
    # Twice the allowed allocation peak: holding a value whole is caught.
    large_value_size = 16 << 20


globals().update(make_mixin_classes(
    "TestMounted", _MountedCase, _MountedRead, _MountedWrite, _MountedLarge))


# ---------------------------------------------------------------------------
# Behaviour specific to the mounted store
# ---------------------------------------------------------------------------

@pytest.fixture(params=CHILD_KINDS)
def kind(request):
    return request.param


@pytest.fixture
def pair(kind, tmp_path, event_manager):
    mount = make_child(kind, str(tmp_path), "mount", event_manager)
    backing = make_child(kind, str(tmp_path), "backing", event_manager)
    yield mount, backing
    mount.disconnect()
    backing.disconnect()


@pytest.fixture
def mounted(pair, event_manager):
    store = MountedStore("cache/", pair[0], pair[1], event_manager=event_manager)
    store.connect()
    yield store
    store.disconnect()


def test_keys_map_under_the_mount_point(mounted, pair):
    mount, backing = pair
    put(mount, "a", b"mounted a", {"m": 1})
    put(backing, "cache/a", b"backing a", {"b": 1})
    put(backing, "cache/b", b"backing b", {"b": 2})
    put(backing, "other", b"other", {"o": 1})
    put(mount, "other", b"not visible as 'other'", {})
    assert data(mounted.get_data("cache/a")) == b"mounted a"
    assert mounted.get("cache/a").metadata == {"m": 1}
    assert mounted.get_metadata("cache/b") == {"b": 2}
    assert data(mounted.get_data_range("cache/a", 0, 7)) == b"mounted"
    assert data(mounted.get_data("other")) == b"other"
    assert mounted.exists("cache/other")       # the mount store's 'other'
    assert not mounted.exists("a") and not mounted.exists("cache/zzz")
    with pytest.raises(KeyError):
        mounted.get("a")
    with pytest.raises(KeyError):
        mounted.get_metadata("cache/zzz")


def test_queries_never_repeat_or_show_shadowed_backing_copies(mounted, pair):
    mount, backing = pair
    put(mount, "a", b"", {"x": 1})
    put(backing, "cache/a", b"", {"x": 2, "stale": True})   # shadowed
    put(backing, "cache/b", b"", {"x": 1})
    put(backing, "elsewhere", b"", {"x": 1})
    put(backing, "cache/c", b"", {"x": 1})
    put(mount, "c", b"", {"x": 1})                         # both copies match
    assert sorted(mounted.query_keys()) == ["cache/a", "cache/b", "cache/c", "elsewhere"]
    assert sorted(mounted.query()) == [
        ("cache/a", {"x": 1}), ("cache/b", {"x": 1}), ("cache/c", {"x": 1}), ("elsewhere", {"x": 1})]
    assert sorted(key for key, _ in mounted.query(x=1)) == ["cache/a", "cache/b", "cache/c", "elsewhere"]
    mount.delete("c")
    backing.delete("cache/c")
    assert list(mounted.query(stale=True)) == []
    assert list(mounted.query_keys(x=2)) == []
    assert sorted(mounted.query_keys(x=1)) == ["cache/a", "cache/b", "elsewhere"]
    assert dict(mounted.query(select=["stale"], x=1))["cache/a"] == {}
    assert sorted(mounted.glob("cache/*")) == ["cache/a", "cache/b"]
    assert sorted(mounted.glob("*/a")) == ["cache/a"]
    assert sorted(mounted.glob("*e*")) == ["cache/a", "cache/b", "elsewhere"]
    assert sorted(mounted.glob("c?che/[ab]")) == ["cache/a", "cache/b"]
    assert list(mounted.glob("else*")) == ["elsewhere"]


def test_writes_outside_the_mount_point_are_refused(mounted, pair, record_events):
    mount, backing = pair
    put(backing, "outside", b"x", {"o": 1})
    with record_events(mounted) as recorder:
        for call in (
            lambda: mounted.set("outside", (io.BytesIO(b"y"), {})),
            lambda: mounted.set_data("outside", io.BytesIO(b"y")),
            lambda: mounted.set_metadata("outside", {}),
            lambda: mounted.update_metadata("outside", {"a": 1}),
            lambda: mounted.delete("outside"),
            lambda: mounted.push("outside"),
            lambda: mounted.from_bytes("new_outside", b"y"),
        ):
            with pytest.raises(KeyError):
                call()
    assert recorder.modifications() == []
    assert backing.get_metadata("outside") == {"o": 1}
    assert list(mount.query_keys()) == []
    assert not backing.exists("new_outside")


def test_copy_on_write_into_the_mount_store(mounted, pair, record_events):
    mount, backing = pair
    put(backing, "cache/k", b"backing data", {"a": 1})
    with record_events(mounted) as recorder:
        mounted.update_metadata("cache/k", {"b": 2})
    assert mount.get_metadata("k") == {"a": 1, "b": 2}
    assert data(mount.get_data("k")) == b"backing data"
    assert backing.get_metadata("cache/k") == {"a": 1}
    assert [(type(e), e.key, e.metadata) for e in recorder.modifications()] == [
        (StoreUpdateEvent, "cache/k", {"a": 1, "b": 2})]
    mount.delete("k")
    mounted.set_metadata("cache/k", {"c": 3})
    assert mount.get_metadata("k") == {"c": 3}
    assert data(mount.get_data("k")) == b"backing data"
    mount.delete("k")
    mounted.set_data("cache/k", io.BytesIO(b"new"))
    assert mount.get_metadata("k") == {"a": 1}
    assert data(mount.get_data("k")) == b"new"
    assert data(backing.get_data("cache/k")) == b"backing data"


def test_new_keys_go_to_the_mount_store(mounted, pair, record_events):
    mount, backing = pair
    with record_events(mounted) as recorder:
        mounted.set("cache/new", (io.BytesIO(b"n"), {"n": 1}))
        mounted.set_data("cache/d", io.BytesIO(b"d"))
        mounted.set_metadata("cache/m", {"m": 1})
    assert sorted(mount.query_keys()) == ["d", "m", "new"]
    assert list(backing.query_keys()) == []
    assert [(type(e), e.key) for e in recorder.modifications()] == [
        (StoreSetEvent, "cache/new"), (StoreSetEvent, "cache/d"), (StoreSetEvent, "cache/m")]
    with pytest.raises(KeyError):
        mounted.update_metadata("cache/none", {"a": 1})


def test_delete_removes_both_copies(mounted, pair, record_events):
    mount, backing = pair
    put(mount, "both", b"m", {"where": "mount"})
    put(backing, "cache/both", b"b", {"where": "backing"})
    put(mount, "mount_only", b"m", {})
    put(backing, "cache/backing_only", b"b", {"where": "backing"})
    with record_events(mounted) as recorder:
        mounted.delete("cache/both")
        mounted.delete("cache/mount_only")
        mounted.delete("cache/backing_only")
    assert list(mount.query_keys()) == [] and list(backing.query_keys()) == []
    assert [(type(e), e.key, e.metadata) for e in recorder.modifications()] == [
        (StoreDeleteEvent, "cache/both", {"where": "mount"}),
        (StoreDeleteEvent, "cache/mount_only", {}),
        (StoreDeleteEvent, "cache/backing_only", {"where": "backing"}),
    ]
    with pytest.raises(KeyError):
        mounted.delete("cache/both")


def test_delete_with_a_read_only_backing_store(event_manager):
    mount, inner = DictMemoryStore(event_manager=event_manager), DictMemoryStore(event_manager=event_manager)
    put(mount, "k", b"m", {})
    put(inner, "p/k", b"b", {})
    put(mount, "only", b"m", {})
    mounted = MountedStore("p/", mount, ReadOnlyView(inner), event_manager=event_manager)
    with pytest.raises(StoreError):
        mounted.delete("p/k")
    assert mount.exists("k") and inner.exists("p/k")   # nothing deleted
    mounted.delete("p/only")
    assert not mount.exists("only")
    with pytest.raises(StoreError):
        mounted.push("p/k")
    assert mount.exists("k")


def test_push_moves_a_key_down(mounted, pair, record_events, event_manager):
    mount, backing = pair
    put(mount, "p", b"pushed data", {"p": 1})
    put(backing, "cache/p", b"old", {"old": True})
    with EventRecorder(event_manager, backing) as backing_events:
        with record_events(mounted) as recorder:
            mounted.push("cache/p")
    assert not mount.exists("p")
    assert data(backing.get_data("cache/p")) == b"pushed data"
    assert backing.get_metadata("cache/p") == {"p": 1}
    assert mounted.get_metadata("cache/p") == {"p": 1}
    assert recorder.modifications() == []          # the view did not change
    assert [type(e) for e in backing_events.modifications()] == [StoreUpdateEvent]
    with pytest.raises(KeyError):
        mounted.push("cache/p")                    # no longer in the mount store
    with pytest.raises(KeyError):
        mounted.push("cache/none")


def test_push_of_a_large_value(mounted, pair):
    size = 8 << 20
    pair[0].set("big", (PatternFile(size), {"big": True}))
    mounted.push("cache/big")
    assert pair[1].get("cache/big").size == size
    assert data(pair[1].get_data_range("cache/big", size - 5, size)) == PatternFile(size).expected(size - 5)


def test_rollback_spans_both_stores(event_manager):
    mount, backing = DictMemoryStore(event_manager=event_manager), DictMemoryStore(event_manager=event_manager)
    put(mount, "m", b"m", {"m": 1})
    put(backing, "p/b", b"b", {"b": 1})
    put(backing, "p/m", b"old", {"old": 1})
    mounted = MountedStore("p/", mount, backing, event_manager=event_manager)

    def snapshot():
        return ({k: (mount.to_bytes(k), mount.get_metadata(k)) for k in mount.query_keys()},
                {k: (backing.to_bytes(k), backing.get_metadata(k)) for k in backing.query_keys()})

    before = snapshot()
    with EventRecorder(event_manager, mounted) as recorder:
        with pytest.raises(RuntimeError):
            with mounted.transaction("failing"):
                mounted.push("p/m")
                mounted.update_metadata("p/b", {"c": 2})
                mounted.delete("p/b")
                mounted.set("p/new", (io.BytesIO(b"n"), {}))
                raise RuntimeError("boom")
    assert snapshot() == before
    assert recorder.modifications() == []
    assert [e.state for e in recorder.of_type(StoreTransactionEndEvent)] == ["failed"]


def test_mount_point_must_be_text():
    with pytest.raises(TypeError):
        MountedStore(b"p/", DictMemoryStore(), DictMemoryStore())


def test_info_connect_and_stores(event_manager):
    mount, backing = DictMemoryStore(event_manager=event_manager), DictMemoryStore(event_manager=event_manager)
    backing.connect()
    mounted = MountedStore("p/", mount, backing, event_manager=event_manager)
    assert mounted.stores == [mount, backing]
    mounted.connect()
    assert mounted.is_connected() and mount.is_connected()
    mounted.disconnect()
    assert not mounted.is_connected() and not mount.is_connected()
    assert backing.is_connected()
    assert mounted.stores == [mount, backing]
    info = mounted.info()
    assert info["mount_point"] == "p/" and info["readonly"] is False
