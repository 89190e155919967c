"""How the executors read the arguments of ``submit`` and ``map``.

Encore's executors took ``submit(fn, *args, **kwargs)`` with ``fn`` also
accepted by keyword, and ``map(fn, *iterables, **kwargs)`` with a
``timeout`` keyword.  The standard library has since made ``fn``
positional-only, so that a job may take a keyword argument named ``fn``.
Both work here: ``fn`` given by position is the job and any ``fn=`` keyword
goes to the job; ``fn`` given only by keyword is the job (Encore's form).
"""
from __future__ import annotations

import concurrent.futures
import inspect
from typing import Any, Callable, Dict, Iterator


class _Required(object):
    """The default of ``fn``, meaning "not given by position"."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<required>"


#: The default of the positional ``fn`` parameter of ``submit``.
REQUIRED: Any = _Required()

#: The keywords ``map`` understands: those of the standard library's
#: :meth:`concurrent.futures.Executor.map` on this Python (``timeout``,
#: ``chunksize``, and ``buffersize`` from Python 3.14).
MAP_KEYWORDS = tuple(
    name for name, parameter in inspect.signature(concurrent.futures.Executor.map).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
)


def job_from_keywords(kwargs: Dict[str, Any]) -> Callable[..., Any]:
    """Take the job out of ``kwargs`` when ``submit`` got no ``fn`` by position.

    Parameters
    ----------
    kwargs : dict
        The keyword arguments of ``submit``; ``'fn'`` is removed from it.

    Returns
    -------
    callable
        The job.

    Raises
    ------
    TypeError
        If no job was given, or it is not callable.
    """
    try:
        fn = kwargs.pop("fn")
    except KeyError:
        raise TypeError("submit() needs the job to run, fn") from None
    if not callable(fn):
        raise TypeError("the job must be callable, got {!r}".format(fn))
    return fn


def map_options(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Check the keywords given to ``map`` (see :data:`MAP_KEYWORDS`).

    Parameters
    ----------
    kwargs : dict
        The keyword arguments of ``map``.

    Returns
    -------
    dict
        The keywords to pass on to the standard ``map``.

    Raises
    ------
    TypeError
        If a keyword is unknown.
    """
    unknown = sorted(name for name in kwargs if name not in MAP_KEYWORDS)
    if unknown:
        raise TypeError("map() got unexpected keyword argument(s): {}".format(", ".join(unknown)))
    return kwargs


def executor_map(self: concurrent.futures.Executor, fn: Callable[..., Any], *iterables: Any,
                 **kwargs: Any) -> Iterator[Any]:
    """Run ``fn`` over the iterables, as the built-in :func:`map` would.

    Every call is submitted at once; the results come in order.

    Parameters
    ----------
    fn : callable
        The job, called with one item of each iterable.
    *iterables
        The arguments.
    **kwargs
        ``timeout`` (seconds, default ``None``: no limit, counted from
        the call to ``map``), and the other keywords of
        :meth:`concurrent.futures.Executor.map` (``chunksize``, ignored
        by threads).

    Returns
    -------
    iterator
        The results in order; closing it early cancels the calls that
        have not started.

    Raises
    ------
    TypeError
        If an unknown keyword is given.
    TimeoutError
        From the iterator, if a result is not ready within ``timeout``.
    """
    return concurrent.futures.Executor.map(self, fn, *iterables, **map_options(kwargs))
