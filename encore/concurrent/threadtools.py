"""Helpers that capture common patterns of threaded code."""
from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Callable, TypeVar

logger = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


def synchronized(func: _F) -> _F:
    """Decorate a function so that only one thread at a time runs it.

    The decorated function gets its own re-entrant lock, created when the
    decorator is applied.  Every call takes the lock for the duration of the
    call, so a function that calls itself (directly or indirectly) from the
    same thread does not deadlock.  When a method is decorated, the lock
    belongs to the function, not to an instance: calls on *different*
    instances are serialized too.

    Parameters
    ----------
    func : callable
        The function to protect.

    Returns
    -------
    callable
        A wrapper with the name, docstring and other attributes of ``func``
        (see :func:`functools.wraps`).

    Examples
    --------
    >>> from encore.concurrent.threadtools import synchronized
    >>> counter = [0]
    >>> @synchronized
    ... def increment():
    ...     counter[0] += 1
    >>> increment()
    >>> counter
    [1]
    """
    lock = threading.RLock()

    @functools.wraps(func)
    def synchronized_call(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return func(*args, **kwargs)

    return synchronized_call  # type: ignore[return-value]
