"""Tests of the work schedulers: ABCWorkScheduler, Asynchronizer, Serializer
and SerializingAsynchronizer (DelayedAsynchronizer has its own module)."""
import concurrent.futures
import logging
import threading

import pytest

from encore.concurrent.futures import SynchronousExecutor
from encore.concurrent.futures.abc_work_scheduler import ABCWorkScheduler
from encore.concurrent.futures.asynchronizer import Asynchronizer
from encore.concurrent.futures.delayed_asynchronizer import DelayedAsynchronizer
from encore.concurrent.futures.serializer import Serializer
from encore.concurrent.futures.serializing_asynchronizer import SerializingAsynchronizer

TIMEOUT = 10.0
LOGGER_NAME = "encore.concurrent.futures.abc_work_scheduler"

SCHEDULERS = [Asynchronizer, Serializer, SerializingAsynchronizer]


class Gate:
    """A job that blocks until opened, to keep a scheduler busy."""

    def __init__(self, opened=None):
        self.entered = threading.Event()
        self.opened = threading.Event() if opened is None else opened

    def __call__(self):
        self.entered.set()
        assert self.opened.wait(TIMEOUT)
        return "gate"


def busy_then(scheduler, submit_more, log):
    """Run a first job which, while it runs, calls ``submit_more()``.

    Submitting from inside the running job keeps the scheduler busy during
    the submissions with every kind of executor, the synchronous one too.
    """

    def first():
        log.append("first")
        submit_more()

    scheduler.submit(first)


# Abstract base --------------------------------------------------------


def test_abc_work_scheduler_is_abstract():
    with pytest.raises(TypeError):
        ABCWorkScheduler(SynchronousExecutor())

    class OnlyOneHook(ABCWorkScheduler):
        def _add_pending_operation(self, operation, args, kwargs):
            pass

    with pytest.raises(TypeError):
        OnlyOneHook(SynchronousExecutor())


def test_a_custom_scheduler_needs_only_the_two_hooks(executor):
    class LastInFirstOut(ABCWorkScheduler):
        def __init__(self, executor):
            super().__init__(executor)
            self.stack = []

        def _add_pending_operation(self, operation, args, kwargs):
            self.stack.append((operation, args, kwargs))

        def _get_next_operation(self):
            return self.stack.pop() if self.stack else None

    log = []
    scheduler = LastInFirstOut(executor)
    busy_then(scheduler, lambda: [scheduler.submit(log.append, i) for i in range(4)], log)
    assert scheduler.wait(TIMEOUT)
    assert log == ["first", 3, 2, 1, 0]
    assert scheduler.name == "LastInFirstOut"


@pytest.mark.parametrize("scheduler_class", SCHEDULERS)
def test_defaults_and_attributes(scheduler_class):
    executor = SynchronousExecutor()
    scheduler = scheduler_class(executor)
    assert scheduler.name == scheduler_class.__name__
    assert scheduler.callback is None
    assert scheduler.executor is executor
    named = scheduler_class(executor, name="Plotter", callback=print)
    assert named.name == "Plotter"
    assert named.callback is print
    assert isinstance(named, ABCWorkScheduler)


@pytest.mark.parametrize("scheduler_class", SCHEDULERS)
def test_submit_returns_none_and_passes_arguments(scheduler_class, executor):
    received = []
    scheduler = scheduler_class(executor)
    assert scheduler.submit(lambda *a, **k: received.append((a, k)), 1, 2, key="v") is None
    assert scheduler.wait(TIMEOUT)
    assert received == [((1, 2), {"key": "v"})]


# Ordering and coalescing ----------------------------------------------


def test_asynchronizer_runs_the_first_and_the_latest(executor):
    log = []
    scheduler = Asynchronizer(executor)
    busy_then(scheduler, lambda: [scheduler.submit(log.append, i) for i in range(2, 11)], log)
    assert scheduler.wait(TIMEOUT)
    assert log == ["first", 10]


