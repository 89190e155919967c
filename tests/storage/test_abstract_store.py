"""Tests of the abstract store API: derived defaults, argument checks,
events and transactions, using a minimal store that implements only the
abstract core."""
import io
import threading
import warnings

import pytest

from encore.events.event_manager import EventManager
from encore.storage.abstract_store import (
    AbstractAuthorizingStore,
    AbstractReadOnlyStore,
    AbstractStore,
    AuthorizationError,
    StoreError,
    Value,
    ValueParts,
    check_key,
    check_metadata,
    checks_own_arguments,
    value_parts,
)
import encore.storage.abstract_store as abstract_store_module
from encore.storage.events import (
    StoreDeleteEvent,
    StoreEvent,
    StoreModificationEvent,
    StoreProgressEndEvent,
    StoreProgressEvent,
    StoreProgressStartEvent,
    StoreProgressStepEvent,
    StoreSetEvent,
    StoreTransactionEndEvent,
    StoreTransactionStartEvent,
    StoreUpdateEvent,
)
from encore.storage.string_value import StringValue


class MinimalStore(AbstractStore):
    """Implements only the abstract core, plus rollback hooks when asked."""

    def __init__(self, event_manager=None, rollback=True):
        super().__init__(event_manager=event_manager)
        self.data = {}
        self.calls = []
        self._snapshot = None
        if not rollback:
            self._begin_transaction = None  # hide the hooks
            self._commit_transaction = None
            self._rollback_transaction = None

    def _begin_transaction(self):
        self._snapshot = dict(self.data)

    def _commit_transaction(self):
        self._snapshot = None

    def _rollback_transaction(self):
        self.data = self._snapshot
        self._snapshot = None

    def get(self, key):
        self.calls.append(("get", key))
        data, metadata = self.data[key]
        return StringValue(data, metadata)

    def query(self, select=None, **kwargs):
        for key, (data, metadata) in sorted(self.data.items()):
            if all(metadata.get(name) == value for name, value in kwargs.items()):
                if select is not None:
                    metadata = {name: metadata[name] for name in select if name in metadata}
                yield key, dict(metadata)

    def set_data(self, key, data, buffer_size=1048576):
        self.calls.append(("set_data", key))
        with self.transaction("set data"):
            existed = key in self.data
            metadata = self.data[key][1] if existed else {}
            self.data[key] = (b"".join(iter(lambda: data.read(buffer_size), b"")), metadata)
            self._emit_write(key, existed, dict(metadata))

    def set_metadata(self, key, metadata):
        self.calls.append(("set_metadata", key, metadata))
        with self.transaction("set metadata"):
            existed = key in self.data
            data = self.data[key][0] if existed else b""
            self.data[key] = (data, metadata)
            self._emit_write(key, existed, dict(metadata))

    def delete(self, key):
        with self.transaction("delete"):
            data, metadata = self.data.pop(key)
            self._emit_delete(key, metadata)


@pytest.fixture
def manager():
    return EventManager()


@pytest.fixture
def store(manager):
    store = MinimalStore(event_manager=manager)
    store.connect()
    store.data["a"] = (b"alpha", {"kind": "letter", "n": 1, "tags": ["x"]})
    store.data["b"] = (b"beta", {"kind": "letter", "n": 2})
    store.data["c1"] = (b"0123456789", {"kind": "digits"})
    return store


def record(manager, cls=StoreEvent):
    events = []
    manager.connect(cls, events.append)
    return events


class TestAbstractness:
    def test_core_methods_are_abstract(self):
        assert AbstractReadOnlyStore.__abstractmethods__ == {"get", "query"}
        assert AbstractStore.__abstractmethods__ == {
            "get", "query", "set_data", "set_metadata", "delete"}
        assert AbstractAuthorizingStore.__abstractmethods__ == {
            "get", "query", "set_data", "set_metadata", "delete",
            "set_permissions", "update_permissions"}
        with pytest.raises(TypeError):
            AbstractStore()
        with pytest.raises(TypeError):
            Value()

    def test_errors(self):
        assert issubclass(StoreError, RuntimeError)
        assert issubclass(AuthorizationError, StoreError)

    def test_info_and_connection(self, manager):
        store = MinimalStore(event_manager=manager)
        assert not store.is_connected()
        store.connect()
        assert store.is_connected()
        assert store.info() == {"readonly": False, "authorizing": False}
        store.disconnect()
        assert not store.is_connected()

    def test_default_event_manager_is_global(self):
        from encore.events.package_globals import get_event_manager
        store = MinimalStore()
        assert store.event_manager is get_event_manager()

    def test_event_manager_assigned_before_super_init_is_kept(self, manager):
        class Legacy(MinimalStore):
            def __init__(self):
                self.event_manager = manager
                super().__init__()
        assert Legacy().event_manager is manager


