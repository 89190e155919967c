"""Tests of encore.concurrent.futures.enhanced_thread_pool_executor."""
import concurrent.futures
import gc
import logging
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from encore.concurrent.futures.enhanced_thread_pool_executor import EnhancedThreadPoolExecutor
from encore.concurrent.futures.future import Future

TIMEOUT = 10.0
LOGGER_NAME = "encore.concurrent.futures.enhanced_thread_pool_executor"


def run_python(code, timeout=30):
    """Run ``code`` in a fresh interpreter; return (returncode, stdout, stderr)."""
    environment = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    environment["PYTHONPATH"] = os.pathsep.join(
        [root] + ([environment["PYTHONPATH"]] if environment.get("PYTHONPATH") else [])
    )
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )
    return completed.returncode, completed.stdout, completed.stderr


@pytest.fixture
def pool():
    executors = []

    def make(*args, **kwargs):
        executor = EnhancedThreadPoolExecutor(*args, **kwargs)
        executors.append(executor)
        return executor

    yield make
    for executor in executors:
        executor.shutdown(wait=True)


def failing_job():
    raise ValueError("nope")


def test_results_exceptions_and_future_class(pool):
    executor = pool(2)
    ok = executor.submit(lambda a, b=1: a * b, 6, b=7)
    bad = executor.submit(failing_job)
    assert ok.result(timeout=TIMEOUT) == 42
    assert isinstance(ok, Future) and ok.traceback() is None
    with pytest.raises(ValueError, match="nope"):
        bad.result(timeout=TIMEOUT)
    assert "failing_job" in bad.traceback()
    assert EnhancedThreadPoolExecutor._future_factory is Future


def test_is_a_standard_executor(pool):
    executor = pool(1)
    assert isinstance(executor, concurrent.futures.Executor)
    futures = [executor.submit(pow, 2, i) for i in range(10)]
    done, not_done = concurrent.futures.wait(futures, timeout=TIMEOUT)
    assert not not_done
    assert [f.result() for f in futures] == [2**i for i in range(10)]


def test_invalid_arguments():
    with pytest.raises(ValueError):
        EnhancedThreadPoolExecutor(0)
    with pytest.raises(TypeError):
        EnhancedThreadPoolExecutor(1, initializer=42)
    with pytest.raises(TypeError):
        EnhancedThreadPoolExecutor(1, uninitializer="x")


def test_default_max_workers(pool):
    executor = pool(None)
    assert executor.max_workers == min(32, (os.cpu_count() or 1) + 4)


def test_single_worker_runs_jobs_in_submission_order(pool):
    executor = pool(1)
    order = []
    futures = [executor.submit(order.append, i) for i in range(500)]
    for future in futures:
        future.result(timeout=TIMEOUT)
    assert order == list(range(500))


def test_thread_names_and_daemon_flag(pool):
    barrier = threading.Barrier(3)

    def who():
        barrier.wait(TIMEOUT)
        thread = threading.current_thread()
        return thread.name, thread.daemon

    named = pool(3, name="Loader")
    results = [f.result(timeout=TIMEOUT) for f in [named.submit(who) for _ in range(3)]]
    assert sorted(name for name, _ in results) == ["LoaderWorker-1", "LoaderWorker-2", "LoaderWorker-3"]
    assert all(daemon for _, daemon in results)
    assert named.name == "Loader"

    default = pool(1)
    assert default.name == "EnhancedThreadPoolExecutor"
    assert default.submit(lambda: threading.current_thread().name).result(timeout=TIMEOUT) == (
        "EnhancedThreadPoolExecutorWorker-1"
    )


def test_never_more_than_max_workers(pool):
    executor = pool(2, name="Small")
    names = {f.result(timeout=TIMEOUT) for f in [
        executor.submit(lambda: threading.current_thread().name) for _ in range(200)
    ]}
    assert names <= {"SmallWorker-1", "SmallWorker-2"}
    assert len(executor._threads) == 2


def test_each_submit_adds_a_worker_until_the_maximum(pool):
    # As in Encore: a worker is started per submit, even while the existing
    # ones are idle, until there are max_workers of them.
    executor = pool(3, name="Grow")
    for expected in (1, 2, 3, 3):
        executor.submit(pow, 2, 2).result(timeout=TIMEOUT)
        assert len(executor._threads) == expected
    assert [thread.name for thread in executor._threads] == [
        "GrowWorker-1", "GrowWorker-2", "GrowWorker-3"]
    assert executor.max_workers == 3


