"""A work scheduler that runs only the most recently submitted job."""
from __future__ import annotations

import concurrent.futures
import logging
from typing import Any, Callable, Optional

from .abc_work_scheduler import ABCWorkScheduler, Job

logger = logging.getLogger(__name__)


class Asynchronizer(ABCWorkScheduler):
    """Run jobs one at a time, dropping all but the newest waiting job.

    The first job submitted to an idle asynchronizer starts at once.  While a
    job runs, each new submission replaces the single waiting job; when the
    running job finishes, the waiting one (the most recent submission) runs.
    Jobs that were replaced never run.

    This suits work where only the latest request matters, such as
    recomputing a plot as a slider moves: however fast the requests come,
    at most one computation runs and one waits, and the last request is
    always honoured.

    Parameters
    ----------
    executor : concurrent.futures.Executor
        Runs the jobs.
    name : str, optional
        Used in log messages.  Defaults to the class name.
    callback : callable, optional
        Called with the future of every job that ran, once it is done.

    Examples
    --------
    Submitting ``1`` to ``10`` quickly runs the job for ``1`` (it started at
    once) and the job for ``10`` (the newest when ``1`` finished)::

        asynchronizer = Asynchronizer(executor)
        for i in range(1, 11):
            asynchronizer.submit(update_plot, i)
        asynchronizer.wait()
    """

    def __init__(
        self,
        executor: concurrent.futures.Executor,
        name: Optional[str] = None,
        callback: Optional[Callable[[concurrent.futures.Future], Any]] = None,
    ) -> None:
        super().__init__(executor, name=name, callback=callback)
        self._pending: Optional[Job] = None

    def _add_pending_operation(self, operation: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self._pending = (operation, args, kwargs)

    def _get_next_operation(self) -> Optional[Job]:
        job = self._pending
        self._pending = None
        return job