class TestDerivedReads:
    def test_get_data_and_metadata(self, store):
        assert store.get_data("a").read() == b"alpha"
        assert store.get_metadata("a") == {"kind": "letter", "n": 1, "tags": ["x"]}
        assert store.get_metadata("a", select=["n", "missing"]) == {"n": 1}

    def test_missing_key(self, store):
        with pytest.raises(KeyError):
            store.get_data("zz")
        with pytest.raises(KeyError):
            store.get_metadata("zz")
        assert not store.exists("zz")
        assert store.exists("a")

    def test_get_data_range_is_slice(self, store):
        assert store.get_data_range("c1", 2, 5).read() == b"234"
        assert store.get_data_range("c1", 7).read() == b"789"
        assert store.get_data_range("c1", None, 3).read() == b"012"
        assert store.get_data_range("c1", -2).read() == b"89"

    def test_multiget_is_lazy_and_ordered(self, store):
        keys = iter(["b", "a", "zz"])
        values = store.multiget(keys)
        assert next(values).metadata["n"] == 2
        assert next(values).data.read() == b"alpha"
        with pytest.raises(KeyError):
            next(values)
        assert [d.read() for d in store.multiget_data(k for k in ["a", "b"])] == [b"alpha", b"beta"]
        assert list(store.multiget_metadata(["a", "b"], select=["n"])) == [{"n": 1}, {"n": 2}]

    def test_query_keys_and_glob(self, store):
        assert sorted(store.query_keys()) == ["a", "b", "c1"]
        assert sorted(store.query_keys(kind="letter")) == ["a", "b"]
        assert list(store.glob("c*")) == ["c1"]
        assert sorted(store.glob("?")) == ["a", "b"]
        assert list(store.glob("A")) == []  # case-sensitive

    def test_to_bytes_and_to_file(self, store, tmp_path):
        assert store.to_bytes("c1", buffer_size=3) == b"0123456789"
        target = tmp_path / "out.bin"
        store.to_file("c1", str(target), buffer_size=4)
        assert target.read_bytes() == b"0123456789"

    def test_to_file_missing_key_creates_no_file(self, store, tmp_path):
        target = tmp_path / "never.bin"
        with pytest.raises(KeyError):
            store.to_file("zz", str(target))
        assert not target.exists()

    def test_to_file_progress_events(self, store, manager, tmp_path):
        events = record(manager, StoreProgressEvent)
        store.to_file("c1", tmp_path / "p.bin", buffer_size=4)
        kinds = [type(e) for e in events]
        assert kinds[0] is StoreProgressStartEvent and kinds[-1] is StoreProgressEndEvent
        steps = [e.step for e in events if isinstance(e, StoreProgressStepEvent)]
        assert steps == [4, 8, 10]
        assert events[0].steps == 10 and events[0].key == "c1"
        assert events[-1].exit_state == "normal"