def test_asynchronizer_under_concurrent_submission(threaded_executor):
    log = []
    gate = Gate()
    scheduler = Asynchronizer(threaded_executor)
    scheduler.submit(gate)
    assert gate.entered.wait(TIMEOUT)
    barrier = threading.Barrier(4)

    def submitter(index):
        barrier.wait(TIMEOUT)
        for i in range(1000):
            scheduler.submit(log.append, (index, i))

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert log == []  # nothing ran while the gate was closed
    gate.opened.set()
    assert scheduler.wait(TIMEOUT)
    # Exactly one more job ran: the very last submission, which is the
    # last one of whichever thread submitted last.
    assert len(log) == 1
    assert log[0][1] == 999


def test_asynchronizer_keeps_one_job_in_flight(threaded_executor):
    lock = threading.Lock()
    state = {"running": 0, "most": 0, "ran": 0}

    def job():
        with lock:
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
        for _ in range(200):
            pass
        with lock:
            state["running"] -= 1
            state["ran"] += 1

    scheduler = Asynchronizer(threaded_executor)
    for _ in range(3000):
        scheduler.submit(job)
    assert scheduler.wait(TIMEOUT)
    assert state["most"] == 1
    assert 1 <= state["ran"] <= 3000


def test_serializer_runs_everything_in_order(executor):
    log = []
    scheduler = Serializer(executor)
    busy_then(scheduler, lambda: [scheduler.submit(log.append, i) for i in range(100)], log)
    assert scheduler.wait(TIMEOUT)
    # Submissions to an idle serializer run in order too.
    for i in range(100, 120):
        scheduler.submit(log.append, i)
    assert scheduler.wait(TIMEOUT)
    assert log == ["first"] + list(range(120))


def test_serializer_under_concurrent_submission(threaded_executor):
    log = []
    lock = threading.Lock()
    state = {"running": 0, "most": 0}

    def job(index, i):
        with lock:
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
        log.append((index, i))
        with lock:
            state["running"] -= 1

    scheduler = Serializer(threaded_executor)
    barrier = threading.Barrier(4)

    def submitter(index):
        barrier.wait(TIMEOUT)
        for i in range(300):
            scheduler.submit(job, index, i)

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert scheduler.wait(TIMEOUT)
    assert state["most"] == 1
    assert len(log) == 1200
    for index in range(4):
        assert [i for n, i in log if n == index] == list(range(300))


def test_serializing_asynchronizer_coalesces_per_callable(executor):
    log = []

    def a(value):
        log.append(("A", value))

    def b(value):
        log.append(("B", value))

    scheduler = SerializingAsynchronizer(executor)

    def submit_more():
        scheduler.submit(a, 1)
        scheduler.submit(b, 1)
        scheduler.submit(a, 2)

    busy_then(scheduler, submit_more, log)
    assert scheduler.wait(TIMEOUT)
    # A keeps its place in the queue but runs with its latest arguments.
    assert log == ["first", ("A", 2), ("B", 1)]


def test_serializing_asynchronizer_keys_bound_methods_by_equality(executor):
    log = []

    class View:
        def __init__(self, name):
            self.name = name

        def refresh(self, value):
            log.append((self.name, value))

    table, chart = View("table"), View("chart")
    scheduler = SerializingAsynchronizer(executor)

    def submit_more():
        for value in range(5):
            # A new bound-method object each time, equal to the previous one.
            scheduler.submit(table.refresh, value)
            scheduler.submit(chart.refresh, value * 10)

    busy_then(scheduler, submit_more, log)
    assert scheduler.wait(TIMEOUT)
    assert log == ["first", ("table", 4), ("chart", 40)]


