"""Tests of encore.concurrent.futures.delayed_asynchronizer."""
import logging
import threading
import time

import pytest

from encore.concurrent.futures import SynchronousExecutor
from encore.concurrent.futures.delayed_asynchronizer import DelayedAsynchronizer

TIMEOUT = 10.0
LOGGER_NAME = "encore.concurrent.futures.delayed_asynchronizer"


def test_first_job_runs_at_once_then_a_pause_starts(executor, timer_factory):
    log = []
    scheduler = DelayedAsynchronizer(executor, 2.5, timer_factory=timer_factory)
    scheduler.submit(log.append, 1)
    # The job has run (or runs now); the pause begins only when it is over.
    assert timer_factory.wait_for_started(1)
    assert log == [1]
    assert len(timer_factory.timers) == 1
    assert timer_factory.last.interval == 2.5
    assert scheduler.wait(0) is False  # still pausing


def test_newest_pending_job_runs_when_the_pause_is_over(executor, timer_factory):
    log = []
    scheduler = DelayedAsynchronizer(executor, 1.0, timer_factory=timer_factory)
    scheduler.submit(log.append, 1)
    assert timer_factory.wait_for_started(1)
    for i in range(2, 6):
        scheduler.submit(log.append, i)
    assert log == [1]  # nothing runs during the pause
    timer_factory.last.fire()
    assert timer_factory.wait_for_started(2)
    assert log == [1, 5]
    assert scheduler.wait(0) is False  # pausing after job 5
    timer_factory.last.fire()
    assert scheduler.wait(TIMEOUT) is True
    assert len(timer_factory.timers) == 2  # no pause without a job


def test_submission_during_the_pause_after_an_idle_period(timer_factory):
    log = []
    scheduler = DelayedAsynchronizer(SynchronousExecutor(), 1.0, timer_factory=timer_factory)
    scheduler.submit(log.append, "a")
    timer_factory.last.fire()
    assert scheduler.wait(0)
    # Idle again: the next job starts at once.
    scheduler.submit(log.append, "b")
    assert log == ["a", "b"]
    assert len(timer_factory.timers) == 2


def test_wait_includes_the_trailing_pause(threaded_executor, timer_factory):
    scheduler = DelayedAsynchronizer(threaded_executor, 1.0, timer_factory=timer_factory)
    scheduler.submit(pow, 2, 2)
    assert timer_factory.wait_for_started(1)
    assert scheduler.wait(0.01) is False
    fired = threading.Timer(0.02, timer_factory.last.fire)
    fired.start()
    assert scheduler.wait(TIMEOUT) is True
    fired.join(TIMEOUT)


def test_shutdown_during_an_idle_pause_cancels_it(executor, timer_factory):
    log = []
    scheduler = DelayedAsynchronizer(executor, 60.0, timer_factory=timer_factory)
    scheduler.submit(log.append, 1)
    assert timer_factory.wait_for_started(1)
    result = []
    shutter = threading.Thread(target=lambda: result.append(scheduler.shutdown()))
    shutter.start()
    shutter.join(TIMEOUT)
    assert not shutter.is_alive(), "shutdown() hung during the pause"
    assert result == [True]
    assert timer_factory.last.cancelled
    # A timer that fires although cancelled (too late to stop) does nothing.
    timer_factory.last.fire()
    assert log == [1]
    assert scheduler.wait(0)
    with pytest.raises(RuntimeError):
        scheduler.submit(log.append, 2)


def test_shutdown_with_a_pending_job_runs_it_after_the_pause(executor, timer_factory):
    log = []
    scheduler = DelayedAsynchronizer(executor, 60.0, timer_factory=timer_factory)
    scheduler.submit(log.append, 1)
    assert timer_factory.wait_for_started(1)
    scheduler.submit(log.append, 2)
    scheduler.submit(log.append, 3)
    assert scheduler.shutdown(0.01) is False  # the pause is not over yet
    assert not timer_factory.last.cancelled
    timer_factory.last.fire()
    assert scheduler.wait(TIMEOUT) is True
    assert log == [1, 3]
    # No pause after the last job once shut down.
    assert len(timer_factory.timers) == 1