class TestDerivedWrites:
    def test_set_with_tuple_and_value(self, store):
        store.set("new", (io.BytesIO(b"data"), {"x": 1}))
        assert store.data["new"] == (b"data", {"x": 1})
        store.set("other", StringValue(b"v", {"y": [1, 2]}))
        assert store.data["other"] == (b"v", {"y": [1, 2]})

    def test_update_metadata_merges(self, store):
        store.update_metadata("a", {"n": 5, "extra": True})
        assert store.data["a"][1] == {"kind": "letter", "n": 5, "tags": ["x"], "extra": True}
        with pytest.raises(KeyError):
            store.update_metadata("zz", {"n": 1})

    def test_from_bytes_and_from_file(self, store, tmp_path):
        store.from_bytes("a", b"new bytes")
        assert store.data["a"][0] == b"new bytes"
        assert store.data["a"][1]["kind"] == "letter"  # metadata kept
        path = tmp_path / "src.bin"
        path.write_bytes(b"from a file")
        store.from_file("f", str(path))
        assert store.data["f"] == (b"from a file", {})

    def test_multiset_accepts_generators(self, store):
        keys = (k for k in ["m1", "m2", "m3"])
        values = ((io.BytesIO(b"v%d" % i), {"i": i}) for i in range(3))
        store.multiset(keys, values)
        assert [store.data["m%d" % (i + 1)] for i in range(3)] == [
            (b"v0", {"i": 0}), (b"v1", {"i": 1}), (b"v2", {"i": 2})]

    def test_multiset_data_and_metadata(self, store):
        store.multiset_data(iter(["a", "b"]), iter([io.BytesIO(b"1"), io.BytesIO(b"2")]))
        assert (store.data["a"][0], store.data["b"][0]) == (b"1", b"2")
        store.multiset_metadata(iter(["a", "b"]), iter([{"p": 1}, {"p": 2}]))
        assert (store.data["a"][1], store.data["b"][1]) == ({"p": 1}, {"p": 2})
        store.multiupdate_metadata(["a", "b"], [{"q": 1}, {"q": 2}])
        assert store.data["b"][1] == {"p": 2, "q": 2}

    def test_multiset_zip_semantics(self, store):
        store.multiset(["x", "y", "z"], [(io.BytesIO(b"1"), {})])
        assert "x" in store.data and "y" not in store.data

    def test_documented_keyword_arguments(self, store, tmp_path):
        # Every argument can be passed by its documented name, through the
        # argument-checking wrappers.
        store.multiset(keys=["k1"], values=[(io.BytesIO(b"1"), {"v": 1})], buffer_size=2)
        store.multiset_data(keys=["k2"], datas=[io.BytesIO(b"2")], buffer_size=2)
        store.multiset_metadata(keys=["k3"], metadatas=[{"m": 3}])
        store.multiupdate_metadata(keys=["k3"], metadatas=[{"u": 3}])
        store.set(key="k4", value=(io.BytesIO(b"4"), {}), buffer_size=2)
        store.set_data(key="k4", data=io.BytesIO(b"44"), buffer_size=2)
        store.set_metadata(key="k4", metadata={"m": 4})
        store.update_metadata(key="k4", metadata={"u": 4})
        store.from_bytes(key="k5", data=b"5", buffer_size=2)
        source = tmp_path / "source"
        source.write_bytes(b"6")
        store.from_file(key="k6", path=str(source), buffer_size=2)
        store.to_file(key="k6", path=str(tmp_path / "target"), buffer_size=2)
        assert (tmp_path / "target").read_bytes() == b"6"
        assert store.data["k1"] == (b"1", {"v": 1})
        assert store.data["k2"] == (b"2", {})
        assert store.data["k3"] == (b"", {"m": 3, "u": 3})
        assert store.data["k4"] == (b"44", {"m": 4, "u": 4})
        assert store.get_data_range(key="k4", start=1, end=2).read() == b"4"
        assert store.get_metadata(key="k4", select=["u"]) == {"u": 4}
        assert list(store.multiget_metadata(keys=["k4"], select=["m"])) == [{"m": 4}]
        assert store.to_bytes(key="k5", buffer_size=1) == b"5"
        assert sorted(store.glob(pattern="k[12]")) == ["k1", "k2"]
        store.delete(key="k5")
        assert not store.exists(key="k5")
        with pytest.raises(TypeError, match="values"):
            store.multiset(keys=["k7"])


