"""An executor that runs every job immediately, in the calling thread."""
from __future__ import annotations

import concurrent.futures
import logging
import threading
from typing import Any, Callable

from ._arguments import REQUIRED, executor_map, job_from_keywords
from .future import Future

logger = logging.getLogger(__name__)


class SynchronousExecutor(concurrent.futures.Executor):
    """An executor that runs each job in the thread that submits it.

    :meth:`submit` returns only once the job has finished, with a future that
    is already done.  It is a drop-in replacement for a thread pool in tests
    and in single-threaded programs: code written against the
    :class:`concurrent.futures.Executor` interface runs unchanged and
    deterministically.

    Examples
    --------
    >>> from encore.concurrent.futures import SynchronousExecutor
    >>> with SynchronousExecutor() as executor:
    ...     executor.submit(pow, 2, 10).result()
    1024
    """

    def __init__(self) -> None:
        self._shutdown = False
        self._shutdown_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any] = REQUIRED, /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` now and return its finished future.

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
            A done future holding the result, or the exception the job
            raised (any :class:`BaseException` is captured, as a thread pool
            would).

        Raises
        ------
        TypeError
            If no job is given.
        RuntimeError
            If the executor has been shut down.
        """
        if fn is REQUIRED:
            fn = job_from_keywords(kwargs)
        with self._shutdown_lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        future = Future()
        future.set_running_or_notify_cancel()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            future.set_exception(exc)
            # Break the cycle frame -> exc -> traceback -> frame.
            del exc
        else:
            future.set_result(result)
        return future

    map = executor_map

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse any further job.

        Nothing is ever pending, so there is nothing to wait for or cancel.

        Parameters
        ----------
        wait : bool, optional
            Accepted for compatibility; ignored.
        cancel_futures : bool, optional
            Accepted for compatibility; ignored.
        """
        with self._shutdown_lock:
            self._shutdown = True
