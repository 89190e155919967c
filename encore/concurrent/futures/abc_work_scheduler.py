"""The base class of the work schedulers.

A *work scheduler* sits in front of an executor.  Jobs are submitted to the
scheduler, which keeps at most one of them running on the executor at any
time and decides, through two hooks, which of the jobs submitted meanwhile
runs next (and which are dropped).  The subclasses are

* :class:`~encore.concurrent.futures.asynchronizer.Asynchronizer`: only the
  most recently submitted job is kept;
* :class:`~encore.concurrent.futures.delayed_asynchronizer.DelayedAsynchronizer`:
  the same, with a pause between jobs;
* :class:`~encore.concurrent.futures.serializer.Serializer`: every job runs,
  in submission order;
* :class:`~encore.concurrent.futures.serializing_asynchronizer.SerializingAsynchronizer`:
  the most recent job of each callable is kept, callables run in order.
"""
from __future__ import annotations

import abc
import concurrent.futures
import logging
import threading
from typing import Any, Callable, Optional, Tuple

from .future import format_exception_traceback

logger = logging.getLogger(__name__)

#: A job as the hooks exchange it, the tuple ``(operation, args, kwargs)``.
Job = Tuple[Callable[..., Any], tuple, dict]


class ABCWorkScheduler(abc.ABC):
    """Run submitted jobs on an executor, at most one at a time.

    When a job finishes (on whatever thread the executor completes it),
    the scheduler

    1. calls ``callback(future)`` if a callback was given;
    2. logs the job's exception, if it raised one;
    3. asks :meth:`_get_next_operation` for the next job and submits it, or
       becomes idle if there is none.

    A failing job, a failing callback, a cancelled job or an executor that
    refuses the job never stops the scheduler: the failure is logged and the
    next job runs.  Any :class:`concurrent.futures.Executor` may be used.

    Subclasses implement the two hooks :meth:`_add_pending_operation` and
    :meth:`_get_next_operation`; they are called with the scheduler's lock
    held, so they need no locking of their own and must not block.

    Parameters
    ----------
    executor : concurrent.futures.Executor
        Runs the jobs.  The scheduler never shuts it down.
    name : str, optional
        Used in log messages.  Defaults to the class name.
    callback : callable, optional
        Called with the :class:`concurrent.futures.Future` of every job when
        it is done, on the thread that completed it.  An exception it raises
        is logged.

    Notes
    -----
    Each failed completion (the job raised, the executor refused it, or the
    callback raised, including a callback that re-raises the job's exception
    through ``future.result()``) produces exactly two ERROR records on the
    module's logger, as Encore's did: first
    ``"<ExceptionType> occurred in submitted <name> job."`` carrying the
    exception (``exc_info``; the callback's if it raised, else the job's),
    then ``"Actual error:\\n"`` followed by the traceback text (the job's if
    it failed, else the callback's).  Nothing else is logged for it, at any
    level.
    """

    #: The logger that failures are reported to.
    _logger = logger

    def __init__(
        self,
        executor: concurrent.futures.Executor,
        name: Optional[str] = None,
        callback: Optional[Callable[[concurrent.futures.Future], Any]] = None,
    ) -> None:
        self._executor = executor
        self.name = type(self).__name__ if name is None else name
        self.callback = callback
        self._lock = threading.Lock()
        self._idle_condition = threading.Condition(self._lock)
        # True from the moment a job is handed to the executor until the
        # scheduler has found nothing more to run.
        self._busy = False
        self._shutdown = False
        # Per thread: whether this thread is inside _launch, and the job a
        # done-callback that ran inline (in that same thread) left for it.
        self._local = threading.local()

    @property
    def executor(self) -> concurrent.futures.Executor:
        """concurrent.futures.Executor : The executor that runs the jobs."""
        return self._executor

    # Public interface --------------------------------------------------

    def submit(self, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Submit ``operation(*args, **kwargs)`` for execution.

        If the scheduler is idle, the job is handed to the executor at once;
        otherwise it is given to :meth:`_add_pending_operation`, and the
        subclass decides when it runs, or whether it is dropped.

        Parameters
        ----------
        operation : callable
            The job.
        *args, **kwargs
            Passed to ``operation``.

        Raises
        ------
        RuntimeError
            If the scheduler has been shut down.
        """
        with self._lock:
            if self._shutdown:
                raise RuntimeError("{} has been shut down".format(self.name))
            self._add_pending_operation(operation, args, kwargs)
            if self._busy:
                return
            job = self._get_next_operation()
            if job is None:
                return
            self._busy = True
        self._launch(job)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the scheduler is idle: nothing running, nothing pending.

        Must not be called from one of the scheduler's own jobs or from its
        callback, which would wait for themselves.

        Parameters
        ----------
        timeout : float, optional
            The longest time to wait, in seconds.  ``None`` (the default)
            waits as long as needed.

        Returns
        -------
        bool
            True if the scheduler is idle, False if the timeout expired.
        """
        with self._lock:
            return self._idle_condition.wait_for(self._is_idle, timeout)

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Refuse new jobs, then wait for the jobs already accepted.

        The executor is not shut down.

        Parameters
        ----------
        timeout : float, optional
            The longest time to wait, in seconds (see :meth:`wait`).

        Returns
        -------
        bool
            True if the scheduler is idle, False if the timeout expired.
        """
        with self._lock:
            self._shutdown = True
        return self.wait(timeout)

    # Hooks -------------------------------------------------------------

    @abc.abstractmethod
    def _add_pending_operation(self, operation: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        """Record a submitted job as pending.

        Called with the scheduler's lock held, for every submitted job.

        Parameters
        ----------
        operation : callable
            The job's callable.
        args : tuple
            Its positional arguments.
        kwargs : dict
            Its keyword arguments.
        """

    @abc.abstractmethod
    def _get_next_operation(self) -> Optional[Job]:
        """Remove and return the job to run next.

        Called with the scheduler's lock held.

        Returns
        -------
        tuple or None
            ``(operation, args, kwargs)``, or ``None`` if nothing is pending.
        """

    # Machinery ---------------------------------------------------------

    def _is_idle(self) -> bool:
        return not self._busy

    def _launch(self, job: Job) -> None:
        """Hand jobs to the executor, starting with ``job``.

        A job that completes inside ``executor.submit`` or
        ``add_done_callback`` (a synchronous executor, or a very fast job)
        runs its done-callback in this very thread; that callback leaves the
        following job here instead of launching it itself, so a long chain
        of such jobs runs in this loop rather than by recursion.
        """
        local = self._local
        # A KeyboardInterrupt (or similar) raised while launching must not
        # leave the scheduler busy for ever: remember it, keep launching
        # until a job is in flight or the scheduler is idle, then re-raise.
        interrupt: Optional[BaseException] = None
        while job is not None:
            operation, args, kwargs = job
            local.inline_job = None
            local.launching = True
            try:
                try:
                    future = self._executor.submit(operation, *args, **kwargs)
                except BaseException as exc:
                    # The executor refused the job: complete it as failed, so
                    # it is reported and the scheduler moves on.
                    future = concurrent.futures.Future()
                    future.set_exception(exc)
                    if not isinstance(exc, Exception) and interrupt is None:
                        interrupt = exc
                    del exc
                try:
                    future.add_done_callback(self._job_completed)
                except BaseException as exc:
                    # Only an inline done-callback can raise here, and it has
                    # already moved the scheduler on (see _job_completed).
                    if interrupt is None:
                        interrupt = exc
                    del exc
            finally:
                local.launching = False
            job = local.inline_job
            local.inline_job = None
        if interrupt is not None:
            raise interrupt

    def _job_completed(self, future: concurrent.futures.Future) -> None:
        # The done-callback of every job.
        try:
            self._report(future)
        finally:
            if future.cancelled():
                self._job_done_elsewhere()
            else:
                self._job_done()

    def _job_done_elsewhere(self) -> None:
        # A cancelled future runs its done-callbacks in the thread that
        # cancelled it, which may hold a lock of the executor: the standard
        # pool cancels queued jobs in ``shutdown(cancel_futures=True)`` while
        # holding the lock its ``submit`` takes.  Submitting the next job from
        # here could deadlock, so do it from a thread of its own.
        thread = threading.Thread(
            target=self._job_done, name="{}Continuation".format(self.name), daemon=True
        )
        try:
            thread.start()
        except RuntimeError:
            # No new thread at interpreter exit (Python 3.12): carry on here.
            self._job_done()

    def _report(self, future: concurrent.futures.Future) -> None:
        # Each completion is reported once: a callback that re-raises the
        # job's exception (by calling ``future.result()``) must not make the
        # same failure appear twice.
        callback_error: Optional[BaseException] = None
        callback = self.callback
        if callback is not None:
            try:
                callback(future)
            except Exception as exc:
                callback_error = exc
        if future.cancelled():
            if callback_error is not None:
                self._log_failure(callback_error, None)
            else:
                self._logger.warning("A job of %s was cancelled", self.name)
            return
        job_error = future.exception()
        if callback_error is not None:
            self._log_failure(callback_error, future if job_error is not None else None)
        elif job_error is not None:
            self._log_failure(job_error, future)

    def _log_failure(
        self, exception: BaseException, failed_future: Optional[concurrent.futures.Future]
    ) -> None:
        """Log one failed completion as exactly two ERROR records.

        Parameters
        ----------
        exception : BaseException
            What stopped the completion: the callback's exception if it
            raised one, else the job's.
        failed_future : concurrent.futures.Future or None
            The job's future if the job itself failed; the second record then
            holds the job's own traceback (the "actual" error), as Encore's did.
        """
        self._logger.error(
            "%s occurred in submitted %s job.",
            type(exception).__name__,
            self.name,
            exc_info=(type(exception), exception, exception.__traceback__),
        )
        text = None
        if failed_future is not None:
            recorded = getattr(failed_future, "traceback", None)
            if callable(recorded):
                text = recorded()
            if text is None:
                job_error = failed_future.exception()
                if job_error is not None:
                    text = format_exception_traceback(job_error)
        if text is None:
            text = format_exception_traceback(exception)
        self._logger.error("Actual error:\n%s", text)

    def _job_done(self) -> None:
        """Called after each job has been reported; continues with the next."""
        self._run_next()

    def _run_next(self) -> None:
        """Launch the next pending job, or become idle."""
        with self._lock:
            job = self._get_next_operation()
            if job is None:
                self._busy = False
                self._idle_condition.notify_all()
                return
        local = self._local
        if getattr(local, "launching", False):
            local.inline_job = job
        else:
            self._launch(job)
