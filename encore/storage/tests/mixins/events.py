"""The events a store emits: :class:`StoreEventTestMixin`."""
from __future__ import annotations

import os

from encore.storage.events import (
    StoreDeleteEvent,
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

from ._support import (
    _Boom,
    create_file_like_data,
    EventRecorder,
    PatternFile,
    _StoreTestHelpers,
    temp_dir,
)


class StoreEventTestMixin(_StoreTestHelpers):
    """Tests of the events a store emits when it is written.

    Fixture contract: ``setUp`` sets ``self.store`` to a connected writable
    store that holds no key starting with ``'event_'``, and optionally
    ``self.event_manager`` to the event manager the store was built with
    (``event_manager=``); without it the tests listen on
    ``self.store.event_manager``.

    Every write must emit, with ``source`` the store, ``key`` the key and
    ``metadata`` the key's full metadata after the write (before it, for a
    deletion): a :class:`~encore.storage.events.StoreSetEvent` when the key
    is new, a :class:`~encore.storage.events.StoreUpdateEvent` when it
    existed, a :class:`~encore.storage.events.StoreDeleteEvent` when it is
    deleted.  Inside a transaction the events arrive after the
    :class:`~encore.storage.events.StoreTransactionEndEvent` (when the store
    emits transaction events); after a failed transaction that the store
    rolled back, none arrive.  Writing or reading a large value emits
    progress events, a bounded number of them (per buffer, not per byte).

    Attributes
    ----------
    progress_size : int
        The size of the value used for the progress tests (4 MiB).
    """

    progress_size = 4 << 20

    def _assert_modification(self, event, event_class, key, metadata):
        self.assertIs(type(event), event_class)
        self.assertIs(event.source, self.store)
        self.assertEqual(event.key, key)
        self.assertEqual(event.metadata, metadata)

    def test_set_new_event(self):
        """set of a new key emits one StoreSetEvent."""
        with self._recorder() as recorder:
            self.store.set("event_key", (create_file_like_data(b"a"), {"x": 1}))
        events = recorder.modifications()
        self.assertEqual(len(events), 1)
        self._assert_modification(events[0], StoreSetEvent, "event_key", {"x": 1})

    def test_set_existing_event(self):
        """set of an existing key emits one StoreUpdateEvent."""
        self.store.set("event_key", (create_file_like_data(b"a"), {"x": 1}))
        with self._recorder() as recorder:
            self.store.set("event_key", (create_file_like_data(b"b"), {"y": 2}))
        events = recorder.modifications()
        self.assertEqual(len(events), 1)
        self._assert_modification(events[0], StoreUpdateEvent, "event_key", {"y": 2})

    def test_set_data_events(self):
        """set_data emits StoreSetEvent for a new key, StoreUpdateEvent otherwise."""
        with self._recorder() as recorder:
            self.store.set_data("event_key", create_file_like_data(b"a"))
            self.store.set_metadata("event_key", {"x": 1})
            self.store.set_data("event_key", create_file_like_data(b"b"))
        events = recorder.modifications()
        self.assertEqual(len(events), 3)
        self._assert_modification(events[0], StoreSetEvent, "event_key", {})
        self._assert_modification(events[1], StoreUpdateEvent, "event_key", {"x": 1})
        self._assert_modification(events[2], StoreUpdateEvent, "event_key", {"x": 1})

    def test_set_metadata_events(self):
        """set_metadata emits StoreSetEvent for a new key, StoreUpdateEvent otherwise."""
        with self._recorder() as recorder:
            self.store.set_metadata("event_key", {"x": 1})
            self.store.set_metadata("event_key", {"y": 2})
        events = recorder.modifications()
        self.assertEqual(len(events), 2)
        self._assert_modification(events[0], StoreSetEvent, "event_key", {"x": 1})
        self._assert_modification(events[1], StoreUpdateEvent, "event_key", {"y": 2})

    def test_update_metadata_event(self):
        """update_metadata emits a StoreUpdateEvent with the merged metadata."""
        self.store.set("event_key", (create_file_like_data(b"a"), {"x": 1, "y": 1}))
        with self._recorder() as recorder:
            self.store.update_metadata("event_key", {"y": 2, "z": 3})
        events = recorder.modifications()
        self.assertEqual(len(events), 1)
        self._assert_modification(
            events[0], StoreUpdateEvent, "event_key", {"x": 1, "y": 2, "z": 3}
        )

    def test_delete_event(self):
        """delete emits a StoreDeleteEvent with the deleted metadata."""
        self.store.set("event_key", (create_file_like_data(b"a"), {"x": 1}))
        with self._recorder() as recorder:
            self.store.delete("event_key")
        events = recorder.modifications()
        self.assertEqual(len(events), 1)
        self._assert_modification(events[0], StoreDeleteEvent, "event_key", {"x": 1})

    def test_from_bytes_and_file_events(self):
        """from_bytes and from_file emit set then update events, keeping metadata."""
        with self._recorder() as recorder:
            self.store.from_bytes("event_key", b"a")
            self.store.set_metadata("event_key", {"x": 1})
            with temp_dir() as directory:
                path = os.path.join(directory, "data")
                with open(path, "wb") as stream:
                    stream.write(b"from file")
                self.store.from_file("event_key", path)
        events = recorder.modifications()
        self.assertEqual(len(events), 3)
        self._assert_modification(events[0], StoreSetEvent, "event_key", {})
        self._assert_modification(events[2], StoreUpdateEvent, "event_key", {"x": 1})

    def test_multi_events(self):
        """The multi* writes emit one event per key, in order."""
        with self._recorder() as recorder:
            self.store.multiset(
                ["event_a", "event_b"],
                [(create_file_like_data(b"a"), {"n": 1}), (create_file_like_data(b"b"), {"n": 2})],
            )
            self.store.multiset_metadata(["event_b", "event_c"], [{"n": 3}, {"n": 4}])
            self.store.multiupdate_metadata(["event_a"], [{"m": 5}])
            self.store.multiset_data(["event_c"], [create_file_like_data(b"c")])
        events = recorder.modifications()
        self.assertEqual(
            [(type(event), event.key, event.metadata) for event in events],
            [
                (StoreSetEvent, "event_a", {"n": 1}),
                (StoreSetEvent, "event_b", {"n": 2}),
                (StoreUpdateEvent, "event_b", {"n": 3}),
                (StoreSetEvent, "event_c", {"n": 4}),
                (StoreUpdateEvent, "event_a", {"n": 1, "m": 5}),
                (StoreUpdateEvent, "event_c", {"n": 4}),
            ],
        )

    def test_event_metadata_is_a_copy(self):
        """Changing an event's metadata does not change the store."""
        with self._recorder() as recorder:
            self.store.set("event_key", (create_file_like_data(b"a"), {"x": [1]}))
        recorder.modifications()[0].metadata["x"].append(2)
        self._expect(
            self.store.get_metadata("event_key"),
            {"x": [1]},
            'event_key', "get_metadata('event_key')")

    def test_no_event_on_failed_write(self):
        """A write that fails (missing key) emits no modification event."""
        with self._recorder() as recorder:
            with self.assertRaises(KeyError,
                     msg=self._about('event_missing', "delete('event_missing') should raise KeyError")):
                self.store.delete("event_missing")
            with self.assertRaises(KeyError,
                     msg=self._about('event_missing', "update_metadata() should raise KeyError")):
                self.store.update_metadata("event_missing", {"x": 1})
        self.assertEqual(recorder.modifications(), [])

    def test_transaction_events(self):
        """Events of a transaction arrive after it ends, in order."""
        with self._recorder() as recorder:
            with self.store.transaction("events"):
                self.store.set("event_a", (create_file_like_data(b"a"), {"n": 1}))
                self.store.set_metadata("event_b", {"n": 2})
                self.store.delete("event_a")
                inside = recorder.modifications()
        events = recorder.events
        modifications = recorder.modifications()
        self.assertEqual(
            [(type(event), event.key) for event in modifications],
            [(StoreSetEvent, "event_a"), (StoreSetEvent, "event_b"), (StoreDeleteEvent, "event_a")],
        )
        ends = [i for i, event in enumerate(events) if isinstance(event, StoreTransactionEndEvent)]
        if ends:
            starts = recorder.of_type(StoreTransactionStartEvent)
            self.assertEqual(len(starts), 1)
            self.assertEqual(inside, [])
            self.assertEqual(events[ends[-1]].state, "done")
            first_modification = events.index(modifications[0])
            self.assertGreater(first_modification, ends[-1])

    def test_failed_transaction_events(self):
        """After a failed transaction: no events if rolled back, else the writes'."""
        with self._recorder() as recorder:
            with self.assertRaises(_Boom, msg=self._about('failing', "transaction() should raise _Boom")):
                with self.store.transaction("failing"):
                    self.store.set("event_a", (create_file_like_data(b"a"), {"n": 1}))
                    raise _Boom()
        modifications = recorder.modifications()
        if self.store.exists("event_a"):
            self.assertEqual([event.key for event in modifications], ["event_a"])
        else:
            self.assertEqual(modifications, [])
        ends = recorder.of_type(StoreTransactionEndEvent)
        if ends:
            self.assertEqual(ends[-1].state, "failed")

    def _assert_progress(self, recorder: EventRecorder, key: str, size: int, buffer_size: int):
        events = recorder.of_type(StoreProgressEvent)
        starts = [event for event in events if isinstance(event, StoreProgressStartEvent)]
        steps = [event for event in events if isinstance(event, StoreProgressStepEvent)]
        ends = [event for event in events if isinstance(event, StoreProgressEndEvent)]
        self.assertEqual(len(starts), 1)
        self.assertEqual(len(ends), 1)
        self.assertIs(events[0], starts[0])
        self.assertIs(events[-1], ends[0])
        self.assertGreaterEqual(len(steps), 1)
        # One step per buffer (a store may pick larger buffers, never tiny ones).
        self.assertLessEqual(len(steps), size // min(buffer_size, 65536) + 2)
        for event in events:
            self.assertIs(event.source, self.store)
            self.assertEqual(event.key, key)
            self.assertEqual(event.operation_id, starts[0].operation_id)
        numbers = [event.step for event in steps]
        self.assertEqual(numbers, sorted(numbers))
        self.assertEqual(ends[0].exit_state, "normal")

    def test_set_progress_events(self):
        """set of a large value emits start, per-buffer step and end progress events."""
        buffer_size = 256 * 1024
        with self._recorder(StoreProgressEvent) as recorder:
            self.store.set(
                "event_large",
                (PatternFile(self.progress_size), {"large": True}),
                buffer_size=buffer_size,
            )
        self._assert_progress(recorder, "event_large", self.progress_size, buffer_size)

    def test_progress_ends_before_modification_event(self):
        """The progress of a write ends before its modification event arrives."""
        with self._recorder() as recorder:
            self.store.set("event_large", (PatternFile(1 << 20), {"large": True}),
                           buffer_size=256 * 1024)
            self.store.set_data("event_large", PatternFile(1 << 20), buffer_size=256 * 1024)
        kinds = [type(event) for event in recorder.events
                 if isinstance(event, (StoreProgressStartEvent, StoreProgressEndEvent,
                                       StoreModificationEvent))]
        self.assertEqual(kinds, [StoreProgressStartEvent, StoreProgressEndEvent, StoreSetEvent,
                                 StoreProgressStartEvent, StoreProgressEndEvent,
                                 StoreUpdateEvent])

    def test_to_file_progress_events(self):
        """to_file of a large value emits start, per-buffer step and end progress events."""
        buffer_size = 256 * 1024
        self.store.set("event_large", (PatternFile(self.progress_size), {"large": True}))
        with temp_dir() as directory:
            path = os.path.join(directory, "large.dat")
            with self._recorder(StoreProgressEvent) as recorder:
                self.store.to_file("event_large", path, buffer_size=buffer_size)
            self.assertEqual(os.path.getsize(path), self.progress_size)
        self._assert_progress(recorder, "event_large", self.progress_size, buffer_size)