def test_initializer_and_uninitializer_run_once_per_worker(pool):
    lock = threading.Lock()
    initialized, uninitialized = [], []

    def initializer():
        with lock:
            initialized.append(threading.current_thread().name)

    def uninitializer():
        with lock:
            uninitialized.append(threading.current_thread().name)

    barrier = threading.Barrier(3)
    executor = pool(3, initializer=initializer, uninitializer=uninitializer, name="Hooks")
    # The barrier forces three distinct workers to be busy at once.
    futures = [executor.submit(barrier.wait, TIMEOUT) for _ in range(3)]
    futures += [executor.submit(pow, 2, i) for i in range(30)]
    for future in futures:
        future.result(timeout=TIMEOUT)
    assert sorted(initialized) == ["HooksWorker-1", "HooksWorker-2", "HooksWorker-3"]
    assert uninitialized == []
    executor.shutdown(wait=True)
    assert sorted(uninitialized) == sorted(initialized)


def test_initializer_runs_before_the_workers_first_job(pool):
    state = threading.local()

    def initializer():
        state.connection = "open"

    executor = pool(1, initializer=initializer)
    assert executor.submit(lambda: state.connection).result(timeout=TIMEOUT) == "open"


def test_failing_initializer_is_logged_and_the_worker_carries_on(pool, caplog):
    def initializer():
        raise OSError("no database")

    executor = pool(1, initializer=initializer)
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        assert executor.submit(pow, 3, 2).result(timeout=TIMEOUT) == 9
    records = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert len(records) == 1
    assert records[0].levelno == logging.CRITICAL
    assert records[0].exc_info[0] is OSError


def test_failing_uninitializer_is_logged(pool, caplog):
    def uninitializer():
        raise OSError("cannot close")

    executor = pool(1, uninitializer=uninitializer)
    assert executor.submit(pow, 3, 2).result(timeout=TIMEOUT) == 9
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        executor.shutdown(wait=True)
    records = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert records[0].exc_info[0] is OSError


def test_submit_after_shutdown_raises(pool):
    executor = pool(1)
    executor.shutdown()
    with pytest.raises(RuntimeError):
        executor.submit(print)


def test_shutdown_runs_the_queued_jobs_and_joins(pool):
    executor = pool(1)
    release = threading.Event()
    done = []
    first = executor.submit(release.wait, TIMEOUT)
    rest = [executor.submit(done.append, i) for i in range(20)]
    shutter = threading.Thread(target=executor.shutdown, kwargs={"wait": True})
    shutter.start()
    shutter.join(0.05)
    assert shutter.is_alive()  # still waiting for the blocked job
    release.set()
    shutter.join(TIMEOUT)
    assert not shutter.is_alive()
    assert first.result(timeout=0) is True
    assert all(f.done() for f in rest)
    assert done == list(range(20))
    assert not any(thread.is_alive() for thread in executor._threads)


def test_shutdown_without_wait_returns_at_once(pool):
    executor = pool(1)
    release = threading.Event()
    blocked = executor.submit(release.wait, TIMEOUT)
    executor.shutdown(wait=False)
    assert not blocked.done()
    release.set()
    assert blocked.result(timeout=TIMEOUT) is True
    for thread in executor._threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def test_shutdown_cancel_futures(pool):
    executor = pool(1)
    started = threading.Event()
    release = threading.Event()

    def blocker():
        started.set()
        return release.wait(TIMEOUT)

    running = executor.submit(blocker)
    assert started.wait(TIMEOUT)
    queued = [executor.submit(pow, 2, i) for i in range(5)]
    # Unblock the running job only once the last queued one is cancelled.
    queued[-1].add_done_callback(lambda _: release.set())
    executor.shutdown(wait=True, cancel_futures=True)
    assert running.result(timeout=0) is True
    assert all(f.cancelled() for f in queued)