def test_serializing_asynchronizer_under_concurrent_submission(threaded_executor):
    log = []
    gate = Gate()
    scheduler = SerializingAsynchronizer(threaded_executor)
    scheduler.submit(gate)
    assert gate.entered.wait(TIMEOUT)
    operations = [lambda value, n=n: log.append((n, value)) for n in range(4)]
    barrier = threading.Barrier(4)

    def submitter(index):
        barrier.wait(TIMEOUT)
        for value in range(500):
            scheduler.submit(operations[index], value)

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    gate.opened.set()
    assert scheduler.wait(TIMEOUT)
    # Each callable ran exactly once, with the last value submitted for it.
    assert sorted(log) == [(n, 499) for n in range(4)]


def test_serializing_asynchronizer_rejects_unhashable_callables():
    class Unhashable:
        __hash__ = None

        def __call__(self):
            pass

    scheduler = SerializingAsynchronizer(SynchronousExecutor())
    with pytest.raises(TypeError):
        scheduler.submit(Unhashable())
    # The scheduler is still usable.
    log = []
    scheduler.submit(log.append, 1)
    assert scheduler.wait(TIMEOUT)
    assert log == [1]


def test_long_inline_chains_do_not_recurse():
    # With a synchronous executor every job completes inside submit; 5000
    # jobs queued behind one must not nest 5000 callbacks deep.
    log = []
    scheduler = Serializer(SynchronousExecutor())
    busy_then(scheduler, lambda: [scheduler.submit(log.append, i) for i in range(5000)], log)
    assert scheduler.wait(TIMEOUT)
    assert log == ["first"] + list(range(5000))


def test_jobs_submitted_from_a_callback_run(threaded_executor):
    log = []
    done = threading.Event()

    def callback(future):
        value = future.result()
        if value < 5:
            scheduler.submit(lambda v=value + 1: v)
        else:
            done.set()
        log.append(value)

    scheduler = Serializer(threaded_executor, callback=callback)
    scheduler.submit(lambda: 0)
    assert done.wait(TIMEOUT)
    assert scheduler.wait(TIMEOUT)
    assert log == [0, 1, 2, 3, 4, 5]


# Callbacks, errors, waiting and shutting down --------------------------


@pytest.mark.parametrize("scheduler_class", SCHEDULERS)
def test_callback_receives_each_finished_future(scheduler_class, executor):
    seen = []
    scheduler = scheduler_class(executor, callback=seen.append)
    scheduler.submit(pow, 2, 8)
    assert scheduler.wait(TIMEOUT)
    assert len(seen) == 1
    assert isinstance(seen[0], concurrent.futures.Future)
    assert seen[0].result(timeout=0) == 256


def job_that_fails():
    raise ValueError("bad job")


class RecordCollector(logging.Handler):
    """Collects every record the scheduler logger emits, at any level."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def scheduler_records():
    """The records of the scheduler logger, kept away from other handlers."""
    scheduler_logger = logging.getLogger(LOGGER_NAME)
    collector = RecordCollector()
    saved = scheduler_logger.level, scheduler_logger.propagate
    scheduler_logger.addHandler(collector)
    scheduler_logger.setLevel(logging.DEBUG)
    scheduler_logger.propagate = False
    try:
        yield collector.records
    finally:
        scheduler_logger.removeHandler(collector)
        scheduler_logger.setLevel(saved[0])
        scheduler_logger.propagate = saved[1]


def assert_encore_failure_records(records, exc_type, name, traceback_text):
    """Check one failed completion: exactly Encore's two ERROR records."""
    assert len(records) == 2, [r.getMessage() for r in records]
    first, second = records
    assert first.levelno == second.levelno == logging.ERROR
    assert first.getMessage() == "{} occurred in submitted {} job.".format(exc_type.__name__, name)
    assert first.exc_info is not None and first.exc_info[0] is exc_type
    assert second.exc_info is None
    assert second.getMessage().startswith("Actual error:\n")
    for text in traceback_text:
        assert text in second.getMessage()


