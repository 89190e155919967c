"""Tests of encore.concurrent.threadtools."""
import threading

from encore.concurrent.threadtools import synchronized

TIMEOUT = 10.0


def test_synchronized_keeps_name_and_docstring():
    @synchronized
    def documented(x):
        """Doubles x."""
        return 2 * x

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Doubles x."
    assert documented.__wrapped__(3) == 6
    assert documented(4) == 8


def test_synchronized_excludes_a_second_thread():
    inside = threading.Event()
    release = threading.Event()
    entered = []

    @synchronized
    def guarded(name):
        entered.append(name)
        if name == "first":
            inside.set()
            assert release.wait(TIMEOUT)

    first = threading.Thread(target=guarded, args=("first",))
    first.start()
    assert inside.wait(TIMEOUT)
    second_started = threading.Event()

    def run_second():
        second_started.set()
        guarded("second")

    second = threading.Thread(target=run_second)
    second.start()
    assert second_started.wait(TIMEOUT)
    # Give the second thread a window in which it would enter if unguarded.
    second.join(0.1)
    assert entered == ["first"]
    release.set()
    first.join(TIMEOUT)
    second.join(TIMEOUT)
    assert not first.is_alive() and not second.is_alive()
    assert entered == ["first", "second"]


def test_synchronized_is_reentrant():
    @synchronized
    def countdown(n):
        return 0 if n == 0 else 1 + countdown(n - 1)

    result = []
    thread = threading.Thread(target=lambda: result.append(countdown(5)))
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert result == [5]


def test_synchronized_counter_is_exact_under_contention():
    state = {"value": 0}

    @synchronized
    def increment():
        value = state["value"]
        # A thread switch here loses updates unless the lock excludes others.
        for _ in range(10):
            pass
        state["value"] = value + 1

    barrier = threading.Barrier(4)

    def hammer():
        barrier.wait(TIMEOUT)
        for _ in range(2000):
            increment()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert state["value"] == 8000


def test_synchronized_method_lock_is_shared_across_instances():
    inside = threading.Event()
    release = threading.Event()
    log = []

    class Worker:
        def __init__(self, name):
            self.name = name

        @synchronized
        def work(self):
            log.append(("enter", self.name))
            if self.name == "a":
                inside.set()
                assert release.wait(TIMEOUT)
            log.append(("leave", self.name))

    a, b = Worker("a"), Worker("b")
    first = threading.Thread(target=a.work)
    first.start()
    assert inside.wait(TIMEOUT)
    second = threading.Thread(target=b.work)
    second.start()
    second.join(0.1)
    assert log == [("enter", "a")]
    release.set()
    for thread in (first, second):
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert log == [("enter", "a"), ("leave", "a"), ("enter", "b"), ("leave", "b")]
