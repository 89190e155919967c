"""Executors and work schedulers built on :mod:`concurrent.futures`.

Everything here interoperates with the standard library: the executors are
:class:`concurrent.futures.Executor` subclasses that return
:class:`concurrent.futures.Future` objects, and the work schedulers accept any
executor.  The modules are:

:mod:`~encore.concurrent.futures.future`
    :class:`Future`, a standard future that also keeps the traceback text of
    a failure.
:mod:`~encore.concurrent.futures.synchronous`
    :class:`SynchronousExecutor`, which runs each job in the calling thread.
:mod:`~encore.concurrent.futures.enhanced_thread_pool_executor`
    :class:`EnhancedThreadPoolExecutor`, a thread pool with per-worker
    initialization and clean-up hooks, named threads and a choice of whether
    the interpreter waits for its workers at exit.
:mod:`~encore.concurrent.futures.abc_work_scheduler`
    :class:`ABCWorkScheduler`, the base of the work schedulers, which keep at
    most one job of theirs running at a time:
    :class:`~encore.concurrent.futures.asynchronizer.Asynchronizer`,
    :class:`~encore.concurrent.futures.delayed_asynchronizer.DelayedAsynchronizer`,
    :class:`~encore.concurrent.futures.serializer.Serializer` and
    :class:`~encore.concurrent.futures.serializing_asynchronizer.SerializingAsynchronizer`.
"""
from .synchronous import SynchronousExecutor

__all__ = ["SynchronousExecutor"]