@pytest.mark.parametrize("scheduler_class", SCHEDULERS)
def test_failing_job_is_logged_and_does_not_wedge(scheduler_class, executor, scheduler_records):
    log = []
    scheduler = scheduler_class(executor, name="Failing")
    scheduler.submit(job_that_fails)
    assert scheduler.wait(TIMEOUT)
    scheduler.submit(log.append, "after")
    assert scheduler.wait(TIMEOUT)
    assert log == ["after"]
    assert_encore_failure_records(
        scheduler_records, ValueError, "Failing", ["job_that_fails", "ValueError: bad job"]
    )
    assert scheduler.shutdown(TIMEOUT)


@pytest.mark.parametrize("scheduler_class", SCHEDULERS)
def test_callback_reading_a_failed_result_logs_two_records(scheduler_class, executor, scheduler_records):
    # Encore's own pattern: the callback calls future.result(), which
    # re-raises the job's exception.  One failure, so two records, not four.
    seen = []

    def callback(future):
        seen.append(future)
        future.result()

    scheduler = scheduler_class(executor, name="Reader", callback=callback)
    scheduler.submit(job_that_fails)
    assert scheduler.wait(TIMEOUT)
    assert len(seen) == 1
    assert_encore_failure_records(
        scheduler_records, ValueError, "Reader", ["job_that_fails", "ValueError: bad job"]
    )


@pytest.mark.parametrize("scheduler_class", SCHEDULERS)
def test_failing_callback_is_logged_and_does_not_wedge(scheduler_class, executor, scheduler_records):
    calls = []

    def callback(future):
        calls.append(future.result())
        raise KeyError("bad callback")

    scheduler = scheduler_class(executor, name="CB", callback=callback)
    scheduler.submit(pow, 2, 2)
    assert scheduler.wait(TIMEOUT)
    assert_encore_failure_records(scheduler_records, KeyError, "CB", ["bad callback", "in callback"])
    scheduler.submit(pow, 2, 3)
    assert scheduler.wait(TIMEOUT)
    assert calls == [4, 8]
    assert len(scheduler_records) == 4


def test_failing_job_and_failing_callback_are_logged_once(scheduler_records):
    # The first record carries the callback's exception; the second holds
    # the job's traceback, the "actual error" (as in Encore).
    def callback(future):
        raise KeyError("bad callback")

    scheduler = Asynchronizer(SynchronousExecutor(), name="Both", callback=callback)
    scheduler.submit(job_that_fails)
    assert scheduler.wait(TIMEOUT)
    assert_encore_failure_records(scheduler_records, KeyError, "Both", ["ValueError: bad job"])


def test_successful_jobs_log_nothing_even_at_debug(executor, scheduler_records):
    scheduler = Serializer(executor, callback=lambda future: future.result())
    for i in range(5):
        scheduler.submit(pow, 2, i)
    assert scheduler.wait(TIMEOUT)
    assert scheduler_records == []


def test_job_raising_a_base_exception_does_not_wedge(threaded_executor, caplog):
    def interrupted():
        raise KeyboardInterrupt

    scheduler = Serializer(threaded_executor)
    log = []
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        scheduler.submit(interrupted)
        scheduler.submit(log.append, "next")
        assert scheduler.wait(TIMEOUT)
    assert log == ["next"]
    assert [r.exc_info[0] for r in caplog.records if r.name == LOGGER_NAME and r.exc_info] == [KeyboardInterrupt]


def test_callback_raising_a_base_exception_inline_propagates_but_does_not_wedge():
    def callback(future):
        if future.result() == "interrupt":
            raise KeyboardInterrupt

    log = []
    scheduler = Serializer(SynchronousExecutor(), callback=callback)

    def first():
        scheduler.submit(lambda: "interrupt")
        scheduler.submit(log.append, "still runs")
        return "first"

    with pytest.raises(KeyboardInterrupt):
        scheduler.submit(first)
    assert scheduler.wait(TIMEOUT)
    assert log == ["still runs"]
    scheduler.submit(log.append, "and later")
    assert log == ["still runs", "and later"]


