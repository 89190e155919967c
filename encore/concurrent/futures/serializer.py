"""A work scheduler that runs every job, one at a time, in submission order."""
from __future__ import annotations

import collections
import concurrent.futures
import logging
from typing import Any, Callable, Deque, Optional

from .abc_work_scheduler import ABCWorkScheduler, Job

logger = logging.getLogger(__name__)


class Serializer(ABCWorkScheduler):
    """Run every submitted job, one at a time, first in first out.

    Jobs run on the executor but never overlap, and each starts only after
    the previous one has finished (and its callback has run), so they see
    each other's effects in submission order.  Submissions from several
    threads are ordered by the moment :meth:`submit` takes the scheduler's
    lock.

    Parameters
    ----------
    executor : concurrent.futures.Executor
        Runs the jobs.
    name : str, optional
        Used in log messages.  Defaults to the class name.
    callback : callable, optional
        Called with the future of every job, once it is done.

    Examples
    --------
    Write lines to a log file from many threads without interleaving, and
    without making the threads wait for the disk::

        serializer = Serializer(executor)
        serializer.submit(log_file.write, "first\\n")
        serializer.submit(log_file.write, "second\\n")
        serializer.wait()
    """

    def __init__(
        self,
        executor: concurrent.futures.Executor,
        name: Optional[str] = None,
        callback: Optional[Callable[[concurrent.futures.Future], Any]] = None,
    ) -> None:
        super().__init__(executor, name=name, callback=callback)
        self._pending: Deque[Job] = collections.deque()

    def _add_pending_operation(self, operation: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self._pending.append((operation, args, kwargs))

    def _get_next_operation(self) -> Optional[Job]:
        if self._pending:
            return self._pending.popleft()
        return None