def test_shutdown_with_a_real_timer_does_not_hang(threaded_executor):
    scheduler = DelayedAsynchronizer(threaded_executor, 30.0)
    scheduler.submit(pow, 2, 2)
    result = []
    shutter = threading.Thread(target=lambda: result.append(scheduler.shutdown()))
    shutter.start()
    shutter.join(TIMEOUT)
    assert not shutter.is_alive(), "shutdown() hung during the pause"
    assert result == [True]


def test_interval_is_honoured_with_a_real_timer(threaded_executor):
    interval = 0.1
    times = {}

    def job(name):
        times[name] = (time.monotonic(), None)
        times[name] = (times[name][0], time.monotonic())

    scheduler = DelayedAsynchronizer(threaded_executor, interval)
    scheduler.submit(job, "first")
    scheduler.submit(job, "second")
    assert scheduler.wait(TIMEOUT)
    first_end = times["first"][1]
    second_start = times["second"][0]
    # threading.Timer never fires early; allow for clock granularity only.
    assert second_start - first_end >= interval - 0.005


def test_default_timer_is_a_daemon_thread(threaded_executor):
    scheduler = DelayedAsynchronizer(threaded_executor, 30.0, name="Saver")
    made = []
    created = threading.Event()
    default_factory = scheduler.timer_factory

    def spy(interval, function):
        made.append(default_factory(interval, function))
        created.set()
        return made[-1]

    scheduler.timer_factory = spy
    scheduler.submit(pow, 2, 2)
    assert created.wait(TIMEOUT)
    assert isinstance(made[0], threading.Timer)
    assert made[0].daemon
    assert scheduler.shutdown(TIMEOUT)


def test_negative_interval_is_refused():
    with pytest.raises(ValueError):
        DelayedAsynchronizer(SynchronousExecutor(), -1)


def test_attributes():
    executor = SynchronousExecutor()
    scheduler = DelayedAsynchronizer(executor, 0.5, name="N", callback=print)
    assert scheduler.interval == 0.5
    assert scheduler.name == "N"
    assert scheduler.callback is print
    assert scheduler.executor is executor
    assert DelayedAsynchronizer(executor, 1).name == "DelayedAsynchronizer"


def test_failures_are_logged_to_the_module_logger(timer_factory, caplog):
    def fail():
        raise ValueError("broken")

    log = []
    scheduler = DelayedAsynchronizer(SynchronousExecutor(), 1.0, name="D", timer_factory=timer_factory)
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        scheduler.submit(fail)
        scheduler.submit(log.append, "next")
        timer_factory.last.fire()
        timer_factory.last.fire()
        assert scheduler.wait(TIMEOUT)
    assert log == ["next"]
    records = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert len(records) == 2
    assert records[0].exc_info[0] is ValueError and "D" in records[0].getMessage()
    assert "ValueError: broken" in records[1].getMessage()


def test_timer_that_cannot_start_is_logged_and_skipped(caplog):
    class BrokenTimer:
        def __init__(self, interval, function):
            pass

        def start(self):
            raise OSError("no timers today")

        def cancel(self):
            pass

    log = []
    scheduler = DelayedAsynchronizer(SynchronousExecutor(), 1.0, timer_factory=BrokenTimer)
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        scheduler.submit(log.append, 1)
    assert scheduler.wait(0)
    assert log == [1]
    assert [r.exc_info[0] for r in caplog.records if r.name == LOGGER_NAME] == [OSError]


def test_timer_firing_inside_start_does_not_recurse():
    # A timer factory whose timers fire immediately (interval 0 in effect)
    # with a synchronous executor: a long chain must run as a loop.
    class ImmediateTimer:
        def __init__(self, interval, function):
            self.function = function

        def start(self):
            self.function()

        def cancel(self):
            pass

    log = []
    scheduler = DelayedAsynchronizer(SynchronousExecutor(), 0, timer_factory=ImmediateTimer)

    def chain(n):
        log.append(n)
        if n < 3000:
            scheduler.submit(chain, n + 1)

    scheduler.submit(chain, 0)
    assert scheduler.wait(TIMEOUT)
    assert log == list(range(3001))