class TestArgumentChecks:
    @pytest.mark.parametrize("key", [None, 1, b"a", ("a",)])
    def test_non_str_keys(self, store, key):
        before = dict(store.data)
        for call in (
            lambda: store.get(key),
            lambda: store.get_data(key),
            lambda: store.get_metadata(key),
            lambda: store.exists(key),
            lambda: store.delete(key),
            lambda: store.set(key, (io.BytesIO(b"x"), {})),
            lambda: store.set_data(key, io.BytesIO(b"x")),
            lambda: store.set_metadata(key, {}),
            lambda: store.update_metadata(key, {}),
            lambda: store.from_bytes(key, b"x"),
            lambda: store.to_bytes(key),
            lambda: store.get_data_range(key, 0, 1),
        ):
            with pytest.raises(TypeError, match="key"):
                call()
        assert store.data == before

    @pytest.mark.parametrize("data", ["text", io.StringIO("text"), b"raw bytes", 42, None])
    def test_bad_data(self, store, data):
        before = dict(store.data)
        with pytest.raises(TypeError):
            store.set_data("a", data)
        with pytest.raises(TypeError):
            store.set("a", (data, {}))
        assert store.data == before

    def test_from_bytes_rejects_text(self, store):
        with pytest.raises(TypeError, match="bytes"):
            store.from_bytes("a", "text")
        assert store.data["a"][0] == b"alpha"

    @pytest.mark.parametrize("metadata, error", [
        ({"x": object()}, TypeError),
        ({"x": {1, (2, 3)}}, TypeError),
        ({1: "x"}, TypeError),
        ({"x": {"y": {2: 3}}}, TypeError),
        ({"x": float("nan")}, ValueError),
        ({"x": [float("inf")]}, ValueError),
        ([("x", 1)], TypeError),
        (None, TypeError),
    ])
    def test_bad_metadata(self, store, metadata, error):
        before = dict(store.data)
        with pytest.raises(error):
            store.set_metadata("a", metadata)
        with pytest.raises(error):
            store.update_metadata("a", metadata)
        with pytest.raises(error):
            store.set("new", (io.BytesIO(b""), metadata))
        assert store.data == before

    def test_bad_value_shape(self, store):
        with pytest.raises(TypeError):
            store.set("a", (io.BytesIO(b"x"),))
        with pytest.raises(TypeError):
            store.set("a", b"just bytes")
        assert store.data["a"][0] == b"alpha"

    def test_multiset_checks_everything_before_writing(self, store):
        before = dict(store.data)
        with pytest.raises(TypeError):
            store.multiset(["k1", "k2"], [(io.BytesIO(b"ok"), {}), (io.BytesIO(b"bad"), {"x": object()})])
        with pytest.raises(TypeError):
            store.multiset_data(["k1", 2], [io.BytesIO(b"1"), io.BytesIO(b"2")])
        assert store.data == before

    def test_select_must_not_be_a_string(self, store):
        with pytest.raises(TypeError):
            store.get_metadata("a", select="n")
        with pytest.raises(TypeError):
            list(store.query(select="n"))

    def test_glob_pattern_type(self, store):
        with pytest.raises(TypeError):
            list(store.glob(None))

    def test_metadata_is_copied_deeply(self, store):
        metadata = {"list": [1, {"x": 2}], "tuple": (1, 2)}
        store.set_metadata("a", metadata)
        metadata["list"][1]["x"] = 99
        assert store.data["a"][1] == {"list": [1, {"x": 2}], "tuple": [1, 2]}

    def test_check_helpers(self):
        assert check_key("k") == "k"
        copy = check_metadata({"a": [1, 2.5, True, None, "s", {"b": []}]})
        assert copy == {"a": [1, 2.5, True, None, "s", {"b": []}]}

    def test_subclass_methods_are_wrapped_once(self):
        class Sub(MinimalStore):
            def get(self, key):
                return super().get(key)
        unchecked = Sub.get.__encore_unchecked__
        assert unchecked.__name__ == "get"
        assert not hasattr(unchecked, "__encore_unchecked__")
        assert Sub.get.__doc__ == unchecked.__doc__

        class SubSub(Sub):
            pass
        assert SubSub.__dict__.get("get") is None  # not wrapped a second time

    def test_methods_from_a_plain_mixin_are_checked(self):
        received = []

        class GetMixin:
            def get(self, key):
                received.append(key)
                return StringValue(b"", {})

        class MixedStore(GetMixin, MinimalStore):
            pass

        store = MixedStore(event_manager=EventManager())
        with pytest.raises(TypeError):
            store.get(b"key")
        assert received == []
        store.get("key")
        assert received == ["key"]
        # The mixin itself is left as it was.
        assert not hasattr(GetMixin.get, "__encore_unchecked__")

    def test_checks_own_arguments_opts_out(self):
        received = []

        class OwnChecks(MinimalStore):
            @checks_own_arguments
            def get(self, key):
                received.append(key)
                return StringValue(b"", {})

        store = OwnChecks(event_manager=EventManager())
        store.get(b"raw")  # reaches the method unchecked
        assert received == [b"raw"]
        assert not hasattr(OwnChecks.get, "__encore_unchecked__")

    def test_each_argument_is_checked_once_per_public_call(self, store, monkeypatch):
        # Nested metadata always goes through _json_copy, once per check at
        # the top level (path ""); a two-key multiset used to check six times.
        calls = []
        real = abstract_store_module._json_copy

        def counting(value, path):
            if path == "":
                calls.append(value)
            return real(value, path)

        monkeypatch.setattr(abstract_store_module, "_json_copy", counting)
        store.multiset(["a", "b"], [(io.BytesIO(b"1"), {"n": [1]}), (io.BytesIO(b"2"), {"n": [2]})])
        assert len(calls) == 2
        calls.clear()
        store.set("c", (io.BytesIO(b"3"), {"n": [3]}))
        assert len(calls) == 1
        calls.clear()
        store.update_metadata("c", {"m": [1]})
        # (MinimalStore.get builds a StringValue, which checks what it holds.)
        assert calls.count({"m": [1]}) == 1
        calls.clear()
        store.multiset_metadata(["a", "b"], [{"x": [1]}, {"x": [2]}])
        assert len(calls) == 2
        assert store.get_metadata("a") == {"x": [1]}
        assert store.get_metadata("c") == {"n": [3], "m": [1]}

    def test_value_parts(self):
        stream = io.BytesIO(b"abc")
        metadata = {"n": 1}
        assert value_parts((stream, metadata)) == ValueParts(stream, metadata, None, False)
        value = StringValue(b"abcd", {"n": [1]})
        data, copied, size, opened = value_parts(value)
        try:
            assert data.read() == b"abcd" and size == 4 and opened
            assert copied == {"n": [1]}
        finally:
            data.close()


