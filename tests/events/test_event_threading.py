"""Threads: non-blocking emit, changes during a dispatch, and a stress test."""
import gc
import itertools
import logging
import random
import sys
import threading

from .helpers import Level1Event, Level2Event, Level3Event

TIMEOUT = 10


def test_non_blocking_emit_returns_started_worker_thread(manager):
    release = threading.Event()
    entered = threading.Event()
    seen = {}

    def slow(event):
        seen["thread"] = threading.current_thread()
        entered.set()
        assert release.wait(TIMEOUT)
        seen["done"] = True

    manager.connect(Level1Event, slow)
    thread = manager.emit(Level1Event(), block=False)
    try:
        assert isinstance(thread, threading.Thread)
        assert entered.wait(TIMEOUT)
        # emit returned while the listener is still running on the worker.
        assert thread.is_alive()
        assert "done" not in seen
        assert not thread.daemon
        assert thread.name.startswith("Event emit: ")
        assert seen["thread"] is thread
        assert thread is not threading.current_thread()
    finally:
        release.set()
        thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert seen["done"]


class Unprintable(object):
    def __repr__(self):
        raise RuntimeError("no representation")


class UnprintableEvent(Level1Event):
    def __str__(self):
        raise RuntimeError("no text")


def test_non_blocking_emit_names_its_thread_whatever_the_event_holds(manager):
    calls = []
    manager.connect(Level1Event, calls.append)
    events = [
        Level1Event(source=Unprintable()),        # an attribute that cannot be shown
        Level1Event(data=b"x" * 1000000),        # a huge attribute
        UnprintableEvent(),                      # an event that cannot be shown
    ]
    threads = [manager.emit(event, block=False) for event in events]
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        assert thread.name.startswith("Event emit: ")
        assert len(thread.name) < 1000
    assert calls == events
    assert threads[0].name.startswith("Event emit: Level1Event(source=<")
    assert threads[2].name.startswith("Event emit: <UnprintableEvent object at 0x")


def test_non_blocking_emit_of_disabled_event_still_returns_thread(manager):
    calls = []
    manager.connect(Level1Event, calls.append)
    manager.disable(Level1Event)
    thread = manager.emit(Level1Event(), block=False)
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert calls == []


def test_non_blocking_emit_logs_listener_failure(manager, caplog):
    def broken(event):
        raise RuntimeError("worker failure")

    manager.connect(Level1Event, broken)
    with caplog.at_level(logging.WARNING, logger="encore.events.event_manager"):
        thread = manager.emit(Level1Event(), block=False)
        thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert "worker failure" in caplog.text


def test_changes_from_another_thread_do_not_disturb_running_dispatch(manager, recorder):
    entered = threading.Event()
    release = threading.Event()

    def blocker(event):
        recorder.calls.append(("blocker", event))
        entered.set()
        assert release.wait(TIMEOUT)

    late = recorder.listener("late")
    newcomer = recorder.listener("newcomer")
    manager.connect(Level1Event, blocker, priority=1)
    manager.connect(Level1Event, late)
    thread = manager.emit(Level1Event(), block=False)
    try:
        assert entered.wait(TIMEOUT)
        # The manager holds no lock while listeners run: these return at once.
        changer = threading.Thread(
            target=lambda: (
                manager.disconnect(Level1Event, late),
                manager.connect(Level1Event, newcomer, priority=5),
            )
        )
        changer.start()
        changer.join(TIMEOUT)
        assert not changer.is_alive()
    finally:
        release.set()
        thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert recorder.tags() == ["blocker", "late"]
    recorder.calls.clear()
    manager.disconnect(Level1Event, blocker)
    manager.emit(Level1Event())
    assert recorder.tags() == ["newcomer"]


class Transient(object):
    """A bound-method listener whose instance is dropped to exercise weakrefs."""

    def __init__(self):
        self.seen = []

    def on_event(self, event):
        self.seen.append(event.key)


