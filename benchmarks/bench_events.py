"""Benchmark: EventManager.emit against blinker's Signal.send and a plain loop.

Run with ``python benchmarks/bench_events.py``.  Every scenario is timed for
the three contenders in the same run; the table gives microseconds per
emit/send and the ratio of each to blinker (lower is faster).  The "plain
loop" column is the floor: a ``for`` loop calling the same listener functions
directly (checking the filter inline where there is one).

Requires blinker (``pip install blinker`` or ``.[bench]``).
"""
from __future__ import annotations

import argparse
import sys
import timeit

try:
    import blinker
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("This benchmark needs blinker: pip install blinker")

from encore.events.api import BaseEvent, EventManager


class Level1Event(BaseEvent):
    pass


class Level2Event(Level1Event):
    pass


class Level3Event(Level2Event):
    pass


class QuietEvent(BaseEvent):
    pass


class MutedEvent(BaseEvent):
    pass


class Receiver(object):
    """Owns a bound-method listener (held weakly by both libraries)."""

    def on_event(self, event):
        pass


def make_listener():
    def listener(arg):
        pass

    return listener


def _blinker_version():
    try:
        from importlib.metadata import version

        return version("blinker")
    except Exception:
        return "?"


def best_time(function, number, repeat):
    """Best time per call of ``function()`` in microseconds."""
    timer = timeit.Timer(function)
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def loop_over(listeners, event):
    def run():
        for listener in listeners:
            listener(event)

    return run


def scenario_one_listener():
    manager = EventManager()
    signal = blinker.Signal()
    listener = make_listener()
    manager.connect(Level1Event, listener)
    signal.connect(listener)
    event = Level1Event()
    sender = object()
    return (
        lambda: manager.emit(event),
        lambda: signal.send(sender),
        loop_over((listener,), event),
    )


def scenario_one_method():
    manager = EventManager()
    signal = blinker.Signal()
    receiver = Receiver()
    manager.connect(Level1Event, receiver.on_event)
    signal.connect(receiver.on_event)
    event = Level1Event()
    sender = object()
    bound = receiver.on_event
    return (
        lambda: manager.emit(event),
        lambda: signal.send(sender),
        loop_over((bound,), event),
    )


def scenario_ten_over_hierarchy():
    manager = EventManager()
    signal = blinker.Signal()
    listeners = [make_listener() for _ in range(10)]
    classes = [Level1Event, Level2Event, Level3Event]
    for index, listener in enumerate(listeners):
        # Mixed classes and priorities, so the merged order is non-trivial.
        manager.connect(classes[index % 3], listener, priority=index % 4)
        signal.connect(listener)
    event = Level3Event()
    sender = object()
    return (
        lambda: manager.emit(event),
        lambda: signal.send(sender),
        loop_over(listeners, event),
    )


def scenario_hundred_filtered():
    manager = EventManager()
    signal = blinker.Signal()
    senders = [object() for _ in range(100)]
    pairs = []
    for sender in senders:
        listener = make_listener()
        manager.connect(Level1Event, listener, filter={"source": sender})
        # blinker filters by sender natively: the closest equivalent.
        signal.connect(listener, sender=sender)
        pairs.append((sender, listener))
    target = senders[42]
    event = Level1Event(source=target)

    def plain():
        for sender, listener in pairs:
            if event.source == sender:
                listener(event)

    return (
        lambda: manager.emit(event),
        lambda: signal.send(target),
        plain,
    )


def scenario_no_listeners():
    manager = EventManager()
    manager.connect(Level1Event, make_listener())  # another class has listeners
    signal = blinker.Signal()
    event = QuietEvent()
    sender = object()
    return (
        lambda: manager.emit(event),
        lambda: signal.send(sender),
        loop_over((), event),
    )


def scenario_disabled():
    manager = EventManager()
    signal = blinker.Signal()
    listener = make_listener()
    manager.connect(MutedEvent, listener)
    manager.disable(MutedEvent)
    signal.connect(listener)
    signal.is_muted = True  # what Signal.muted() sets
    event = MutedEvent()
    sender = object()
    return (
        lambda: manager.emit(event),
        lambda: signal.send(sender),
        loop_over((), event),
    )


def scenario_connect_emit_disconnect():
    # What a store transaction does: a temporary, filtered, high-priority
    # listener around an emit, with other listeners connected meanwhile.
    manager = EventManager()
    signal = blinker.Signal()
    for _ in range(5):
        listener = make_listener()
        manager.connect(Level1Event, listener)
        signal.connect(listener)
    temporary = make_listener()
    sender = object()
    event = Level3Event(source=sender)
    connect, disconnect, emit = manager.connect, manager.disconnect, manager.emit

    def with_encore():
        connect(Level2Event, temporary, filter={"source": sender}, priority=1000)
        emit(event)
        disconnect(Level2Event, temporary)

    def with_blinker():
        signal.connect(temporary, sender=sender)
        signal.send(sender)
        signal.disconnect(temporary, sender=sender)

    listeners = [temporary] + [make_listener() for _ in range(5)]

    def plain():
        current = list(listeners)
        for listener in current:
            listener(event)
        current.remove(temporary)

    return with_encore, with_blinker, plain


SCENARIOS = [
    ("1 listener (function)", scenario_one_listener),
    ("1 listener (bound method)", scenario_one_method),
    ("10 listeners, 3-level hierarchy", scenario_ten_over_hierarchy),
    ("100 filtered listeners, 1 match", scenario_hundred_filtered),
    ("no listeners", scenario_no_listeners),
    ("disabled class", scenario_disabled),
    ("connect + emit (6) + disconnect", scenario_connect_emit_disconnect),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=50000, help="calls per timing (default 50000)")
    parser.add_argument("--repeat", type=int, default=5, help="timings per contender; the best is kept")
    options = parser.parse_args(argv)

    print("Python {} | blinker {}".format(sys.version.split()[0], _blinker_version()))
    header = "{:<34} {:>10} {:>10} {:>10} {:>10} {:>10}".format(
        "scenario", "encore us", "blinker us", "plain us", "enc/blink", "plain/blink"
    )
    print(header)
    print("-" * len(header))
    for name, make in SCENARIOS:
        encore_call, blinker_call, plain_call = make()
        encore_us = best_time(encore_call, options.number, options.repeat)
        blinker_us = best_time(blinker_call, options.number, options.repeat)
        plain_us = best_time(plain_call, options.number, options.repeat)
        print(
            "{:<34} {:>10.3f} {:>10.3f} {:>10.3f} {:>10.2f} {:>10.2f}".format(
                name, encore_us, blinker_us, plain_us, encore_us / blinker_us, plain_us / blinker_us
            )
        )


if __name__ == "__main__":
    main()
