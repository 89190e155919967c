"""The package-wide default event manager.

Libraries that emit events (the stores of :mod:`encore.storage`, for
example) use :func:`get_event_manager` when they are not given a manager of
their own.
"""
from __future__ import annotations

import threading
from typing import Optional

from .abstract_event_manager import BaseEventManager

_event_manager: Optional[BaseEventManager] = None
_lock = threading.Lock()


def get_event_manager() -> BaseEventManager:
    """Return the package-wide event manager, creating it on first use.

    Returns
    -------
    BaseEventManager
        The manager set by :func:`set_event_manager`, or a new
        :class:`~encore.events.event_manager.EventManager`.
    """
    global _event_manager
    manager = _event_manager
    if manager is None:
        with _lock:
            if _event_manager is None:
                from .event_manager import EventManager

                manager = EventManager()
                # Lets set_event_manager() replace it while nobody uses it.
                manager._is_package_default = True
                _event_manager = manager
            manager = _event_manager
    return manager


def set_event_manager(event_manager: BaseEventManager) -> None:
    """Install the package-wide event manager.

    Parameters
    ----------
    event_manager : BaseEventManager
        The manager that :func:`get_event_manager` will return from now on:
        usually a :class:`BaseEventManager`, or any object offering the same
        methods.

    Raises
    ------
    ValueError
        If a different manager is already installed.  Installing the same
        manager again is allowed.  (Encore 0.8 also refused when
        :func:`get_event_manager` had merely been called before; here a
        default manager created lazily that nobody has connected to may be
        replaced, and from then on it forwards every call made on it to
        ``event_manager``, so code that obtained it earlier keeps working.)
    TypeError
        If ``event_manager`` has no callable ``connect`` and ``emit``.  A
        manager need not subclass :class:`BaseEventManager` (Encore 0.8
        accepted any object), but it must at least be able to connect
        listeners and emit events.
    """
    global _event_manager
    if not isinstance(event_manager, BaseEventManager) and not (
        callable(getattr(event_manager, "connect", None))
        and callable(getattr(event_manager, "emit", None))
    ):
        raise TypeError(
            "set_event_manager() needs an event manager (with connect and emit), "
            "got {!r}".format(event_manager)
        )
    with _lock:
        current = _event_manager
        if current is None or current is event_manager:
            _event_manager = event_manager
            return
        from .event_manager import EventManager

        # Whoever already holds the old default (a store that emitted, a
        # progress manager...) is forwarded to the new manager from now on.
        if isinstance(current, EventManager) and current._retire(event_manager):
            _event_manager = event_manager
            return
        raise ValueError("The package event manager has already been set")