class TestEventsAndTransactions:
    def test_write_events(self, store, manager):
        events = record(manager, StoreModificationEvent)
        store.set_data("new", io.BytesIO(b"x"))
        store.set_metadata("new", {"m": 1})
        store.delete("new")
        assert [type(e) for e in events] == [StoreSetEvent, StoreUpdateEvent, StoreDeleteEvent]
        assert all(e.source is store and e.key == "new" for e in events)
        assert events[1].metadata == {"m": 1} and events[2].metadata == {"m": 1}

    def test_transaction_events_come_after_end(self, store, manager):
        events = record(manager)
        with store.transaction("two writes"):
            store.from_bytes("t1", b"1")
            store.from_bytes("t2", b"2")
            assert not any(isinstance(e, StoreModificationEvent) for e in events)
        kinds = [type(e) for e in events]
        assert kinds == [StoreTransactionStartEvent, StoreTransactionEndEvent,
                         StoreSetEvent, StoreSetEvent]
        assert events[1].state == "done"
        assert [e.key for e in events[2:]] == ["t1", "t2"]

    def test_rollback_restores_and_drops_events(self, store, manager):
        events = record(manager)
        with pytest.raises(RuntimeError):
            with store.transaction("fails"):
                store.from_bytes("a", b"changed")
                store.delete("b")
                raise RuntimeError("boom")
        assert store.data["a"][0] == b"alpha" and "b" in store.data
        assert [type(e) for e in events] == [StoreTransactionStartEvent, StoreTransactionEndEvent]
        assert events[1].state == "failed"

    def test_failed_transaction_without_rollback_still_reports_writes(self, manager):
        store = MinimalStore(event_manager=manager, rollback=False)
        events = record(manager, StoreModificationEvent)
        with pytest.raises(RuntimeError):
            with store.transaction("fails"):
                store.from_bytes("a", b"kept")
                raise RuntimeError("boom")
        assert store.data["a"][0] == b"kept"
        assert [e.key for e in events] == ["a"]

    def test_derived_set_emits_one_event(self, store, manager):
        events = record(manager, StoreModificationEvent)
        store.set("new", (io.BytesIO(b"x"), {"m": 1}))
        store.set("new", (io.BytesIO(b"y"), {"m": 2}))
        store.set("copy", store.get("new"))
        store.multiset(["new", "other"], [(io.BytesIO(b"z"), {"m": 3}), (io.BytesIO(b""), {})])
        assert [(type(e), e.key, e.metadata) for e in events] == [
            (StoreSetEvent, "new", {"m": 1}),
            (StoreUpdateEvent, "new", {"m": 2}),
            (StoreSetEvent, "copy", {"m": 2}),
            (StoreUpdateEvent, "new", {"m": 3}),
            (StoreSetEvent, "other", {}),
        ]
        assert all(e.source is store for e in events)

    def test_derived_set_failing_without_rollback_reports_the_metadata_write(self, manager):
        store = MinimalStore(event_manager=manager, rollback=False)
        events = record(manager, StoreModificationEvent)

        class Failing(object):
            def read(self, size=-1):
                raise OSError("unreadable")

        with pytest.raises(OSError):
            store.set("k", (Failing(), {"m": 1}))
        assert store.data["k"] == (b"", {"m": 1})  # no rollback: metadata written
        assert [(type(e), e.key, e.metadata) for e in events] == [(StoreSetEvent, "k", {"m": 1})]

    def test_derived_set_failing_with_rollback_reports_nothing(self, store, manager):
        events = record(manager, StoreModificationEvent)

        class Failing(object):
            def read(self, size=-1):
                raise OSError("unreadable")

        with pytest.raises(OSError):
            store.set("k", (Failing(), {"m": 1}))
        assert "k" not in store.data
        assert events == []

    def test_nested_transactions_commit_once(self, store, manager):
        commits = []
        store._commit_transaction = lambda: commits.append(1)
        events = record(manager, StoreTransactionEndEvent)
        with store.transaction("outer"):
            with store.transaction("inner"):
                store.from_bytes("x", b"1")
            assert commits == []
        assert commits == [1] and len(events) == 1

    def test_transaction_state_reset_when_commit_raises(self, store, manager):
        def bad_commit():
            raise OSError("disk full")
        store._commit_transaction = bad_commit
        with pytest.raises(OSError):
            with store.transaction("x"):
                store.from_bytes("a", b"lost")
        assert store.data["a"][0] == b"alpha"  # rolled back after the failed commit
        del store._commit_transaction
        store.from_bytes("a", b"works again")
        assert store.data["a"][0] == b"works again"
        assert store._transaction is None

    def test_transactions_of_other_threads_wait(self, store):
        inside = threading.Event()
        release = threading.Event()
        order = []

        def first():
            with store.transaction("first"):
                inside.set()
                release.wait(10)
                order.append("first")

        def second():
            inside.wait(10)
            with store.transaction("second"):
                order.append("second")

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        inside.wait(10)
        release.set()
        for thread in threads:
            thread.join(10)
            assert not thread.is_alive()
        assert order == ["first", "second"]


