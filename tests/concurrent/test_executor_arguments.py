"""What the executors' ``submit`` and ``map`` accept: Encore's forms and the
standard library's."""
import concurrent.futures
import threading

import pytest

from encore.concurrent.futures import SynchronousExecutor
from encore.concurrent.futures.enhanced_thread_pool_executor import EnhancedThreadPoolExecutor

TIMEOUT = 10.0


@pytest.fixture(params=["synchronous", "enhanced-pool"])
def executor(request):
    if request.param == "synchronous":
        executor = SynchronousExecutor()
    else:
        executor = EnhancedThreadPoolExecutor(max_workers=2, name="ArgumentsPool")
    yield executor
    executor.shutdown(wait=True)


def describe(*args, **kwargs):
    return args, kwargs


def test_submit_by_position(executor):
    future = executor.submit(describe, 1, 2, key="value")
    assert future.result(timeout=TIMEOUT) == ((1, 2), {"key": "value"})


def test_submit_fn_by_keyword_as_encore_allowed(executor):
    assert executor.submit(fn=pow, base=2, exp=5).result(timeout=TIMEOUT) == 32
    assert executor.submit(fn=describe).result(timeout=TIMEOUT) == ((), {})


def test_a_job_may_take_an_fn_keyword(executor):
    future = executor.submit(describe, 1, fn="for the job")
    assert future.result(timeout=TIMEOUT) == ((1,), {"fn": "for the job"})


def test_submit_without_a_job_is_a_clear_error(executor):
    with pytest.raises(TypeError, match="fn"):
        executor.submit()
    with pytest.raises(TypeError, match="callable"):
        executor.submit(fn=42)


def test_map_with_timeout_and_chunksize(executor):
    assert list(executor.map(pow, [2, 3, 4], [2, 2, 2], timeout=TIMEOUT)) == [4, 9, 16]
    assert list(executor.map(str, range(3), chunksize=2)) == ["0", "1", "2"]
    assert list(executor.map(describe, [1, 2])) == [((1,), {}), ((2,), {})]


def test_map_refuses_unknown_keywords_before_running_anything(executor):
    ran = []
    with pytest.raises(TypeError, match="colour"):
        executor.map(ran.append, [1, 2], colour="red")
    assert ran == []


def test_map_timeout_is_honoured():
    executor = EnhancedThreadPoolExecutor(max_workers=1, name="TimeoutPool")
    release = threading.Event()
    try:
        results = executor.map(lambda _: release.wait(TIMEOUT), [1], timeout=0.01)
        with pytest.raises(concurrent.futures.TimeoutError):
            next(results)
    finally:
        release.set()
        executor.shutdown(wait=True)
