"""A work scheduler that keeps the newest job of each callable, in order."""
from __future__ import annotations

import collections
import concurrent.futures
import logging
from typing import Any, Callable, Optional

from .abc_work_scheduler import ABCWorkScheduler, Job

logger = logging.getLogger(__name__)


class SerializingAsynchronizer(ABCWorkScheduler):
    """Run jobs one at a time, keeping only the newest job of each callable.

    Waiting jobs are keyed by their callable (compared with ``==``, so
    ``obj.method`` taken twice is the same key).  Submitting a callable that
    is already waiting replaces its arguments but keeps its place in the
    queue; submitting a new callable appends it.  Callables run in the order
    in which they first started waiting.

    For example, while a job of ``C`` runs, submitting ``A(1)``, ``B()``,
    ``A(2)`` runs ``A(2)`` and then ``B()``.

    Parameters
    ----------
    executor : concurrent.futures.Executor
        Runs the jobs.
    name : str, optional
        Used in log messages.  Defaults to the class name.
    callback : callable, optional
        Called with the future of every job that ran, once it is done.

    Raises
    ------
    TypeError
        From :meth:`submit`, if the callable is not hashable.

    Examples
    --------
    Keep several views of a model up to date, each refreshed with its
    latest state, without refreshing any of them twice in a row::

        scheduler = SerializingAsynchronizer(executor)
        scheduler.submit(table_view.refresh, rows)
        scheduler.submit(chart_view.refresh, series)
        scheduler.submit(table_view.refresh, newer_rows)  # replaces rows
    """

    def __init__(
        self,
        executor: concurrent.futures.Executor,
        name: Optional[str] = None,
        callback: Optional[Callable[[concurrent.futures.Future], Any]] = None,
    ) -> None:
        super().__init__(executor, name=name, callback=callback)
        self._pending: "collections.OrderedDict[Callable[..., Any], tuple]" = collections.OrderedDict()

    def _add_pending_operation(self, operation: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        # Assigning to an existing key keeps its position in an OrderedDict.
        self._pending[operation] = (args, kwargs)

    def _get_next_operation(self) -> Optional[Job]:
        if not self._pending:
            return None
        operation, (args, kwargs) = self._pending.popitem(last=False)
        return (operation, args, kwargs)