class TestValue:
    def test_unpacking_warns(self):
        value = StringValue(b"d", {"m": 1})
        with pytest.warns(DeprecationWarning):
            data, metadata = value
        assert data.read() == b"d" and metadata == {"m": 1}
        assert len(value) == 2
        with pytest.raises(IndexError):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value[2]

    def test_context_manager_and_iterdata(self):
        value = StringValue(b"0123456789")
        with value as stream:
            assert stream.read() == b"0123456789"
        assert stream.closed
        steps = []
        chunks = list(value.iterdata(buffer_size=4, progress=lambda step: steps.append(step)))
        assert chunks == [b"0123", b"4567", b"89"] and steps == [4, 8, 10]

    def test_default_permissions_refused(self):
        with pytest.raises(AuthorizationError):
            StringValue(b"").permissions

    def test_data_and_metadata_are_the_abstract_core(self):
        assert Value.__abstractmethods__ == {"data", "metadata"}

        class LegacyValue(Value):
            # A value written for Encore 0.8: data and metadata only.
            size = 10

            @property
            def data(self):
                return io.BytesIO(b"0123456789")

            @property
            def metadata(self):
                return {}

        value = LegacyValue()
        assert value.range(2, 5).read() == b"234"
        assert value.range(-3).read() == b"789"
        assert value.range().read() == b"0123456789"


def test_set_from_a_value_closes_the_stream_it_opened(store):
    opened = []

    class TrackingValue(StringValue):
        @property
        def data(self):
            stream = io.BytesIO(self._bytes)
            opened.append(stream)
            return stream

    store.set("v", TrackingValue(b"payload", {"m": 1}))
    assert store.data["v"] == (b"payload", {"m": 1})
    assert len(opened) == 1 and opened[0].closed
    caller_stream = io.BytesIO(b"caller's")
    store.set("w", (caller_stream, {}))
    assert not caller_stream.closed


def test_unpacking_warns_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data, metadata = StringValue(b"d", {"m": 1})
    assert [w.category for w in caught] == [DeprecationWarning]
    assert data.read() == b"d" and metadata == {"m": 1}


def test_event_metadata_is_a_copy_of_what_the_store_keeps(store, manager):
    events = record(manager, StoreModificationEvent)
    store.set_metadata("kept", {"x": [1]})
    events[0].metadata["x"].append(2)
    assert store.get_metadata("kept") == {"x": [1]}


