"""An asynchronizer that pauses between jobs."""
from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
from typing import Any, Callable, Optional

from .asynchronizer import Asynchronizer

logger = logging.getLogger(__name__)


def _daemon_timer(interval: float, function: Callable[[], Any]) -> threading.Timer:
    """The default timer factory: a :class:`threading.Timer` that is a daemon.

    Being a daemon, a pending delay does not hold the interpreter back at
    exit.
    """
    timer = threading.Timer(interval, function)
    timer.daemon = True
    return timer


class DelayedAsynchronizer(Asynchronizer):
    """An :class:`Asynchronizer` that waits ``interval`` seconds between jobs.

    As with :class:`Asynchronizer`, only the newest waiting job is kept and
    the first job submitted to an idle scheduler starts at once.  In
    addition, after each job finishes the scheduler stays busy for
    ``interval`` seconds; only then does the newest waiting job (if any) run.
    So consecutive jobs start at least ``interval`` seconds after the
    previous one ended, which limits how often an expensive operation runs
    however often it is requested.

    :meth:`wait` returns only after the pause that follows the last job.
    :meth:`shutdown` does not sit out that final pause when nothing is
    waiting: it cancels the timer and returns.  If a job is waiting, it
    still runs once its pause is over, and :meth:`shutdown` returns when it
    has finished.

    Parameters
    ----------
    executor : concurrent.futures.Executor
        Runs the jobs.
    interval : float
        The pause after each job, in seconds.
    name : str, optional
        Used in log messages.  Defaults to the class name.
    callback : callable, optional
        Called with the future of every job that ran, once it is done.
    timer_factory : callable, optional
        ``timer_factory(interval, function)`` must return an object with
        ``start()`` and ``cancel()`` methods that calls ``function()`` once,
        ``interval`` seconds after ``start()``, unless cancelled first --
        the interface of :class:`threading.Timer`.  Defaults to a daemon
        :class:`threading.Timer`.  Tests can pass a fake timer that fires on
        demand.

    Raises
    ------
    ValueError
        If ``interval`` is negative.

    Examples
    --------
    Save a document at most every two seconds while it is being edited::

        autosave = DelayedAsynchronizer(executor, 2.0)
        document.on_change(lambda: autosave.submit(document.save))
    """

    #: The logger that failures are reported to.
    _logger = logger

    def __init__(
        self,
        executor: concurrent.futures.Executor,
        interval: float,
        name: Optional[str] = None,
        callback: Optional[Callable[[concurrent.futures.Future], Any]] = None,
        timer_factory: Optional[Callable[[float, Callable[[], Any]], Any]] = None,
    ) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative, got {!r}".format(interval))
        super().__init__(executor, name=name, callback=callback)
        self.interval = interval
        self.timer_factory = _daemon_timer if timer_factory is None else timer_factory
        self._timer: Any = None
        # Identifies the current pause; a timer whose token is no longer
        # current (because it was cancelled) does nothing when it fires.
        self._timer_token: Optional[object] = None

    def _job_done(self) -> None:
        with self._lock:
            if self._shutdown and self._pending is None:
                timer = None
            else:
                token = object()
                timer = self.timer_factory(self.interval, functools.partial(self._pause_over, token))
                self._timer = timer
                self._timer_token = token
        if timer is None:
            # Shutting down with nothing left to run: skip the final pause.
            self._run_next()
            return
        try:
            timer.start()
        except Exception:
            self._logger.exception("%s could not start its timer; not pausing", self.name)
            self._pause_over(token)

    def _pause_over(self, token: object) -> None:
        with self._lock:
            if token is not self._timer_token:
                return
            self._timer = None
            self._timer_token = None
        self._run_next()

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Refuse new jobs, then wait for the jobs already accepted.

        If the scheduler is only pausing after its last job, the pause is
        cancelled and this returns at once.  If a job is waiting, it runs
        when its pause is over and this returns after it.

        Parameters
        ----------
        timeout : float, optional
            The longest time to wait, in seconds.

        Returns
        -------
        bool
            True if the scheduler is idle, False if the timeout expired.
        """
        with self._lock:
            self._shutdown = True
            timer = None
            if self._timer_token is not None and self._pending is None:
                timer = self._timer
                self._timer = None
                self._timer_token = None
        if timer is not None:
            try:
                timer.cancel()
            finally:
                self._run_next()
        return self.wait(timeout)