def test_done_callback_of_a_cancelled_job_may_submit(pool):
    executor = pool(1)
    started, release = threading.Event(), threading.Event()

    def blocker():
        started.set()
        return release.wait(TIMEOUT)

    executor.submit(blocker)
    assert started.wait(TIMEOUT)
    queued = executor.submit(pow, 2, 2)
    outcome = []

    def resubmit(future):
        try:
            executor.submit(pow, 2, 3)
        except RuntimeError as exc:
            outcome.append(exc)
        release.set()

    queued.add_done_callback(resubmit)
    shutter = threading.Thread(target=executor.shutdown, kwargs={"cancel_futures": True})
    shutter.start()
    shutter.join(TIMEOUT)
    assert not shutter.is_alive()
    assert queued.cancelled()
    assert len(outcome) == 1 and "after shutdown" in str(outcome[0])


def test_shutdown_from_a_worker_does_not_deadlock(pool):
    executor = pool(2)
    future = executor.submit(lambda: executor.shutdown(wait=True))
    assert future.result(timeout=TIMEOUT) is None
    for thread in executor._threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def test_shutdown_does_not_hang_with_idle_workers(pool):
    executor = pool(4)
    for future in [executor.submit(pow, 2, 2) for _ in range(4)]:
        future.result(timeout=TIMEOUT)
    shutter = threading.Thread(target=executor.shutdown)
    shutter.start()
    shutter.join(TIMEOUT)
    assert not shutter.is_alive()
    assert not any(thread.is_alive() for thread in executor._threads)


def test_map_yields_in_order_and_honours_timeout(pool):
    executor = pool(3)
    assert list(executor.map(pow, [2, 3, 4], [2, 2, 2])) == [4, 9, 16]
    release = threading.Event()
    iterator = executor.map(lambda _: release.wait(TIMEOUT), [1])
    with pytest.raises(concurrent.futures.TimeoutError):
        for _ in executor.map(lambda _: release.wait(TIMEOUT), [1], timeout=0.01):
            pass
    release.set()
    assert list(iterator) == [True]


def test_map_submits_eagerly_and_closing_cancels_the_rest(pool):
    executor = pool(1)
    entered = threading.Event()
    release = threading.Event()
    started = []

    def job(i):
        started.append(i)
        if i == 1:
            entered.set()
            assert release.wait(TIMEOUT)
        return i

    results = executor.map(job, range(5))
    # Every job was submitted before anything was asked of the iterator.
    assert entered.wait(TIMEOUT)
    assert next(results) == 0
    results.close()  # job 1 is running; jobs 2 to 4 are cancelled
    release.set()
    executor.shutdown(wait=True)
    assert started == [0, 1]


def test_context_manager_shuts_down(pool):
    with pool(2) as executor:
        future = executor.submit(pow, 2, 5)
    assert future.result(timeout=0) == 32
    with pytest.raises(RuntimeError):
        executor.submit(print)


def test_garbage_collected_executor_stops_its_workers():
    stopped = threading.Event()
    executor = EnhancedThreadPoolExecutor(1, uninitializer=stopped.set, wait_at_exit=False)
    assert executor.submit(pow, 2, 3).result(timeout=TIMEOUT) == 8
    thread = executor._threads[0]
    del executor
    gc.collect()
    assert stopped.wait(TIMEOUT)
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_concurrent_submitters_lose_no_job(pool):
    executor = pool(3)
    barrier = threading.Barrier(4)
    futures_per_thread = [[] for _ in range(4)]

    def submitter(index):
        barrier.wait(TIMEOUT)
        for i in range(500):
            futures_per_thread[index].append(executor.submit(lambda a, b: (a, b), index, i))

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    for index, futures in enumerate(futures_per_thread):
        assert [f.result(timeout=TIMEOUT) for f in futures] == [(index, i) for i in range(500)]


def test_submit_when_no_thread_can_be_started(pool, monkeypatch):
    # What Python 3.12 does while the interpreter exits.
    warm = pool(2)
    assert warm.submit(pow, 2, 2).result(timeout=TIMEOUT) == 4
    cold = pool(2)

    def refuse(self):
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    # A pool with a worker runs the job on it.
    assert warm.submit(pow, 2, 3).result(timeout=TIMEOUT) == 8
    assert len(warm._threads) == 1
    # A pool without any worker refuses the job rather than losing it.
    with pytest.raises(RuntimeError, match="can't create new thread"):
        cold.submit(pow, 2, 3)
    assert cold._threads == []
    assert cold._work_queue.empty()


