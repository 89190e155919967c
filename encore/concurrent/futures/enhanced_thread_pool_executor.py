"""A thread pool executor with worker hooks, named threads and exit control.

:class:`EnhancedThreadPoolExecutor` implements the standard
:class:`concurrent.futures.Executor` interface and adds

* an *initializer* and an *uninitializer*, zero-argument callables that every
  worker thread runs once when it starts and once when it exits (to open and
  close a per-thread database connection, for example);
* a *name*, used to name the worker threads ``"<name>Worker-<n>"``;
* *wait_at_exit*, which chooses whether the interpreter waits for the workers
  (and the jobs already queued) when it exits.

**How the workers end.**  Workers are daemon threads, so they never keep the
interpreter alive on their own.  A single :mod:`atexit` hook, registered when
this module is imported, runs while the interpreter is still fully working
(after the main thread and every non-daemon thread have finished).  It makes every executor refuse new
jobs, tells the workers of the executors created with ``wait_at_exit=True``
to stop once the queued jobs are done, and joins them.  Workers of executors
created with ``wait_at_exit=False`` are left alone and simply stop existing
when the process ends, even in the middle of a job.

This uses only public interfaces (:func:`atexit.register` and daemon
threads), so it behaves the same on every supported Python version.  The
standard library pool instead uses non-daemon threads and the private
``threading._register_atexit``.

Python 3.12 refuses to start a thread once the main thread has finished.  A
job submitted then (by a non-daemon thread, or an :mod:`atexit` hook that
runs before this module's) runs on the workers that already exist; if the
executor has none yet, :meth:`EnhancedThreadPoolExecutor.submit` raises
:class:`RuntimeError` rather than accept a job that would never run.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import itertools
import logging
import queue
import threading
import weakref
from typing import Any, Callable, Optional

from ._arguments import REQUIRED, executor_map, job_from_keywords
from .future import Future

logger = logging.getLogger(__name__)

# Set, once and for all, by the exit hook: from then on no executor accepts a
# job.  Read without a lock by ``submit`` (under the executor's own lock, so
# the exit hook can use that lock as a barrier).
_interpreter_exiting = False

# Guards the two registries below and the flag above.
_registry_lock = threading.Lock()
# Executors whose workers the exit hook must wait for.
_exit_waited_executors: "weakref.WeakSet[EnhancedThreadPoolExecutor]" = weakref.WeakSet()
# Worker thread -> its work queue, for those same executors.  The entries
# outlive the executor (a worker may still run queued jobs after its executor
# has been garbage-collected) and vanish when the thread object goes away.
_exit_waited_workers: "weakref.WeakKeyDictionary[threading.Thread, queue.SimpleQueue]" = (
    weakref.WeakKeyDictionary()
)


def _join_workers_at_exit() -> None:
    """Stop accepting jobs and wait for the workers that must be waited for."""
    global _interpreter_exiting
    with _registry_lock:
        _interpreter_exiting = True
        executors = list(_exit_waited_executors)
    # Barrier: a submit that saw the flag unset holds its executor's lock
    # until its job is queued (and its worker registered), so once every lock
    # has been taken once, the set of queued jobs and workers is final.
    for executor in executors:
        with executor._shutdown_lock:
            pass
    with _registry_lock:
        workers = list(_exit_waited_workers.items())
    for _, work_queue in workers:
        work_queue.put(None)
    current = threading.current_thread()
    for thread, _ in workers:
        if thread is not current:
            thread.join()


atexit.register(_join_workers_at_exit)


def _run_worker(
    executor_ref: "weakref.ReferenceType[EnhancedThreadPoolExecutor]",
    work_queue: queue.SimpleQueue,
    initializer: Optional[Callable[[], Any]],
    uninitializer: Optional[Callable[[], Any]],
) -> None:
    """The body of a worker thread."""
    if initializer is not None:
        try:
            initializer()
        except BaseException:
            logger.critical("Exception in the initializer of a worker thread", exc_info=True)
    try:
        get = work_queue.get
        while True:
            work_item = get()
            if work_item is not None:
                future, fn, args, kwargs = work_item
                del work_item
                if future.set_running_or_notify_cancel():
                    try:
                        result = fn(*args, **kwargs)
                    except BaseException as exc:
                        future.set_exception(exc)
                        del exc
                    else:
                        future.set_result(result)
                        del result
                # Drop references to the job before blocking again.
                del future, fn, args, kwargs
                continue
            executor = executor_ref()
            if _interpreter_exiting or executor is None or executor._shutdown:
                # Pass the sentinel on so the next worker stops too.
                work_queue.put(None)
                return
            del executor
    finally:
        if uninitializer is not None:
            try:
                uninitializer()
            except BaseException:
                logger.exception("Exception in the uninitializer of a worker thread")


class EnhancedThreadPoolExecutor(concurrent.futures.Executor):
    """A pool of worker threads, with worker hooks and named threads.

    Worker threads are started on demand, one per call to :meth:`submit`,
    until there are ``max_workers`` of them.  Jobs run in submission order
    (several at a time when there are several workers).

    Parameters
    ----------
    max_workers : int
        The largest number of worker threads.  ``None`` picks the standard
        library's default (``min(32, os.cpu_count() + 4)``).
    initializer : callable, optional
        Called with no argument by each worker when it starts.  An exception
        it raises is logged (at CRITICAL level) and the worker carries on.
    uninitializer : callable, optional
        Called with no argument by each worker just before it exits
        (after :meth:`shutdown`, at interpreter exit when ``wait_at_exit`` is
        true, or when the executor has been garbage-collected).  An exception
        it raises is logged.
    name : str, optional
        Names the worker threads ``"<name>Worker-<n>"`` with ``n`` counting
        from 1.  Defaults to the class name.
    wait_at_exit : bool, optional
        If true (the default), the interpreter waits at exit for the jobs
        already submitted to finish and for the workers to run their
        uninitializer.  If false, the workers do not delay the exit: any job
        still running or queued is abandoned.

    Raises
    ------
    ValueError
        If ``max_workers`` is not positive.
    TypeError
        If ``initializer`` or ``uninitializer`` is given but not callable.

    Examples
    --------
    >>> from encore.concurrent.futures.enhanced_thread_pool_executor import (
    ...     EnhancedThreadPoolExecutor)
    >>> with EnhancedThreadPoolExecutor(max_workers=2, name="Demo") as executor:
    ...     list(executor.map(abs, [-1, -2, 3]))
    [1, 2, 3]
    """

    #: The future class returned by :meth:`submit`.
    _future_factory = Future

    def __init__(
        self,
        max_workers: Optional[int],
        initializer: Optional[Callable[[], Any]] = None,
        uninitializer: Optional[Callable[[], Any]] = None,
        name: Optional[str] = None,
        wait_at_exit: bool = True,
    ) -> None:
        if max_workers is None:
            import os

            max_workers = min(32, (os.cpu_count() or 1) + 4)
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if uninitializer is not None and not callable(uninitializer):
            raise TypeError("uninitializer must be a callable")
        self._max_workers = max_workers
        self._initializer = initializer
        self._uninitializer = uninitializer
        self.name = type(self).__name__ if name is None else name
        self._wait_at_exit = bool(wait_at_exit)
        self._work_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._thread_numbers = itertools.count(1)
        self._shutdown = False
        self._shutdown_lock = threading.Lock()
        # When the executor is garbage-collected, wake the workers so they
        # notice and exit (they hold only this weak reference to it).
        work_queue = self._work_queue
        self._self_ref = weakref.ref(self, lambda _, q=work_queue: q.put(None))  # type: ignore[misc]
        if self._wait_at_exit:
            with _registry_lock:
                _exit_waited_executors.add(self)

    @property
    def max_workers(self) -> int:
        """int : The largest number of worker threads."""
        return self._max_workers

    @property
    def wait_at_exit(self) -> bool:
        """bool : Whether the interpreter waits for the workers at exit."""
        return self._wait_at_exit

    def submit(self, fn: Callable[..., Any] = REQUIRED, /, *args: Any, **kwargs: Any) -> Future:
        """Schedule ``fn(*args, **kwargs)`` to run on a worker thread.

        Parameters
        ----------
        fn : callable
            The job.  Given by position, any ``fn=`` keyword goes to the
            job; Encore's ``submit(fn=job)`` works too.
        *args, **kwargs
            Passed to ``fn``.

        Returns
        -------
        Future
            Completed with the job's result or the exception it raised.

        Raises
        ------
        TypeError
            If no job is given.
        RuntimeError
            If the executor has been shut down, or the interpreter is
            exiting (the exit hook has run), or a first worker thread could
            not be started (Python 3.12 refuses new threads once the main
            thread has finished).
        """
        if fn is REQUIRED:
            fn = job_from_keywords(kwargs)
        future = self._future_factory()
        with self._shutdown_lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _interpreter_exiting:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            if len(self._threads) < self._max_workers:
                try:
                    self._start_worker()
                except RuntimeError:
                    # Python 3.12 refuses to start threads once the
                    # interpreter has begun to exit; the existing workers
                    # will run the job, if there are any.
                    if not self._threads:
                        raise
            self._work_queue.put((future, fn, args, kwargs))
        return future

    map = executor_map

    def _start_worker(self) -> None:
        # Called with the shutdown lock held (which the exit hook uses as a
        # barrier, so registering after the start is not too late).
        thread = threading.Thread(
            name="{}Worker-{}".format(self.name, next(self._thread_numbers)),
            target=_run_worker,
            args=(self._self_ref, self._work_queue, self._initializer, self._uninitializer),
            daemon=True,
        )
        thread.start()
        self._threads.append(thread)
        if self._wait_at_exit:
            with _registry_lock:
                _exit_waited_workers[thread] = self._work_queue

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new jobs and let the workers exit once the queue is empty.

        Jobs already submitted still run, unless ``cancel_futures`` is true.

        Parameters
        ----------
        wait : bool, optional
            If true (the default), return only once every worker has exited
            (and so every remaining job has run).  A worker calling this
            does not wait for itself.
        cancel_futures : bool, optional
            If true, cancel the jobs that have not started yet.
        """
        cancelled = []
        with self._shutdown_lock:
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        work_item = self._work_queue.get_nowait()
                    except queue.Empty:
                        break
                    if work_item is not None:
                        cancelled.append(work_item[0])
            self._work_queue.put(None)
            threads = list(self._threads)
        # Cancel outside the lock: cancelling runs the futures' done-callbacks,
        # which may call submit (and get a RuntimeError) rather than deadlock.
        for future in cancelled:
            future.cancel()
        if wait:
            current = threading.current_thread()
            for thread in threads:
                if thread is not current:
                    thread.join()
