"""A :class:`concurrent.futures.Future` that remembers the traceback of a failure."""
from __future__ import annotations

import concurrent.futures
import logging
import traceback as _traceback
from typing import Optional

logger = logging.getLogger(__name__)


def format_exception_traceback(exception: BaseException) -> str:
    """Format an exception and the traceback attached to it.

    Parameters
    ----------
    exception : BaseException
        The exception; its ``__traceback__`` (and any chained exceptions)
        are included.

    Returns
    -------
    str
        The text :func:`traceback.print_exception` would print.
    """
    return "".join(
        _traceback.format_exception(type(exception), exception, exception.__traceback__)
    )


class Future(concurrent.futures.Future):
    """A standard future that also keeps the text of a failure's traceback.

    It behaves exactly like :class:`concurrent.futures.Future`; in addition,
    when :meth:`set_exception` is called the formatted traceback of the
    exception is recorded, and :meth:`traceback` returns it.  The text is
    captured at that moment, so frames added later (by re-raising the
    exception from :meth:`result`, for example) do not appear in it.

    :class:`~encore.concurrent.futures.enhanced_thread_pool_executor.EnhancedThreadPoolExecutor`
    returns futures of this class.
    """

    # A class-level default rather than an __init__ override keeps creating
    # a future as cheap as creating a standard one (executors' hot path).
    _traceback_text: Optional[str] = None

    def set_exception(self, exception: Optional[BaseException]) -> None:
        """Mark the future as failed with ``exception``.

        Parameters
        ----------
        exception : BaseException
            The exception raised by the job.

        Raises
        ------
        concurrent.futures.InvalidStateError
            If the future is already done.
        """
        if exception is not None:
            self._traceback_text = format_exception_traceback(exception)
        super().set_exception(exception)

    def traceback(self) -> Optional[str]:
        """Return the formatted traceback of the job's exception.

        Unlike :meth:`exception`, this does not wait for the job to finish.

        Returns
        -------
        str or None
            The traceback text, or ``None`` if the job has not failed (yet).
        """
        return self._traceback_text
