"""The Heartbeat and its events."""
import threading
import time

import pytest

from encore.events.api import BaseEvent, Heartbeat, HeartbeatEvent, get_event_manager

TIMEOUT = 10


class BeatCollector(object):
    """Records beats and signals when a number of them arrived."""

    def __init__(self, wanted):
        self.beats = []
        self.wanted = wanted
        self.arrived = threading.Event()

    def __call__(self, event):
        self.beats.append(event)
        if len(self.beats) >= self.wanted:
            self.arrived.set()


def stop_and_join(heartbeat, thread):
    heartbeat.state = "stopped"
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_defaults(manager, global_manager_reset):
    heartbeat = Heartbeat()
    assert heartbeat.interval == pytest.approx(1 / 50.0)
    assert heartbeat.event_manager is get_event_manager()
    assert heartbeat.state == "waiting"
    assert heartbeat.frame_count == 0
    assert issubclass(HeartbeatEvent, BaseEvent)


def test_serve_emits_numbered_beats_on_a_daemon_thread(manager):
    heartbeat = Heartbeat(interval=0.002, event_manager=manager)
    collector = BeatCollector(5)
    manager.connect(HeartbeatEvent, collector)
    thread = heartbeat.serve()
    try:
        assert thread.daemon
        assert heartbeat.state == "running"
        assert collector.arrived.wait(TIMEOUT)
    finally:
        stop_and_join(heartbeat, thread)
    assert heartbeat.state == "stopped"
    beats = collector.beats
    assert [beat.frame for beat in beats] == list(range(len(beats)))
    assert heartbeat.frame_count == len(beats)
    assert all(beat.source is heartbeat for beat in beats)
    assert all(beat.interval == 0.002 for beat in beats)
    times = [beat.time for beat in beats]
    assert times == sorted(times)
    assert times[-1] <= time.monotonic()


def test_stop_is_prompt_even_with_a_long_interval(manager):
    heartbeat = Heartbeat(interval=3600, event_manager=manager)
    collector = BeatCollector(1)
    manager.connect(HeartbeatEvent, collector)
    thread = heartbeat.serve()
    assert collector.arrived.wait(TIMEOUT)
    # The loop now waits for an hour; assigning the state must wake it.
    stop_and_join(heartbeat, thread)
    assert len(collector.beats) == 1


def test_stop_assigned_right_after_serve_wins(manager):
    heartbeat = Heartbeat(interval=3600, event_manager=manager)
    thread = heartbeat.serve()
    heartbeat.state = "stopped"
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert heartbeat.state == "stopped"


def test_pause_and_resume(manager):
    heartbeat = Heartbeat(interval=0.002, event_manager=manager)
    beats = []
    paused = threading.Event()
    resumed = threading.Event()

    def listener(event):
        beats.append(event.frame)
        if event.frame == 2:
            # Pausing from the listener: the loop sees it as soon as emit returns.
            heartbeat.state = "paused"
            paused.set()
        if event.frame == 3:
            resumed.set()

    manager.connect(HeartbeatEvent, listener)
    thread = heartbeat.serve()
    try:
        assert paused.wait(TIMEOUT)
        assert heartbeat.state == "paused"
        time.sleep(0.05)  # a window in which ~25 beats would have happened
        assert beats == [0, 1, 2]
        heartbeat.state = "running"
        assert resumed.wait(TIMEOUT)
    finally:
        stop_and_join(heartbeat, thread)
    assert beats[:4] == [0, 1, 2, 3]


def test_run_blocks_until_stopped(manager):
    heartbeat = Heartbeat(interval=0.001, event_manager=manager)

    def listener(event):
        if event.frame == 3:
            heartbeat.state = "stopped"

    manager.connect(HeartbeatEvent, listener)
    finished = threading.Event()

    def target():
        heartbeat.run()
        finished.set()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert finished.is_set()
    assert heartbeat.frame_count == 4
    assert heartbeat.state == "stopped"


def test_any_other_state_stops(manager):
    heartbeat = Heartbeat(interval=0.001, event_manager=manager)
    collector = BeatCollector(1)
    manager.connect(HeartbeatEvent, collector)
    thread = heartbeat.serve()
    assert collector.arrived.wait(TIMEOUT)
    heartbeat.state = "finished please"
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert heartbeat.state == "stopped"


def test_failing_listener_does_not_stop_the_heartbeat(manager):
    heartbeat = Heartbeat(interval=0.001, event_manager=manager)

    def broken(event):
        raise RuntimeError("listener failure")

    collector = BeatCollector(3)
    manager.connect(HeartbeatEvent, broken, priority=1)
    manager.connect(HeartbeatEvent, collector)
    thread = heartbeat.serve()
    try:
        assert collector.arrived.wait(TIMEOUT)
    finally:
        stop_and_join(heartbeat, thread)


def test_a_paused_heartbeat_does_not_spin(manager):
    # With a zero interval a paused loop that polled would spin on the CPU.
    heartbeat = Heartbeat(interval=0, event_manager=manager)
    waits = []
    real_condition = heartbeat._condition

    class CountingCondition(type(real_condition)):
        def wait(self, timeout=None):
            waits.append(timeout)
            return super().wait(timeout)

    heartbeat._condition = CountingCondition()
    paused = threading.Event()

    def listener(event):
        if event.frame == 0:
            heartbeat.state = "paused"
            paused.set()

    manager.connect(HeartbeatEvent, listener)
    thread = heartbeat.serve()
    try:
        assert paused.wait(TIMEOUT)
        time.sleep(0.05)  # a window in which a polling loop would spin
        assert heartbeat.frame_count == 1
        assert len(waits) <= 2
    finally:
        stop_and_join(heartbeat, thread)
