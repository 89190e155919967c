"""Real transactions: :class:`StoreTransactionTestMixin`."""
from __future__ import annotations

from typing import Dict, Tuple

from encore.storage.events import (
    StoreSetEvent,
    StoreTransactionEndEvent,
    StoreUpdateEvent,
)

from ._support import (
    _Text,
    _Boom,
    create_file_like_data,
    _StoreTestHelpers,
)


class StoreTransactionTestMixin(_StoreTestHelpers):
    """Tests of stores whose transactions really roll back.

    Fixture contract: ``setUp`` sets ``self.store`` to a connected writable
    store that holds no key starting with ``'tx_'`` (an empty store is
    simplest), and optionally ``self.event_manager`` (default:
    ``self.store.event_manager``).

    ``with store.transaction(notes):`` must commit the writes of the block
    when it ends normally; when the block raises, every write of the block
    (sets, deletes, data and metadata changes, including those of nested
    transactions) is undone, the exception propagates, and no modification
    event is emitted.  Writes are visible to reads inside the block.
    """

    def _setup_keys(self) -> Dict[str, Tuple[bytes, dict]]:
        content: Dict[str, Tuple[bytes, dict]] = {
            "tx_keep": (b"keep", {"k": 1}),
            "tx_delete": (b"delete", {"d": [1, 2]}),
            "tx_meta": (b"meta", {"m": {"n": 1}}),
            "tx_update": (b"update", {"u": 1, "v": 2}),
            "tx_data": (b"data", {"x": "y"}),
        }
        for key, (data, metadata) in content.items():
            self.store.set(key, (create_file_like_data(data), metadata))
        return content

    def _tx_snapshot(self) -> Dict[str, Tuple[bytes, dict]]:
        return {
            key: value for key, value in self._snapshot().items() if key.startswith("tx_")
        }

    def test_commit(self):
        """A transaction that ends normally keeps all its writes."""
        content = self._setup_keys()
        with self.store.transaction("commit"):
            self.store.set("tx_new", (create_file_like_data(b"new"), {"new": True}))
            self.store.delete("tx_delete")
            self.store.update_metadata("tx_update", {"v": 3})
        snapshot = self._tx_snapshot()
        self._expect(snapshot.get("tx_new"), (b"new", {"new": True}), "tx_new",
                     "(data, metadata) after the committed transaction set it")
        self.assertNotIn("tx_delete", snapshot, self._about(
            "tx_delete", "should be gone after the committed transaction deleted it",
            actual=snapshot.get("tx_delete")))
        self._expect(snapshot.get("tx_update"), (b"update", {"u": 1, "v": 3}), "tx_update",
                     "(data, metadata) after the committed transaction updated it")
        self._expect(snapshot.get("tx_keep"), content["tx_keep"], "tx_keep",
                     "(data, metadata) of a key the transaction did not touch")

    def test_rollback(self):
        """An exception undoes every write of the block and propagates."""
        content = self._setup_keys()
        before = self._tx_snapshot()
        self._expect_content(before, content, "content written before the transaction")
        with self.assertRaises(_Boom, msg=self._about(_Text("transaction('rollback')"), "_Boom raised inside should propagate")):
            with self.store.transaction("rollback"):
                self.store.set("tx_new", (create_file_like_data(b"new"), {"new": True}))
                self.store.set("tx_keep", (create_file_like_data(b"changed"), {"k": 2}))
                self.store.delete("tx_delete")
                self.store.set_metadata("tx_meta", {"replaced": True})
                self.store.update_metadata("tx_update", {"v": 3, "w": 4})
                self.store.set_data("tx_data", create_file_like_data(b"changed data"))
                self.store.from_bytes("tx_bytes", b"bytes")
                # The block sees its own writes.
                self._expect(self._data("tx_new"), b"new", 'tx_new', "get_data('tx_new')")
                self.assertFalse(self.store.exists("tx_delete"),
                    msg=self._about('tx_delete', "exists('tx_delete') should be false"))
                self._expect(
                    self.store.get_metadata("tx_update"),
                    {"u": 1, "v": 3, "w": 4},
                    'tx_update', "get_metadata('tx_update')")
                raise _Boom()
        self._expect_content(self._tx_snapshot(), before, "content after the rolled back transaction")

    def test_rollback_repeated_writes(self):
        """Several writes to one key in a failed block restore the first state."""
        self._setup_keys()
        before = self._tx_snapshot()
        with self.assertRaises(_Boom, msg=self._about(_Text("transaction('repeat')"), "_Boom raised inside should propagate")):
            with self.store.transaction("repeat"):
                for i in range(3):
                    self.store.set("tx_keep", (create_file_like_data(b"%d" % i), {"i": i}))
                    self.store.set("tx_new", (create_file_like_data(b"%d" % i), {"i": i}))
                self.store.delete("tx_new")
                self.store.set("tx_delete", (create_file_like_data(b"x"), {}))
                self.store.delete("tx_delete")
                raise _Boom()
        self._expect_content(self._tx_snapshot(), before, "content after the rolled back transaction")

    def test_rollback_multi(self):
        """The multi* writes inside a failed block are undone."""
        self._setup_keys()
        before = self._tx_snapshot()
        with self.assertRaises(_Boom, msg=self._about(_Text("transaction('multi')"), "_Boom raised inside should propagate")):
            with self.store.transaction("multi"):
                self.store.multiset(
                    ["tx_keep", "tx_multi"],
                    [(create_file_like_data(b"1"), {"a": 1}), (create_file_like_data(b"2"), {})],
                )
                self.store.multiset_metadata(["tx_meta"], [{"b": 2}])
                self.store.multiupdate_metadata(["tx_update"], [{"c": 3}])
                self.store.multiset_data(["tx_data"], [create_file_like_data(b"3")])
                raise _Boom()
        self._expect_content(self._tx_snapshot(), before, "content after the rolled back transaction")

    def test_nested_commit(self):
        """Nested transactions commit together."""
        with self.store.transaction("outer"):
            self.store.set("tx_a", (create_file_like_data(b"a"), {}))
            with self.store.transaction("inner"):
                self.store.set("tx_b", (create_file_like_data(b"b"), {}))
            self.store.set("tx_c", (create_file_like_data(b"c"), {}))
        self._expect(set(self._tx_snapshot()), {"tx_a", "tx_b", "tx_c"}, ["tx_a", "tx_b", "tx_c"],
                     "keys after nested transactions committed")

    def test_nested_inner_failure(self):
        """An exception leaving an inner transaction undoes the whole outer one."""
        self._setup_keys()
        before = self._tx_snapshot()
        with self.assertRaises(_Boom, msg=self._about(_Text("transaction('outer')"), "_Boom raised inside should propagate")):
            with self.store.transaction("outer"):
                self.store.set("tx_a", (create_file_like_data(b"a"), {}))
                with self.store.transaction("inner"):
                    self.store.delete("tx_keep")
                    raise _Boom()
        self._expect_content(self._tx_snapshot(), before, "content after the rolled back transaction")

    def test_nested_outer_failure(self):
        """A failing outer transaction undoes an inner one that completed."""
        self._setup_keys()
        before = self._tx_snapshot()
        with self.assertRaises(_Boom, msg=self._about(_Text("transaction('outer')"), "_Boom raised inside should propagate")):
            with self.store.transaction("outer"):
                with self.store.transaction("inner"):
                    self.store.set("tx_b", (create_file_like_data(b"b"), {}))
                    self.store.update_metadata("tx_keep", {"k": 5})
                self.assertTrue(self.store.exists("tx_b"),
                    msg=self._about('tx_b', "exists('tx_b') should be true"))
                raise _Boom()
        self._expect_content(self._tx_snapshot(), before, "content after the rolled back transaction")

    def test_usable_after_rollback(self):
        """The store works normally after a rollback."""
        with self.assertRaises(_Boom, msg=self._about(_Text("transaction('failing')"), "_Boom raised inside should propagate")):
            with self.store.transaction("failing"):
                self.store.set("tx_a", (create_file_like_data(b"a"), {}))
                raise _Boom()
        self.store.set("tx_a", (create_file_like_data(b"again"), {"ok": True}))
        with self.store.transaction("second"):
            self.store.set("tx_b", (create_file_like_data(b"b"), {}))
        self._expect_content(self._tx_snapshot(), {"tx_a": (b"again", {"ok": True}), "tx_b": (b"b", {})},
                             "content written after a rollback")

    def test_no_events_after_rollback(self):
        """A rolled back transaction emits no modification event."""
        self._setup_keys()
        with self._recorder() as recorder:
            with self.assertRaises(_Boom, msg=self._about(_Text("transaction('failing')"), "_Boom raised inside should propagate")):
                with self.store.transaction("failing"):
                    self.store.set("tx_new", (create_file_like_data(b"new"), {}))
                    self.store.delete("tx_keep")
                    self.store.update_metadata("tx_update", {"v": 0})
                    raise _Boom()
        keys = ["tx_new", "tx_keep", "tx_update"]
        self._expect(recorder.modifications(), [], keys, "modification events of a rolled back transaction")
        ends = recorder.of_type(StoreTransactionEndEvent)
        if ends:
            self._expect([event.state for event in ends], ["failed"], keys,
                         "states of the StoreTransactionEndEvents")

    def test_commit_events(self):
        """A committed transaction emits its events once, after it ends."""
        with self._recorder() as recorder:
            with self.store.transaction("commit"):
                self.store.set("tx_a", (create_file_like_data(b"a"), {}))
                self.store.set("tx_a", (create_file_like_data(b"b"), {"x": 1}))
        self._expect(
            [(type(event), event.key) for event in recorder.modifications()],
            [(StoreSetEvent, "tx_a"), (StoreUpdateEvent, "tx_a")],
            "tx_a", "(class, key) of the modification events after the commit",
        )
