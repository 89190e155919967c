"""Tests of encore.concurrent.futures.future and .synchronous."""
import concurrent.futures
import threading

import pytest

import encore.concurrent.futures as futures_package
from encore.concurrent.futures.future import Future, format_exception_traceback
from encore.concurrent.futures.synchronous import SynchronousExecutor


def failing_job():
    raise ValueError("the job failed")


def test_package_reexports_synchronous_executor():
    assert futures_package.SynchronousExecutor is SynchronousExecutor


def test_future_is_a_standard_future():
    future = Future()
    assert isinstance(future, concurrent.futures.Future)
    assert future.traceback() is None
    future.set_result(42)
    assert future.result(timeout=0) == 42
    assert future.traceback() is None


def test_future_traceback_records_where_the_exception_was_raised():
    future = Future()
    try:
        failing_job()
    except ValueError as exc:
        future.set_exception(exc)
    text = future.traceback()
    assert text.startswith("Traceback (most recent call last):")
    assert "failing_job" in text
    assert text.rstrip().endswith("ValueError: the job failed")
    with pytest.raises(ValueError, match="the job failed"):
        future.result(timeout=0)
    # Re-raising from result() adds frames to the exception, not to the text.
    assert future.traceback() == text


def test_future_traceback_of_an_exception_never_raised():
    future = Future()
    future.set_exception(KeyError("k"))
    assert future.traceback().strip() == "KeyError: 'k'"


def test_format_exception_traceback_includes_the_cause():
    try:
        try:
            failing_job()
        except ValueError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as exc:
        text = format_exception_traceback(exc)
    assert "ValueError: the job failed" in text
    assert "direct cause" in text
    assert text.rstrip().endswith("RuntimeError: wrapped")


def test_synchronous_executor_runs_in_the_calling_thread():
    executor = SynchronousExecutor()
    future = executor.submit(lambda a, b=0: (threading.current_thread(), a + b), 1, b=2)
    assert future.done()
    thread, value = future.result(timeout=0)
    assert thread is threading.current_thread()
    assert value == 3


def test_synchronous_executor_captures_exceptions():
    executor = SynchronousExecutor()
    future = executor.submit(failing_job)
    assert future.done()
    assert isinstance(future.exception(timeout=0), ValueError)
    assert "failing_job" in future.traceback()


def test_synchronous_executor_captures_base_exceptions():
    def interrupt():
        raise KeyboardInterrupt

    future = SynchronousExecutor().submit(interrupt)
    assert isinstance(future.exception(timeout=0), KeyboardInterrupt)


def test_synchronous_executor_refuses_jobs_after_shutdown():
    executor = SynchronousExecutor()
    executor.shutdown()
    with pytest.raises(RuntimeError):
        executor.submit(print)


def test_synchronous_executor_map_and_context_manager():
    with SynchronousExecutor() as executor:
        assert list(executor.map(pow, [2, 3], [3, 2])) == [8, 9]
    with pytest.raises(RuntimeError):
        executor.submit(print)
