"""Fixtures shared by the tests of encore.concurrent."""
import concurrent.futures
import threading

import pytest

from encore.concurrent.futures import SynchronousExecutor
from encore.concurrent.futures.enhanced_thread_pool_executor import EnhancedThreadPoolExecutor

#: How long any single blocking step of a test may take before it is a failure.
TIMEOUT = 10.0


def _make_synchronous():
    return SynchronousExecutor()


def _make_stdlib_pool():
    return concurrent.futures.ThreadPoolExecutor(max_workers=2)


def _make_enhanced_pool():
    return EnhancedThreadPoolExecutor(max_workers=2, name="TestPool")


@pytest.fixture(
    params=[_make_synchronous, _make_stdlib_pool, _make_enhanced_pool],
    ids=["synchronous", "stdlib-pool", "enhanced-pool"],
)
def executor(request):
    """Every kind of executor the work schedulers must work with."""
    executor = request.param()
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture(
    params=[_make_stdlib_pool, _make_enhanced_pool],
    ids=["stdlib-pool", "enhanced-pool"],
)
def threaded_executor(request):
    """Executors that run jobs on other threads."""
    executor = request.param()
    yield executor
    executor.shutdown(wait=True)


class FakeTimer:
    """A stand-in for threading.Timer that fires only when told to."""

    def __init__(self, factory, interval, function):
        self.factory = factory
        self.interval = interval
        self.function = function
        self.started = False
        self.cancelled = False
        self.fired = False

    def start(self):
        with self.factory.condition:
            self.started = True
            self.factory.condition.notify_all()

    def cancel(self):
        self.cancelled = True

    def fire(self):
        """Call the function, as a real timer would (even if cancelled too late)."""
        self.fired = True
        self.function()


class FakeTimerFactory:
    """Creates FakeTimers and remembers them, newest last."""

    def __init__(self):
        self.timers = []
        self.condition = threading.Condition()

    def __call__(self, interval, function):
        timer = FakeTimer(self, interval, function)
        with self.condition:
            self.timers.append(timer)
        return timer

    def wait_for_started(self, count, timeout=TIMEOUT):
        """Wait until ``count`` timers have been started; return whether they were."""
        with self.condition:
            return self.condition.wait_for(
                lambda: sum(timer.started for timer in self.timers) >= count, timeout
            )

    @property
    def last(self):
        return self.timers[-1]


@pytest.fixture
def timer_factory():
    return FakeTimerFactory()