def test_stress_connect_disconnect_emit_from_many_threads(manager, caplog):
    """Several threads connect, disconnect and emit at once.

    Checks: every event reaches every permanent listener exactly once; a
    transient listener never sees an event twice and sees every event whose
    emit began after its connect returned and ended before its disconnect
    began; nothing raises; at the end only the permanent listeners remain.
    """
    classes = [Level1Event, Level2Event, Level3Event]
    clock = itertools.count()  # next() is atomic: a global order of moments
    errors = []
    emitters_done = threading.Event()
    events_per_emitter = 4000
    min_cycles = 100

    permanent = []
    for index, cls in enumerate(classes):
        seen = []
        manager.connect(cls, lambda event, seen=seen: seen.append(event.key), priority=index - 1)
        permanent.append(seen)

    emitted = {}

    def emitter(number):
        try:
            windows = []
            for sequence in range(events_per_emitter):
                key = (number, sequence)
                start = next(clock)
                manager.emit(Level3Event(key=key))
                windows.append((key, start, next(clock)))
            emitted[number] = windows
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    transient_log = []

    def churner(number):
        rng = random.Random(number)
        try:
            cycles = 0
            while cycles < min_cycles or not emitters_done.is_set():
                cycles += 1
                cls = rng.choice(classes)
                seen = []

                def listener(event, seen=seen):
                    seen.append(event.key)

                filter = {"key.__class__": tuple} if rng.random() < 0.3 else None
                manager.connect(cls, listener, filter=filter, priority=rng.randrange(-2, 3))
                if rng.random() < 0.3:  # reconnect: must not duplicate
                    manager.connect(cls, listener, priority=rng.randrange(-2, 3))
                connected = next(clock)
                owner = Transient()
                owner_class = rng.choice(classes)
                manager.connect(owner_class, owner.on_event)
                assert manager.has_listeners(Level3Event)
                for repeat in range(rng.randrange(1, 4)):
                    manager.emit(Level3Event(key=("churner", number, cycles, repeat)))
                assert len(owner.seen) == len(set(owner.seen)), "duplicated delivery"
                if rng.random() < 0.5:
                    del owner  # the weak reference dies instead of a disconnect
                    if rng.random() < 0.2:
                        gc.collect()
                else:
                    manager.disconnect(owner_class, owner.on_event)
                    del owner
                disconnected = next(clock)
                manager.disconnect(cls, listener)
                transient_log.append((seen, connected, disconnected))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=emitter, args=(n,)) for n in range(2)]
    threads += [threading.Thread(target=churner, args=(n,)) for n in range(3)]
    # Switch threads very often, so operations interleave at fine grain.
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        with caplog.at_level(logging.WARNING, logger="encore.events.event_manager"):
            for thread in threads:
                thread.start()
            for thread in threads[:2]:
                thread.join(60)
            emitters_done.set()
            for thread in threads:
                thread.join(60)
    finally:
        sys.setswitchinterval(old_interval)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    # Only this package's records: a thread left over by another test may log too.
    assert [r for r in caplog.records
            if r.name.startswith("encore.events") and r.levelno >= logging.WARNING] == []

    all_windows = [window for windows in emitted.values() for window in windows]
    assert len(all_windows) == 2 * events_per_emitter
    expected = sorted(key for key, _, _ in all_windows)
    for seen in permanent:
        emitter_keys = [key for key in seen if key[0] != "churner"]
        assert len(emitter_keys) == len(set(emitter_keys)), "duplicated delivery"
        assert sorted(emitter_keys) == expected, "lost delivery"

    assert len(transient_log) >= 3 * min_cycles
    for seen, connected, disconnected in transient_log:
        emitter_keys = [key for key in seen if key[0] != "churner"]
        assert len(emitter_keys) == len(set(emitter_keys)), "duplicated delivery"
        must_see = {key for key, start, end in all_windows if start > connected and end < disconnected}
        assert must_see <= set(emitter_keys), "lost delivery"

    gc.collect()
    remaining = [notifier for cls in classes for notifier in manager.get_event(cls).listeners]
    live = list(manager.get_listeners(Level3Event))
    assert len(live) == 3
    assert len([n for n in remaining if not n.dead]) == 3


def test_concurrent_connects_are_all_kept_in_order(manager):
    barrier = threading.Barrier(4)
    per_thread = 200
    listeners = {n: [] for n in range(4)}
    errors = []

    def connect_many(number):
        try:
            barrier.wait(TIMEOUT)
            for index in range(per_thread):
                def listener(event):
                    pass

                listener.tag = (number, index)
                manager.connect(Level1Event, listener)
                listeners[number].append(listener)
        except BaseException as error:  # pragma: no cover
            errors.append(error)

    threads = [threading.Thread(target=connect_many, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    connected = list(manager.get_listeners(Level1Event))
    assert len(connected) == 4 * per_thread
    # Each thread's listeners keep their own connection order.
    for number in range(4):
        mine = [listener for listener in connected if listener.tag[0] == number]
        assert mine == listeners[number]