def test_to_and_from_file_accept_the_manuals_buffer_spelling(store, tmp_path):
    target = tmp_path / "out.bin"
    store.to_file("c1", str(target), buffer=3)
    assert target.read_bytes() == b"0123456789"
    store.from_file("copy", str(target), buffer=4)
    assert store.data["copy"][0] == b"0123456789"


def test_top_level_metadata_errors_say_where(store):
    with pytest.raises(TypeError, match="at top level"):
        store.set_metadata("a", {1: "x"})
    with pytest.raises(ValueError, match="at x.y "):
        store.set_metadata("a", {"x": {"y": float("nan")}})


def test_single_key_writes_accept_their_item_by_keyword(store):
    store.set("kw1", value=(io.BytesIO(b"v"), {"a": 1}))
    store.set_data(key="kw2", data=io.BytesIO(b"d"))
    store.set_metadata("kw2", metadata={"m": 2})
    store.update_metadata("kw2", metadata={"n": 3})
    store.from_bytes("kw3", data=b"b")
    assert store.data["kw1"] == (b"v", {"a": 1})
    assert store.data["kw2"] == (b"d", {"m": 2, "n": 3})
    assert store.data["kw3"][0] == b"b"
    with pytest.raises(TypeError, match="metadata"):
        store.set_metadata("kw2", metadata={"bad": object()})
    with pytest.raises(TypeError, match="missing"):
        store.set_metadata("kw2")


def test_keyword_item_under_the_implementations_own_name():
    class OwnNames(MinimalStore):
        def set_metadata(self, key, md):
            return super().set_metadata(key, md)

    store = OwnNames()
    store.set_metadata("a", md={"x": 1})
    store.set_metadata("b", metadata={"y": 2})
    assert store.data["a"][1] == {"x": 1} and store.data["b"][1] == {"y": 2}
    with pytest.raises(TypeError):
        store.set_metadata("c", md={"z": object()})


def test_an_event_hold_takes_the_stores_events_until_its_owner_emits_them(store, manager):
    from encore.storage.utils import EventHold, emit_events, event_hold

    events = record(manager, StoreModificationEvent)
    other = MinimalStore(event_manager=manager)
    hold = EventHold(store).open()
    try:
        assert event_hold(store, StoreSetEvent, "k") is hold
        assert event_hold(other, StoreSetEvent, "k") is None
        store.set_data("k", io.BytesIO(b"x"))
        other.set_data("elsewhere", io.BytesIO(b"y"))  # not held: another store
        assert [e.key for e in events] == ["elsewhere"]
    finally:
        held = hold.close()
    assert event_hold(store, StoreSetEvent, "k") is None
    assert [(type(e), e.key) for e in held] == [(StoreSetEvent, "k")]
    held[0].mark_as_handled()  # as a capturing listener would have
    emit_events(store, held)
    assert [e.key for e in events] == ["elsewhere", "k"]


def test_a_merging_hold_takes_only_its_keys_set_and_update_events(store):
    from encore.storage.utils import EventHold, event_hold

    hold = EventHold(store, "k").open()
    try:
        assert event_hold(store, StoreUpdateEvent, "k") is hold
        assert event_hold(store, StoreDeleteEvent, "k") is None
        assert event_hold(store, StoreSetEvent, "other") is None
    finally:
        hold.close()


def test_has_listeners_is_part_of_the_manager_interface():
    from encore.events.abstract_event_manager import BaseEventManager
    from encore.storage.utils import is_listened

    class QuietManager(BaseEventManager):
        """Implements only the abstract methods: has_listeners is inherited."""

        def connect(self, cls, func, filter=None, priority=0):
            pass

        def disconnect(self, cls, func):
            pass

        def emit(self, event, block=True):
            pass

        def enable(self, cls):
            pass

        def disable(self, cls):
            pass

        def is_enabled(self, cls):
            return True

    assert QuietManager().has_listeners(StoreSetEvent) is True  # cannot know: assume so
    assert is_listened(QuietManager(), StoreSetEvent)
    assert is_listened(object(), StoreSetEvent)  # not a manager at all: assume so too
    manager = EventManager()
    assert not is_listened(manager, StoreSetEvent, StoreUpdateEvent)
    manager.connect(StoreUpdateEvent, lambda event: None)
    assert is_listened(manager, StoreSetEvent, StoreUpdateEvent)