@pytest.mark.parametrize("scheduler_class", SCHEDULERS)
def test_executor_refusing_a_job_does_not_wedge(scheduler_class, caplog):
    executor = concurrent.futures.ThreadPoolExecutor(1)
    executor.shutdown()
    seen = []
    scheduler = scheduler_class(executor, callback=seen.append)
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        scheduler.submit(print, "never")
        assert scheduler.wait(TIMEOUT)
    assert len(seen) == 1
    assert isinstance(seen[0].exception(timeout=0), RuntimeError)
    assert [r.exc_info[0] for r in caplog.records if r.name == LOGGER_NAME and r.exc_info] == [RuntimeError]


def test_cancelled_job_is_logged_and_does_not_wedge(threaded_executor, caplog):
    # Cancelling runs the done-callback in the cancelling thread, inside
    # the standard pool's shutdown lock: the scheduler must not submit the
    # next job from there (that would deadlock).
    executor = threaded_executor
    gate = Gate()
    other_gate = Gate(opened=gate.opened)
    # Keep both workers busy, so the scheduler's first job stays queued.
    executor.submit(gate)
    executor.submit(other_gate)
    assert gate.entered.wait(TIMEOUT) and other_gate.entered.wait(TIMEOUT)
    seen = []

    def callback(future):
        seen.append(future)
        gate.opened.set()  # let the workers go once the job was cancelled

    scheduler = Serializer(executor, callback=callback)
    log = []
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        scheduler.submit(log.append, "cancelled")
        scheduler.submit(log.append, "refused")
        executor.shutdown(wait=True, cancel_futures=True)
        assert scheduler.wait(TIMEOUT)
    assert log == []
    assert seen[0].cancelled()
    assert isinstance(seen[1].exception(timeout=0), RuntimeError)
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]
    assert any("cancelled" in message for message in messages)
    assert any("RuntimeError" in message for message in messages)


def test_wait_times_out_while_busy(threaded_executor):
    gate = Gate()
    scheduler = Serializer(threaded_executor)
    assert scheduler.wait(0)  # idle from the start
    scheduler.submit(gate)
    scheduler.submit(print, end="")
    assert gate.entered.wait(TIMEOUT)
    assert scheduler.wait(0.01) is False
    gate.opened.set()
    assert scheduler.wait(TIMEOUT) is True


@pytest.mark.parametrize("scheduler_class", SCHEDULERS)
def test_shutdown_refuses_new_jobs_and_waits_for_accepted_ones(scheduler_class, threaded_executor):
    gate = Gate()
    log = []
    scheduler = scheduler_class(threaded_executor)
    scheduler.submit(gate)
    assert gate.entered.wait(TIMEOUT)
    scheduler.submit(log.append, "pending")
    result = []
    shutter = threading.Thread(target=lambda: result.append(scheduler.shutdown()))
    shutter.start()
    shutter.join(0.05)
    assert shutter.is_alive()
    assert not threaded_executor._shutdown  # the executor is left alone
    with pytest.raises(RuntimeError):
        scheduler.submit(log.append, "refused")
    gate.opened.set()
    shutter.join(TIMEOUT)
    assert not shutter.is_alive()
    assert result == [True]
    assert log == ["pending"]
    # The executor still works.
    assert threaded_executor.submit(pow, 2, 2).result(timeout=TIMEOUT) == 4


def test_idle_shutdown_returns_at_once():
    scheduler = Asynchronizer(SynchronousExecutor())
    assert scheduler.shutdown(0) is True
    with pytest.raises(RuntimeError):
        scheduler.submit(print)


def test_delayed_asynchronizer_is_an_asynchronizer():
    assert issubclass(DelayedAsynchronizer, Asynchronizer)