# Interpreter exit ------------------------------------------------------


def test_exit_waits_for_running_and_queued_jobs():
    code = """
        import time
        from encore.concurrent.futures.enhanced_thread_pool_executor import EnhancedThreadPoolExecutor

        def job(i):
            time.sleep(0.05)
            print("job", i, flush=True)

        executor = EnhancedThreadPoolExecutor(
            1, uninitializer=lambda: print("uninit", flush=True), wait_at_exit=True)
        for i in range(4):
            executor.submit(job, i)
        print("main done", flush=True)
    """
    returncode, out, err = run_python(code)
    assert returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "main done"
    assert lines[1:] == ["job 0", "job 1", "job 2", "job 3", "uninit"]


def test_exit_does_not_wait_for_workers_of_wait_at_exit_false():
    code = """
        import threading
        from encore.concurrent.futures.enhanced_thread_pool_executor import EnhancedThreadPoolExecutor

        started = threading.Event()

        def stuck():
            started.set()
            threading.Event().wait()   # never returns
            print("unreachable", flush=True)

        executor = EnhancedThreadPoolExecutor(2, wait_at_exit=False)
        executor.submit(stuck)
        executor.submit(stuck)
        executor.submit(stuck)        # queued behind the stuck ones
        assert started.wait(10)
        print("main done", flush=True)
    """
    returncode, out, err = run_python(code, timeout=30)
    assert returncode == 0, err
    assert out.splitlines() == ["main done"]


def test_exit_with_both_kinds_of_executor():
    code = """
        import threading, time
        from encore.concurrent.futures.enhanced_thread_pool_executor import EnhancedThreadPoolExecutor

        abandoned = EnhancedThreadPoolExecutor(1, name="Abandoned", wait_at_exit=False)
        waited = EnhancedThreadPoolExecutor(1, name="Waited")
        abandoned.submit(threading.Event().wait)

        def slow():
            time.sleep(0.1)
            print("waited job done in", threading.current_thread().name, flush=True)

        waited.submit(slow)
    """
    returncode, out, err = run_python(code, timeout=30)
    assert returncode == 0, err
    assert out.splitlines() == ["waited job done in WaitedWorker-1"]


def test_submit_from_an_atexit_hook():
    # atexit hooks run last-registered first: a hook registered after the
    # module was imported runs before the executor stops accepting jobs, one
    # registered before the import runs after.
    code = """
        import atexit

        def late_hook():
            try:
                executor.submit(print, "too late")
            except RuntimeError as exc:
                print("refused:", exc, flush=True)

        atexit.register(late_hook)

        from encore.concurrent.futures.enhanced_thread_pool_executor import EnhancedThreadPoolExecutor
        executor = EnhancedThreadPoolExecutor(1)
        # Start the worker now: Python 3.12 cannot start threads at exit.
        executor.submit(pow, 1, 1).result(timeout=10)

        def early_hook():
            print("early:", executor.submit(pow, 2, 5).result(timeout=10), flush=True)

        atexit.register(early_hook)
    """
    returncode, out, err = run_python(code, timeout=30)
    assert returncode == 0, err
    assert out.splitlines() == [
        "early: 32",
        "refused: cannot schedule new futures after interpreter shutdown",
    ]


def test_exit_while_a_non_daemon_thread_still_submits():
    code = """
        import threading
        from encore.concurrent.futures.enhanced_thread_pool_executor import EnhancedThreadPoolExecutor

        executor = EnhancedThreadPoolExecutor(2)
        # Start a worker now: Python 3.12 cannot start threads once the main
        # thread has finished; the jobs then run on the workers that exist.
        executor.submit(pow, 1, 1).result(timeout=10)

        def producer():
            total = sum(executor.submit(pow, i, 2).result(timeout=10) for i in range(200))
            print("total", total, flush=True)

        threading.Thread(target=producer).start()
    """
    returncode, out, err = run_python(code, timeout=30)
    assert returncode == 0, err
    assert out.splitlines() == ["total %d" % sum(i * i for i in range(200))]
