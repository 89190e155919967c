"""Rejected input: :class:`StoreBadInputTestMixin`."""
from __future__ import annotations

import datetime
import contextlib
import io

from encore.storage.events import (
    StoreProgressEndEvent,
    StoreProgressStartEvent,
)

from ._support import (
    _query_text,
    create_file_like_data,
    _FailingFile,
    _StoreTestHelpers,
)


class StoreBadInputTestMixin(_StoreTestHelpers):
    """Tests that bad input is refused and changes nothing.

    Fixture contract: ``setUp`` sets ``self.store`` to an empty connected
    writable store, and optionally ``self.event_manager`` (default:
    ``self.store.event_manager``).

    Text instead of bytes, metadata that is not a JSON-representable dict
    with string keys, keys that are not strings and malformed values must
    raise :class:`TypeError` or :class:`ValueError`; a data stream that fails
    while it is read must propagate its error.  In every case the store is
    left unchanged (a pre-existing key keeps its data and metadata, no key
    appears) and no modification event is emitted.
    """

    existing = ("bad_existing", b"original data", {"original": [1, 2]})

    bad_metadata = [
        object(),
        {"a": object()},
        {"a": {1, (2, 3)}},
        {"a": datetime.timedelta(days=1)},
        {"a": float("nan")},
        {"a": float("inf")},
        {"a": -float("inf")},
        {1: "non-str key"},
        {None: "non-str key"},
        {"nested": {2: "non-str key"}},
        {"nested": [1, {"deep": object()}]},
        {"a": bytearray(b"bytes")},
        {"a": 1 + 2j},
        ["not", "a", "dict"],
        [("a", 1)],
        "a string",
        None,
    ]

    bad_keys = [None, 1, 1.5, b"bytes", ("tuple",), ["list"]]

    @contextlib.contextmanager
    def _unchanged(self, reading: bool = False):
        key, data, metadata = self.existing
        self.store.set(key, (create_file_like_data(data), metadata))
        with self._recorder() as recorder:
            yield
        keys = [key, "bad_new"]
        self._expect(recorder.modifications(), [], keys, "modification events of refused writes")
        starts = recorder.of_type(StoreProgressStartEvent)
        if reading:
            # Reading began, so progress may have started: it must have ended
            # in a state other than 'normal'.
            ends = recorder.of_type(StoreProgressEndEvent)
            self._expect(len(ends), len(starts), keys,
                         "number of StoreProgressEndEvents (one per start event)")
            for end in ends:
                self.assertNotEqual(end.exit_state, "normal", self._about(
                    end.key, "exit_state of the progress of a failed write should not be 'normal'"))
        else:
            self._expect(starts, [], keys, "progress start events of refused writes")
        self._expect(list(self.store.query_keys()), [key], _query_text('query_keys'),
                     "keys after refused writes (only the existing key)")
        self._expect(self._data(key), data, key, "data after refused writes (unchanged)")
        self._expect(self.store.get_metadata(key), metadata, key, "metadata after refused writes (unchanged)")

    def test_text_data(self):
        """Text instead of bytes raises TypeError."""
        key = self.existing[0]
        cases = [
            lambda k: self.store.set_data(k, io.StringIO("text")),
            lambda k: self.store.set(k, (io.StringIO("text"), {})),
            lambda k: self.store.from_bytes(k, "text"),
            lambda k: self.store.multiset([k], [(io.StringIO("text"), {})]),
            lambda k: self.store.multiset_data([k], [io.StringIO("text")]),
        ]
        with self._unchanged():
            for target in (key, "bad_new"):
                for number, call in enumerate(cases):
                    with self.subTest(target=target, case=number):
                        with self.assertRaises(TypeError, msg=self._about(
                                target, "write #{} of text data should raise TypeError".format(number))):
                            call(target)

    def test_data_without_read(self):
        """Data that is not a readable stream raises TypeError."""
        key = self.existing[0]
        with self._unchanged():
            for bad in (b"bytes", "text", None, 42, [b"a"]):
                for target in (key, "bad_new"):
                    with self.subTest(data=bad, target=target):
                        with self.assertRaises(TypeError,
                                 msg=self._about(target, "set_data(target, bad) should raise TypeError")):
                            self.store.set_data(target, bad)
                        with self.assertRaises(TypeError,
                                 msg=self._about(target, "set(target, (bad, {})) should raise TypeError")):
                            self.store.set(target, (bad, {}))
            for bad in (None, 42, io.BytesIO(b"stream")):
                with self.subTest(from_bytes=bad):
                    with self.assertRaises(TypeError,
                             msg=self._about('bad_new', "from_bytes('bad_new', bad) should raise TypeError")):
                        self.store.from_bytes("bad_new", bad)

    def test_bad_metadata(self):
        """Metadata that is not JSON-representable raises TypeError or ValueError."""
        key = self.existing[0]
        with self._unchanged():
            for number, metadata in enumerate(self.bad_metadata):
                for target in (key, "bad_new"):
                    with self.subTest(case=number, target=target):
                        with self.assertRaises((TypeError, ValueError),
                                 msg=self._about(target, "set() should raise (TypeError, ValueError)")):
                            self.store.set(target, (create_file_like_data(b"new"), metadata))
                        with self.assertRaises((TypeError, ValueError),
                                 msg=self._about(target, "set_metadata(target, metadata) should raise (TypeError, ValueError)")):
                            self.store.set_metadata(target, metadata)
                        with self.assertRaises((TypeError, ValueError), msg=self._about(
                                target, "multiset_metadata() with bad metadata #{} should raise "
                                "TypeError or ValueError".format(number))):
                            self.store.multiset_metadata([target], [metadata])
                with self.subTest(case=number, call="update_metadata"):
                    with self.assertRaises((TypeError, ValueError),
                             msg=self._about(key, "update_metadata(key, metadata) should raise (TypeError, ValueError)")):
                        self.store.update_metadata(key, metadata)

    def test_bad_keys(self):
        """Keys that are not strings raise TypeError."""
        with self._unchanged():
            for bad in self.bad_keys:
                calls = {
                    "set": lambda: self.store.set(bad, (create_file_like_data(b"x"), {})),
                    "set_data": lambda: self.store.set_data(bad, create_file_like_data(b"x")),
                    "set_metadata": lambda: self.store.set_metadata(bad, {}),
                    "update_metadata": lambda: self.store.update_metadata(bad, {}),
                    "from_bytes": lambda: self.store.from_bytes(bad, b"x"),
                    "delete": lambda: self.store.delete(bad),
                    "get": lambda: self.store.get(bad),
                    "get_data": lambda: self.store.get_data(bad),
                    "get_metadata": lambda: self.store.get_metadata(bad),
                    "exists": lambda: self.store.exists(bad),
                    "to_bytes": lambda: self.store.to_bytes(bad),
                }
                for name, call in calls.items():
                    with self.subTest(key=bad, call=name):
                        with self.assertRaises(TypeError, msg=self._about(
                                bad, "{}() of a key that is not a str should raise TypeError".format(name))):
                            call()

    def test_bad_value_shape(self):
        """set with a value that is neither a Value nor a (data, metadata) pair raises TypeError."""
        key = self.existing[0]
        stream = create_file_like_data(b"x")
        bad_values = [
            b"bytes",
            "text",
            None,
            42,
            (stream,),
            (stream, {}, "extra"),
            [stream, {}],
            {"data": stream},
        ]
        with self._unchanged():
            for number, value in enumerate(bad_values):
                for target in (key, "bad_new"):
                    with self.subTest(case=number, target=target):
                        with self.assertRaises(TypeError,
                                 msg=self._about(target, "set(target, value) should raise TypeError")):
                            self.store.set(target, value)

    def test_failing_stream(self):
        """A stream that fails mid-read propagates its error and writes nothing."""
        key = self.existing[0]
        with self._unchanged(reading=True):
            for target in (key, "bad_new"):
                with self.subTest(target=target):
                    with self.assertRaises(OSError,
                             msg=self._about(target, "set() should raise OSError")):
                        self.store.set(target, (_FailingFile(b"y" * 100000, 50000), {"new": 1}),
                                       buffer_size=4096)
                    with self.assertRaises(OSError,
                             msg=self._about(target, "set_data() should raise OSError")):
                        self.store.set_data(target, _FailingFile(b"y" * 100000, 50000),
                                            buffer_size=4096)
