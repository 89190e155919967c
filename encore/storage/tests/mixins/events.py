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
        self.assertIs(type(event), event_class,
                      self._about(key, "class of the modification event", event_class, type(event)))
        self.assertIs(event.source, self.store,
                      self._about(key, "source of the {}".format(event_class.__name__),
                                  self.store, event.source))
        self._expect(event.key, key, key, "key of the {}".format(event_class.__name__))
        self._expect(event.metadata, metadata, key, "metadata of the {}".format(event_class.__name__))

    def test_set_new_event(self):
        """set of a new key emits one StoreSetEvent."""
        with self._recorder() as recorder:
            self.store.set("event_key", (create_file_like_data(b"a"), {"x": 1}))
        events = recorder.modifications()
        self._expect(len(events), 1, "event_key", "number of modification events")
        self._assert_modification(events[0], StoreSetEvent, "event_key", {"x": 1})

    def test_set_existing_event(self):
        """set of an existing key emits one StoreUpdateEvent."""
        self.store.set("event_key", (create_file_like_data(b"a"), {"x": 1}))
        with self._recorder() as recorder:
            self.store.set("event_key", (create_file_like_data(b"b"), {"y": 2}))
        events = recorder.modifications()
        self._expect(len(events), 1, "event_key", "number of modification events")
        self._assert_modification(events[0], StoreUpdateEvent, "event_key", {"y": 2})

    def test_set_data_events(self):
        """set_data emits StoreSetEvent for a new key, StoreUpdateEvent otherwise."""
        with self._recorder() as recorder:
            self.store.set_data("event_key", create_file_like_data(b"a"))
            self.store.set_metadata("event_key", {"x": 1})
            self.store.set_data("event_key", create_file_like_data(b"b"))
        events = recorder.modifications()
        self._expect(len(events), 3, "event_key", "number of modification events")
        self._assert_modification(events[0], StoreSetEvent, "event_key", {})
        self._assert_modification(events[1], StoreUpdateEvent, "event_key", {"x": 1})
        self._assert_modification(events[2], StoreUpdateEvent, "event_key", {"x": 1})

    def test_set_metadata_events(self):
        """set_metadata emits StoreSetEvent for a new key, StoreUpdateEvent otherwise."""
        with self._recorder() as recorder:
            self.store.set_metadata("event_key", {"x": 1})
            self.store.set_metadata("event_key", {"y": 2})
        events = recorder.modifications()
        self._expect(len(events), 2, "event_key", "number of modification events")
        self._assert_modification(events[0], StoreSetEvent, "event_key", {"x": 1})
        self._assert_modification(events[1], StoreUpdateEvent, "event_key", {"y": 2})

    def test_update_metadata_event(self):
        """update_metadata emits a StoreUpdateEvent with the merged metadata."""
        self.store.set("event_key", (create_file_like_data(b"a"), {"x": 1, "y": 1}))
        with self._recorder() as recorder:
            self.store.update_metadata("event_key", {"y": 2, "z": 3})
        events = recorder.modifications()
        self._expect(len(events), 1, "event_key", "number of modification events")
        self._assert_modification(
            events[0], StoreUpdateEvent, "event_key", {"x": 1, "y": 2, "z": 3}
        )

    def test_delete_event(self):
        """delete emits a StoreDeleteEvent with the deleted metadata."""
        self.store.set("event_key", (create_file_like_data(b"a"), {"x": 1}))
        with self._recorder() as recorder:
            self.store.delete("event_key")
        events = recorder.modifications()
        self._expect(len(events), 1, "event_key", "number of modification events")
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
        self._expect(len(events), 3, "event_key", "number of modification events")
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
        self._expect(
            [(type(event), event.key, event.metadata) for event in events],
            [
                (StoreSetEvent, "event_a", {"n": 1}),
                (StoreSetEvent, "event_b", {"n": 2}),
                (StoreUpdateEvent, "event_b", {"n": 3}),
                (StoreSetEvent, "event_c", {"n": 4}),
                (StoreUpdateEvent, "event_a", {"n": 1, "m": 5}),
                (StoreUpdateEvent, "event_c", {"n": 4}),
            ],
            ["event_a", "event_b", "event_c"], "(class, key, metadata) of the modification events",
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
        self._expect(recorder.modifications(), [], "event_missing",
                     "modification events of failed delete and update_metadata")

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
        self._expect(
            [(type(event), event.key) for event in modifications],
            [(StoreSetEvent, "event_a"), (StoreSetEvent, "event_b"), (StoreDeleteEvent, "event_a")],
            ["event_a", "event_b"], "(class, key) of the modification events of a transaction",
        )
        ends = [i for i, event in enumerate(events) if isinstance(event, StoreTransactionEndEvent)]
        if ends:
            starts = recorder.of_type(StoreTransactionStartEvent)
            keys = ["event_a", "event_b"]
            self._expect(len(starts), 1, keys, "number of StoreTransactionStartEvents")
            self._expect(inside, [], keys, "modification events received inside the transaction")
            self._expect(events[ends[-1]].state, "done", keys, "state of the StoreTransactionEndEvent")
            first_modification = events.index(modifications[0])
            self.assertGreater(first_modification, ends[-1], self._about(
                keys, "the first modification event (#{}) should follow the StoreTransactionEndEvent (#{})"
                .format(first_modification, ends[-1])))

    def test_failed_transaction_events(self):
        """After a failed transaction: no events if rolled back, else the writes'."""
        with self._recorder() as recorder:
            with self.assertRaises(_Boom, msg=self._about(
                    "event_a", "the exception raised inside transaction('failing') should propagate")):
                with self.store.transaction("failing"):
                    self.store.set("event_a", (create_file_like_data(b"a"), {"n": 1}))
                    raise _Boom()
        modifications = recorder.modifications()
        if self.store.exists("event_a"):
            self._expect([event.key for event in modifications], ["event_a"], "event_a",
                         "keys of the modification events after a failed transaction that kept its write")
        else:
            self._expect(modifications, [], "event_a",
                         "modification events after a failed transaction that was rolled back")
        ends = recorder.of_type(StoreTransactionEndEvent)
        if ends:
            self._expect(ends[-1].state, "failed", "event_a", "state of the StoreTransactionEndEvent")

    def _assert_progress(self, recorder: EventRecorder, key: str, size: int, buffer_size: int):
        events = recorder.of_type(StoreProgressEvent)
        starts = [event for event in events if isinstance(event, StoreProgressStartEvent)]
        steps = [event for event in events if isinstance(event, StoreProgressStepEvent)]
        ends = [event for event in events if isinstance(event, StoreProgressEndEvent)]
        kinds = [type(event).__name__ for event in events]
        self._expect(len(starts), 1, key, "number of StoreProgressStartEvents")
        self._expect(len(ends), 1, key, "number of StoreProgressEndEvents")
        self.assertIs(events[0], starts[0], self._about(
            key, "the first progress event should be the start event", actual=kinds[:3]))
        self.assertIs(events[-1], ends[0], self._about(
            key, "the last progress event should be the end event", actual=kinds[-3:]))
        # One step per buffer (a store may pick larger buffers, never tiny ones).
        most = size // min(buffer_size, 65536) + 2
        self.assertGreaterEqual(len(steps), 1, self._about(
            key, "number of StoreProgressStepEvents should be >= 1", actual=len(steps)))
        self.assertLessEqual(len(steps), most, self._about(
            key, "number of StoreProgressStepEvents of {} bytes in buffers of {} should be <= {}"
            .format(size, buffer_size, most), actual=len(steps)))
        for event in events:
            self.assertIs(event.source, self.store, self._about(
                key, "source of a {}".format(type(event).__name__), self.store, event.source))
            self._expect(event.key, key, key, "key of a {}".format(type(event).__name__))
            self._expect(event.operation_id, starts[0].operation_id, key,
                         "operation_id of a {} (the start event's)".format(type(event).__name__))
        numbers = [event.step for event in steps]
        self._expect(numbers, sorted(numbers), key, "the steps should grow")
        self._expect(ends[0].exit_state, "normal", key, "exit_state of the StoreProgressEndEvent")

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
        self._expect(kinds, [StoreProgressStartEvent, StoreProgressEndEvent, StoreSetEvent,
                             StoreProgressStartEvent, StoreProgressEndEvent,
                             StoreUpdateEvent],
                     "event_large", "order of the progress and modification events of set, set_data")

    def test_to_file_progress_events(self):
        """to_file of a large value emits start, per-buffer step and end progress events."""
        buffer_size = 256 * 1024
        self.store.set("event_large", (PatternFile(self.progress_size), {"large": True}))
        with temp_dir() as directory:
            path = os.path.join(directory, "large.dat")
            with self._recorder(StoreProgressEvent) as recorder:
                self.store.to_file("event_large", path, buffer_size=buffer_size)
            self._expect(os.path.getsize(path), self.progress_size, "event_large",
                         "size of the file written by to_file")
        self._assert_progress(recorder, "event_large", self.progress_size, buffer_size)
