"""Concurrent use of a store: :class:`StoreConcurrencyTestMixin`."""
from __future__ import annotations

import threading
import time
from typing import Callable, List, Optional

from ._support import (
    _Text,
    _query_text,
    create_file_like_data,
    _StoreTestHelpers,
)


class StoreConcurrencyTestMixin(_StoreTestHelpers):
    """Tests that a store can be used from several threads at once.

    Fixture contract: ``setUp`` sets ``self.store`` to an empty connected
    writable store that may be shared between threads.

    Threads start together (a :class:`threading.Barrier`) and write and read
    distinct and shared keys; no operation may fail, every read must return
    a complete value (never a mix of two writes or a truncated one), no
    metadata update may be lost, and the final state must be consistent.

    Attributes
    ----------
    concurrency_threads : int
        The number of threads (4).
    concurrency_rounds : int
        The number of writes each thread makes (25).
    concurrency_timeout : float
        Seconds after which a thread that has not finished fails the test.
    """

    concurrency_threads = 4
    concurrency_rounds = 25
    concurrency_timeout = 60.0

    def _run_threads(self, worker: Callable[[int], None]) -> None:
        count = self.concurrency_threads
        barrier = threading.Barrier(count, timeout=self.concurrency_timeout)
        errors: List[BaseException] = []
        lock = threading.Lock()

        def run(index: int) -> None:
            try:
                barrier.wait()
                worker(index)
            except BaseException as error:  # reported to the test thread
                with lock:
                    errors.append(error)
                barrier.abort()

        threads = [
            threading.Thread(target=run, args=(index,), name="store-test-%d" % index, daemon=True)
            for index in range(count)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + self.concurrency_timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.assertEqual([thread.name for thread in threads if thread.is_alive()], [], self._about(
            _Text("threads of the test"), "should all finish within {} s".format(self.concurrency_timeout)))
        if errors:
            raise errors[0]

    @staticmethod
    def _payload(writer: int, round_: int) -> bytes:
        return ("<%d:%d>" % (writer, round_)).encode("ascii") * 500

    def _assert_complete(self, data: bytes, metadata: Optional[dict] = None, key: str = "shared") -> None:
        token = data[: data.index(b">") + 1] if b">" in data else data[:16]
        self._expect(data, token * 500, key, "data: one writer's payload, whole (not torn)")
        if metadata is not None:
            self._expect(set(metadata), {"writer", "round"}, key, "names in the metadata of one writer")

    def test_distinct_keys(self):
        """Threads writing their own keys all succeed and read their writes."""
        rounds = self.concurrency_rounds

        def worker(index: int) -> None:
            for round_ in range(rounds):
                key = "thread%d_%d" % (index, round_)
                data = self._payload(index, round_)
                self.store.set(key, (create_file_like_data(data), {"writer": index, "round": round_}))
                self._expect(self._data(key), data, key, "get_data(key)")
                self._expect(
                    self.store.get_metadata(key),
                    {"writer": index, "round": round_},
                    key, "get_metadata(key)")

        self._run_threads(worker)
        keys = set(self.store.query_keys())
        expected = {
            "thread%d_%d" % (index, round_)
            for index in range(self.concurrency_threads)
            for round_ in range(rounds)
        }
        self._expect_content(dict.fromkeys(keys, True), dict.fromkeys(expected, True),
                             "keys of query_keys() after the threads' writes")
        for index in range(self.concurrency_threads):
            self._expect(
                len(list(self.store.query_keys(writer=index))),
                rounds,
                _query_text('query_keys', writer=index), "len(list(query_keys(writer=index)))")

    def test_shared_key(self):
        """Concurrent writers and readers of one key only see complete values."""
        self.store.set("shared", (create_file_like_data(self._payload(-1, 0)),
                                  {"writer": -1, "round": 0}))
        rounds = self.concurrency_rounds
        writers = [index for index in range(self.concurrency_threads) if index % 2 == 0]
        writers_left = [len(writers)]
        lock = threading.Lock()
        writers_done = threading.Event()
        deadline = time.monotonic() + self.concurrency_timeout / 2

        def worker(index: int) -> None:
            if index in writers:
                try:
                    for round_ in range(rounds):
                        self.store.set(
                            "shared",
                            (create_file_like_data(self._payload(index, round_)),
                             {"writer": index, "round": round_}),
                        )
                        self._assert_complete(self._data("shared"), self.store.get_metadata("shared"))
                finally:
                    with lock:
                        writers_left[0] -= 1
                        if writers_left[0] == 0:
                            writers_done.set()
            else:
                # Read for as long as the writers write (at least ``rounds`` times).
                reads = 0
                while (reads < rounds or not writers_done.is_set()) and time.monotonic() < deadline:
                    value = self.store.get("shared")
                    self._assert_complete(self._read(value.data), value.metadata)
                    self._assert_complete(self._data("shared"), self.store.get_metadata("shared"))
                    reads += 1

        self._run_threads(worker)
        value = self.store.get("shared")
        data = self._read(value.data)
        self._assert_complete(data, value.metadata)
        self.assertIn(value.metadata["writer"], writers,
            msg=self._about('shared', "writer in the metadata should be one of the writers"))
        self._expect(
            value.metadata["round"],
            rounds - 1,
            'shared', "value.metadata['round'] of get('shared')")

    def test_set_and_delete(self):
        """Keys set and deleted concurrently end in a consistent state."""
        rounds = self.concurrency_rounds

        def worker(index: int) -> None:
            key = "churn%d" % index
            for round_ in range(rounds):
                self.store.set(key, (create_file_like_data(self._payload(index, round_)), {"writer": index, "round": round_}))
                self.store.set("common", (create_file_like_data(self._payload(index, round_)), {"writer": index, "round": round_}))
                try:
                    self._assert_complete(self._data("common"), key="common")
                except KeyError:
                    pass  # another thread deleted it in between: allowed
                if round_ % 2 == 1:
                    self.store.delete(key)
                try:
                    self.store.delete("common")
                except KeyError:
                    pass  # another thread deleted it first: allowed
                list(self.store.query_keys())

        self._run_threads(worker)
        # Each thread's last write of a churn key is a delete when its last
        # round is odd, a set otherwise; its last write of "common" is a delete.
        expected = set() if rounds % 2 == 0 else {
            "churn%d" % index for index in range(self.concurrency_threads)
        }
        self._expect(set(self.store.query_keys()), expected, _query_text('query_keys'), "set(query_keys())")
        for key in expected:
            self._assert_complete(self._data(key), self.store.get_metadata(key), key)

    def test_metadata_updates(self):
        """Concurrent update_metadata calls on one key lose no update."""
        self.store.set("counter", (create_file_like_data(b"counter"), {}))
        rounds = self.concurrency_rounds

        def worker(index: int) -> None:
            for round_ in range(rounds):
                self.store.update_metadata("counter", {"thread%d" % index: round_})

        self._run_threads(worker)
        self._expect(
            self.store.get_metadata("counter"),
            {"thread%d" % index: rounds - 1 for index in range(self.concurrency_threads)},
            'counter', "get_metadata('counter')")
        self._expect(self._data("counter"), b"counter", 'counter', "get_data('counter')")
